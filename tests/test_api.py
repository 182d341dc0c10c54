"""The Python API: the README's example runs as written, `import frontier` stays light, and the
API's numbers are the CLI's."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

import frontier
from frontier.cli import main
from frontier.paths import REPO_ROOT


def readme_python_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Planning a deployment: `frontier sweep` and the Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "output tok/s" in out and "vllm serve meta-llama/Llama-3.1-8B" in out
    for name in ("results.csv", "pareto.csv", "best.json", "pareto.png"):
        assert (tmp_path / "results" / "sweep-8b" / name).is_file()


def test_import_frontier_is_light():
    code = (
        "import sys, frontier; heavy = [m for m in ('pandas', 'numpy', 'xgboost', 'matplotlib', "
        "'frontier.sim.run') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_simulate_matches_the_cli(tmp_path):
    summary, requests = frontier.simulate(
        model="llama-3.1-8b",
        gpu="h100-sxm",
        input_len=256,
        output_len=16,
        num_requests=30,
        rate=4.0,
        prompt_pool=5,
        max_num_seqs=8,
    )
    r = CliRunner().invoke(
        main,
        [
            "simulate",
            "--model",
            "llama-3.1-8b",
            "--input-len",
            "256",
            "--output-len",
            "16",
            "--num-requests",
            "30",
            "--rate",
            "4",
            "--max-num-seqs",
            "8",
            "--num-dataset-entries",
            "5",
            "--quiet",
            "--no-plots",
            "--no-trace",
            "-o",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    cli = json.loads((tmp_path / "summary.json").read_text())
    for key in ("completed", "output_throughput", "mean_ttft_ms", "p99_itl_ms", "max_concurrent_requests"):
        assert summary[key] == pytest.approx(cli[key], rel=1e-12), key
    assert len(requests) == 30 and summary["frontier"]["scenario"]["deployment"]["max_num_seqs"] == 8
    # 30 requests over 5 prompts: the repeats come from the prefix cache, the same in both.
    hits = [s["frontier"]["clusters"][0]["prefix_cache_hit_rate"] for s in (summary, cli)]
    assert hits[0] == hits[1] > 0.5


def test_api_errors_are_frontier_errors():
    from frontier.errors import FrontierError

    with pytest.raises(FrontierError, match="unknown model"):
        frontier.simulate(model="no-such-model", input_len=1, output_len=1)
    with pytest.raises(AttributeError):
        frontier.no_such_function
