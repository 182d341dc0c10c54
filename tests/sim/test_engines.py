"""The same scenario under `engine: vllm` and `engine: sglang`: their documented differences,
each with timings computed by hand on known step times (10 ms + 0.1 ms per token)."""

import pytest

from frontier.ops.operators import GroupedGemm
from frontier.predict.blocks import StepOverheads
from frontier.sim.kv_cache import BlockManager
from frontier.sim.request import Request
from frontier.sim.run import block_costs_for, simulate
from frontier.sim.scheduler import SGLangScheduler
from frontier.spec.scenario import scenario_from_dict

from sim_helpers import LinearStepTime, make_scenario, table

# A: arrives at 0, prompt 100, 3 output tokens. B: arrives at 15 ms, prompt 50, 2 output tokens.
ARRIVALS, PROMPTS, OUTPUTS = [0.0, 0.015], [100, 50], [3, 2]


def run(engine: str):
    step = LinearStepTime(0.010, 0.0001)
    res = simulate(make_scenario(engine=engine), table(ARRIVALS, PROMPTS, OUTPUTS), step_time=step)
    return [(s.prefill_tokens, s.num_decode) for s in step.calls], res.requests.set_index("request_id")


def test_vllm_mixes_prefill_chunks_into_decode_steps():
    # t=0     A prefills 100: 20 ms.  t=20  A decodes + B prefills 50: 15.1 ms -> 35.1.
    # t=35.1  A and B decode: 10.2 ms -> 45.3, both done.
    steps, df = run("vllm")
    assert steps == [(100, 0), (50, 1), (0, 2)]
    assert df.loc[1, "first_token_s"] == pytest.approx(0.0351)
    assert df.loc[0, "finish_s"] == pytest.approx(0.0453)


def test_sglang_runs_prefill_first_in_batches_of_their_own():
    # t=0     A prefills 100: 20 ms.  t=20  B waits, so a prefill batch of B alone: 15 ms -> 35
    #         (A's decode waits: prefill first).  t=35  A and B decode: 10.2 ms -> 45.2.
    # t=45.2  A decodes its last token alone: 10.1 ms -> 55.3.
    steps, df = run("sglang")
    assert steps == [(100, 0), (50, 0), (0, 2), (0, 1)]
    assert df.loc[1, "first_token_s"] == pytest.approx(0.035)
    assert df.loc[1, "finish_s"] == pytest.approx(0.0452)
    assert df.loc[0, "finish_s"] == pytest.approx(0.0553)


def test_sglang_mixed_chunk_puts_decodes_in_the_prefill_batch():
    step = LinearStepTime(0.010, 0.0001)
    simulate(make_scenario(engine="sglang", enable_mixed_chunk=True), table(ARRIVALS, PROMPTS, OUTPUTS), step_time=step)
    assert [(s.prefill_tokens, s.num_decode) for s in step.calls][:2] == [(100, 0), (50, 1)]


def test_sglang_cuts_an_output_its_kv_pool_cannot_hold_and_refuses_a_prompt_it_cannot():
    """A pool of 10 blocks of 16 tokens: SGLang's max_req_len = min(context - 1, 160 - 1) = 159,
    so prompts of 159 - 5 = 154 tokens or more are refused and an output is cut to 159 - prompt - 1
    tokens: 58 after a 100-token prompt; a 150-token prompt's 3 tokens fit (8 allowed)."""
    pool = {"num_gpu_blocks_override": 10, "block_size": 16}
    res = simulate(
        make_scenario(engine="sglang", **pool),
        table([0.0, 0.0, 0.0], [100, 154, 150], [80, 2, 3]),
        step_time=LinearStepTime(),
    )
    df = res.requests.set_index("request_id")
    assert list(df.status) == ["finished", "failed", "finished"]
    assert list(df.output_tokens) == [58, 2, 3]
    assert (
        df.loc[1, "fail_reason"]
        == "prompt of 154 tokens exceeds SGLang's longest input, 154 tokens (its context or KV pool, the shorter, holds 160)"
    )
    assert res.summary["frontier"]["outputs_clipped"] == 1
    # vLLM serves whole requests or none: with that pool it would not start at the model's context,
    # and at a 160-token context it refuses the 180-token request.
    vllm = simulate(
        make_scenario(engine="vllm", max_model_len=160, **pool),
        table([0.0, 0.0], [100, 150], [80, 3]),
        step_time=LinearStepTime(),
    )
    assert list(vllm.requests.status) == ["failed", "finished"]
    assert vllm.requests.fail_reason[0] == "prompt + output = 180 tokens exceeds max_model_len 160"
    assert vllm.summary["frontier"]["outputs_clipped"] == 0


