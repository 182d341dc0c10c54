"""How the accuracy harness turns development-set rows into scenarios (frontier.validate.accuracy)."""

import pytest

from frontier.validate.accuracy import load_runs
from frontier.workload import WorkloadSpec


@pytest.fixture(scope="module")
def runs():
    return {r.id: r for r in load_runs()}


def by(runs, **where):
    return [r for r in runs.values() if all(getattr(r, k) == v for k, v in where.items())]


def test_inferencemax_runs_draw_lengths_from_0_8_to_1_of_the_nominal(runs):
    # A versioned row exported from InferenceMAX's dashboard (vLLM 0.18, gpt-oss-120b, 8k/1k).
    row = next(r for r in by(runs, version="0.18.0", isl=8192, osl=1024) if r.scenario)
    wl = row.scenario["workload"]
    assert wl["input_len"] == {"dist": "uniform", "min": 6554, "max": 8192}
    assert wl["output_len"] == {"dist": "uniform", "min": 820, "max": 1024}
    assert wl["num_requests"] == 10 * row.concurrency


def test_aiconfigurator_sweep_runs_keep_fixed_lengths_and_send_20_prompts_per_client(runs):
    # SGLang 0.5.6's Llama-3.1-8B sweep (1,000 / 500 tokens), benchmarked by the generator's
    # bench_run.sh.j2: aiperf, stddev 0, --num-requests 20 x concurrency.
    row = next(r for r in by(runs, engine="sglang", isl=1000, osl=500) if r.scenario)
    wl = row.scenario["workload"]
    assert (wl["input_len"], wl["output_len"]) == (1000, 500)
    assert wl["num_requests"] == 20 * row.concurrency
    # A count given for every run wins.
    few = next(r for r in load_runs(num_prompts_per_client=2) if r.id == row.id)
    assert few.scenario["workload"]["num_requests"] == 2 * row.concurrency


def test_vllm_sweep_runs_draw_prompts_from_aiperfs_100_and_the_others_never_repeat(runs):
    # aiperf's synthetic dataset: 100 prompts reused (the vLLM 0.12 rows' throughput needs the
    # prefix cache); SGLang's sweep rows and InferenceMAX's random prompts show no reuse.
    vllm_sweep = next(r for r in by(runs, engine="vllm", version="0.12.0") if r.scenario)
    assert vllm_sweep.scenario["workload"]["prompt_pool"] == 100
    # Drawn with replacement, as aiperf before 0.3.0 (accuracy._prompt_pool: a shuffle fits worse).
    assert WorkloadSpec.from_dict(vllm_sweep.scenario["workload"]).prompt_sampling == "random"
    sglang_sweep = next(r for r in by(runs, engine="sglang", version="0.5.6.post2") if r.scenario)
    inferencemax = next(r for r in by(runs, version="0.18.0", isl=8192, osl=1024) if r.scenario)
    for row in (sglang_sweep, inferencemax):
        assert "prompt_pool" not in row.scenario["workload"]


def test_sweep_runs_warm_up_as_aiperf_does_through_dynamos_front_end(runs):
    # bench_run.sh.j2: --warmup-request-count 2 x concurrency, not measured; the generator deploys
    # the engine behind Dynamo. InferenceMAX's runs neither warm up nor pass through Dynamo.
    for engine in ("vllm", "sglang"):
        sweep = next(r for r in by(runs, engine=engine, isl=8000, osl=100) if r.scenario)
        assert sweep.scenario["workload"]["warmup_requests"] == 2 * sweep.concurrency
        assert sweep.scenario["deployment"]["frontend"] == "dynamo"
    imax = next(r for r in by(runs, version="0.18.0", isl=8192, osl=1024) if r.scenario)
    assert "warmup_requests" not in imax.scenario["workload"]
    assert "frontend" not in imax.scenario["deployment"]


