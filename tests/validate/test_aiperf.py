"""aiperf's profile_export_aiperf.json as a measured run (frontier.validate.loaders), replayed with
the workload its input_config records: clients, warmup, reused synthetic prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from frontier.errors import FrontierError
from frontier.validate.cli import validate
from frontier.validate.loaders import detect_kind, load_measured, load_result_file

AIPERF = Path(__file__).resolve().parents[1] / "data" / "aiperf" / "profile_export_aiperf.json"
# The development-set run the export carries (tests/data/NOTICE.md).
DEV_RUN = "qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_sglang_agg_1024x128_c16_tp1_epnone_1"


def _write(tmp_path: Path, obj: dict) -> Path:
    path = tmp_path / "profile_export_aiperf.json"
    path.write_text(json.dumps(obj))
    return path


def test_an_aiperf_export_is_a_run_with_the_workload_its_input_config_records():
    (run,) = load_measured(AIPERF)
    assert run.kind == "aiperf" and run.settings.model == "Qwen/Qwen3-32B"
    # aiperf's inter_token_latency is a request's (latency - TTFT) / (output - 1): vLLM's TPOT.
    assert run.metrics == {"mean_ttft_ms": 6775.538133, "mean_tpot_ms": 25.476104, "completed": 320}
    assert run.settings.workload == {
        "num_requests": 320,
        "arrival": {"process": "poisson", "rate": "inf"},
        "input_len": 1024,
        "output_len": 128,
        "concurrency": 16,
        "ignore_eos": True,  # --extra-inputs ignore_eos:true
        "warmup_requests": 32,
        "prompt_pool": 100,  # not in input_config: aiperf's default --num-dataset-entries
        "prompt_sampling": "random",  # nor a sampling strategy: aiperf before 0.3.0
    }
    assert "default --num-dataset-entries" in run.settings.workload_from["prompt_pool"]
    assert run.settings.workload_from["warmup_requests"] == "input_config: loadgen.warmup_request_count"


def test_what_input_config_leaves_out_takes_aiperfs_defaults(tmp_path):
    obj = {
        "input_config": {"endpoint": {"model_names": ["Qwen/Qwen3-8B"]}, "input": {"conversation": {"num": 7}}},
        "time_to_first_token": {"unit": "ms", "avg": 40.0},
        "input_sequence_length": {"unit": "tokens", "avg": 550.4},
        "output_sequence_length": {"unit": "tokens", "avg": 99.6},
    }
    (run,) = load_result_file(_write(tmp_path, obj))
    w = run.settings.workload
    # No rate and no concurrency: one client (aiperf's user_config); 10 requests; lengths measured.
    assert w["concurrency"] == 1 and w["num_requests"] == 10 and w["prompt_pool"] == 7
    assert (w["input_len"], w["output_len"]) == (550, 100) and "warmup_requests" not in w
    # A rate with a spread of lengths: Poisson arrivals, normal lengths about the configured means.
    obj["input_config"]["loadgen"] = {"request_rate": 4.0, "request_count": 50}
    obj["input_config"]["input"]["prompt"] = {"input_tokens": {"mean": 2000, "stddev": 200}}
    (run,) = load_result_file(_write(tmp_path, obj))
    w = run.settings.workload
    assert w["arrival"] == {"process": "poisson", "rate": 4.0} and "concurrency" not in w
    assert w["input_len"] == {"dist": "normal", "mean": 2000, "std": 200.0} and w["num_requests"] == 50
    # A timed run (--benchmark-duration, no count): as many requests as it measured, errors too.
    obj["input_config"]["loadgen"] = {"concurrency": 8, "benchmark_duration": 60}
    obj["input_config"]["input"]["conversation"]["turn"] = {"mean": 3}
    obj.update(request_count={"unit": "requests", "avg": 412}, error_request_count={"unit": "requests", "avg": 3})
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["num_requests"] == 415 and run.failed == 3
    assert any("multi-turn" in note for note in run.notes)


def test_aiperf_latencies_come_in_ms_whatever_unit_they_were_written_in(tmp_path):
    obj = {
        "input_config": {"loadgen": {"concurrency": 2}, "input": {"prompt": {"input_tokens": {"mean": 100}}}},
        "request_latency": {"unit": "sec", "avg": 1.5, "p50": 1.25, "p99": 3.0},
        "inter_chunk_latency": {"unit": "ms", "avg": 12.0, "p90": 20.0},
        "request_throughput": {"unit": "requests/sec", "avg": 1.3},
        "output_sequence_length": {"unit": "tokens", "avg": 64},
    }
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.metrics == {
        "mean_e2el_ms": 1500.0,
        "median_e2el_ms": 1250.0,
        "p99_e2el_ms": 3000.0,
        "mean_itl_ms": 12.0,  # aiperf's inter-chunk gaps: vLLM's ITL
        "p90_itl_ms": 20.0,
        "request_throughput": 1.3,
    }
    obj["request_latency"]["unit"] = "fortnights"
    with pytest.raises(FrontierError, match="request_latency is in 'fortnights'"):
        load_result_file(_write(tmp_path, obj))
    del obj["output_sequence_length"], obj["request_latency"]  # no output length anywhere
    with pytest.raises(FrontierError, match="input_config sets no output length and the file measured none"):
        load_result_file(_write(tmp_path, obj))


def test_input_config_without_metrics_is_not_a_result():
    assert detect_kind({"input_config": {}, "time_to_first_token": {"avg": 1.0}}) == "aiperf"
    assert detect_kind({"input_config": {}, "was_cancelled": True}) is None


def test_an_aiperf_replay_of_a_development_run_predicts_what_make_accuracy_does(tmp_path):
    # The export's run replayed with the deployment aiconfigurator's generator gave it (the
    # scenario file; aiperf records no engine), the radix cache off so that aiperf's pool of
    # prompts is not reused (`make accuracy` simulates SGLang's sweeps without reuse): the
    # prediction is the development set's own for that run on that deployment.
    from frontier.validate.accuracy import load_runs, simulate_run

    (dev,) = [r for r in load_runs() if r.id == DEV_RUN]
    deployment = dict(dev.scenario["deployment"], enable_prefix_caching=False)
    scenario = tmp_path / "generator.yaml"
    scenario.write_text(json.dumps({"gpu": dev.scenario["gpu"], "deployment": deployment}))
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(AIPERF), "--scenario", str(scenario), "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "validation.json").read_text())["metrics"]
    expected = simulate_run(dict(dev.scenario, deployment=deployment))
    assert metrics["mean_ttft_ms"]["measured"] == pytest.approx(dev.ttft_ms)
    assert metrics["mean_ttft_ms"]["predicted"] == pytest.approx(expected["ttft_ms"], rel=0.01)
    assert metrics["mean_tpot_ms"]["predicted"] == pytest.approx(expected["tpot_ms"], rel=0.01)
    # Without the scenario the engine is an assumption the provenance names; flags set it instead.
    res = CliRunner().invoke(
        validate, [str(AIPERF), "--gpu", "h100", "--engine", "sglang", "--frontend", "dynamo", "-o", str(out / "b")]
    )
    assert res.exit_code == 0, res.output
    assert "--frontend flag" in res.output and "aiperf's default --num-dataset-entries" in res.output


def _record(phase: str, start_ns: int, ttft_ms: float, chunks_ms: list[float], isl: int = 1024) -> dict:
    """One of aiperf's per-request records (profile_export.jsonl), in the layout of its docs."""
    latency = ttft_ms + sum(chunks_ms)
    return {
        "metadata": {"session_num": 0, "request_start_ns": start_ns, "benchmark_phase": phase},
        "metrics": {
            "input_sequence_length": {"value": isl, "unit": "tokens"},
            "time_to_first_token": {"value": ttft_ms, "unit": "ms"},
            "request_latency": {"value": latency, "unit": "ms"},
            "inter_chunk_latency": {"value": chunks_ms, "unit": "ms"},
            "output_sequence_length": {"value": len(chunks_ms) + 1, "unit": "tokens"},
        },
        "error": None,
    }


