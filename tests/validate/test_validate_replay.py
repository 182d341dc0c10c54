"""Replays: what the workload and deployment are built from, and the zero-error round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from frontier.errors import FrontierError
from frontier.spec.scenario import scenario_from_dict
from frontier.validate import load_measured, plan_replay, validate_run, write_vllm_result
from frontier.validate.replay import build_request_table, build_scenario_dict, resolve_gpu, resolve_model
from frontier.validate.report import COMPARED_METRICS, compare, error_pct
from frontier.workload import build_requests

FIXTURES = Path(__file__).parent / "fixtures"
TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"  # excerpts of ../shared/traces
RTX4090 = TRACES / "vllm-per-request-rtx4090-llama3.1-8b"
SGLANG = TRACES / "sglang-bench-serving-examples"

SMALL = {
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "deployment": {"tp": 1, "max_num_seqs": 16, "max_num_batched_tokens": 1024},
    "workload": {
        "num_requests": 30,
        "arrival": {"process": "poisson", "rate": 10},
        "input_len": {"dist": "uniform", "min": 20, "max": 700},
        "output_len": {"dist": "uniform", "min": 1, "max": 60},
    },
    "seed": 7,
}


def test_resolve_names():
    assert resolve_model("meta-llama/Llama-3.1-8B") == "llama-3.1-8b"  # hf_id
    assert resolve_model("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b"  # suffix
    assert resolve_model("llama-3.3-70b") == "llama-3.3-70b"
    assert resolve_model("deepseek-ai/DeepSeek-R1-0528") == "deepseek-r1"  # a card's alias
    assert resolve_model("Qwen/Qwen3-32B-FP8") is None  # its weights' format is not in the file
    assert resolve_model("some-org/unknown-model-7b") is None
    assert resolve_gpu("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert resolve_gpu("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert resolve_gpu("Imaginary GPU 9000") is None


def test_error_pct():
    assert error_pct(100.0, 110.0) == pytest.approx(10.0)
    assert error_pct(100.0, 90.0) == pytest.approx(-10.0)
    assert error_pct(None, 1.0) is None and error_pct(1.0, None) is None
    assert error_pct(0.0, 0.0) == 0.0 and error_pct(0.0, 1.0) is None
    c = compare({"mean_ttft_ms": 50.0}, {"mean_ttft_ms": 60.0, "mean_itl_ms": 3.0})
    assert c["mean_ttft_ms"] == {"measured": 50.0, "predicted": 60.0, "error_pct": 20.0}
    assert c["mean_itl_ms"]["error_pct"] is None
    assert list(c) == list(COMPARED_METRICS)


# ---------------------------------------------------------------------------- deployment


def test_deployment_from_run_folder_engine_args():
    (run,) = load_measured(RTX4090)
    d, prov = build_scenario_dict(run)
    assert d["model"] == "llama-3.1-8b" and d["gpu"] == "rtx-4090"
    dep = d["deployment"]
    assert (dep["tp"], dep["pp"], dep["dp"], dep["ep"]) == (1, 1, 1, 1)
    assert dep["max_num_seqs"] == 256 and dep["max_num_batched_tokens"] == 2048
    assert dep["enable_prefix_caching"] is True and dep["enable_chunked_prefill"] is True
    assert prov["deployment.max_num_batched_tokens"]["from"] == "meta.json: max_num_batched_tokens"
    assert "meta-llama/Llama-3.1-8B" in prov["model"]["from"]
    assert "RTX 4090" in prov["gpu"]["from"]


def test_flags_override_engine_args():
    (run,) = load_measured(RTX4090)
    d, prov = build_scenario_dict(
        run, {"max_num_seqs": 64, "enable_prefix_caching": False, "gpu": "h100-sxm", "tp": None}
    )
    assert d["deployment"]["max_num_seqs"] == 64
    assert d["deployment"]["enable_prefix_caching"] is False
    assert d["gpu"] == "h100-sxm" and prov["gpu"]["from"] == "--gpu flag"
    assert prov["deployment.max_num_seqs"]["from"] == "--max-num-seqs flag"
    assert prov["deployment.tp"]["from"].startswith("meta.json")  # None flag: not given


def test_metadata_engine_args_and_model_suffix():
    (run,) = load_measured(FIXTURES / "vllm_detailed_rate4.json")
    d, prov = build_scenario_dict(run)
    assert d["model"] == "llama-3.1-8b"  # meta-llama/Llama-3.1-8B-Instruct
    assert d["gpu"] == "h100-sxm" and prov["gpu"]["from"].startswith("file metadata")
    assert prov["deployment.tp"]["from"] == "file metadata: tensor_parallel_size"
    assert prov["deployment.max_num_seqs"]["from"] == "engine default (see frontier.engine)"


def test_a_run_without_its_context_length_gets_the_one_it_started_with():
    """The run was served, so vLLM started: a replay does not refuse it for a context the file
    does not record (frontier.spec.memory.check_vllm_starts) but takes vLLM's auto-fit, which
    for Llama-3.1-8B on one H100 is the model's whole context."""
    (run,) = load_measured(FIXTURES / "vllm_detailed_rate4.json")
    replay = plan_replay(run)
    assert replay.scenario.clusters[0].max_model_len == -1  # auto
    from frontier.sim.run import run_scenario

    (cluster,) = run_scenario(replay.scenario, timeline=False).summary["frontier"]["clusters"]
    assert cluster["max_model_len_served"] == 131_072
    assert replay.provenance["deployment.max_model_len"]["from"].startswith("not recorded: auto")
    # One that records it keeps it, and its engine's KV pool (meta.json's num_gpu_blocks).
    (folder,) = load_measured(RTX4090)
    recorded = plan_replay(folder)
    assert recorded.scenario.clusters[0].max_model_len == 32768
    assert recorded.scenario.clusters[0].num_gpu_blocks_override == 2588
    assert recorded.provenance["deployment.num_gpu_blocks_override"]["from"] == "meta.json: num_gpu_blocks"