def test_a_1k_1k_run_in_the_checkpoints_own_sweep_file_is_aiconfigurators(tmp_path):
    # aiconfigurator's sweeps also run InferenceMAX's 1k/1k shape; the file a row is kept in
    # (named after the checkpoint, or a copy such as a gap analysis) tells whose client ran it.
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    row = pd.read_csv(DEV_SET).query("model_path == 'Qwen/Qwen3-32B'").iloc[[0, 0]].copy()
    row[["isl", "osl"]] = [1024, 1024]
    row["batch_size"] = [8, 4]
    row["silicon_ttft_ms"] = [90.0, 80.0]  # copies of one measurement would count once
    row["id"] = ["sweep", "copy"]
    row["silicon_data_source"] = ["source_file=Qwen_Qwen3-32B.csv", "source_file=qwen3-32b-gap-analysis.csv"]
    row.to_csv(tmp_path / "rows.csv", index=False)
    sweep, copy = load_runs(tmp_path / "rows.csv")
    assert (sweep.scenario["workload"]["input_len"], sweep.scenario["workload"]["num_requests"]) == (1024, 160)
    assert sweep.scenario["deployment"]["enable_mixed_chunk"] is True  # the generator's flags
    assert copy.scenario["workload"]["input_len"] == {"dist": "uniform", "min": 820, "max": 1024}
    assert copy.scenario["workload"]["num_requests"] == 40 and "enable_mixed_chunk" not in copy.scenario["deployment"]


def test_disaggregated_runs_without_worker_counts_are_listed_not_guessed(runs):
    pd_runs = [r for r in runs.values() if r.engine.endswith("PD")]
    unexpressed = [r for r in pd_runs if r.scenario is None]
    assert unexpressed and all("worker counts" in r.unexpressed for r in unexpressed)
    assert any(r.scenario is not None for r in pd_runs)  # the 1P1D rows that record their workers


def test_inferencemax_deepseek_runs_use_its_launch_flags(runs):
    # benchmarks/dsr1_fp8_h200_slurm.sh: chunked prefill and max prefill 32,768, radix cache off,
    # mem-fraction-static 0.82, 512 running requests at 1k/1k.
    row = next(r for r in by(runs, engine="sglang", isl=1024, osl=1024) if "DeepSeek-R1" in r.model and r.scenario)
    dep = row.scenario["deployment"]
    assert (dep["max_num_batched_tokens"], dep["max_prefill_tokens"], dep["max_num_seqs"]) == (32768, 32768, 512)
    assert dep["gpu_memory_utilization"] == 0.82 and dep["enable_prefix_caching"] is False
    assert dep["stream_interval"] == 10  # --stream-interval 10


def test_inferencemax_qwen3_5_runs_stream_every_50_tokens_through_6_tokenizer_workers(runs):
    # single_node/qwen3.5_fp8_h200.sh (2026-03-04..27): --stream-interval 50, --tokenizer-worker-num 6.
    row = next(r for r in by(runs, engine="sglang") if "Qwen3.5" in r.model and r.scenario)
    dep = row.scenario["deployment"]
    assert (dep["stream_interval"], dep["tokenizer_workers"]) == (50, 6)
    assert not any("stream_interval" in r.scenario["deployment"] for r in by(runs, engine="vllm") if r.scenario)


def test_moe_over_more_gpus_than_attention_tp_is_data_parallel_attention(runs):
    # vLLM 0.12's Qwen3-235B rows with tp 2 and moe_tp 4 ran on 4 GPUs: DP2 attention, the MoE
    # tensor-parallel over all 4 (tp 1 and moe_tp 2: DP2 on 2 GPUs).
    qwen = [r for r in runs.values() if "Qwen3-235B" in r.model and r.engine == "vllm"]
    dp = [r for r in qwen if r.scenario and r.scenario["deployment"].get("dp_attention")]
    assert {(r.tp, r.scenario["deployment"]["dp_attention"]) for r in dp} == {(1, 2), (1, 4), (2, 2)}
    assert all("ep" not in r.scenario["deployment"] for r in dp)
    assert all(r.scenario is not None for r in qwen)


