"""Fast-forwarding runs of steps gives the results of stepping one iteration at a time."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from frontier.sim.run import simulate
from frontier.workload import RequestTable

from sim_helpers import LinearStepTime, make_scenario, table

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "side_by_side.py"


def side_by_side():
    spec = importlib.util.spec_from_file_location("side_by_side", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_side_by_side_workload_fast_forwarded_matches_stepping():
    sbs = side_by_side()
    n = 400
    arrival, prompt, output = sbs.generate(n)
    runs = [
        simulate(sbs.scenario(n), RequestTable(arrival, prompt, output), timeline=False, fast_forward=ff)
        for ff in (True, False)
    ]
    fast, slow = (r.requests for r in runs)
    assert (fast.status == "finished").all() and (slow.status == "finished").all()
    for col in ("ttft_s", "e2el_s"):
        assert np.allclose(fast[col], slow[col], rtol=1e-3, atol=0)
    f, s = (r.summary["frontier"] for r in runs)
    assert f["steps"] == s["steps"]
    assert s["batches"] == s["steps"]  # one at a time
    assert f["batches"] < 0.8 * s["batches"]  # runs of steps planned at once
    assert runs[0].summary["p99_itl_ms"] == pytest.approx(runs[1].summary["p99_itl_ms"], rel=1e-3)


def test_a_prompt_chunked_beside_decodes_is_one_stretch():
    # A (prompt 10, 30 tokens out) decodes; B (prompt 300) arrives at 50 ms and is prefilled in
    # chunks of 64 - 1 = 63 tokens beside A's decode: 4 chunks of 63 and a last one of 48.
    work = table([0.0, 0.05], [10, 300], [30, 5])
    runs = {}
    for ff in (True, False):
        step = LinearStepTime(0.010, 1e-4, 1e-6)
        res = simulate(make_scenario(max_num_batched_tokens=64, max_num_seqs=64), work, step_time=step, fast_forward=ff)
        runs[ff] = (res, step)
    (fast, fstep), (slow, sstep) = runs[True], runs[False]
    fcalls, scalls = fstep.calls, sstep.calls
    assert [s.prefill_tokens for s in scalls if s.prefill_tokens and s.num_decode] == [63, 63, 63, 63, 48]
    assert np.allclose(fast.requests.first_token_s, slow.requests.first_token_s, rtol=0, atol=1e-12)
    assert np.allclose(fast.requests.finish_s, slow.requests.finish_s, rtol=0, atol=1e-12)
    # The stretch's steps are timed one by one (same stats as stepping), in one planned batch.
    chunked = [s for s in fcalls if s.prefill_tokens and s.num_decode]
    assert [s.prefill_sum_qc for s in chunked] == [
        s.prefill_sum_qc for s in scalls if s.prefill_tokens and s.num_decode
    ]
    assert fast.summary["frontier"]["batches"] < slow.summary["frontier"]["batches"] - 3
    assert fast.summary["mean_itl_ms"] == pytest.approx(slow.summary["mean_itl_ms"], rel=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 20),
    st.integers(0, 10**6),
    st.sampled_from([16, 64, 200]),
    st.sampled_from([2, 8, 64]),
    st.integers(30, 120),
    st.sampled_from(["vllm", "sglang"]),
)
def test_fast_forward_matches_stepping_on_random_workloads(n, seed, budget, seqs, blocks, engine):
    rng = np.random.default_rng(seed)
    work = table(np.cumsum(rng.exponential(0.03, n)), rng.integers(1, 400, n), rng.integers(1, 80, n))
    if engine == "vllm":
        seqs = min(seqs, budget)  # vLLM refuses a token budget below max_num_seqs
    sc = make_scenario(engine=engine, max_num_batched_tokens=budget, max_num_seqs=seqs, num_gpu_blocks_override=blocks)
    fast, slow = (
        simulate(sc, work, step_time=LinearStepTime(0.008, 5e-5, 2e-7), fast_forward=ff) for ff in (True, False)
    )
    f, s = fast.requests, slow.requests
    assert (f.status == s.status).all()
    ok = (f.status == "finished").to_numpy()
    assert np.allclose(f.first_token_s[ok], s.first_token_s[ok], rtol=0, atol=1e-9)
    assert np.allclose(f.finish_s[ok], s.finish_s[ok], rtol=0, atol=1e-9)
    assert (f.preemptions == s.preemptions).all()
    assert fast.summary["frontier"]["steps"] == slow.summary["frontier"]["steps"]
    assert fast.summary["mean_itl_ms"] == pytest.approx(slow.summary["mean_itl_ms"], rel=1e-9)


class HostFloorStepTime:
    """Overlapped host time under the GPU's: max(GPU, host) + residual, GPU growing with the KV."""

    def __init__(self, gpu_s=0.005, per_kv_s=1e-6, host_s=0.008, residual_s=0.0001):
        self.gpu_s, self.per_kv_s, self.host_s, self.residual_s = gpu_s, per_kv_s, host_s, residual_s

    def step(self, stats):
        from frontier.predict.step import StepTime

        gpu = self.gpu_s + self.per_kv_s * stats.decode_sum_kv
        wall = max(gpu, self.host_s) + self.residual_s
        return StepTime(wall, host_ms=(wall - gpu) * 1e3)


