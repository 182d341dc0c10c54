"""PD and AF disaggregation, expert parallelism and overlap: hand-computed cases and laws."""

import numpy as np
import pytest

from frontier.ops.experts import ExpertRouting, busiest_rank
from frontier.ops.graph import BatchStats, Parallel, ffn_block
from frontier.ops.operators import GroupedGemm
from frontier.predict import load_predictor
from frontier.predict.step import AFPipeline, BlockCosts, Sequential, TwoBatchOverlap, af_step_formula_ms
from frontier.sim.recorder import Recorder
from frontier.sim.run import build_clusters, simulate
from frontier.spec.model import load_model
from frontier.spec.scenario import load_scenario, scenario_from_dict

from sim_helpers import LinearStepTime, table

TINY = {"num_requests": 1, "input_len": 8, "output_len": 2, "arrival": {"process": "poisson", "rate": 1.0}}


def pd_scenario(decode_blocks=0, kv_transfer="whole", **link):
    return scenario_from_dict(
        {
            "model": "llama-3.1-8b",
            "gpu": "h100-sxm",
            "workload": TINY,
            "deployment": {
                "clusters": [
                    {"name": "p", "role": "prefill"},
                    {"name": "d", "role": "decode", "num_gpu_blocks_override": decode_blocks},
                ],
                "kv_transfer": kv_transfer,
                "links": {"kv": link or {"bandwidth_gbps": 13.1072, "latency_us": 1000}},
            },
        }
    )


def test_pd_hand_computed_prefill_transfer_decode():
    res = simulate(pd_scenario(), table([0.0], [100], [3]), step_time=LinearStepTime(0.010, 0.0001))
    # Prefill: 10 + 100 x 0.1 = 20 ms, first token at 20 ms. KV: 100 tokens x 131072 B = 13.1 MB
    # over 13.1072 GB/s = 1 ms, plus 1 ms latency -> decode from 22 ms. Two decode steps of
    # 10 + 0.1 = 10.1 ms -> tokens at 32.1 and 42.2 ms.
    r = res.requests.iloc[0]
    assert r.first_token_s == pytest.approx(0.022)  # delivered by the decode side once the KV is there
    assert r.finish_s == pytest.approx(0.0422)
    assert r.path == "p/0>d/0"
    clusters = {c["role"]: c for c in res.summary["frontier"]["clusters"]}
    assert clusters["prefill"]["kv_transfer_ms"] == clusters["decode"]["kv_exposed_ms"] == pytest.approx(2.0)
    assert clusters["prefill"]["input_tokens_per_s"] == pytest.approx(100 / 0.0422)
    assert clusters["decode"]["output_tokens_per_s"] == pytest.approx(2 / 0.0422)
    # The transfer is in the TTFT, not in the gap to the second token: 32.1 - 22.
    assert res.summary["mean_itl_ms"] == pytest.approx(10.1)
    assert res.summary["mean_ttft_ms"] == pytest.approx(22.0)
    assert any(t[3] == "kv 0" for t in res.recorder.transfers)


def test_an_sglang_decode_server_cuts_the_output_to_its_own_pool():
    """SGLang's decode server applies its own max_req_len: 10 blocks of 16 tokens give 159, so a
    100-token prompt keeps 159 - 100 - 1 = 58 of its 80 output tokens; the prefill server's
    larger pool cut nothing, and the prefill side's first token is one of the 58."""
    sc = scenario_from_dict(
        {
            "model": "llama-3.1-8b",
            "gpu": "h100-sxm",
            "workload": TINY,
            "deployment": {
                "clusters": [
                    {"name": "p", "role": "prefill", "engine": "sglang"},
                    {"name": "d", "role": "decode", "engine": "sglang", "num_gpu_blocks_override": 10},
                ],
            },
        }
    )
    res = simulate(sc, table([0.0], [100], [80]), step_time=LinearStepTime(0.010, 0.0001))
    r = res.requests.iloc[0]
    assert (r.status, r.output_tokens, r.path) == ("finished", 58, "p/0>d/0")
    assert res.summary["frontier"]["outputs_clipped"] == 1