def test_aiconfigurator_sweep_runs_use_its_generators_server_flags(runs):
    # generator/rule_plugin/benchmark/sglang.rule: mixed chunk, max prefill isl + 1500, the batch
    # size as max running requests; vllm.rule: batched tokens = batch size + isl + 1500; both a
    # CUDA graph for every batch size up to the batch size.
    sgl = next(r for r in by(runs, engine="sglang", isl=1000, osl=500) if r.scenario)
    dep = sgl.scenario["deployment"]
    assert dep["enable_mixed_chunk"] is True and dep["max_prefill_tokens"] == 2500
    assert dep["max_num_seqs"] == sgl.concurrency and dep["cuda_graph_sizes"] == list(range(1, sgl.concurrency + 1))
    vllm = next(r for r in by(runs, engine="vllm", version="0.12.0", isl=8000, osl=1000) if r.scenario)
    dep = vllm.scenario["deployment"]
    assert dep["max_num_batched_tokens"] == vllm.concurrency + 9500 and dep["max_model_len"] == 10500
    assert dep["cuda_graph_sizes"] == list(range(1, vllm.concurrency + 1))
    imax = next(r for r in by(runs, version="0.18.0", isl=8192, osl=1024) if r.scenario)
    assert "enable_mixed_chunk" not in imax.scenario["deployment"]


def test_sweeps_of_releases_before_the_generators_flags_run_the_engine_defaults():
    # The generator deploys with its benchmark flags from SGLang 0.5.6.post2 / vLLM 0.12.0 on;
    # a sweep of SGLang 0.5.1 or vLLM 0.11 ran the engine's own defaults.
    from frontier.validate.accuracy import aiconfigurator_server_args

    row = {"backend": "sglang", "mode": "agg", "batch_size": 64, "isl": 1024, "osl": 128}
    row.update(silicon_data_source="source_file=Qwen_Qwen3-32B.csv", model_path="Qwen/Qwen3-32B")
    assert aiconfigurator_server_args({**row, "backend_version": "0.5.1"}) == {}
    assert aiconfigurator_server_args({**row, "backend_version": "0.5.6.post2"})["enable_mixed_chunk"] is True
    vllm = {**row, "backend": "vllm"}
    assert aiconfigurator_server_args({**vllm, "backend_version": "0.11.0"}) == {}
    assert aiconfigurator_server_args({**vllm, "backend_version": "0.12.0"})["max_num_batched_tokens"] == 64 + 2524


def test_a_measured_vllm_run_gets_a_context_its_kv_cache_holds(tmp_path):
    # Qwen3-32B on one H100 under vLLM 0.11's defaults: the model's 40,960-token context needs
    # 10 GiB of KV where ~7.9 GiB are left, so vLLM would refuse to start; the run was measured,
    # so it was launched with a length that fits (`auto`: the longest one). At TP2 the context
    # fits and `auto` is the context itself.
    from frontier.errors import FrontierError
    from frontier.sim.run import run_scenario
    from frontier.spec.scenario import scenario_from_dict
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    rows = pd.read_csv(DEV_SET).query("model_path == 'Qwen/Qwen3-32B'").iloc[[0, 0]].copy()
    rows[["id", "backend", "backend_version", "tp_size", "batch_size"]] = [
        ["tp1", "vllm", "0.11.0", 1, 1],
        ["tp2", "vllm", "0.11.0", 2, 1],
    ]
    rows["silicon_ttft_ms"] = [1.0, 2.0]
    rows.to_csv(tmp_path / "vllm.csv", index=False)

    def served(scenario: dict) -> int:
        (cluster,) = run_scenario(scenario_from_dict(scenario), timeline=False).summary["frontier"]["clusters"]
        return cluster["max_model_len_served"]

    tp1, tp2 = load_runs(tmp_path / "vllm.csv")
    assert tp1.scenario["deployment"]["max_model_len"] == tp2.scenario["deployment"]["max_model_len"] == "auto"
    assert 20_000 < served(tp1.scenario) < 40_960 and served(tp2.scenario) == 40_960
    as_launched = {**tp1.scenario, "deployment": {**tp1.scenario["deployment"]}}
    del as_launched["deployment"]["max_model_len"]
    with pytest.raises(FrontierError, match="vLLM would not start: one request of max_model_len 40960"):
        served(as_launched)


