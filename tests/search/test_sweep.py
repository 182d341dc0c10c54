"""`frontier sweep`: the 70B-on-8-H100 sweep of the issue, its Pareto property, best.json re-simulated
alone, infeasible points with reasons, early stop, resume, the flag form, Ray when installed."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier.cli import main
from frontier.errors import SpecError
from frontier.metrics.vllm_result import VLLM_PEAK_KEYS, VLLM_RESULT_KEYS, VLLM_SETUP_KEYS, VLLM_TRAFFIC_KEYS
from frontier.paths import REPO_ROOT
from frontier.search import load_sweep_spec, run_sweep, sweep_spec_from_dict, write_outputs
from frontier.search import run as sweep_run
from frontier.search.commands import serve_commands
from frontier.search.pareto import X, Y, pareto_mask
from frontier.search.run import longest_request
from frontier.sim.run import run_scenario
from frontier.spec.model import load_model
from frontier.sim.run import memory_for
from frontier.spec.memory import TooFewStateBlocks
from frontier.spec.scenario import scenario_from_dict

SPEC_70B = REPO_ROOT / "sweeps" / "llama3.1-70b-8xh100.yaml"
SMALL = {
    "name": "small",
    "model": "llama-3.1-8b",
    "gpu": "h100-sxm",
    "gpus": 2,
    "workload": {"input_len": 256, "output_len": 32, "num_requests": 24},
    "load": {"concurrency": [1, 8]},
    "slo": {"ttft_ms": 500, "tpot_ms": 20},
    "search": {"colocated": {"tp": [1, 2]}},
}


@pytest.fixture(scope="module")
def sweep70(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep70")
    result = run_sweep(load_sweep_spec(SPEC_70B), out, jobs=2)
    write_outputs(result)
    return result, out


def dominated(a, b) -> bool:
    """b dominates a: at least as good on both axes, better on one."""
    return b[X] >= a[X] and b[Y] >= a[Y] and (b[X] > a[X] or b[Y] > a[Y])


def test_70b_sweep_writes_every_file(sweep70):
    result, out = sweep70
    for name in ("results.csv", "pareto.csv", "pareto.png", "best.json", "skipped.csv"):
        assert (out / name).is_file(), name
    df = pd.read_csv(out / "results.csv")
    assert len(df) == len(result.results) and len(df) > 10
    assert set(df.config) == {"TP2 DP1", "TP2 DP2", "TP2 DP4", "TP4 DP1", "TP4 DP2", "TP8 DP1"}
    assert (df.gpus == df.tp * df.dp).all()
    assert np.allclose(df.tokens_per_s_per_gpu, df.output_throughput / df.gpus)
    assert np.allclose(df.tokens_per_s_per_user, 1000 / df.mean_tpot_ms)
    runs = sorted((out / "runs").glob("*/summary.json"))
    assert len(runs) == len(df)


def test_70b_infeasible_points_have_reasons(sweep70):
    result, _ = sweep70
    reasons = {i.label: i.reason for i in result.infeasible}
    assert "does not divide the 64 attention heads" in reasons["TP3 DP1"]
    assert "does not fit on h100-sxm" in reasons["TP1 DP1"]
    assert not any(c.startswith(("TP1 ", "TP3 ", "TP5 ", "TP6 ", "TP7 ")) for c in result.results.config)


def test_70b_on_two_gpus_is_sized_to_the_workload():
    """On two H100s 70B's 131,072-token context does not fit beside its weights (vLLM would
    not start), so those candidates serve the workload's 1,024 + 256 tokens; four GPUs hold it."""
    spec = load_sweep_spec(SPEC_70B)
    assert longest_request(spec) == 1024 + 256
    ok, _ = sweep_run.enumerate_space(spec, load_model(spec.model), 1280)
    sized = {c.label: c.deployment.get("max_model_len") for c in ok}
    assert sized == {
        "TP2 DP1": 1280,
        "TP2 DP2": 1280,
        "TP2 DP4": 1280,
        "TP4 DP1": None,
        "TP4 DP2": None,
        "TP8 DP1": None,
    }
    tp2 = next(c for c in ok if c.label == "TP2 DP1")
    assert "--max-model-len 1280" in serve_commands(spec.model, tp2.deployment)["serve"][0]
    # A workload longer than what two GPUs hold leaves them out, with vLLM's reason.
    _, bad = sweep_run.enumerate_space(spec, load_model(spec.model), 40000)
    reasons = {i.label: i.reason for i in bad}
    assert "vLLM would not start" in reasons["TP2 DP1"] and "max_model_len <= " in reasons["TP2 DP1"]


