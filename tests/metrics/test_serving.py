"""Weighted samples (a decode run's gaps stored once with their count) give the percentiles of
the sample written out in full."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from frontier.metrics.serving import PERCENTILES, latency_stats, weighted_percentiles


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=1, max_size=40),
    st.lists(st.integers(1, 6), min_size=40, max_size=40),
)
def test_weighted_percentiles_are_those_of_the_expanded_sample(values, counts):
    values, weights = np.array(values), np.array(counts[: len(values)], dtype=float)
    expanded = np.repeat(values, counts[: len(values)])
    got = weighted_percentiles(values, weights, (0, 10, 50, 90, 99, 100))
    assert np.allclose(got, np.percentile(expanded, [0, 10, 50, 90, 99, 100]), rtol=1e-12, atol=1e-12)


def test_weighted_latency_stats_match_the_unweighted_ones():
    values = np.array([5.0, 1.0, 3.0, 3.0, 2.0, 8.0])
    weights = np.array([2.0, 1.0, 3.0, 1.0, 4.0, 1.0])
    weighted = latency_stats("itl", values, weights)
    plain = latency_stats("itl", np.repeat(values, weights.astype(int)))
    assert weighted.keys() == plain.keys()
    for key in weighted:
        assert weighted[key] == pytest.approx(plain[key], rel=1e-12), key
    assert {f"p{p}_itl_ms" for p in PERCENTILES if p != 50} <= weighted.keys()