def test_missing_gpu_is_a_clear_error():
    (run,) = load_measured(FIXTURES / "vllm_summary_inf_concurrency2.json")
    with pytest.raises(FrontierError, match="records no GPU; pass --gpu") as exc:
        build_scenario_dict(run)
    assert "\n" not in str(exc.value)


def test_unknown_model_is_a_clear_error(tmp_path):
    data = json.loads((FIXTURES / "vllm_summary_inf_concurrency2.json").read_text())
    data["model_id"] = "acme/WidgetLM-3B"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    (run,) = load_measured(path)
    with pytest.raises(FrontierError, match="'acme/WidgetLM-3B' is not a known model card"):
        build_scenario_dict(run, {"gpu": "h100-sxm"})


def test_scenario_file_fills_gaps_and_loses_to_file_and_flags(tmp_path):
    scen = tmp_path / "s.yaml"
    scen.write_text(
        yaml.safe_dump(
            {
                "model": "llama-3.1-70b",
                "gpu": "h200",
                "deployment": {"tp": 4, "max_num_seqs": 99, "router": "least_outstanding"},
                "workload": {"trace": "ignored.csv"},
                "seed": 11,
            }
        )
    )
    (run,) = load_measured(FIXTURES / "vllm_detailed_rate4.json")
    d, prov = build_scenario_dict(run, {"max_num_batched_tokens": 4096}, scen)
    assert d["model"] == "llama-3.1-8b"  # the result file names its model
    assert d["gpu"] == "h100-sxm"  # and its GPU (metadata)
    assert d["deployment"]["tp"] == 1  # metadata tensor_parallel_size beats the file
    assert d["deployment"]["max_num_seqs"] == 99  # the scenario file fills what the run lacks
    assert d["deployment"]["router"] == "least_outstanding"
    assert d["deployment"]["max_num_batched_tokens"] == 4096  # flags beat everything
    assert d["seed"] == 11 and prov["seed"]["from"] == "scenario file s.yaml"


# ---------------------------------------------------------------------------- requests