def test_a_hybrid_under_vllm_runs_as_many_sequences_as_its_state_blocks():
    """Qwen3.5-27B on one H100: vLLM's 1,024 default sequences outnumber its KV blocks (vLLM
    would not start), so the sweep sets max_num_seqs to the blocks, as vLLM's refusal asks."""
    spec = sweep_spec_from_dict(dict(SMALL, model="qwen3.5-27b"))
    ok, bad = sweep_run.enumerate_space(spec, load_model(spec.model), longest_request(spec))
    assert not bad
    seqs = {c.label: c.deployment.get("max_num_seqs") for c in ok}
    sc = scenario_from_dict(
        {
            "model": "qwen3.5-27b",
            "gpu": "h100-sxm",
            "workload": {"num_requests": 1, "arrival": {"rate": 1}, "input_len": 1, "output_len": 1},
        }
    )
    with pytest.raises(TooFewStateBlocks) as refused:
        memory_for(sc, sc.clusters[0], "deployment")
    blocks = refused.value.blocks
    assert seqs == {"TP1 DP1": blocks, "TP1 DP2": blocks, "TP2 DP1": None}  # two GPUs hold 1,024
    assert memory_for(sc, replace(sc.clusters[0], max_num_seqs=blocks), "deployment").num_blocks >= blocks


def test_70b_pareto_property(sweep70):
    _, out = sweep70
    df = pd.read_csv(out / "results.csv")
    front = pd.read_csv(out / "pareto.csv")
    ok = df[df.meets_slo]
    slo_front = front[front.frontier == "slo"]
    assert len(slo_front) and slo_front.meets_slo.all()
    assert list(front.frontier) == sorted(front.frontier, key=lambda f: f != "slo")  # SLO-feasible first
    for _, a in slo_front.iterrows():  # no SLO-meeting row beats a frontier row
        assert not any(dominated(a, b) for _, b in ok.iterrows())
    ids = set(slo_front.point_id)
    for _, a in ok[~ok.point_id.isin(ids)].iterrows():  # every other one is beaten by the frontier
        assert any(dominated(a, b) or (a[X] == b[X] and a[Y] == b[Y]) for _, b in slo_front.iterrows())
    for _, a in front[front.frontier == "all"].iterrows():
        assert not a.meets_slo and not any(dominated(a, b) for _, b in df.iterrows())


def test_70b_best_meets_slo_and_resimulates_alone(sweep70):
    _, out = sweep70
    best = json.loads((out / "best.json").read_text())
    df = pd.read_csv(out / "results.csv")
    ok = df[df.meets_slo]
    m = best["metrics"]
    assert m["meets_slo"] and m["tokens_per_s_per_gpu"] == pytest.approx(ok.tokens_per_s_per_gpu.max())
    assert m["mean_ttft_ms"] <= 2000 and m["mean_tpot_ms"] <= 50
    alone = run_scenario(scenario_from_dict(best["scenario"])).summary
    for key in (
        "completed",
        "output_throughput",
        "request_throughput",
        "mean_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p90_itl_ms",
        "mean_e2el_ms",
    ):
        assert alone[key] == pytest.approx(m[key], rel=1e-12), key
    cmd = best["serve_commands"][0]
    assert cmd.startswith("vllm serve meta-llama/Llama-3.1-70B-Instruct ")
    assert f"--tensor-parallel-size {m['tp']}" in cmd and f"--data-parallel-size {m['dp']}" in cmd
    bench = best["bench_command"]
    assert f"--max-concurrency {best['best']['concurrency']}" in bench
    assert "--random-input-len 1024" in bench and "--goodput ttft:2000 tpot:50" in bench
    # aiperf at the same point, every prompt distinct (no pool in this sweep: aiperf would reuse 100).
    aiperf = best["aiperf_command"]
    n = int(m["num_requests"])
    assert aiperf.startswith("aiperf profile --model meta-llama/Llama-3.1-70B-Instruct --url http://localhost:8000 ")
    assert f"--concurrency {best['best']['concurrency']} --request-count {n} " in aiperf
    assert "--isl 1024 --osl 256 " in aiperf and aiperf.endswith("--extra-inputs ignore_eos:true")
    assert f"--num-dataset-entries {n}" in aiperf


