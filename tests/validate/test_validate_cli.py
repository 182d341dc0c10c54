"""`frontier validate` end to end through click."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from frontier.spec.scenario import scenario_from_dict
from frontier.validate import write_vllm_result
from frontier.validate.cli import validate
from frontier.workload import build_requests

FIXTURES = Path(__file__).parent / "fixtures"
RTX4090 = Path(__file__).resolve().parents[1] / "data" / "traces" / "vllm-per-request-rtx4090-llama3.1-8b"

SCENARIO = {
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "deployment": {"tp": 1, "max_num_seqs": 8, "max_num_batched_tokens": 512},
    "workload": {
        "num_requests": 20,
        "arrival": {"process": "poisson", "rate": 20},
        "input_len": {"dist": "uniform", "min": 10, "max": 300},
        "output_len": 16,
    },
    "seed": 1,
}


def _simulated_result(tmp_path: Path) -> Path:
    from frontier.sim.run import simulate

    scenario = scenario_from_dict(SCENARIO)
    sim = simulate(scenario, build_requests(scenario.workload, np.random.default_rng(1)))
    return write_vllm_result(sim, tmp_path / "simulated.json", scenario=scenario)


def test_cli_round_trip_zero_error(tmp_path):
    result_file = _simulated_result(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(result_file), "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Mean TTFT (ms)" in res.output and "+0.0%" in res.output
    report = json.loads((out / "validation.json").read_text())
    assert set(report) >= {"metrics", "provenance", "scenario", "run"}
    for name, row in report["metrics"].items():
        assert set(row) == {"measured", "predicted", "error_pct"}
        assert row["error_pct"] == pytest.approx(0.0, abs=1e-9), name
    assert report["provenance"]["gpu"]["value"] == "h100-sxm"
    assert report["scenario"]["deployment"]["max_num_seqs"] == 8
    assert (out / "cdf.png").stat().st_size > 1000
    assert json.loads((out / "predicted_vllm_result.json").read_text())["completed"] == 20


def test_cli_flags_override(tmp_path):
    result_file = _simulated_result(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        validate, [str(result_file), "-o", str(out), "--max-num-seqs", "2", "--no-enable-prefix-caching"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "validation.json").read_text())
    assert report["provenance"]["deployment.max_num_seqs"] == {"value": 2, "from": "--max-num-seqs flag"}
    # fewer sequences per batch than were simulated: the replay is slower than the "measurement"
    assert report["metrics"]["mean_e2el_ms"]["error_pct"] > 0


def test_cli_run_folder(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(RTX4090), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "rtx-4090" in res.output and "meta.json" in res.output
    report = json.loads((out / "validation.json").read_text())
    assert report["metrics"]["mean_ttft_ms"]["measured"] == pytest.approx(65456.6, abs=0.05)
    assert report["metrics"]["mean_itl_ms"]["measured"] is None
    assert report["run"]["kind"] == "vllm-requests"
    assert (out / "cdf.png").exists()


def test_cli_many_runs_one_row_each(tmp_path):
    """An SGLang JSONL with two runs -> one row per run and the mean absolute error."""
    base = {
        "backend": "sglang",
        "dataset_name": "random",
        "max_concurrency": None,
        "random_input_len": 200,
        "random_output_len": 20,
        "random_range_ratio": 0.5,
        "completed": 12,
        "total_input_tokens": 1800,
        "total_output_tokens": 180,
        "mean_e2e_latency_ms": 400.0,
        "median_e2e_latency_ms": 380.0,
        "median_ttft_ms": 40.0,
        "median_itl_ms": 12.0,
    }
    lines = [
        dict(base, request_rate=2.0, duration=6.0, output_throughput=30.0),
        dict(base, request_rate=float("inf"), duration=1.5, output_throughput=120.0),
    ]
    path = tmp_path / "sglang_runs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(path), "-o", str(out), "--model", "llama-3.1-8b", "--gpu", "h100-sxm"])
    assert res.exit_code == 0, res.output
    assert "mean |error|" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["sglang_runs.jsonl#0", "sglang_runs.jsonl#1"]
    assert summary["runs"][1]["request_rate"] == "inf"
    errs = [abs(r["metrics"]["median_ttft_ms"]["error_pct"]) for r in summary["runs"]]
    assert summary["mean_abs_error_pct"]["median_ttft_ms"] == pytest.approx(np.mean(errs))
    assert summary["mean_abs_error_pct"]["mean_tpot_ms"] is None  # no run measured it
    assert (out / "sglang_runs-0" / "validation.json").exists()
    assert (out / "sglang_runs-1" / "validation.json").exists()
    assert not (out / "sglang_runs-0" / "cdf.png").exists()  # summaries have no distributions


def test_cli_folder_of_results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    _simulated_result(folder)
    (folder / "vllm_detailed_rate4.json").write_text((FIXTURES / "vllm_detailed_rate4.json").read_text())
    (folder / "notes.json").write_text('{"not": "a result"}')
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(folder), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipped notes.json" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 2


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"completed": 3, "duration": 1.0, "mean_ttft', "truncated JSON"),
        ('{"name": "left-pad"}', "not a benchmark result"),
        ("", "empty file"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    res = CliRunner().invoke(validate, [str(path), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_cli_missing_gpu_exit_2(tmp_path):
    res = CliRunner().invoke(
        validate, [str(FIXTURES / "vllm_summary_inf_concurrency2.json"), "-o", str(tmp_path / "out")]
    )
    assert res.exit_code == 2
    assert "pass --gpu" in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_scenario_file(tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(
        json.dumps(
            {
                "model": "llama-3.1-8b",
                "gpu": "h100-sxm",
                "deployment": {"max_num_seqs": 4},
                "workload": {"num_requests": 1, "arrival": {"rate": 1}, "input_len": 1, "output_len": 1},
            }
        )
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        validate, [str(FIXTURES / "vllm_summary_inf_concurrency2.json"), "--scenario", str(scen), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "validation.json").read_text())
    assert report["provenance"]["gpu"]["from"] == "scenario file s.yaml"
    assert report["scenario"]["workload"]["concurrency"] == 2
    assert report["scenario"]["workload"]["num_requests"] == 6