def test_layerwise_transfer_hides_behind_the_prefill():
    res = simulate(
        pd_scenario(kv_transfer="layerwise"), table([0.0], [100], [3]), step_time=LinearStepTime(0.010, 0.0001)
    )
    # 2 ms of transfer during a 20 ms prefill: only the last of 32 layers remains, 2/32 ms.
    assert res.requests.finish_s[0] == pytest.approx(0.020 + 0.002 / 32 + 0.0202)


def test_backpressure_when_decode_kv_is_full():
    n = 12
    work = table(np.linspace(0, 0.05, n), [400] * n, [300] * n)
    free = simulate(pd_scenario(decode_blocks=10_000), work, step_time=LinearStepTime(0.01, 1e-4))
    # Decode holds two requests at a time (2 x 44 blocks of 16 tokens): prefill must wait.
    tight = simulate(pd_scenario(decode_blocks=90), work, step_time=LinearStepTime(0.01, 1e-4))
    assert (tight.requests.status == "finished").all() and (free.requests.status == "finished").all()
    assert tight.summary["total_output_tokens"] == free.summary["total_output_tokens"] == n * 300
    prefill = lambda r: r.summary["frontier"]["clusters"][0]
    assert prefill(tight)["input_tokens_per_s"] < 0.5 * prefill(free)["input_tokens_per_s"]
    inst = {i.name: i for i in tight.instances}
    assert inst["d/0"].kv.peak_used <= 90
    # The prefill instance kept the KV of waiting requests: its peak covers more than one prompt.
    assert inst["p/0"].kv.peak_used > 2 * 26
    assert inst["p/0"].kv.free_blocks == inst["p/0"].kv.num_blocks


def test_skewed_routing_costs_what_the_grouped_gemm_predictor_says():
    model = load_model("qwen3-30b-a3b")
    predictor = load_predictor("h100-sxm")
    costs, gemms, ffn = [], [], []
    for skew in (0.0, 1.2):
        par = Parallel(tp=1, ep=2, dp_attention=2, routing=ExpertRouting(skew=skew))
        cost = Sequential(BlockCosts(model, par, predictor))
        # A prefill batch of 2 x 4096 tokens: compute-bound, so the busiest rank's rows count.
        stats = BatchStats(
            num_prefill=8,
            prefill_tokens=8192,
            prefill_sum_q2=8 * 1024**2,
            prefill_sum_kv=8192,
            prefill_max_q=1024,
            prefill_max_kv=1024,
            num_sampled=8,
        )
        costs.append(cost.step(stats).gpu_ms)
        ops = ffn_block(model, par, 4096, "bf16", 8192)
        gemms.append(sum(c * predictor.op_ms(op) for op, c in ops if isinstance(op, GroupedGemm)))
        ffn.append(sum(c * (predictor.op_ms(op) + 1e-3) for op, c in ops))  # 1 us launch gap each
    load = busiest_rank(128, 8, 2, ExpertRouting(skew=1.2))
    assert load.rank_share > 0.5  # the hot experts make one rank the busiest
    # Memory-bound decode reads fewer experts when routing is skewed; compute-bound prefill
    # waits for the busiest rank.
    assert gemms[1] > gemms[0]
    # The grouped GEMMs make the difference (the rest is the busiest rank's activation op) and
    # the step grows by it (token counts above 256 are interpolated on a 2 % grid).
    assert gemms[1] - gemms[0] > 0.8 * (ffn[1] - ffn[0])
    assert costs[1] - costs[0] == pytest.approx(ffn[1] - ffn[0], rel=0.03)


def test_af_pipeline_formula_by_hand():
    # a = 1, t = 0.5, f = 2 ms, 10 layers.
    assert af_step_formula_ms(1, 0.5, 2, 1, 10) == pytest.approx(40)  # one micro-batch: the round trip
    assert af_step_formula_ms(1, 0.5, 2, 2, 10) == pytest.approx(40)  # two: FFN busy 4 = round trip 4
    assert af_step_formula_ms(1, 0.5, 2, 3, 10) == pytest.approx(60)  # three: FFN-bound, 3 x 2