def test_70b_early_stop_skips_only_after_a_clear_miss(sweep70):
    result, _ = sweep70
    df = result.results
    assert result.skipped  # the SLO is missed at the highest loads of the small configs
    for pid, why in result.skipped:
        config = df[df.point_id.str.startswith(pid.rsplit("-c", 1)[0] + "-c")]
        missed = config[(config.mean_tpot_ms > 75) | (config.mean_ttft_ms > 3000)]
        stop_at = int(why.rsplit("at c", 1)[1])
        assert stop_at in set(missed.concurrency), (pid, why)
        assert int(pid.rsplit("-c", 1)[1].split("-")[0]) > stop_at


def test_summary_json_has_every_vllm_key(sweep70):
    _, out = sweep70
    data = json.loads(next((out / "runs").glob("*/summary.json")).read_text())
    for key in VLLM_SETUP_KEYS + VLLM_TRAFFIC_KEYS + VLLM_RESULT_KEYS + VLLM_PEAK_KEYS + ("latencies", "queue_times"):
        assert key in data, key
    # what `vllm bench sweep plot_pareto` reads: throughput, users, GPUs
    assert float(data["output_throughput"]) > 0 and float(data["max_concurrency"]) >= 1
    world = (
        float(data["tensor_parallel_size"]) * float(data["pipeline_parallel_size"]) * float(data["data_parallel_size"])
    )
    assert world == float(data["num_gpus"])
    assert 1 <= data["max_concurrent_requests"] <= data["max_concurrency"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30))
def test_pareto_mask_is_the_set_of_non_dominated_points(points):
    x = np.array([p[0] for p in points], float)
    y = np.array([p[1] for p in points], float)
    keep = pareto_mask(x, y)
    for i in range(len(points)):
        beaten = any(x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i]) for j in range(len(points)))
        if keep[i]:
            assert not beaten
        elif not beaten:  # an exact duplicate of a kept point
            assert any(keep[j] and x[j] == x[i] and y[j] == y[i] for j in range(len(points)))


def test_resume_skips_finished_points(tmp_path, monkeypatch):
    spec = sweep_spec_from_dict(SMALL)
    first = run_sweep(spec, tmp_path, jobs=1)
    n = len(first.results)
    assert n == 6  # TP1 DP1, TP1 DP2, TP2 DP1 x two loads

    def refuse(scenario):
        raise AssertionError("a finished point was simulated again")

    monkeypatch.setattr(sweep_run, "simulate_point", refuse)
    again = run_sweep(spec, tmp_path, jobs=1, resume=True)
    assert sorted(again.results.point_id) == sorted(first.results.point_id)
    monkeypatch.undo()
    csv = tmp_path / "results.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:-1]) + "\n")  # as if interrupted before the last point
    calls = []
    real = sweep_run.simulate_point
    monkeypatch.setattr(sweep_run, "simulate_point", lambda s: calls.append(s) or real(s))
    third = run_sweep(spec, tmp_path, jobs=1, resume=True)
    assert len(calls) == 1 and len(third.results) == n
    assert len(pd.read_csv(csv)) == n


def test_ray_runs_the_same_points():
    pytest.importorskip("ray")
    spec = sweep_spec_from_dict(SMALL)
    local = run_sweep(spec, None, jobs=1).results.set_index("point_id").sort_index()
    remote = run_sweep(spec, None, jobs=2, ray_address="local").results.set_index("point_id").sort_index()
    assert list(local.index) == list(remote.index)
    for col in ("output_throughput", "mean_ttft_ms", "p99_itl_ms", "meets_slo"):
        assert (local[col] == remote[col]).all(), col