def test_requests_from_per_request_data():
    (run,) = load_measured(FIXTURES / "vllm_detailed_rate4.json")
    table, prov = build_request_table(run)
    np.testing.assert_allclose(table.arrival_s, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(table.input_tokens, [10, 20, 30, 50])
    np.testing.assert_array_equal(table.output_tokens, [4, 3, 1, 2])
    assert table.concurrency is None
    assert "1 failed ones not replayed" in prov["workload.num_requests"]["from"]
    assert "start_times" in prov["workload.arrivals"]["from"]


def test_requests_from_summary_inf_rate_and_concurrency():
    (run,) = load_measured(FIXTURES / "vllm_summary_inf_concurrency2.json")
    table, prov = build_request_table(run)
    assert len(table) == 6 and table.concurrency == 2
    assert np.all(table.arrival_s == 0.0)
    assert np.all(table.input_tokens == 512) and np.all(table.output_tokens == 128)
    assert prov["workload.input_tokens"]["value"] == "fixed 512"
    assert prov["workload.arrivals"]["from"].endswith("request_rate inf")


def test_requests_from_sglang_random_dataset():
    run = load_measured(SGLANG / "llama_3_3_70b_online_output.jsonl")[0]
    table, prov = build_request_table(run, seed=0)
    assert len(table) == 300  # completed + failed; this SGLang version has no num_prompts
    assert table.input_tokens.min() >= 1 and table.input_tokens.max() <= 1024
    assert prov["workload.input_tokens"]["value"] == "uniform [1, 1024]"
    assert 250 < table.arrival_s[-1] < 350  # poisson at 1 req/s
    # the sharegpt runs record only totals: the mean lengths
    table, prov = build_request_table(load_measured(SGLANG / "llama_3_3_70b_online_output.jsonl")[5])
    assert prov["workload.input_tokens"]["value"] == f"fixed {round(269081 / 1200)}"


def test_vllm_rate_replay_spans_n_over_rate(tmp_path):
    data = json.loads((FIXTURES / "vllm_summary_inf_concurrency2.json").read_text())
    data.update(request_rate=2.0, num_prompts=11, max_concurrency=None)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    (run,) = load_measured(path)
    table, _ = build_request_table(run)
    assert table.arrival_s[0] == 0.0 and table.arrival_s[-1] == pytest.approx(10 / 2.0)


# ---------------------------------------------------------------------------- round trip


def _simulate(d: dict):
    from frontier.sim.run import simulate

    scenario = scenario_from_dict(d)
    requests = build_requests(scenario.workload, np.random.default_rng(scenario.seed))
    return scenario, simulate(scenario, requests)


@pytest.mark.parametrize(
    "workload",
    [
        {},
        {"concurrency": 4},
        {"arrival": {"process": "poisson", "rate": "inf"}, "concurrency": 8},
    ],
)
def test_round_trip_simulate_write_validate_is_zero_error(tmp_path, workload):
    d = json.loads(json.dumps(SMALL))
    d["workload"].update(workload)
    scenario, sim = _simulate(d)
    path = write_vllm_result(sim, tmp_path / "sim.json", scenario=scenario)

    (run,) = load_measured(path)
    assert run.kind == "vllm-bench" and run.metrics_from == "per-request data"
    assert run.settings.max_concurrency == workload.get("concurrency")
    for key in COMPARED_METRICS:  # the file, read back, says what the simulator said
        assert run.metrics[key] == pytest.approx(sim.summary[key], rel=1e-12), key

    val = validate_run(run)
    assert val.replay.scenario_dict["model"] == "llama-3.1-8b"
    assert val.replay.scenario_dict["deployment"]["max_num_seqs"] == 16
    for key, row in val.comparison.items():
        assert row["error_pct"] is not None, key
        assert abs(row["error_pct"]) < 1e-9, (key, row)


def test_written_file_is_vllm_format(tmp_path):
    scenario, sim = _simulate(SMALL)
    path = write_vllm_result(sim, tmp_path / "sim.json", model_id="meta-llama/Llama-3.1-8B", scenario=scenario)
    data = json.loads(path.read_text())
    for key in (
        "date",
        "backend",
        "model_id",
        "tokenizer_id",
        "num_prompts",
        "request_rate",
        "burstiness",
        "max_concurrency",
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "request_goodput",
        "output_throughput",
        "total_token_throughput",
        "input_lens",
        "output_lens",
        "ttfts",
        "itls",
        "start_times",
        "errors",
        "mean_ttft_ms",
        "median_tpot_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
    ):
        assert key in data, key
    n = data["num_prompts"]
    assert n == 30 and all(len(data[k]) == n for k in ("input_lens", "ttfts", "itls", "errors"))
    done = sim.requests[sim.requests.status == "finished"]
    assert sum(len(x) for x in data["itls"]) == int((done.output_tokens - 1).sum())
    assert data["model_id"] == "meta-llama/Llama-3.1-8B"
    assert data["tensor_parallel_size"] == "1" and data["gpu"] == "h100-sxm"


def test_replay_of_measured_run_folder():
    (run,) = load_measured(RTX4090)
    replay = plan_replay(run)
    assert len(replay.requests) == 300
    assert replay.scenario.gpu.name == "rtx-4090"
    assert replay.scenario.clusters[0].max_num_batched_tokens == 2048
    val = validate_run(run)
    assert val.sim.summary["completed"] == 300
    assert val.sim.summary["frontier"]["clusters"][0]["kv_blocks_per_instance"] == 2588  # the engine's own pool
    row = val.comparison["mean_ttft_ms"]
    assert row["measured"] == pytest.approx(65456.6, abs=0.05)
    assert row["predicted"] > 0 and math.isfinite(row["error_pct"])
    assert val.comparison["mean_itl_ms"]["measured"] is None  # not measurable from the folder