def test_inferencemax_gpt_oss_runs_use_marlin_moe_on_h100_and_h200(runs):
    # benchmarks/single_node/gptoss_fp4_h{100,200}.sh export VLLM_MXFP4_USE_MARLIN=1 and write the
    # same config.yaml on both GPUs: no prefix caching, 8,192 batched tokens, --max-num-seqs CONC.
    rows = [r for r in runs.values() if "gpt-oss" in r.model and r.scenario]
    assert {r.gpu for r in rows} == {"h100_sxm", "h200_sxm"}
    for r in rows:
        dep = r.scenario["deployment"]
        assert dep["mxfp4_backend"] == "marlin" and dep["enable_prefix_caching"] is False
        assert (dep["max_num_batched_tokens"], dep["max_num_seqs"]) == (8192, r.concurrency)


def test_inferencemax_minimax_layouts_follow_its_scripts(runs):
    # nvidia-master.yaml: minimaxm2.5-fp8-h100-vllm {tp 4, ep 4} on 4 GPUs, which the 2026-04-06
    # export records as 4 attention-DP ranks of TP4 with a quarter of the clients each; the H200
    # script of the v0.18 runs passes --enable-expert-parallel whenever EP_SIZE >= 1.
    minimax = [r for r in runs.values() if "MiniMax" in r.model and r.scenario]
    h100 = [r for r in minimax if r.gpu == "h100_sxm"]
    assert len(h100) == 30 and any(r.id.startswith("2026_04_06") for r in h100)
    for r in h100:
        dep = r.scenario["deployment"]
        assert (dep["tp"], dep["ep"], dep.get("dp_attention", 1)) == (4, 4, 1)
        assert r.concurrency == int(r.id.split("_c")[-1].split("_")[0])  # the id's client count
    h200 = {(r.version, r.scenario["deployment"].get("ep", 1), r.tp) for r in minimax if r.gpu == "h200_sxm"}
    assert h200 == {("0.16.0", 1, 4), ("0.18.0", 8, 8)}


def test_copies_of_one_measurement_count_once(runs):
    # Qwen3.5's 15 runs appear in two dashboard exports (the second as "TP64") and a gap analysis,
    # with the same TTFT and TPOT to 0.01 ms; the second export adds one rerun of its own.
    qwen = [r for r in runs.values() if "Qwen3.5" in r.model]
    assert len(qwen) == 16 and all(r.scenario and r.tp == 8 for r in qwen)


def test_inferencemax_llama_70b_runs_keep_an_fp8_kv_cache(runs):
    # On one H200, 32 clients of 1k + 8k tokens fit without queueing only in an FP8 cache.
    rows = [r for r in runs.values() if r.model == "meta-llama/Llama-3.1-70B" and r.scenario]
    assert rows and all(r.scenario["deployment"]["kv_cache_dtype"] == "fp8" for r in rows)


@pytest.mark.parametrize(
    "mode, name",
    [
        ("bfloat16", "none"),
        ("fp8_block", "fp8_block"),
        ("fp8_static", "fp8"),
        ("w4a16_mxfp4", "mxfp4"),
        ("int4_wo", "int4"),
    ],
)
def test_aiconfigurators_quant_modes_name_frontiers_precisions(mode, name):
    from frontier.spec.quant import quantization_name
    from frontier.validate.accuracy import quantization_of

    assert quantization_name(quantization_of({"gemm_quant_mode": mode}), "row") == name