def test_flag_form_cli(tmp_path):
    out = tmp_path / "flags"
    r = CliRunner().invoke(
        main,
        [
            "sweep",
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--gpus",
            "2",
            "--random-input-len",
            "256",
            "--random-output-len",
            "32",
            "--num-prompts",
            "24",
            "--max-concurrency",
            "1,8",
            "--ttft-ms",
            "500",
            "--tpot-ms",
            "20",
            "--tp",
            "1,2",
            "--jobs",
            "1",
            "--quiet",
            "--no-plots",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "best under the SLO" in r.output
    best = json.loads((out / "best.json").read_text())
    assert best["serve_commands"][0].startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct")
    assert len(pd.read_csv(out / "results.csv")) == 6


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model", "llama-3.1-8b", "--gpus", "2", "--max-concurrency", "1,x"], "--max-concurrency"),
        (["--gpus", "2"], "--model"),
        (["--model", "no-such-model", "--gpus", "2"], "unknown model 'no-such-model'"),
    ],
)
def test_bad_flags_are_one_line(args, fragment, tmp_path):
    r = CliRunner().invoke(main, ["sweep", *args, "-o", str(tmp_path)])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], lines


def test_spec_errors_name_the_field():
    with pytest.raises(SpecError, match="search.colocated.tpp: unknown field .*did you mean 'tp'"):
        run_sweep(sweep_spec_from_dict(dict(SMALL, search={"colocated": {"tpp": [1]}})), None, jobs=1)
    with pytest.raises(SpecError, match="workload.concurrency: set by the load points"):
        sweep_spec_from_dict(dict(SMALL, workload={"input_len": 1, "output_len": 1, "concurrency": 4}))
    with pytest.raises(SpecError, match="slo.statistic"):
        sweep_spec_from_dict(dict(SMALL, slo={"ttft_ms": 1, "statistic": "p42"}))


def test_deployment_fields_pass_through_to_every_point():
    spec = sweep_spec_from_dict(
        dict(
            SMALL, search={"colocated": {"tp": [1], "dp": [1], "max_num_seqs": [4, 64], "enable_prefix_caching": True}}
        )
    )
    df = run_sweep(spec, None, jobs=1).results
    assert sorted(set(df.max_num_seqs)) == [4, 64] and df.enable_prefix_caching.all()
    small_batch = df[(df.max_num_seqs == 4) & (df.concurrency == 8)].iloc[0]
    big_batch = df[(df.max_num_seqs == 64) & (df.concurrency == 8)].iloc[0]
    assert small_batch.mean_ttft_ms > big_batch.mean_ttft_ms  # 8 clients queue behind 4 slots


def test_outputs_sglang_cuts_short_do_not_meet_the_slo():
    """18 blocks of 16 tokens: SGLang's max_req_len 287 leaves a 256-token prompt 30 of its 32
    output tokens, so every request is served short and no point counts as meeting the SLO."""
    spec = sweep_spec_from_dict(
        {**SMALL, "search": {"colocated": {"tp": [1], "engine": "sglang", "num_gpu_blocks_override": [18, 64]}}}
    )
    df = run_sweep(spec, None, jobs=1).results.set_index(["num_gpu_blocks_override", "concurrency"])
    short, whole = df.loc[18], df.loc[64]
    assert (short.outputs_clipped == short.completed).all() and (short.completed == 24).all()
    assert not short.meets_slo.any()
    assert (whole.outputs_clipped == 0).all() and whole.meets_slo.all()  # served whole, the SLO is met