def test_af_step_cost_follows_the_formula():
    sc = load_scenario("simulate/qwen3-235b-afd-h100.yaml")
    inst = build_clusters(sc, Recorder())[0].instances[0]
    cost = inst.step_model.rule
    assert isinstance(cost, AFPipeline) and (cost.M, cost.N, cost.n) == (4, 2, 3)
    stats = BatchStats(num_decode=512, decode_sum_kv=512 * 3000, decode_max_kv=6000, num_sampled=512)
    a, t, f = cost.layer_times_ms(stats)
    step = cost.step(stats)
    head = cost.attention.head_ms(128, 128, False)
    wall = cost.attention.overheads.wall_ms  # host time: the engine's rule (frontier.engine)
    assert step.total_s * 1e3 == pytest.approx(wall(af_step_formula_ms(a, t, f, 3, 94) + head))
    # More micro-batches cannot make a layer faster than its busiest stage.
    assert step.total_s * 1e3 >= 94 * 3 * max(a, t, f)


def test_two_batch_overlap_hides_all_to_all():
    model = load_model("deepseek-v3")
    predictor = load_predictor("h100-sxm")
    par = Parallel(tp=1, ep=32, dp_attention=32, ep_backend="deepep-normal")
    # Prefill of 4096 tokens per rank: compute and all-to-all are both large, overlap pays.
    # (With a small decode batch each half re-reads the weights, and overlap does not pay.)
    stats = BatchStats(
        num_prefill=64,
        prefill_tokens=32 * 4096,
        prefill_sum_q2=64 * 2048**2,
        prefill_sum_kv=32 * 4096,
        prefill_max_q=2048,
        prefill_max_kv=2048,
        num_sampled=64,
    )
    blocks = BlockCosts(model, par, predictor, dtype="fp8")
    plain = Sequential(blocks).step(stats)
    tbo = TwoBatchOverlap(blocks).step(stats)
    assert tbo.total_s < plain.total_s
    assert tbo.bubble_ms < plain.bubble_ms
    assert tbo.comm_ms > 0


def test_a_1024_gpu_deployment_simulates_quickly():
    sc = scenario_from_dict(
        {
            "model": "deepseek-v3",
            "gpu": "h100-sxm",
            "deployment": {
                "clusters": [
                    {
                        "name": "prefill",
                        "role": "prefill",
                        "dp": 8,
                        "dp_attention": 32,
                        "ep": 32,
                        "two_batch_overlap": True,
                    },
                    {"name": "decode", "role": "decode", "dp": 6, "dp_attention": 128, "ep": 128},
                ]
            },
            "workload": {
                "num_requests": 3000,
                "arrival": {"process": "poisson", "rate": 200},
                "input_len": 2000,
                "output_len": 300,
            },
        }
    )
    assert sc.total_gpus == 1024
    res = simulate(
        sc,
        __import__("frontier.workload", fromlist=["x"]).build_requests(sc.workload, np.random.default_rng(0)),
        timeline=False,
    )
    assert res.summary["completed"] == 3000
    assert res.summary["frontier"]["simulated_gpus"] == 1024
    assert res.summary["frontier"]["wall_time_s"] < 60


def test_decode_reserves_the_prompt_and_one_token_per_hand_off():
    from frontier.predict.step import StepModel
    from frontier.sim.instance import Instance
    from frontier.sim.kv_cache import BlockManager
    from frontier.sim.request import Request
    from frontier.sim.scheduler import Scheduler

    kv = BlockManager(num_blocks=90, block_size=16)
    decode = Instance("d/0", "decode", Scheduler(kv, 256, 8192), StepModel(LinearStepTime()), 1, 4096, Recorder(False))
    reqs = []
    for i in range(4):  # prefilled elsewhere: 400 prompt tokens computed, the first token sampled
        r = Request(i, 0.0, 400, 300)
        r.num_computed, r.num_output = 400, 1
        assert decode.accept_prefilled(r)
        reqs.append(r)
    started = decode.pull_kv()
    # 400 + 1 tokens -> 26 blocks of 16 each: three fit in 90 (78), the fourth (104) waits.
    assert [r.id for r in started] == [0, 1, 2]
    assert [r.num_blocks for r in started] == [26, 26, 26]
    assert kv.free_blocks == 90 - 78 and decode.receiving == 3 and len(decode.pending_kv) == 1

    # SGLang keeps 512 tokens of room per admitted request: the second hand-off needs
    # 512 + 401 tokens (58 blocks) of the 64 left, the third 1024 + 401 (90) of the 38 left.
    kv = BlockManager(num_blocks=90, block_size=16)
    decode = Instance("d/0", "decode", Scheduler(kv, 256, 8192), StepModel(LinearStepTime()), 1, 4096, Recorder(False))
    decode.decode_reserved_tokens = 512
    for r in reqs:
        r.num_blocks = 0
        decode.accept_prefilled(r)
    assert [r.id for r in decode.pull_kv()] == [0, 1] and kv.free_blocks == 90 - 52