def test_engine_defaults_and_their_sources():
    vllm = make_scenario(engine="vllm").clusters[0]
    assert (vllm.max_num_seqs, vllm.max_num_batched_tokens, vllm.enable_prefix_caching) == (1024, 8192, True)
    old = make_scenario(engine="vllm", engine_version="0.6.3").clusters[0]
    assert (old.max_num_seqs, old.enable_prefix_caching) == (256, False)
    sglang = make_scenario(engine="sglang").clusters[0]
    assert sglang.enable_prefix_caching  # radix cache on
    assert sglang.max_num_batched_tokens == 8192 and sglang.max_prefill_tokens == 16384
    # mem_fraction_static = (GPU memory - reserve) / GPU memory on an 80 GB H100.
    assert 0.7 < sglang.gpu_memory_utilization < 0.9
    sources = {f: src for f, _, src in sglang.defaults_from}
    assert "server_args.py" in sources["max_num_batched_tokens"]
    # A field the user sets is not a default.
    assert "max_num_seqs" not in {f for f, _, _ in make_scenario(max_num_seqs=64).clusters[0].defaults_from}


def test_async_scheduling_hides_host_time_behind_the_gpu():
    overlapped = StepOverheads(cpu_overhead_ms=1.0, host_overlapped=True, overlap_residual_ms=0.1)
    serial = StepOverheads(cpu_overhead_ms=1.0)
    assert overlapped.wall_ms(5.0) == pytest.approx(5.1)  # max(5, 1) + 0.1
    assert overlapped.wall_ms(0.5) == pytest.approx(1.1)  # host-bound: max(0.5, 1) + 0.1
    assert serial.wall_ms(5.0) == pytest.approx(6.0)  # 5 + 1
    # vLLM turned async scheduling on by default in 0.14 (PR #27614); SGLang overlaps by default.
    cases = [("vllm", "", True), ("vllm", "0.14.0", True), ("vllm", "0.12.0", False), ("sglang", "", True)]
    for engine, version, hidden in cases:
        sc = make_scenario(engine=engine, engine_version=version)
        blocks, _ = block_costs_for(sc, sc.clusters[0])
        assert blocks.overheads.host_overlapped is hidden
        # The summary says so, with where the engine decides it.
        printed = sc.describe_deployment()["clusters"][0]["engine_defaults"]["host_overlapped"]
        assert printed["value"] is hidden and ("async_scheduling" in printed["source"]) == (engine == "vllm")


def test_vllm_symmetric_memory_all_reduce_by_release_and_gpu():
    """vLLM turned VLLM_ALLREDUCE_USE_SYMM_MEM on in 0.11.0, off again in 0.11.1 (PR #26925) and
    back on by 0.12; it needs NVLink multicast (no PCIe card) and SGLang leaves it off."""
    cases = [
        ("vllm", "", "h100-sxm", "9.0"),
        ("vllm", "0.11.0", "h100-sxm", "9.0"),
        ("vllm", "0.11.2", "h100-sxm", None),
        ("vllm", "0.12.0", "h200", "9.0"),
        ("vllm", "0.10.2", "h100-sxm", None),
        ("vllm", "", "h100-pcie", None),
        ("sglang", "", "h100-sxm", None),
    ]
    for engine, version, gpu, symm_mem in cases:
        sc = make_scenario(engine=engine, engine_version=version, gpu=gpu, tp=2)
        blocks, _ = block_costs_for(sc, sc.clusters[0])
        assert blocks.par.symm_mem == symm_mem, (engine, version, gpu)
        printed = sc.describe_deployment()["clusters"][0]["engine_defaults"]["symm_mem_all_reduce"]
        assert printed["value"] is (symm_mem is not None)