def test_a_decode_run_crossing_from_host_bound_to_gpu_bound_matches_stepping():
    # 4 sequences at 100 KV tokens: GPU 5.4 ms < host 8 ms; each step adds 4 KV tokens (4 us), so
    # the GPU passes the host after 650 steps: the run's times bend there, as stepping says.
    from frontier.ops.graph import BatchStats
    from frontier.predict.step import StepModel

    rule, n = HostFloorStepTime(), 1000
    first = BatchStats(num_decode=4, decode_sum_kv=400, decode_max_kv=100, num_sampled=4)
    times, totals = StepModel(rule).decode_run(first, n)
    stepped = [
        rule.step(BatchStats(num_decode=4, decode_sum_kv=400 + 4 * j, decode_max_kv=100 + j, num_sampled=4)).total_s
        for j in range(n)
    ]
    assert np.allclose(times, stepped, rtol=1e-9, atol=1e-12)
    assert totals.total_s == pytest.approx(sum(stepped))


def test_a_stretch_ending_with_a_first_token_finishes_then():
    # Found by hypothesis: the last request (296-token prompt, one output token) gets its first
    # token at the last iteration of a chunked stretch; the token's time and the stretch's end
    # were summed in different orders and came out an ulp apart, the finish before the token.
    prompts = [1, 137, 1, 1, 1, 1, 27, 159, 72, 193, 9, 1, 48, 61, 300, 300, 300, 1, 196, 296]
    outputs = [1, 56, 1, 1, 1, 1, 2, 1, 6, 1, 1, 1, 1, 1, 1, 1, 1, 35, 1, 1]
    sc = make_scenario(num_gpu_blocks_override=24, max_num_batched_tokens=16, max_num_seqs=2)
    res = simulate(sc, table(np.zeros(20), prompts, outputs), step_time=LinearStepTime(0.01, 1e-4, 1e-6))
    df = res.requests
    assert (df.status == "finished").all()
    assert (df.finish_s >= df.first_token_s).all()
    assert df.finish_s[19] == df.first_token_s[19]


def test_a_decode_runs_iterations_timed_at_once_are_those_of_stepping():
    # Sequential.decode_steps looks up the blocks a decode run does not change once: each of its
    # iterations must come out bit for bit as `step` times it, on the calibrated H100 predictor,
    # inside a CUDA graph (48 sequences) and eager (600, beyond the largest capture size).
    from frontier.ops.graph import BatchStats
    from frontier.predict.step import StepModel
    from frontier.sim.run import step_model_for

    sc = side_by_side().scenario(10, budget=8192, seqs=1024)
    model, _ = step_model_for(sc, sc.clusters[0])
    rule = model.rule

    class SteppedOnly:  # the same rule without decode_steps: decode runs ask `step`
        step, kinks = rule.step, rule.kinks

    for b, kv in ((48, 48 * 700), (600, 600 * 1500)):
        first = BatchStats(num_decode=b, decode_sum_kv=kv, decode_max_kv=kv // b + 40, num_sampled=b)
        at = rule.decode_steps(first)
        for j in (0, 1, 17, 250, 999):
            advanced = first._replace(decode_sum_kv=kv + j * b, decode_max_kv=first.decode_max_kv + j)
            assert at(j) == rule.step(advanced)
        times, totals = model.decode_run(first, 1000)
        stepped_times, stepped_totals = StepModel(SteppedOnly()).decode_run(first, 1000)
        assert np.array_equal(times, stepped_times) and totals == stepped_totals
        assert len(set(times.tolist())) > 100  # the KV grows: a run of different step times