def test_two_batch_overlap_keeps_dense_layers_exposed_and_pays_deepep_sms():
    model = load_model("deepseek-v3")
    predictor = load_predictor("h100-sxm")
    stats = BatchStats(
        num_prefill=32,
        prefill_tokens=32 * 2048,
        prefill_sum_q2=32 * 2048**2,
        prefill_sum_kv=32 * 2048,
        prefill_max_q=2048,
        prefill_max_kv=2048,
        num_sampled=32,
    )
    for backend, sms in (("deepep-normal", 24), ("deepep-low-latency", 0)):
        par = Parallel(tp=1, ep=32, dp_attention=32, ep_backend=backend)
        blocks = BlockCosts(model, par, predictor, dtype="fp8")
        rule = TwoBatchOverlap(blocks)
        assert rule.sm_slowdown == pytest.approx(132 / (132 - sms))
        # By hand from the blocks of one rank's half batch (1024 tokens of one 2048-token prompt):
        half = BatchStats(1, 1024, 1024**2, 0, 1024, 2048, 2048, num_sampled=1)
        compute, comm = blocks.layers_ms(1024, False)
        attention = blocks.attention_block_ms(1024, False) + blocks.attention_ms(half, False)
        compute += blocks.attention_ms(half, False)
        dense = attention * 3 / 61 + blocks.dense_mlp_ms(1024, False)  # 3 dense of 61 layers
        moe = (compute - dense) * rule.sm_slowdown
        gpu = blocks.head_ms(2048, 1, False) + 2 * dense + 2 * max(moe, comm) + min(moe, comm) / 58
        step = rule.step(stats)
        assert step.gpu_ms == pytest.approx(gpu, rel=1e-9)
        assert step.comm_ms == pytest.approx(2 * comm)


def one_side(role):
    return scenario_from_dict(
        {
            "model": "llama-3.1-8b",
            "gpu": "h100-sxm",
            "workload": TINY,
            "deployment": {"clusters": [{"name": role[0], "role": role}]},
        }
    )


def test_prefill_only_ends_each_request_at_its_first_token():
    sc = one_side("prefill")
    assert sc.topology == "prefill-only"
    res = simulate(sc, table([0.0, 0.0], [100, 100], [5, 5]), step_time=LinearStepTime(0.010, 0.0001))
    # The first prompt starts alone on arrival (10 + 100 x 0.1 = 20 ms), the second after it;
    # each request ends with its first token.
    assert list(res.requests.finish_s) == pytest.approx([0.020, 0.040])
    assert list(res.requests.output_tokens) == [1, 1]
    inst = res.instances[0]
    assert inst.kv.free_blocks == inst.kv.num_blocks
    assert res.summary["frontier"]["clusters"][0]["input_tokens_per_s"] == pytest.approx(200 / 0.040)


def test_decode_only_requests_arrive_with_their_kv():
    sc = one_side("decode")
    assert sc.topology == "decode-only"
    res = simulate(sc, table([0.0, 0.0], [100, 100], [3, 3]), step_time=LinearStepTime(0.010, 0.0001))
    # First token counted at arrival. The first request decodes alone (10.1 ms), the second
    # joins between batches: one step of both (10.2 ms) ends the first, one alone the second.
    r = res.requests
    assert list(r.ttft_s) == [0.0, 0.0]
    assert list(r.finish_s) == pytest.approx([0.0203, 0.0304])
    assert res.instances[0].output_tokens == 4
    assert res.instances[0].prefill_tokens == 0


def test_steady_rate_leaves_out_ramp_up_and_drain():
    from frontier.sim.run import steady_rate

    class Log:  # 100 output tokens per second from 1 s to 11 s, a slow start and a slow end
        token_log = [(1.0, 0, 10)] + [(1.0 + k, 0, 10 + 100 * k) for k in range(1, 11)] + [(21.0, 0, 1020)]

    # 10 % of 1020 = 102 tokens at 1.92 s, 90 % = 918 at 10.08 s: 816 tokens in 8.16 s.
    assert steady_rate([Log()], 2) == pytest.approx(100.0)
    assert steady_rate([Log()], 1) is None


