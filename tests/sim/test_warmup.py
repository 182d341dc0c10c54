"""A benchmark's warmup: sent first, not measured, and the measured requests wait for it."""

import numpy as np
import pytest

from frontier.errors import SpecError
from frontier.sim.run import simulate
from frontier.workload import RequestTable, WorkloadSpec, build_requests

from sim_helpers import LinearStepTime, make_scenario


def test_measured_requests_leave_after_the_warmup_and_only_they_count():
    # step time = 10 ms + 0.1 ms per token. Both requests are sent at t = 0; the first is the warmup.
    step = LinearStepTime(0.010, 0.0001)
    warm = RequestTable(np.zeros(2), np.array([100, 50]), np.array([2, 2]), warmup=1)
    res = simulate(make_scenario(), warm, step_time=step)
    # Warmup: prefill 100 tokens, 20 ms; one decode, 10.1 ms: done at 30.1 ms, alone.
    # Measured: sent at 30.1 ms, prefill 50 tokens, 15 ms (first token 45.1 ms); decode to 55.2 ms.
    assert [(s.prefill_tokens, s.num_decode) for s in step.calls] == [(100, 0), (0, 1), (50, 0), (0, 1)]
    df = res.requests
    assert list(df.request_id) == [1]
    assert df.arrival_s[0] == pytest.approx(0.0301)
    assert df.first_token_s[0] == pytest.approx(0.0451)
    s = res.summary
    assert (s["completed"], s["failed"]) == (1, 0)
    assert s["mean_ttft_ms"] == pytest.approx(15.0)
    assert s["mean_itl_ms"] == pytest.approx(10.1)  # the warmup's gap (10.1 ms too) is not pooled
    assert s["duration"] == pytest.approx(0.0251)
    assert s["frontier"]["warmup_requests"] == 1
    assert s["frontier"]["steps"] == 2  # the measured phase's steps only


def test_the_warmup_leaves_its_prompts_in_the_prefix_cache():
    # One prompt of 160 tokens in 64-token prefix units, sent twice: warmup, then measured.
    step = LinearStepTime(0.010, 0.0001)
    blocks = [(0, 1, 2), (0, 1, 2)]
    warm = RequestTable(np.zeros(2), np.array([160, 160]), np.array([2, 2]), blocks, block_tokens=64, warmup=1)
    res = simulate(make_scenario(enable_prefix_caching=True), warm, step_time=step)
    # The measured request finds the two whole units (128 tokens) cached and prefills 32 tokens.
    assert [s.prefill_tokens for s in step.calls] == [160, 0, 32, 0]
    assert res.requests.cached_tokens[0] == 128
    assert res.summary["mean_ttft_ms"] == pytest.approx(13.2)
    assert res.summary["frontier"]["clusters"][0]["prefix_cache_hit_rate"] == pytest.approx(128 / 160)


def test_a_closed_loop_warmup_is_drawn_like_the_measured_requests():
    spec = WorkloadSpec.from_dict(
        {
            "num_requests": 8,
            "concurrency": 2,
            "warmup_requests": 4,
            "arrival": {"process": "poisson", "rate": "inf"},
            "input_len": 64,
            "output_len": 4,
            "prompt_pool": 3,
        }
    )
    table = build_requests(spec, np.random.default_rng(0))
    assert (len(table), table.warmup) == (12, 4)
    assert "after 4 warmup requests (not measured)" in table.source
    assert table.source.startswith("synthetic, 8 requests")


def test_a_warmup_must_leave_requests_to_measure():
    with pytest.raises(SpecError, match="warmup_requests: -1 must be"):
        WorkloadSpec.from_dict({"trace": {"path": "simulate/traces/azure_conv.csv"}, "warmup_requests": -1})
    spec = WorkloadSpec.from_dict({"trace": {"path": "simulate/traces/azure_conv.csv"}, "warmup_requests": 10**6})
    with pytest.raises(SpecError, match="leaves none of the workload's"):
        build_requests(spec, np.random.default_rng(0))