def test_a_vendors_own_fp8_checkpoint_is_block_scaled_another_per_tensor():
    # aiconfigurator's vLLM rows label Qwen's block-scaled FP8 release `fp8` (its SGLang rows
    # `fp8_block`); NVIDIA's ModelOpt FP8 Llama is per-tensor, as labelled.
    from frontier.validate.accuracy import checkpoint_quantization

    qwen = {"model_path": "Qwen/Qwen3-235B-A22B-FP8", "gemm_quant_mode": "fp8"}
    assert checkpoint_quantization(qwen, "qwen3-235b-a22b") == "fp8_block"
    assert checkpoint_quantization({**qwen, "gemm_quant_mode": "fp8_block"}, "qwen3-235b-a22b") == "fp8_block"
    assert checkpoint_quantization({**qwen, "model_path": "Qwen/Qwen3-235B-A22B"}, "qwen3-235b-a22b") == "fp8"
    nvidia = {"model_path": "nvidia/Llama-3.1-8B-Instruct-FP8", "gemm_quant_mode": "fp8"}
    assert checkpoint_quantization(nvidia, "llama-3.1-8b") == "fp8"


def test_only_copies_of_one_measurement_are_merged(tmp_path):
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    rows = pd.read_csv(DEV_SET).query("model_path == 'Qwen/Qwen3-32B'").iloc[[0, 0, 0]].copy()
    rows["id"] = ["a", "a-copy", "b"]
    rows["batch_size"] = [16, 16, 32]  # b: another run that happens to share a's numbers
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert [r.id for r in load_runs(tmp_path / "rows.csv")] == ["a", "b"]


def test_a_runs_file_without_a_needed_column_is_one_clear_error(tmp_path):
    from frontier.errors import FrontierError
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    rows = pd.read_csv(DEV_SET).query("model_path == 'Qwen/Qwen3-32B'")
    rows.drop(columns=["isl"]).to_csv(tmp_path / "no_isl.csv", index=False)
    with pytest.raises(FrontierError, match="no column isl; a measured run needs id, backend"):
        load_runs(tmp_path / "no_isl.csv")
    # The optional ones (release, source note, other layouts) read as unknown.
    optional = ["backend_version", "silicon_data_source", "attention_dp_size", "moe_ep_size", "prefill_tp_size"]
    rows.drop(columns=optional).to_csv(tmp_path / "lean.csv", index=False)
    lean = load_runs(tmp_path / "lean.csv")
    assert len(lean) == len(rows) and all(r.scenario and r.version == "-" for r in lean)


def test_disaggregated_workers_are_the_clusters_replicas(tmp_path):
    # xPyD: a run's prefill and decode worker counts are the two clusters' replicas.
    from frontier.spec.scenario import scenario_from_dict
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    rows = pd.read_csv(DEV_SET)
    row = rows[(rows["mode"] == "disagg") & rows["prefill_num_workers"].notna()].iloc[[0]].copy()
    row[["prefill_num_workers", "decode_num_workers"]] = [2, 3]
    row.to_csv(tmp_path / "xpyd.csv", index=False)
    (run,) = load_runs(tmp_path / "xpyd.csv")
    prefill, decode = run.scenario["deployment"]["clusters"]
    assert (prefill["role"], prefill["dp"], decode["role"], decode["dp"]) == ("prefill", 2, "decode", 3)
    sc = scenario_from_dict(run.scenario)
    assert [c.dp for c in sc.clusters] == [2, 3]


def test_a_dashboard_rows_attention_dp_layout_on_its_gpus_is_kept(tmp_path):
    # Only layouts that span another GPU count than the id's tp are read from the id: an
    # attention-DP run (tp 1 x attention DP 8 = the id's 8 GPUs) keeps its recorded layout.
    from frontier.validate.accuracy import DEV_SET

    import pandas as pd

    rows = pd.read_csv(DEV_SET)
    row = rows[rows["id"].str.startswith("2026_03_25_deepseek_r1") & (rows["mode"] == "agg")].iloc[[0]].copy()
    row[["tp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size"]] = [1, 8, 1, 8]
    row.to_csv(tmp_path / "dpa.csv", index=False)
    (run,) = load_runs(tmp_path / "dpa.csv")
    dep = run.scenario["deployment"]
    assert (dep["tp"], dep["dp_attention"], dep["ep"]) == (1, 8, 8)
