"""Command-line behaviour that needs no GPU: one clear line and exit code 2 where it cannot run."""

from __future__ import annotations

import sys

import pytest

from profiler import cli

from profiler_helpers import run_profiler


def test_without_torch_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert cli.main(["--gpu", "h100-sxm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("profiler: torch is not importable")


def test_without_pyyaml_says_so_in_one_line(monkeypatch, capsys):
    pytest.importorskip("torch")
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "yaml" else find_spec(name, *a))
    assert cli.main(["--dry-run", "--out", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "profiler: PyYAML not importable here (the model cards are YAML, the operator graph uses numpy): "
        "pip install PyYAML"
    ]


def test_without_a_gpu_exit_2_and_one_line():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    result = run_profiler("--gpu", "h100-sxm", "--quick", "--ops", "gemm")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "profiler: no CUDA GPU visible (torch.cuda.is_available() is False); "
        "use --dry-run to exercise the code paths on CPU"
    ]


def test_unknown_family_is_a_usage_error(capsys):
    assert cli.main(["--gpu", "x", "--ops", "gemm,flops"]) == 2
    assert "unknown --ops flops" in capsys.readouterr().err


def test_no_arguments_still_checks_the_runtime_first(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert cli.main([]) == 2
    assert "torch is not importable" in capsys.readouterr().err


def test_output_paths_put_meta_beside_tables(tmp_path):
    tables, meta = cli.output_paths("h100-sxm", None)
    assert tables.parts[-3:] == ("calibration", "h100-sxm", "tables")
    assert meta == tables.parent / "meta.json"
    assert cli.output_paths("x", tmp_path / "out") == (tmp_path / "out", tmp_path / "out" / "meta.json")


def _plan_counts(*args):
    result = run_profiler("--plan", "--gpu", "h100-sxm", "--out", "/nonexistent/plan-only", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = {}
    for line in result.stderr.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "to" and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts, result.stderr


def test_quick_plan_lists_every_family_without_a_gpu():
    pytest.importorskip("torch")
    quick, text = _plan_counts("--quick")
    assert set(quick) == set(cli.FAMILIES), text
    assert all(n > 0 for n in quick.values()), text
    assert "total about" in text


def test_a_time_budget_leaves_rows_for_a_rerun(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "tables"
    result = run_profiler("--dry-run", "--out", str(out), "--ops", "memcpy", "--budget-min", "0.00001")
    assert result.returncode == 0, result.stderr
    assert "time budget reached: 6 rows left" in result.stderr
    result = run_profiler("--dry-run", "--out", str(out), "--ops", "memcpy")
    assert "6 to measure" in result.stderr