def test_kv_transfers_share_the_prefill_link():
    # 100 tokens x 131072 B = 13.1 MB over 0.65536 GB/s: 20 ms, plus 1 ms latency.
    sc = pd_scenario(bandwidth_gbps=0.65536, latency_us=1000)
    res = simulate(sc, table([0.0, 0.0], [100, 100], [3, 3]), step_time=LinearStepTime(0.010, 0.0001))
    # Prefills end at 20 and 40 ms. The first KV crosses 20 -> 41 ms; the second waits for the
    # link: 41 -> 62 ms, not 40 -> 61. Decode: the first from 41 (tokens at 51.1, 61.2), the
    # second from 62 (72.1, 82.2).
    assert list(res.requests.finish_s) == pytest.approx([0.0612, 0.0822])
    clusters = {c["role"]: c for c in res.summary["frontier"]["clusters"]}
    assert clusters["prefill"]["kv_transfer_ms"] == pytest.approx(21.0)  # link time each
    assert clusters["decode"]["kv_exposed_ms"] == pytest.approx((21.0 + 22.0) / 2)  # waited for


def test_layerwise_transfer_overlaps_only_its_own_prefill():
    # 21 ms of transfer each. The first KV leaves with its prefill (0 -> 20 ms): 0 -> 21, 1 ms
    # exposed. The second prompt queued 20 ms behind the first; its KV may overlap its own
    # prefill (20 -> 40 ms) only, from 21 ms when the link frees: 21 -> 42, 2 ms exposed (the
    # decode side is idle again by then: the first request's one decode step ended at 31.1).
    sc = pd_scenario(kv_transfer="layerwise", bandwidth_gbps=0.65536, latency_us=1000)
    res = simulate(sc, table([0.0, 0.0], [100, 100], [2, 2]), step_time=LinearStepTime(0.010, 0.0001))
    clusters = {c["role"]: c for c in res.summary["frontier"]["clusters"]}
    assert clusters["decode"]["kv_exposed_ms"] == pytest.approx((1.0 + 2.0) / 2)
    assert list(res.requests.finish_s) == pytest.approx([0.0311, 0.0521])


def test_af_ffn_gpus_each_dispatch_their_share():
    from frontier.ops.operators import EPExchange
    from frontier.predict.blocks import launched_ms

    sc = load_scenario("simulate/qwen3-235b-afd-h100.yaml")
    ffn = build_clusters(sc, Recorder())[0].instances[0].step_model.rule.ffn
    model, par = ffn.model, ffn.par
    assert par.ep == 8
    # 4096 tokens reach one FFN instance of 8 GPUs: each holds and dispatches 512 of them.
    ops = ffn_block(model, par, 512, ffn.dtype, 4096)
    # As if each GPU dispatched them all (tokens == group would mean every GPU already holds
    # them all, which dispatches nothing: frontier.ops.graph.replicated_tokens_ep).
    whole = ffn_block(model, par, 4096, ffn.dtype, 8 * 4096)

    def dispatch(ops):
        return next(op for op, _ in ops if isinstance(op, EPExchange) and op.phase == "dispatch")

    assert dispatch(ops).nvlink_bytes == pytest.approx(dispatch(whole).nvlink_bytes / 8, abs=1)

    def eager_ms(ops):  # the block launched outside CUDA graphs: compute and exchanges
        return sum(launched_ms(ops, [ffn.predictor.op_ms(op) for op, _ in ops], ffn.overheads, graph=False))

    assert ffn.ffn_block_ms(4096) == pytest.approx(eager_ms(ops))
    assert ffn.ffn_block_ms(4096) < eager_ms(whole)


def test_ep_backend_is_a_deployment_default_a_cluster_may_override():
    sc = scenario_from_dict(
        {
            "model": "deepseek-v3",
            "gpu": "h100-sxm",
            "deployment": {
                "ep_backend": "deepep-low-latency",
                "clusters": [
                    {"name": "p", "role": "prefill", "dp_attention": 32, "ep": 32, "ep_backend": "deepep-normal"},
                    {"name": "d", "role": "decode", "dp_attention": 32, "ep": 32},
                ],
            },
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )
    assert [c.ep_backend for c in sc.clusters] == ["deepep-normal", "deepep-low-latency"]
