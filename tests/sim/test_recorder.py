"""Inter-token gaps in bounded memory: exact while few, a fine histogram beyond."""

import numpy as np
import pytest

from frontier.metrics.serving import latency_stats
from frontier.sim.recorder import GapSketch


def fill(sketch, x):
    for i in range(0, len(x), 1000):
        sketch.add_run(x[i : i + 500], 3)  # a decode run: each gap once per request
        for v in x[i + 500 : i + 1000]:
            sketch.add(float(v))


def test_folded_gaps_keep_the_mean_and_percentiles_within_a_tenth_of_a_percent():
    x = np.random.default_rng(0).lognormal(-4, 0.6, 200_000)
    small, exact = GapSketch(cap=1000), GapSketch(cap=10**9)
    fill(small, x)
    fill(exact, x)
    v, w = small.samples()
    assert len(v) < 5000  # bins, not samples
    assert w.sum() == pytest.approx(exact.samples()[1].sum())  # every gap counted
    got, want = latency_stats("itl", v * 1e3, w), latency_stats("itl", *(lambda a, b: (a * 1e3, b))(*exact.samples()))
    assert got["mean_itl_ms"] == pytest.approx(want["mean_itl_ms"], rel=1e-12)
    for key in ("median_itl_ms", "p90_itl_ms", "p99_itl_ms"):
        assert got[key] == pytest.approx(want[key], rel=1e-3)


def test_few_gaps_stay_exact():
    sketch = GapSketch()
    sketch.add(0.02)
    sketch.add_run(np.array([0.01, 0.03]), 2)
    v, w = sketch.samples()
    assert sorted(zip(v.tolist(), w.tolist())) == [(0.01, 2.0), (0.02, 1.0), (0.03, 2.0)]