def test_the_per_request_records_beside_the_summary_give_the_measured_metrics(tmp_path):
    from frontier.validate.loaders import NotAResult, load_folder

    (tmp_path / "profile_export_aiperf.json").write_text(AIPERF.read_text())
    failed = {
        "metadata": {"request_start_ns": 3_000_000_000, "benchmark_phase": "profiling"},
        "metrics": {"error_isl": {"value": 1024, "unit": "tokens"}},
        "error": {"code": 499, "type": "RequestCancellationError", "message": "cancelled"},
    }
    records = [
        _record("warmup", 0, 999.0, [99.0]),  # not measured
        _record("profiling", 1_000_000_000, 100.0, [20.0, 30.0]),
        _record("profiling", 1_500_000_000, 300.0, [40.0, 40.0]),
        failed,
    ]
    (tmp_path / "profile_export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "inputs.json").write_text('{"data": []}')
    runs, skipped = load_folder(tmp_path)
    (run,) = runs
    assert skipped == [] and run.metrics_from == "per-request data" and run.failed == 1
    # The two completed requests: TTFT 100 and 300 ms; TPOT (latency - TTFT) / 2 = 25 and 40 ms;
    # ITLs the four chunk gaps; both sent 0.5 s apart.
    assert run.metrics["mean_ttft_ms"] == pytest.approx(200.0)
    assert run.metrics["mean_tpot_ms"] == pytest.approx(32.5)
    assert run.metrics["mean_itl_ms"] == pytest.approx(32.5) and run.metrics["median_itl_ms"] == pytest.approx(35.0)
    assert list(run.arrival_s) == [0.0, 0.5]
    with pytest.raises(NotAResult, match="pass profile_export_aiperf.json"):
        load_result_file(tmp_path / "profile_export.jsonl")


def test_engine_and_front_end_flags_reach_every_cluster_of_a_disaggregated_scenario(tmp_path):
    from frontier.validate.replay import plan_replay

    (run,) = load_measured(AIPERF)
    scenario = tmp_path / "pd.yaml"
    scenario.write_text(
        json.dumps(
            {
                "gpu": "h100-sxm",
                "deployment": {"clusters": [{"name": "p", "role": "prefill"}, {"name": "d", "role": "decode"}]},
            }
        )
    )
    flags = {"engine": "sglang", "engine_version": "0.5.8.post1", "frontend": "dynamo", "tp": 2}
    replay = plan_replay(run, flags, scenario)
    for cluster in replay.scenario.clusters:
        assert (cluster.engine, cluster.engine_version, cluster.frontend, cluster.tp) == (
            "sglang",
            "0.5.8.post1",
            "dynamo",
            2,
        )


def test_an_aiperf_sweep_folder_is_one_run_per_concurrency_in_order(tmp_path):
    # aiconfigurator's bench_run.sh writes ARTIFACT_DIR/concurrency_N/profile_export_aiperf.json.
    export = json.loads(AIPERF.read_text())
    for clients in (16, 2):
        folder = tmp_path / "artifacts" / f"concurrency_{clients}"
        folder.mkdir(parents=True)
        export["input_config"]["loadgen"].update(
            concurrency=clients, request_count=20 * clients, warmup_request_count=0
        )
        (folder / "profile_export_aiperf.json").write_text(json.dumps(export))
    runs = load_measured(tmp_path / "artifacts")
    assert [r.label for r in runs] == [
        "concurrency_2/profile_export_aiperf.json",
        "concurrency_16/profile_export_aiperf.json",
    ]
    assert [r.settings.workload["concurrency"] for r in runs] == [2, 16]
    out = tmp_path / "out"
    res = CliRunner().invoke(validate, [str(tmp_path / "artifacts"), "--gpu", "h100", "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (out / "concurrency_2" / "validation.json").is_file() and (
        out / "concurrency_16" / "validation.json"
    ).is_file()
    assert len(json.loads((out / "summary.json").read_text())["runs"]) == 2


def test_the_prompt_order_is_the_strategy_aiperf_wrote_or_its_old_random_draw(tmp_path):
    obj = {
        "input_config": {"loadgen": {"concurrency": 4}, "input": {"dataset_sampling_strategy": "shuffle"}},
        "time_to_first_token": {"unit": "ms", "avg": 40.0},
        "input_sequence_length": {"unit": "tokens", "avg": 500.0},
        "output_sequence_length": {"unit": "tokens", "avg": 100.0},
    }
    (run,) = load_result_file(_write(tmp_path, obj))  # aiperf >= 0.3.0 records the one it used
    assert run.settings.workload["prompt_sampling"] == "shuffle"
    assert run.settings.workload_from["prompt_sampling"] == "input_config: input.dataset_sampling_strategy"
    # ... and counts its prompts in num_dataset_entries; conversation.num is then multi-turn sessions.
    obj["input_config"]["input"]["conversation"] = {"num": 50}
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["prompt_pool"] == 100
    obj["input_config"]["input"]["conversation"] = {"num": 50, "num_dataset_entries": 7}
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["prompt_pool"] == 7
    assert run.settings.workload_from["prompt_pool"] == "input_config: input.conversation.num_dataset_entries"
    (run,) = load_measured(AIPERF)  # an export without it: aiperf < 0.3.0 drew with replacement
    assert run.settings.workload["prompt_sampling"] == "random"
    assert "aiperf before 0.3.0" in run.settings.workload_from["prompt_sampling"]
    obj["input_config"]["input"]["dataset_sampling_strategy"] = "weighted"
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["prompt_sampling"] == "random" and "prompt_sampling" not in run.settings.workload_from
    assert any("'weighted' is not modelled" in note for note in run.notes)


# What aiperf 0.13.0 writes as input_config (its telemetry and artifact sections left out) for
# aiconfigurator's bench flags (`--concurrency 16 --num-requests 320 --warmup-request-count 32
# --isl 1024 --isl-stddev 0 --osl 128 --osl-stddev 0 --random-seed 100 --extra-inputs
# ignore_eos:true --streaming`), produced by aiperf's own converter (config/flags/converter.py)
# and dumped as its JSON exporter dumps it (exclude_unset, exclude_none).
AIPERF_0_13_CONFIG = {
    "models": {"items": [{"name": "Qwen/Qwen3-32B"}]},
    "endpoint": {"urls": ["http://localhost:8000"], "type": "chat", "streaming": True, "extra": {"ignore_eos": True}},
    "datasets": [
        {
            "name": "main",
            "type": "synthetic",
            "entries": 320,
            "random_seed": 100,
            "prompts": {"isl": {"mean": 1024.0, "stddev": 0.0}, "osl": {"mean": 128.0, "stddev": 0.0}},
        }
    ],
    "phases": [
        {
            "name": "warmup",
            "kind": "warmup",
            "type": "concurrency",
            "exclude_from_results": True,
            "requests": 32,
            "concurrency": 16,
        },
        {"name": "profiling", "kind": "profiling", "type": "concurrency", "requests": 320, "concurrency": 16},
    ],
    "tokenizer": {},
}


def test_an_aiperf_0_9_export_is_read_from_its_phases_and_dataset(tmp_path):
    obj = json.loads(AIPERF.read_text())
    obj.update(schema_version="1.4", aiperf_version="0.13.0", input_config=AIPERF_0_13_CONFIG)
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.model == "Qwen/Qwen3-32B"
    # The same run as the flags' layout describes (the test above), but aiperf 0.9+ makes one
    # prompt per request (entries = --request-count) and sends them in order.
    (flags_layout,) = load_measured(AIPERF)
    assert run.settings.workload == {
        **flags_layout.settings.workload,
        "prompt_pool": 320,
        "prompt_sampling": "sequential",
    }
    assert run.settings.workload_from["concurrency"] == "input_config: phases['profiling'].concurrency"
    # aiperf 0.13's --request-rate 4 --concurrency 8 --num-dataset-entries 7 --dataset-sampling-strategy
    # shuffle --isl 2000 --isl-stddev 200, no warmup (its converter's output).
    config = json.loads(json.dumps(AIPERF_0_13_CONFIG))
    config["phases"] = [
        {"name": "profiling", "kind": "profiling", "type": "poisson", "requests": 50, "concurrency": 8, "rate": 4.0}
    ]
    config["datasets"][0].update(
        entries=7, sampling="shuffle", prompts={"isl": {"mean": 2000.0, "stddev": 200.0}, "osl": {"mean": 100.0}}
    )
    obj["input_config"] = config
    (run,) = load_result_file(_write(tmp_path, obj))
    w = run.settings.workload
    assert w["arrival"] == {"process": "poisson", "rate": 4.0} and w["concurrency"] == 8 and w["num_requests"] == 50
    assert (w["prompt_pool"], w["prompt_sampling"], w["output_len"]) == (
        7,
        "shuffle",
        100,
    ) and "warmup_requests" not in w
    assert w["input_len"] == {"dist": "normal", "mean": 2000, "std": 200.0}
    # Gamma arrivals of shape 4 (aiperf's smoothness): gaps with cv 1/2; a fixed length; the default pool.
    config["phases"] = [{"name": "profiling", "type": "gamma", "requests": 50, "rate": 4.0, "smoothness": 4.0}]
    config["datasets"][0] = {"name": "main", "type": "synthetic", "prompts": {"isl": {"value": 300}, "osl": 100}}
    (run,) = load_result_file(_write(tmp_path, obj))
    w = run.settings.workload
    assert w["arrival"] == {"process": "gamma", "rate": 4.0, "cv": 0.5} and "concurrency" not in w
    assert (w["input_len"], w["output_len"], w["prompt_pool"], w["prompt_sampling"]) == (300, 100, 100, "sequential")
    # A phase Frontier cannot replay is one clear line.
    config["phases"] = [{"name": "profiling", "type": "fixed_schedule"}]
    with pytest.raises(
        FrontierError, match=r"aiperf's 'fixed_schedule' phase is not replayed; Frontier replays concurrency"
    ):
        load_result_file(_write(tmp_path, obj))


def test_an_aiperf_run_ignores_eos_only_where_its_extra_inputs_ask(tmp_path):
    obj = json.loads(AIPERF.read_text())
    obj["input_config"]["input"]["extra"] = [["nvext", {"ignore_eos": True}]]  # Dynamo's own field
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["ignore_eos"] is True
    del obj["input_config"]["input"]["extra"]  # outputs may stop at an EOS
    (run,) = load_result_file(_write(tmp_path, obj))
    assert run.settings.workload["ignore_eos"] is False