def test_sglang_fp8_layers_pay_for_their_input_quantisation():
    """With FP8 weights SGLang launches a quantisation kernel before each linear layer that vLLM
    folds into the norm or activation before it (frontier.ops.graph.unfused_quant): its layers
    cost exactly those kernels more, as priced by the same predictor; bf16 layers the same."""
    from frontier.ops.graph import unfused_quant
    from frontier.predict.blocks import launched_ms

    for quantization, tokens in (("fp8", 8), ("fp8", 2048), ("none", 8)):
        costs = {}
        for engine in ("vllm", "sglang"):
            sc = make_scenario(engine=engine, quantization=quantization, cuda_graph=False)
            blocks, _ = block_costs_for(sc, sc.clusters[0])
            costs[engine] = blocks.layers_ms(tokens, graph=False)[0]
        assert blocks.fused_quant is False
        printed = sc.describe_deployment()["clusters"][0]["engine_defaults"]["fp8_input_quant_fused"]
        assert printed["value"] is False and "fp8_utils.py" in printed["source"]
        m = blocks.model
        extra = unfused_quant(
            tokens, (m.hidden_size,) * 2 + (m.intermediate_size,), m.num_layers, m.weight_dtype, False
        )
        assert len(extra) == (3 if quantization == "fp8" else 0)
        expected = launched_ms(extra, blocks.predictor.ops_ms([op for op, _ in extra]), blocks.overheads, False)[0]
        assert costs["sglang"] - costs["vllm"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_sglang_admission_reserves_new_token_ratio_of_running_outputs():
    # 100 blocks of 16 = 1,600 tokens. A runs (prompt 100, 1,000 outputs): admitting B (prompt
    # 100, 1,000 outputs) needs 100 + 1,000 tokens beside 0.7 x 999 reserved for A.
    kv = BlockManager(100, 16)
    sched = SGLangScheduler(kv, 64, 8192, 16384)
    a, b = Request(0, 0.0, 100, 1000), Request(1, 0.0, 100, 1000)
    sched.add(a)
    assert sched.schedule().scheduled == [(a, 100)]
    a.num_computed, a.num_output = 100, 1  # A prefilled: its first token is out
    sched.add(b)
    plan = sched.schedule()
    # free = 1,600 - 112 (A's 7 blocks) = 1,488; 1,488 - 0.7 x 999 = 788.7 < 1,100: B waits,
    # A decodes, and the plan says admission may open up as decodes go on.
    assert plan.scheduled == [(a, 1)] and not plan.admission_blocked
    # After 600 decode steps the ratio has decayed to its floor, 0.098: 1,488 - 97.9 admits B.
    sched.advance(600)
    assert sched.new_token_ratio == pytest.approx(0.7 * 0.14)
    assert sched.schedule().scheduled == [(b, 100)]


def test_sglang_admits_ignore_eos_requests_past_the_prefill_budget_with_the_radix_cache_off():
    # add_one_req_ignore_eos: no "needs all the input budget left" check before a request, only
    # the budget after it: with 250 prefill tokens three 100-token prompts join (the third goes
    # past), where the radix cache (or requests that may stop at EOS) admit two.
    def admitted(ignore_eos: bool, radix: bool = False) -> list[int]:
        sched = SGLangScheduler(BlockManager(1000, 16, prefix_caching=radix), 64, 8192, 250, ignore_eos=ignore_eos)
        for i in range(4):
            sched.add(Request(i, 0.0, 100, 10))
        return [n for _, n in sched.schedule().scheduled]

    assert admitted(ignore_eos=True) == [100, 100, 100]
    assert admitted(ignore_eos=False) == [100, 100]
    assert admitted(ignore_eos=True, radix=True) == [100, 100]


def test_sglang_ignore_eos_admission_sees_the_running_requests_through_in_order():
    # 100 blocks of 16 = 1,600 tokens. A has 100 of its 1,000 outputs left and holds 1,000
    # tokens (63 blocks): 592 free. B (prompt 100, 500 outputs) asks 600 tokens beside 0.7 x 100
    # reserved for A: 600 >= 592 - 70, so the new_token_ratio path keeps B waiting. Finishing
    # them in order instead (A first: 492 - 2 x 100 > 2; then B with A's 1,000 tokens freed:
    # 492 + 1,000 - 500 > 1) admits B. With 1,500 outputs B could not finish: 492 + 1,000 - 1,500.
    def admitted(ignore_eos: bool, outputs: int = 500) -> list[int]:
        kv = BlockManager(100, 16)
        sched = SGLangScheduler(kv, 64, 8192, 16384, ignore_eos=ignore_eos)
        a = Request(0, 0.0, 100, 1000)
        sched.add(a)
        sched.schedule()
        a.num_computed, a.num_output = 1000, 900
        assert kv.allocate(a, 0) and kv.free_blocks * 16 == 592
        sched.add(Request(1, 0.0, 100, outputs))
        return [n for r, n in sched.schedule().scheduled if r.id == 1]

    assert admitted(ignore_eos=False) == []
    assert admitted(ignore_eos=True) == [100]
    assert admitted(ignore_eos=True, outputs=1500) == []


def test_sglang_mixed_chunk_takes_the_decodes_out_of_the_prefill_budgets():
    # Three requests decode; P and Q (100-token prompts) wait. PrefillAdder subtracts the
    # running batch from max_prefill_tokens (and from the chunk size) with mixed chunks, and
    # stops before a prompt that needs all that is left (>=).
    def admitted(max_prefill_tokens: int, mixed: bool, prompt: int = 100) -> list[int]:
        sched = SGLangScheduler(BlockManager(1000, 16), 64, 240, max_prefill_tokens, enable_mixed_chunk=mixed)
        for i in range(3):
            sched.add(Request(i, 0.0, 16, 100))
        sched.schedule()
        for r in sched.running:
            r.num_computed, r.num_output = 16, 1
        for i in range(2):
            sched.add(Request(10 + i, 0.0, prompt, 10))
        return [n for r, n in sched.schedule().scheduled if r.id >= 10]

    assert admitted(202, mixed=False) == [100, 100]  # 102 left for Q
    assert admitted(202, mixed=True) == [100]  # 202 - 3 - 100 = 99 < 100: Q waits
    assert admitted(200, mixed=False) == [100]  # 100 left is not enough: >=
    # A prompt as long as the chunk size: 240 - 3 of it in this batch with mixed chunks.
    assert admitted(1000, mixed=True, prompt=240) == [237]
    assert admitted(1000, mixed=False, prompt=240) == [240]


def test_sglang_chunks_a_long_prompt_one_chunk_per_prefill_batch():
    step = LinearStepTime(0.010, 0.0)
    simulate(make_scenario(engine="sglang", max_num_batched_tokens=64), table([0.0], [150], [2]), step_time=step)
    assert [s.prefill_tokens for s in step.calls] == [64, 64, 22, 0]


def test_engine_version_must_be_a_release_number():
    from frontier.errors import SpecError

    with pytest.raises(SpecError, match="engine_version: 'abc' is not a release number"):
        make_scenario(engine="vllm", engine_version="abc")


def test_a_scheduler_planning_ahead_takes_a_request_in_one_iteration_later():
    # Async scheduling (vLLM 0.14+) and SGLang's overlap scheduler pick iteration n+1 while the
    # GPU runs n. B (at 15 ms) arrives while A prefills.
    # Not planning ahead: t=0 A prefills 100: 20 ms. t=20 A decodes + B prefills 50: 15.1 -> 35.1.
    # Planning ahead: B arrived during A's prefill (0-20), so step 20-30.1 was planned without it
    # (A decodes alone: 10.1 ms); B joins the next one: A decodes + B prefills: 15.1 -> 45.2.
    plain, ahead = LinearStepTime(0.010, 0.0001), LinearStepTime(0.010, 0.0001)
    ahead.schedules_ahead = True
    results = [
        simulate(
            make_scenario(engine="vllm"), table(ARRIVALS, PROMPTS, OUTPUTS), step_time=rule, fast_forward=False
        ).requests
        for rule in (plain, ahead)
    ]
    assert [(s.prefill_tokens, s.num_decode) for s in ahead.calls][:3] == [(100, 0), (0, 1), (50, 1)]
    assert results[0].loc[1, "first_token_s"] == pytest.approx(0.0351)
    assert results[1].loc[1, "first_token_s"] == pytest.approx(0.0452)
    # An idle engine takes a request at once: A's first token is the same.
    assert results[0].loc[0, "first_token_s"] == results[1].loc[0, "first_token_s"] == pytest.approx(0.020)


def test_host_time_per_sequence_caps_a_large_batch():
    # SGLang's output processing grows with the batch: at 512 sequences x 45 us + 1 ms = 24.04 ms
    # of host time a 10 ms GPU step waits for the host; at 8 sequences the GPU sets the pace.
    host = StepOverheads(cpu_overhead_ms=1.0, host_us_per_seq=45.0, host_overlapped=True, overlap_residual_ms=0.1)
    assert host.wall_ms(10.0, seqs=512) == pytest.approx(24.04 + 0.1)
    assert host.wall_ms(10.0, seqs=8) == pytest.approx(10.1)
    sc = make_scenario(engine="sglang")
    blocks, _ = block_costs_for(sc, sc.clusters[0])
    assert blocks.overheads.host_us_per_seq > 0


# SGLang's defaults by release, computed here from sglang/srt/server_args.py as each release ships
# it (GPU memory in MiB; H100 SXM 79.18 GiB, H200 139.8 GiB as torch reports them).
H100_MIB, H200_MIB = 79.18 * 1024, 139.8 * 1024


def sglang_defaults(version, gpu, tp, dp_attention=1):
    from frontier.engine import make_engine
    from frontier.spec.hardware import get_gpu

    d = make_engine("sglang", version, get_gpu(gpu), tp, dp_attention=dp_attention).defaults
    return d["gpu_memory_utilization"][0], d["max_num_batched_tokens"][0], d["cuda_graph_max_bs"][0]


def test_sglang_0_4_0_to_0_4_5_fraction_by_tp():
    # v0.4.5 __post_init__: 0.88 at tp 1, 0.81 at tp 8, on any GPU; chunks of 8192 (25,000 MiB
    # and up); cuda_graph_max_bs 160.
    assert sglang_defaults("0.4.5", "h100-sxm", 1) == (0.88, 8192, 160)
    assert sglang_defaults("0.4.5", "h100-sxm", 8) == (0.81, 8192, 160)
    assert sglang_defaults("0.4.0", "h200", 1) == (0.88, 8192, 160)


def test_sglang_0_4_8_to_0_5_2_reserve_by_gpu_class():
    # v0.5.1 __post_init__: reserve 9.5 + tp/2 GiB under 90 GiB, 12 + tp/2 under 160 GiB, 4 GiB
    # more with DP attention; CUDA graphs (cuda_graph_runner.py) to 160, 256 above 90 GiB.
    assert sglang_defaults("0.5.1", "h100-sxm", 1) == (round(1 - 10 / 79.18, 3), 8192, 160)  # 0.874
    assert sglang_defaults("0.5.1", "h100-sxm", 8) == (round(1 - 13.5 / 79.18, 3), 8192, 160)  # 0.830
    assert sglang_defaults("0.5.1", "h200", 1) == (round(1 - 12.5 / 139.8, 3), 8192, 256)  # 0.911
    assert sglang_defaults("0.5.2", "h200", 8) == (round(1 - 16 / 139.8, 3), 8192, 256)  # 0.886
    # tp 1 x 8 attention DP ranks is SGLang's --tp 8: 12 + 8/2 + 4 GiB.
    assert sglang_defaults("0.5.1", "h200", 1, dp_attention=8)[0] == round(1 - 20 / 139.8, 3)  # 0.857


def test_sglang_0_5_3_on_reserve_from_chunk_and_graph_sizes():
    # v0.5.6 _handle_gpu_memory_settings: chunks of 8192 and graphs to 256 (tp < 4) or 512 from 60
    # to 160 GiB; reserve 512 MiB + 1.5 x chunk + 2 x graph bs + tp/8 x 1024 MiB.
    assert sglang_defaults("0.5.6", "h100-sxm", 1) == (
        round(1 - (512 + 8192 * 1.5 + 256 * 2 + 128) / H100_MIB, 3),  # 13,440 MiB: 0.834
        8192,
        256,
    )
    assert sglang_defaults("0.5.6.post2", "h100-sxm", 8) == (
        round(1 - (512 + 12288 + 512 * 2 + 1024) / H100_MIB, 3),  # 14,848 MiB: 0.817
        8192,
        512,
    )
    assert sglang_defaults("0.5.9", "h200", 1) == (round(1 - 13440 / H200_MIB, 3), 8192, 256)  # 0.906
    assert sglang_defaults("", "h200", 8) == (round(1 - 14848 / H200_MIB, 3), 8192, 512)  # newest: 0.896
    # DP attention: 3 MiB per graph slot and rank, 4.5 above 300 slots: + 512 x 8 x 4.5 MiB.
    dp = sglang_defaults("0.5.8", "h200", 1, dp_attention=8)[0]
    assert dp == round(1 - (14848 + 512 * 8 * 4.5) / H200_MIB, 3)  # 33,280 MiB: 0.768
    # The user's cuda_graph_max_bs enters the reserve: 16 slots, 12,960 MiB -> 0.840.
    user = make_scenario(engine="sglang", engine_version="0.5.8.post1", cuda_graph_max_bs=16).clusters[0]
    assert user.gpu_memory_utilization == round(1 - (512 + 12288 + 16 * 2 + 128) / H100_MIB, 3)
    sources = {f: src for f, _, src in user.defaults_from}
    assert "server_args.py `_handle_gpu_memory_settings` @ v0.5.3-v0.5.9" in sources["gpu_memory_utilization"]


def test_sglang_cuda_graph_sizes_by_release():
    # Before 0.5.3 (cuda_graph_runner.py): 1, 2, 4, 8, then every 8 to 160 on an H100, every 16
    # beyond; from 0.5.3 (server_args.py _generate_cuda_graph_batch_sizes): 12 too, every 8 to 256.
    from frontier.engine import make_engine
    from frontier.spec.hardware import get_gpu

    old = make_engine("sglang", "0.5.1", get_gpu("h100-sxm"), 1).capture_sizes
    new = make_engine("sglang", "0.5.6", get_gpu("h100-sxm"), 1).capture_sizes
    assert old[:6] == (1, 2, 4, 8, 16, 24) and 168 not in old and {160, 176, 256} <= set(old)
    assert new[:6] == (1, 2, 4, 8, 12, 16) and {168, 256, 272, 512, 544} <= set(new) and 264 not in new
    # With a draft, "less padding for smaller batch sizes": every size to 8, every 2 to 32.
    old, new = (make_engine("sglang", v, get_gpu("h100-sxm"), 1, draft="mtp").capture_sizes for v in ("0.5.1", "0.5.6"))
    assert old[:12] == new[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16)
    assert old[20:24] == (40, 48, 56, 80) and {160, 176} <= set(old) and 168 not in old
    assert new[20:29] == (40, 44, 48, 52, 56, 60, 64, 72, 80) and {256, 272, 288} <= set(new) and 264 not in new


def test_sglang_default_fraction_that_leaves_nothing_says_where_it_comes_from():
    # tp 1 x 32 attention DP ranks (SGLang's --tp 32) on an H100, 0.5.9: 512 + 12,288 + 512 x 2
    # + 32/8 x 1024 + 512 x 32 x 4.5 = 91,648 MiB reserved, more than the GPU: -0.130.
    from frontier.errors import SpecError

    d = {
        "model": "deepseek-v3",
        "gpu": "h100-sxm",
        "deployment": {"engine": "sglang", "engine_version": "0.5.9", "tp": 1, "dp_attention": 32, "ep": 32},
        "workload": {"num_requests": 1, "input_len": 8, "output_len": 2, "arrival": {"process": "poisson", "rate": 1}},
    }
    assert round(1 - 91648 / H100_MIB, 3) == -0.13
    with pytest.raises(SpecError, match=r"got -0.13 \(the engine's default, .*_handle_gpu_memory_settings"):
        scenario_from_dict(d)
    d["deployment"]["gpu_memory_utilization"] = 0.85  # set: no complaint
    assert scenario_from_dict(d).clusters[0].gpu_memory_utilization == 0.85


def test_sglang_splits_its_server_limits_over_attention_dp_ranks():
    """SGLang's --max-running-requests and --chunked-prefill-size are the server's: each of its
    attention-DP ranks gets its share (tp_worker.py, `_handle_data_parallelism`); unset, each
    rank's running requests are bounded by its own KV pool; vLLM's DP ranks each have the whole."""
    from frontier.sim.run import make_scheduler

    def limits(engine, ranks=4, **deployment):
        version = "0.5.6" if engine == "sglang" else ""
        sc = make_scenario("deepseek-v3", engine=engine, engine_version=version, tp=1, dp_attention=ranks, **deployment)
        sched = make_scheduler(sc.clusters[0], BlockManager(100, 16), ranks)
        return sched.max_num_seqs, sched.max_num_batched_tokens

    assert limits("sglang", max_num_seqs=64) == (64, 8192)  # 16 and 2,048 a rank
    assert limits("sglang") == (4096 * 4, 8192)
    assert limits("sglang", ranks=1, max_num_seqs=64) == (64, 8192)
    assert limits("vllm", max_num_seqs=64, max_num_batched_tokens=2048) == (256, 8192)
    # With attention-DP ranks SGLang reserves less for the running requests' outputs:
    # schedule_conservativeness x 0.3, so new_token_ratio 0.21 decaying to 0.0294.
    c = make_scenario("deepseek-v3", engine="sglang", engine_version="0.5.6", tp=1, dp_attention=4).clusters[0]
    sched = make_scheduler(c, BlockManager(100, 16), 4)
    sched.advance(600)
    assert (sched.init_ratio, sched.new_token_ratio) == (pytest.approx(0.21), pytest.approx(0.21 * 0.14))


def test_vllm_keeps_the_small_budget_on_an_a100():
    """vllm/engine/arg_utils.py `get_batch_defaults` (0.9+): >= 70 GiB and not an A100."""

    def budget(gpu, version=""):
        d = {
            "model": "llama-3.1-8b",
            "gpu": gpu,
            "deployment": {"engine": "vllm", "engine_version": version},
            "workload": {"num_requests": 1, "input_len": 8, "output_len": 2, "arrival": {"rate": 1.0}},
        }
        c = scenario_from_dict(d).clusters[0]
        return c.max_num_batched_tokens, c.max_num_seqs

    assert budget("h100-sxm") == (8192, 1024)
    assert budget("a100-80gb") == (2048, 256)
    assert budget("a100-80gb", "0.8.5") == (8192, 1024)  # before PR #17885


def test_vllm_captures_graphs_up_to_twice_its_sequences():
    """vLLM (0.10+) captures up to min(2 x max_num_seqs, 512, max_num_batched_tokens); 0.9 up to 512."""
    from frontier.ops.graph import BatchStats

    cases = [({}, 512), ({"max_num_seqs": 16}, 32), ({"max_num_seqs": 200, "max_num_batched_tokens": 256}, 256)]
    cases += [({"max_num_seqs": 16, "engine_version": "0.9.2"}, 512), ({"max_num_seqs": 5}, 10)]
    for deployment, top in cases:
        sc = make_scenario(engine="vllm", **deployment)
        c = sc.clusters[0]
        assert c.cuda_graph_max_bs == top
        rule = "[512]" if deployment.get("engine_version") == "0.9.2" else "min(2 x max_num_seqs, 512"
        assert rule in {f: src for f, _, src in c.defaults_from}["cuda_graph_max_bs"]
    # 16 sequences: a 32-token batch replays a graph, a 40-token one runs eager; with 5 the
    # largest graph is 8 (1, 2, 4, 8: vLLM's list below 10).
    sixteen = make_scenario(engine="vllm", max_num_seqs=16)
    blocks = block_costs_for(sixteen, sixteen.clusters[0])[0]
    mixed = [BatchStats(num_prefill=1, prefill_tokens=t, num_decode=0, num_sampled=1) for t in (32, 40)]
    assert [blocks.uses_graph(m) for m in mixed] == [True, False]
    five = make_scenario(engine="vllm", max_num_seqs=5)
    assert block_costs_for(five, five.clusters[0])[0].overheads.capture_sizes[-1] == 8
    # From 0.13 a drafting decode of 1 + 3 query tokens a sequence: 16 x 4 x 2 = 128 (0.12: 32).
    draft = {"method": "mtp", "num_speculative_tokens": 3}
    assert make_scenario(engine="vllm", max_num_seqs=16, speculative=draft).clusters[0].cuda_graph_max_bs == 128
    old = make_scenario(engine="vllm", engine_version="0.12.0", max_num_seqs=16, speculative=draft)
    assert old.clusters[0].cuda_graph_max_bs == 32


def test_explicit_cuda_graph_sizes_are_the_batches_replayed_from_graphs():
    # aiconfigurator's generator passes --cuda-graph-bs 1..bs: a batch of 9 replays the 9-graph,
    # where SGLang's own list up to 9 (1, 2, 4, 8) leaves it eager; a batch of 5 pads to the next
    # size captured.
    from frontier.ops.graph import BatchStats

    def costs(**graphs):
        s = make_scenario(engine="sglang", engine_version="0.5.6", **graphs)
        return s.clusters[0], block_costs_for(s, s.clusters[0])[0]

    spec, listed = costs(cuda_graph_sizes=[9, 1, 2, 9])
    assert spec.cuda_graph_sizes == (1, 2, 9) and spec.cuda_graph_max_bs == 9
    _, capped = costs(cuda_graph_max_bs=9)

    def decode(b):
        return BatchStats(num_decode=b, decode_sum_kv=100 * b, decode_max_kv=100, num_sampled=b)

    assert listed.uses_graph(decode(9)) and not capped.uses_graph(decode(9))
    assert listed.padded_tokens(decode(5)) == 9 and capped.padded_tokens(decode(5)) == 8
    # The sizes' largest is the graph reserve SGLang's memory fraction counts (9 slots).
    assert spec.gpu_memory_utilization == round(1 - (512 + 12288 + 9 * 2 + 128) / H100_MIB, 3)


@pytest.mark.parametrize(
    "graphs, says",
    [
        ({"cuda_graph_sizes": "8"}, "expected a list of batch sizes"),
        ({"cuda_graph_sizes": [0, 4]}, "must be >= 1"),
        ({"cuda_graph_sizes": [4, 32], "cuda_graph_max_bs": 16}, "32 is above cuda_graph_max_bs"),
    ],
)
def test_bad_cuda_graph_sizes_are_refused_in_one_line(graphs, says):
    from frontier.errors import SpecError

    with pytest.raises(SpecError, match=says):
        make_scenario(engine="sglang", **graphs)


def test_vllm_memory_fraction_by_release():
    # vllm/config/cache.py: gpu_memory_utilization 0.9 through the releases the development set
    # measured (0.12-0.18), 0.92 from 0.22 on, and so for the newest.
    from frontier.engine import make_engine
    from frontier.spec.hardware import get_gpu

    gpu = get_gpu("h100-sxm")

    def util(version):
        return make_engine("vllm", version, gpu, 1).defaults["gpu_memory_utilization"][0]

    assert (util("0.12.0"), util("0.19.0"), util("0.22.0"), util("")) == (0.9, 0.9, 0.92, 0.92)


def test_vllm_0_12_runs_fp8_experts_on_deep_gemm_over_every_experts_padded_rows():
    """vLLM 0.12's DeepGEMM MoE computes M x top-k + local experts x 127 rows, rounded up to 128,
    whatever the batch: Qwen3-235B-A22B-FP8 (128 experts, top-8, hidden 4096, intermediate 1536)."""
    from frontier.ops.graph import Parallel, ffn_block
    from frontier.ops.operators import Elementwise, Gemm
    from frontier.spec.model import load_model

    model = load_model("qwen3-235b-a22b").with_quantization("fp8")

    def experts(par, tokens):
        ops = [op for op, _ in ffn_block(model, par, tokens, "fp8", tokens)]
        return ops[2:6]  # after the router GEMM and top-k gating

    def padded(rows, width):
        silu, quant = Elementwise("silu_mul", rows, width), Elementwise("quant_fp8", rows, width)
        return [Gemm(rows, 4096, 2 * width, "fp8"), silu, quant, Gemm(rows, width, 4096, "fp8")]

    tp2 = Parallel(tp=2, padded_deep_gemm=True)
    assert experts(tp2, 20) == padded(16512, 768)  # 160 + 16,256 = 16,416 -> 16,512 rows
    assert experts(tp2, 200) == padded(17920, 768)  # 1,600 + 16,256 = 17,856 -> 17,920
    # Expert parallel over an expert map: 16 local experts at the full width, every token.
    assert experts(Parallel(tp=8, ep=8, padded_deep_gemm=True), 20) == padded(
        2304, 1536
    )  # 160 + 2,032 = 2,192 -> 2,304
    assert isinstance(experts(Parallel(tp=2), 20)[0], GroupedGemm)  # other releases: the fused MoE
    bf16 = load_model("qwen3-235b-a22b")
    assert isinstance(ffn_block(bf16, tp2, 20, "bf16", 20)[2][0], GroupedGemm)  # bf16 experts: never


def test_the_padded_deep_gemm_moe_by_release_layout_precision_and_gpu():
    """vLLM 0.12 only (0.11 used DeepGEMM on Hopper only from 128 rows; 0.13 skips the padding),
    FP8 experts, DeepGEMM's GPUs (SM90, SM100), MoE tensor parallelism under 8 (vLLM's default
    turns DeepGEMM off there; with expert parallelism the MoE's TP is 1)."""

    def padded(version="0.12.0", tp=2, ep=1, gpu="h200", quantization="fp8"):
        sc = make_scenario(
            "qwen3-235b-a22b", engine="vllm", engine_version=version, gpu=gpu, tp=tp, ep=ep, quantization=quantization
        )
        blocks, _ = block_costs_for(sc, sc.clusters[0])
        printed = sc.describe_deployment()["clusters"][0]["engine_defaults"]["padded_deep_gemm_moe"]["value"]
        assert printed == blocks.par.padded_deep_gemm
        return printed

    assert padded() and padded(tp=4) and padded(tp=8, ep=8) and padded(gpu="h100-sxm", tp=4)
    assert not padded(tp=8) and not padded(version="0.11.2") and not padded(version="0.13.0")
    assert not padded(version="") and not padded(quantization="none") and not padded(gpu="l40s", tp=8, ep=8)


def test_vllm_runs_experts_on_flashinfer_cutlass_by_release_precision_and_layout():
    """FlashInfer's CUTLASS MoE on Hopper (frontier.engine `vllm_flashinfer_cutlass_moe`, read in
    vLLM's fused_moe/oracle): block-FP8 experts in 0.15-0.16, from 0.17 only expert-parallel ones
    (Triton for tensor-parallel ones); bf16 experts in 0.20-0.22 without attention DP; never on
    SGLang or another GPU. The summary prints what the kernels are priced as."""

    def cutlass(model="minimax-m2.5", engine="vllm", version="0.16.0", gpu="h200", tp=4, **more):
        sc = make_scenario(model, engine=engine, engine_version=version, gpu=gpu, tp=tp, **more)
        _, sources = block_costs_for(sc, sc.clusters[0])
        printed = sc.describe_deployment()["clusters"][0]["engine_defaults"]["flashinfer_cutlass_moe"]["value"]
        assert printed == ("FlashInfer's CUTLASS MoE" in sources["grouped_gemm"])
        return printed

    assert cutlass() and cutlass(version="0.15.0") and cutlass(gpu="h100-sxm", version="0.18.0", ep=4)
    assert cutlass(version="", tp=8, ep=8)  # the newest: expert parallel
    assert not cutlass(version="0.18.0") and not cutlass(version="") and not cutlass(version="0.14.0")
    assert not cutlass(engine="sglang", version="0.5.9") and not cutlass(gpu="b200")
    assert cutlass("qwen3-30b-a3b", version="0.21.0", tp=2)  # bf16 experts
    assert not cutlass("qwen3-30b-a3b", version="0.21.0", tp=1, dp_attention=2)
    assert not cutlass("qwen3-30b-a3b", version="0.23.0", tp=2) and not cutlass("qwen3-30b-a3b", version="0.19.0", tp=2)
    # vLLM's --moe-backend chooses outright.
    assert not cutlass(moe_backend="triton") and cutlass(version="0.18.0", moe_backend="flashinfer_cutlass")


@pytest.mark.parametrize(
    "deployment, says",
    [
        ({"engine": "sglang", "moe_backend": "triton"}, "is vLLM's --moe-backend"),
        ({"model": "llama-3.1-8b", "moe_backend": "triton"}, "has no experts"),
        ({"model": "gpt-oss-120b", "moe_backend": "flashinfer_cutlass"}, "not mxfp4 experts on h200"),
        ({"gpu": "b200", "moe_backend": "flashinfer_cutlass"}, "not fp8_block experts on b200"),
    ],
)
def test_a_moe_backend_frontier_cannot_price_is_refused_in_one_line(deployment, says):
    from frontier.errors import SpecError

    deployment = {"model": "minimax-m2.5", "engine": "vllm", "gpu": "h200", "tp": 4, **deployment}
    with pytest.raises(SpecError, match=says) as err:
        make_scenario(deployment.pop("model"), **deployment)
    assert "\n" not in str(err.value) and "moe_backend" in str(err.value)


def test_release_numbers_leave_out_a_local_build_label():
    from frontier.engine import version_tuple

    assert version_tuple("0.5.6.post2") == (0, 5, 6, 2)
    assert version_tuple("v0.12.0") == (0, 12, 0)
    assert version_tuple("0.12.0+cu128") == (0, 12, 0)  # not release 0.12.128