def test_pd_space_and_sglang_commands():
    spec = sweep_spec_from_dict(
        {**SMALL, "gpus": 4, "search": {"disaggregated": {"prefill": {"tp": [1]}, "decode": {"tp": [1, 2]}}}}
    )
    from frontier.search.space import enumerate_space

    ok, bad = enumerate_space(spec, load_model("llama-3.1-8b"), longest_request(spec))
    assert all(c.gpus <= 4 for c in ok) and {c.label for c in ok} >= {
        "1P(TP1) 1D(TP1)",
        "2P(TP1) 2D(TP1)",
        "1P(TP1) 1D(TP2)",
        "2P(TP1) 1D(TP2)",
    }
    cmds = serve_commands(
        "org/m",
        {
            "clusters": [
                {"name": "prefill", "role": "prefill", "tp": 1, "dp": 2, "engine": "sglang"},
                {"name": "decode", "role": "decode", "tp": 2, "dp": 1, "engine": "sglang", "max_num_seqs": 64},
            ]
        },
    )
    assert cmds["engine"] == "sglang"
    assert cmds["serve"][0].startswith("python -m sglang.launch_server --model-path org/m --tp-size 1")
    assert "--disaggregation-mode decode" in cmds["serve"][1] and "--max-running-requests 64" in cmds["serve"][1]
    fp8 = serve_commands("org/m", {"tp": 8, "engine": "sglang", "kv_cache_dtype": "fp8", "quantization": "fp8"})
    assert "--kv-cache-dtype fp8_e4m3" in fp8["serve"][0] and "--quantization fp8" in fp8["serve"][0]
    vllm = serve_commands("org/m", {"tp": 1, "dp_attention": 8, "ep": 8, "dp": 2, "kv_cache_dtype": "fp8"})
    assert "--data-parallel-size 8 --enable-expert-parallel" in vllm["serve"][0]
    assert "--kv-cache-dtype fp8" in vllm["serve"][0] and "2 replicas" in vllm["notes"][0]
    # A checkpoint's own precision (quantization left empty) adds no flag.
    plain = serve_commands("org/m", {"tp": 8, "engine": "vllm", "quantization": ""})
    assert "--quantization" not in plain["serve"][0]
    # Behind Dynamo the same engine flags go to a Dynamo worker, and the commands say so.
    dynamo = serve_commands("org/m", {"tp": 2, "engine": "sglang", "frontend": "dynamo"})
    assert "python -m dynamo.frontend" in dynamo["notes"][0] and "dynamo.sglang" in dynamo["notes"][0]
    assert not any("Dynamo" in n for n in plain["notes"])
    assert math.isfinite(len(bad))


def test_the_aiperf_command_keeps_the_workloads_prompt_pool_warmup_and_front_end():
    from frontier.search.commands import aiperf_command, bench_command, serving_port

    workload = {"input_len": {"dist": "uniform", "min": 800, "max": 1200}, "output_len": 100, "prompt_pool": 100}
    cmd = aiperf_command(
        "Qwen/Qwen3-32B",
        serving_port({"frontend": "dynamo"}, "sglang"),
        dict(workload, warmup_requests=128),
        64,
        None,
        1280,
    )
    assert cmd == (
        "aiperf profile --model Qwen/Qwen3-32B --url http://localhost:8000 --endpoint-type chat --streaming "
        "--concurrency 64 --request-count 1280 --warmup-request-count 128 --isl 1000 --osl 100 "
        "--num-dataset-entries 100 --dataset-sampling-strategy random --extra-inputs ignore_eos:true"
    )
    # aiperf >= 0.3.0 would shuffle the pool: the command asks for the order simulated.
    shuffled = aiperf_command("m", 8000, dict(workload, prompt_sampling="shuffle"), 64, None, 1280)
    assert "--num-dataset-entries 100 --dataset-sampling-strategy shuffle " in shuffled
    # SGLang's own server; no pool: as many distinct prompts as requests; a rate instead of clients.
    cmd = aiperf_command(
        "m", serving_port({"engine": "sglang"}, "sglang"), {"input_len": 10, "output_len": 5}, None, 2.5, 40
    )
    assert "--url http://localhost:30000 " in cmd and "--request-rate 2.5 --request-count 40 " in cmd
    assert "--num-dataset-entries 40 " in cmd and "--concurrency" not in cmd and "sampling" not in cmd
    assert aiperf_command("m", 8000, {"trace": {"path": "t.csv"}}, 4, None, 10) is None  # a trace: vllm bench only
    # vllm bench serve measures the same server: Dynamo's front end when it stands before SGLang.
    bench = bench_command("m", "sglang", serving_port({"frontend": "dynamo"}, "sglang"), workload, 64, None, 1280, None)
    assert "--backend sglang --port 8000 " in bench
