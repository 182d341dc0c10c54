"""MoE routing statistics against the reference table's realised routings."""

from __future__ import annotations

import numpy as np
import pytest

from frontier.ops.routing import expected_routing, inclusion_probabilities


def _log_ratio(pred, ref):
    return abs(np.log(pred / ref))


def test_expected_routing_matches_the_reference_rows(tables):
    rows = tables["grouped_gemm"].query("backend == 'grouped_mm' and proj == 'gate_up' and tokens >= 16")
    err = {0.0: [], 1.2: []}
    for r in rows.itertuples():
        busiest, active = expected_routing(r.tokens, r.experts, r.topk, r.skew)
        err[r.skew].append((_log_ratio(busiest, r.max_per_expert), _log_ratio(active, r.active_experts)))
    for skew, e in err.items():
        e = np.array(e)
        rms = np.sqrt((e**2).mean(axis=0))
        assert rms[0] < 0.12 and rms[1] < 0.06, (skew, rms)  # one realisation vs expectation


def test_hot_expert_routing_of_the_reference():
    # qwen3-30b-a3b, 1024 tokens, top-8 of 128: the table realised (1009, 91) with skew 1.2
    busiest, active = expected_routing(1024, 128, 8, 1.2)
    assert busiest == pytest.approx(1009, rel=0.03) and active == pytest.approx(91, rel=0.05)
    busiest, active = expected_routing(1024, 128, 8, 0.0)
    assert busiest == pytest.approx(91, rel=0.1) and active == 128


def test_uniform_routing_is_balls_into_bins():
    p = inclusion_probabilities(64, 4, 0.0)
    assert np.allclose(p, 4 / 64)
    busiest, active = expected_routing(4, 64, 4, 0.0)
    assert active == round(64 * (1 - (1 - 4 / 64) ** 4))
    assert expected_routing(0, 64, 4) == (0, 0)
    assert expected_routing(10, 8, 8) == (10, 8)  # every expert sees every token


def test_skewed_probabilities_sum_to_topk_and_decrease():
    p = inclusion_probabilities(128, 8, 1.2)
    assert p.sum() == pytest.approx(8)
    assert np.all(np.diff(p) <= 1e-12) and p[0] > 0.9


def test_sampled_routing_is_seeded_and_near_the_expectation():
    a = expected_routing(4096, 128, 8, 1.2, np.random.default_rng(7))
    b = expected_routing(4096, 128, 8, 1.2, np.random.default_rng(7))
    assert a == b
    exp = expected_routing(4096, 128, 8, 1.2)
    assert a[0] == pytest.approx(exp[0], rel=0.02) and a[1] == pytest.approx(exp[1], rel=0.06)
