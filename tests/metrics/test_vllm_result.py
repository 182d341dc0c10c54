"""summary.json as `vllm bench serve --save-result [--save-detailed]` writes it, and `frontier
validate` of Frontier's own result: the same numbers, 0 % error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from frontier.cli import main
from frontier.metrics.vllm_result import (
    VLLM_DETAILED_KEYS,
    VLLM_PEAK_KEYS,
    VLLM_RESULT_KEYS,
    VLLM_SETUP_KEYS,
    VLLM_TRAFFIC_KEYS,
    peak_output_and_concurrency,
)

FLAGS = [
    "--model",
    "llama-3.1-8b",
    "--input-len",
    "256",
    "--output-len",
    "16",
    "--num-requests",
    "40",
    "--quiet",
    "--no-plots",
    "--no-trace",
]


def simulate(tmp_path, *extra) -> dict:
    r = CliRunner().invoke(main, ["simulate", *FLAGS, *extra, "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "summary.json").read_text())


def test_every_vllm_key_and_null_goodput_without_slo(tmp_path):
    data = simulate(tmp_path, "--concurrency", "4", "--rate", "inf")
    keys = list(data)
    for key in (
        VLLM_SETUP_KEYS
        + VLLM_TRAFFIC_KEYS
        + VLLM_RESULT_KEYS
        + VLLM_PEAK_KEYS
        + ("latencies", "queue_times", "mean_ttft_ms", "median_tpot_ms", "std_itl_ms", "p99_e2el_ms")
    ):
        assert key in data, key
    assert keys.index("date") < keys.index("request_rate") < keys.index("duration") < keys.index("mean_ttft_ms")
    assert data["request_goodput"] is None and data["frontier"]["slo"] is None
    assert data["request_rate"] == "inf" and data["burstiness"] == 1.0 and data["max_concurrency"] == 4
    assert data["num_prompts"] == 40 and len(data["latencies"]) == 40
    assert data["max_concurrent_requests"] == 4  # a closed loop of 4 clients
    for key in VLLM_DETAILED_KEYS:  # only with --save-detailed
        assert key not in data


def test_save_detailed_arrays(tmp_path):
    data = simulate(tmp_path, "--save-detailed", "--rate", "5")
    n = data["num_prompts"]
    for key in VLLM_DETAILED_KEYS:
        assert len(data[key]) == n, key
    assert [len(x) for x in data["itls"]] == [o - 1 for o in data["output_lens"]]
    pooled = np.concatenate([np.asarray(x) for x in data["itls"]]) * 1e3
    assert pooled.mean() == pytest.approx(data["mean_itl_ms"], rel=1e-9)
    ttft = np.asarray(data["ttfts"]) * 1e3
    assert ttft.mean() == pytest.approx(data["mean_ttft_ms"], rel=1e-9)
    assert data["request_rate"] == 5.0 and data["max_concurrency"] is None


def test_slo_is_recorded_with_goodput(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "model: llama-3.1-8b\ngpu: h100-sxm\nworkload: {num_requests: 20, input_len: 128,"
        " output_len: 8, arrival: {rate: 4}}\nslo: {ttft_ms: 1000, tpot_ms: 40}\n"
    )
    r = CliRunner().invoke(
        main, ["simulate", str(scenario), "--quiet", "--no-plots", "--no-trace", "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert data["frontier"]["slo"] == {"ttft_ms": 1000.0, "tpot_ms": 40.0}
    assert 0 < data["request_goodput"] <= data["request_throughput"]


def test_peaks_by_hand():
    # Two requests: [0, 2) with 3 tokens at 1.0, 1.5, 2.0 and [0.5, 1.2) with 2 tokens at 0.9, 1.2.
    start = np.array([0.0, 0.5])
    first = np.array([1.0, 0.9])
    end = np.array([2.0, 1.2])
    tokens, peak = peak_output_and_concurrency(start, first, end, np.array([3, 2]))
    assert tokens == 3.0  # second [1, 2): 1.0, 1.5, 1.2
    assert peak == 2
    # Back to back: one ends as the next starts (half-open intervals) -> never 2 at once.
    assert (
        peak_output_and_concurrency(np.array([0.0, 1.0]), np.array([0.5, 1.5]), np.array([1.0, 2.0]), np.array([1, 1]))[
            1
        ]
        == 1
    )


@pytest.mark.parametrize("detailed", [False, True])
def test_validate_own_result_is_zero_error(tmp_path, detailed):
    extra = ["--save-detailed"] if detailed else []
    simulate(tmp_path / "run", "--rate", "6", "--concurrency", "8", *extra)
    r = CliRunner().invoke(
        main, ["validate", str(tmp_path / "run" / "summary.json"), "-o", str(tmp_path / "v"), "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    val = json.loads((tmp_path / "v" / "validation.json").read_text())
    errors = {k: row["error_pct"] for k, row in val["metrics"].items()}
    assert len(errors) == 19 and all(abs(e) < 1e-9 for e in errors.values()), errors  # float sums only
