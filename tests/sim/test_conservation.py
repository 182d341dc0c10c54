"""Conservation laws under random workloads, preemption under tight KV, fast-forward exactness."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from frontier.sim.kv_cache import BlockManager
from frontier.sim.request import Request
from frontier.sim.run import simulate
from frontier.workload import WorkloadSpec, build_requests

from sim_helpers import LinearStepTime, make_scenario, table


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    return np.cumsum(gaps), prompts, outputs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workloads(),
    st.integers(24, 80),
    st.sampled_from([16, 64, 512]),
    st.sampled_from([2, 4, 64]),
    st.booleans(),
    st.sampled_from([1, 2]),
)
def test_every_request_finishes_once_with_the_tokens_it_asked(w, blocks, budget, seqs, chunked, pp):
    arrivals, prompts, outputs = w
    if not chunked:
        budget = max(budget, max(prompts) + max(outputs))
    seqs = min(seqs, budget)  # vLLM refuses a token budget below max_num_seqs
    sc = make_scenario(
        num_gpu_blocks_override=blocks,
        max_num_batched_tokens=budget,
        max_num_seqs=seqs,
        enable_chunked_prefill=chunked,
        pp=pp,
        max_model_len=0 if chunked else budget,
    )
    res = simulate(sc, table(arrivals, prompts, outputs), step_time=LinearStepTime(0.01, 1e-4, 1e-6))
    df = res.requests
    cap = blocks * 16
    servable = np.array(prompts) + np.array(outputs) <= cap
    # A request that can never fit the KV cache is failed and reported, never dropped.
    assert (df.status == np.where(servable, "finished", "failed")).all()
    assert res.summary["completed"] + res.summary["failed"] == len(prompts)
    ok = df[df.status == "finished"]
    assert res.summary["total_output_tokens"] == int(np.array(outputs)[servable].sum())
    assert (ok.first_token_s > ok.arrival_s).all() and (ok.finish_s >= ok.first_token_s).all()
    # Output tokens = ITL gaps + first tokens.
    _, weights = res.itl_s, res.itl_weights
    assert weights.sum() == pytest.approx(int(np.array(outputs)[servable].sum()) - servable.sum())
    for inst in res.instances:
        assert inst.kv.peak_used <= inst.kv.num_blocks
        assert inst.kv.free_blocks == inst.kv.num_blocks  # everything returned at the end


def test_preemption_happens_and_recovers_when_kv_is_tight():
    # 8 requests of 100 + 100 tokens; 40 blocks of 16 = 640 tokens hold ~3 of them at full length.
    sc = make_scenario(num_gpu_blocks_override=40)
    res = simulate(sc, table([0.0] * 8, [100] * 8, [100] * 8), step_time=LinearStepTime(0.01, 1e-4))
    df = res.requests
    assert df.preemptions.sum() > 0
    assert (df.status == "finished").all()
    assert res.summary["total_output_tokens"] == 800
    inst = res.instances[0]
    assert inst.kv.peak_used <= 40 and inst.kv.free_blocks == 40
    # A preempted request recomputes: its prompt and generated tokens are prefilled again.
    assert res.summary["frontier"]["preemptions"] == int(df.preemptions.sum())


@pytest.mark.parametrize("concurrency", [None, 3])
def test_fast_forward_matches_stepping_one_iteration_at_a_time(concurrency):
    rng = np.random.default_rng(7)
    n = 40
    arrivals = np.cumsum(rng.exponential(0.05, n))
    prompts, outputs = rng.integers(10, 400, n), rng.integers(1, 200, n)
    runs = [
        simulate(
            make_scenario(num_gpu_blocks_override=300),
            table(arrivals, prompts, outputs, concurrency),
            step_time=LinearStepTime(0.008, 5e-5, 2e-7),
            fast_forward=ff,
        )
        for ff in (True, False)
    ]
    fast, slow = (r.requests for r in runs)
    assert np.allclose(fast.first_token_s, slow.first_token_s, rtol=0, atol=1e-9)
    assert np.allclose(fast.finish_s, slow.finish_s, rtol=0, atol=1e-9)
    assert (fast.preemptions == slow.preemptions).all()
    for key in ("mean_itl_ms", "p99_itl_ms", "median_itl_ms", "mean_tpot_ms"):
        assert runs[0].summary[key] == pytest.approx(runs[1].summary[key], rel=1e-9)
    assert runs[0].summary["frontier"]["steps"] == runs[1].summary["frontier"]["steps"]


def test_client_concurrency_limit_holds_requests_back():
    res = simulate(
        make_scenario(), table([0.0] * 6, [50] * 6, [5] * 6, concurrency=2), step_time=LinearStepTime(0.01, 0.0)
    )
    df = res.requests.sort_values("arrival_s")
    # Never more than 2 in flight: request i+2 is sent when request i finishes.
    finish = np.sort(df.finish_s.to_numpy())
    assert np.allclose(np.sort(df.arrival_s.to_numpy())[2:], finish[:4])


def test_block_manager_counts_blocks():
    kv = BlockManager(num_blocks=4, block_size=16)
    r = Request(0, 0.0, 40, 10)
    assert kv.allocate(r, 17) and r.num_blocks == 2 and kv.free_blocks == 2
    r.num_computed = 17
    assert kv.allocate(r, 15) and r.num_blocks == 2  # 32 tokens still fit in 2 blocks
    assert not kv.allocate(r, 64)  # would need 6 blocks
    kv.free(r)
    assert kv.free_blocks == 4


def _prefix_table(prompt_units, prompt_tokens, output=4, gap=1.0):
    rt = table([i * gap for i in range(len(prompt_units))], prompt_tokens, [output] * len(prompt_units))
    rt.prefix_blocks = [tuple(u) for u in prompt_units]
    rt.block_tokens = 64
    return rt


def test_prefix_cache_hits_skip_the_shared_prompt():
    # Three requests of 200 tokens sharing their first two 64-token units (a, b).
    units = [(1, 2, 10), (1, 2, 11), (1, 2, 12)]
    step = LinearStepTime(0.01, 1e-4)
    res = simulate(
        make_scenario(enable_prefix_caching=True, num_gpu_blocks_override=200),
        _prefix_table(units, [200] * 3),
        step_time=step,
    )
    prefills = [s.prefill_tokens for s in step.calls if s.prefill_tokens]
    # The first computes all 200 tokens; the later ones only the 72 after the cached 128.
    assert prefills == [200, 72, 72]
    assert [s.prefill_sum_qc for s in step.calls if s.prefill_tokens][1:] == [72 * 128] * 2
    assert res.summary["frontier"]["clusters"][0]["prefix_cache_hit_rate"] == pytest.approx(256 / 600)
    inst = res.instances[0]
    assert inst.kv.free_blocks == inst.kv.num_blocks  # cached units count as free once unused


def test_prefix_cache_is_on_by_default_as_in_vllm_v1_and_evicts_when_blocks_run_out():
    units = [(1, 2, 10), (1, 2, 11)]
    step = LinearStepTime(0.01, 1e-4)
    simulate(make_scenario(), _prefix_table(units, [200] * 2), step_time=step)
    assert [s.prefill_tokens for s in step.calls if s.prefill_tokens] == [200, 72]
    step = LinearStepTime(0.01, 1e-4)
    simulate(make_scenario(enable_prefix_caching=False), _prefix_table(units, [200] * 2), step_time=step)
    assert [s.prefill_tokens for s in step.calls if s.prefill_tokens] == [200, 200]
    # 16 blocks = 256 tokens: the second request (units 3, 4) must evict one of the first's cached
    # units, its tail (unit 2), so the third (units 1, 2 again) still finds unit 1.
    step = LinearStepTime(0.01, 1e-4)
    res = simulate(
        make_scenario(enable_prefix_caching=True, num_gpu_blocks_override=16),
        _prefix_table([(1, 2), (3, 4), (1, 2)], [129] * 3),
        step_time=step,
    )
    assert (res.requests.status == "finished").all()
    assert [s.prefill_tokens for s in step.calls if s.prefill_tokens] == [129, 129, 129 - 64]


def test_a_pooled_prompt_sent_again_is_served_from_the_prefix_cache():
    # A pool of one 200-token prompt, sent three times one after another: the repeats compute
    # only what follows its cached whole 64-token blocks (8 of 200 tokens).
    spec = WorkloadSpec.from_dict(
        {
            "num_requests": 3,
            "arrival": {"process": "constant", "rate": 1.0},
            "input_len": 200,
            "output_len": 4,
            "prompt_pool": 1,
        }
    )
    step = LinearStepTime(0.01, 1e-4)
    res = simulate(make_scenario(), build_requests(spec, np.random.default_rng(0)), step_time=step)
    assert [s.prefill_tokens for s in step.calls if s.prefill_tokens] == [200, 8, 8]
    assert res.summary["frontier"]["clusters"][0]["prefix_cache_hit_rate"] == pytest.approx(2 * 192 / 600)


def test_the_prefix_cache_evicts_a_prompts_tail_before_its_head():
    # Room for three 64-token units (4 blocks each). A's prompt fills units 1 and 2 (+1 block);
    # once A is done, B needs 5 blocks: one cached unit goes, and it is A's tail (unit 2), as vLLM
    # and SGLang evict, so C, sending A's prompt again, still finds its head cached.
    kv = BlockManager(num_blocks=12, block_size=16, prefix_caching=True, prefix_unit_tokens=64)
    a = Request(0, 0.0, 129, 4, prefix_blocks=(1, 2))
    assert kv.allocate(a, 129)
    a.num_computed = 129
    kv.register_prefix(a)
    kv.free(a)
    b = Request(1, 0.0, 80, 4)
    assert kv.allocate(b, 80) and kv.free_blocks == 12 - 5  # unit 1 still cached, counted free
    c = Request(2, 0.0, 129, 4, prefix_blocks=(1, 2))
    kv.match_prefix(c)
    assert c.cached_tokens == 64 and c.shared_units == (1,)
