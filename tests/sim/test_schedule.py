"""A tiny case computed by hand, event by event, with known step times."""

import pytest

from frontier.sim.run import simulate

from sim_helpers import LinearStepTime, make_scenario, table


def test_two_requests_hand_computed_schedule():
    # step time = 10 ms + 0.1 ms per token in the batch.
    step = LinearStepTime(0.010, 0.0001)
    # A: arrives 0, prompt 100, 3 output tokens. B: arrives 15 ms, prompt 50, 2 output tokens.
    res = simulate(make_scenario(), table([0.0, 0.015], [100, 50], [3, 2]), step_time=step)
    # t=0      A prefills 100 tokens: 10 + 10 = 20 ms -> A's first token at 20 ms.
    # t=20     A decodes (1) + B prefills (50): 10 + 5.1 = 15.1 ms -> 35.1 ms: A token 2, B token 1.
    # t=35.1   A and B decode (2 tokens): 10.2 ms -> 45.3 ms: A token 3 and B token 2, both done.
    assert [(s.prefill_tokens, s.num_decode) for s in step.calls] == [(100, 0), (50, 1), (0, 2)]
    df = res.requests.set_index("request_id")
    assert df.loc[0, "first_token_s"] == pytest.approx(0.020)
    assert df.loc[1, "first_token_s"] == pytest.approx(0.0351)
    assert df.loc[0, "finish_s"] == pytest.approx(0.0453)
    assert df.loc[1, "finish_s"] == pytest.approx(0.0453)
    s = res.summary
    assert s["completed"] == 2 and s["failed"] == 0
    assert s["mean_ttft_ms"] == pytest.approx((20.0 + 20.1) / 2)
    # TPOT: A (45.3 - 20) / 2 = 12.65 ms; B (45.3 - 35.1) / 1 = 10.2 ms.
    assert s["mean_tpot_ms"] == pytest.approx((12.65 + 10.2) / 2)
    # ITL gaps: A 15.1, 10.2; B 10.2.
    assert s["mean_itl_ms"] == pytest.approx((15.1 + 10.2 + 10.2) / 3)
    assert s["duration"] == pytest.approx(0.0453)
    assert s["total_output_tokens"] == 5


def test_chunked_prefill_splits_a_long_prompt_over_the_token_budget():
    step = LinearStepTime(0.010, 0.0)
    res = simulate(make_scenario(max_num_batched_tokens=64, max_num_seqs=64), table([0.0], [150], [2]), step_time=step)
    # 150 prompt tokens under a 64-token budget: chunks of 64, 64, 22, then one decode.
    assert [s.prefill_tokens for s in step.calls] == [64, 64, 22, 0]
    assert [s.prefill_sum_qc for s in step.calls[:3]] == [0, 64 * 64, 22 * 128]
    assert res.requests.first_token_s[0] == pytest.approx(0.030)
    assert res.requests.finish_s[0] == pytest.approx(0.040)


def test_without_chunked_prefill_a_prompt_waits_for_a_whole_budget():
    step = LinearStepTime(0.010, 0.0)
    sc = make_scenario(max_num_batched_tokens=100, enable_chunked_prefill=False, max_model_len=100, max_num_seqs=100)
    # B (80 tokens) does not fit beside A's 60-token prefill; it runs in the next step with A's decode.
    simulate(sc, table([0.0, 0.0], [60, 80], [2, 2]), step_time=step)
    assert [(s.prefill_tokens, s.num_decode) for s in step.calls[:2]] == [(60, 0), (80, 1)]


def test_max_num_seqs_caps_the_batch():
    step = LinearStepTime(0.010, 0.0)
    res = simulate(make_scenario(max_num_seqs=2), table([0, 0, 0], [10, 10, 10], [3, 3, 3]), step_time=step)
    assert max(s.num_prefill + s.num_decode for s in step.calls) == 2
    df = res.requests
    # The third request starts only when one of the first two finishes (after 3 steps).
    assert df.first_token_s[2] == pytest.approx(0.040)


def test_pipeline_parallel_overlaps_batches():
    # pp=2: a batch takes two stage times, a new batch may start after one.
    step = LinearStepTime(0.010, 0.0)
    res = simulate(make_scenario(pp=2), table([0.0, 0.001], [10, 10], [1, 1]), step_time=step)
    df = res.requests
    assert df.finish_s[0] == pytest.approx(0.020)
    # B arrives at 1 ms while A's batch is in stage 1; it enters stage 1 at 10 ms and ends at 30 ms.
    assert df.finish_s[1] == pytest.approx(0.030)
