"""Arrival processes and length distributions: their statistics, exactness and reproducibility."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier.workload import ArrivalSpec, LengthSpec, WorkloadSpec, build_requests
from frontier.workload.spec import PROMPT_POOL_BLOCK_TOKENS
from frontier.workload.synthetic import arrival_times, lognormal_params, sample_lengths

N = 20_000


def gaps_of(arrivals):
    return np.diff(arrivals)


def test_poisson_rate_and_exponential_gaps(rng):
    a = arrival_times(ArrivalSpec("poisson", 8.0), N, rng)
    assert a[0] == 0.0 and len(a) == N
    rate = (N - 1) / a[-1]
    assert rate == pytest.approx(8.0, rel=0.03)  # sd of the estimate is ~0.7 %
    g = gaps_of(a)
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.04)  # exponential: cv = 1
    # memoryless: P(gap > mean) = e^-1
    assert np.mean(g > 1 / 8.0) == pytest.approx(math.exp(-1), abs=0.015)


@pytest.mark.parametrize("cv", [0.5, 3.0])
def test_gamma_rate_and_cv(rng, cv):
    a = arrival_times(ArrivalSpec("gamma", 4.0, cv), N, rng)
    g = gaps_of(a)
    assert g.mean() == pytest.approx(0.25, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.06)


def test_gamma_with_cv_1_matches_poisson_statistics(rng):
    g = gaps_of(arrival_times(ArrivalSpec("gamma", 2.0, 1.0), N, rng))
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.04)


def test_constant_spacing_is_exact(rng):
    a = arrival_times(ArrivalSpec("constant", 4.0), 1000, rng)
    assert np.array_equal(np.diff(a), np.full(999, 0.25))
    assert a[-1] == 999 * 0.25
    b = arrival_times(ArrivalSpec("constant", 3.0), 10, rng)
    assert np.array_equal(b, np.arange(10) / 3.0)


def test_constant_draws_nothing_from_the_generator():
    r = np.random.default_rng(7)
    arrival_times(ArrivalSpec("constant", 3.0), 100, r)
    assert r.random() == np.random.default_rng(7).random()


@pytest.mark.parametrize("process, cv", [("poisson", None), ("gamma", 2.0), ("constant", None)])
def test_infinite_rate_is_all_at_zero(rng, process, cv):
    a = arrival_times(ArrivalSpec(process, math.inf, cv), 50, rng)
    assert a.dtype == np.float64 and np.all(a == 0) and len(a) == 50


def test_lognormal_mean_and_std_are_of_the_lengths(rng):
    spec = LengthSpec("lognormal", mean=1000.0, std=600.0, min=1, max=10**9)
    x = sample_lengths(spec, N, rng)
    assert x.dtype == np.int64
    assert x.mean() == pytest.approx(1000, rel=0.02)  # sd of the mean is ~0.4 %
    assert x.std() == pytest.approx(600, rel=0.05)
    mu, sigma = lognormal_params(1000.0, 600.0)
    assert np.median(x) == pytest.approx(math.exp(mu), rel=0.03)
    assert sigma == pytest.approx(math.sqrt(math.log(1 + 0.36)))


def test_lognormal_is_clipped_to_bounds(rng):
    x = sample_lengths(LengthSpec("lognormal", mean=1000.0, std=3000.0, min=200, max=1500), N, rng)
    assert x.min() == 200 and x.max() == 1500  # heavy tails hit both bounds


def test_normal_mean_std_and_floor_of_one(rng):
    x = sample_lengths(LengthSpec("normal", mean=300.0, std=50.0), N, rng)
    assert x.mean() == pytest.approx(300, rel=0.01)
    assert x.std() == pytest.approx(50, rel=0.05)
    y = sample_lengths(LengthSpec("normal", mean=2.0, std=10.0), N, rng)
    assert y.min() == 1  # never below one token


def test_uniform_is_inclusive(rng):
    x = sample_lengths(LengthSpec("uniform", min=5, max=8), N, rng)
    assert set(np.unique(x).tolist()) == {5, 6, 7, 8}
    assert x.mean() == pytest.approx(6.5, abs=0.05)


def test_fixed(rng):
    x = sample_lengths(LengthSpec("fixed", value=123), 7, rng)
    assert x.tolist() == [123] * 7 and x.dtype == np.int64


SPEC = {
    "num_requests": 500,
    "arrival": {"process": "gamma", "rate": 10, "cv": 2},
    "concurrency": 16,
    "input_len": {"dist": "lognormal", "mean": 1000, "std": 600, "min": 1, "max": 8192},
    "output_len": {"dist": "uniform", "min": 1, "max": 400},
}


def test_same_seed_same_requests_different_seed_different():
    spec = WorkloadSpec.from_dict(SPEC)
    a = build_requests(spec, np.random.default_rng(42))
    b = build_requests(spec, np.random.default_rng(42))
    c = build_requests(spec, np.random.default_rng(43))
    for field in ("arrival_s", "input_tokens", "output_tokens"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(getattr(a, field), getattr(c, field))
    assert a.concurrency == 16 and a.prefix_blocks is None and len(a) == 500
    assert a.source == (
        "synthetic, 500 requests, gamma 10 req/s (cv 2), input lognormal(mean "
        "1000, std 600) in [1, 8192], output uniform [1, 400], at most 16 in "
        "flight"
    )


def test_closed_loop_spec():
    spec = WorkloadSpec.from_dict({**SPEC, "arrival": {"rate": "inf"}, "concurrency": 8})
    t = build_requests(spec, np.random.default_rng(0))
    assert np.all(t.arrival_s == 0) and t.concurrency == 8
    assert "all at t=0" in t.source


# ---------------------------------------------------------------- properties

lengths = st.one_of(
    st.builds(lambda v: LengthSpec("fixed", value=v), st.integers(1, 10**6)),
    st.integers(1, 10**5).flatmap(
        lambda lo: st.builds(lambda hi: LengthSpec("uniform", min=lo, max=hi), st.integers(lo, lo + 10**5))
    ),
    st.builds(
        lambda dist, mean, std, lo, span: LengthSpec(
            dist, mean=mean, std=std, min=lo, max=None if span is None else lo + span
        ),
        st.sampled_from(["normal", "lognormal"]),
        st.floats(0.5, 1e6),
        st.floats(0.0, 1e7),
        st.integers(1, 5000),
        st.none() | st.integers(0, 10**5),
    ),
)


@settings(max_examples=150, deadline=None)
@given(spec=lengths, n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
def test_lengths_are_whole_numbers_within_bounds(spec, n, seed):
    x = sample_lengths(spec, n, np.random.default_rng(seed))
    assert x.dtype == np.int64 and x.shape == (n,)
    lo = spec.value if spec.dist == "fixed" else spec.min
    hi = spec.value if spec.dist == "fixed" else spec.max
    assert np.all(x >= max(lo, 1))
    if hi is not None:
        assert np.all(x <= hi)


arrivals = st.builds(
    lambda process, rate, cv: ArrivalSpec(process, rate, cv if process == "gamma" else None),
    st.sampled_from(["poisson", "gamma", "constant"]),
    st.floats(1e-3, 1e5) | st.just(math.inf),
    st.floats(0.05, 20.0),
)


@settings(max_examples=150, deadline=None)
@given(spec=arrivals, n=st.integers(0, 500), seed=st.integers(0, 2**32 - 1))
def test_arrivals_start_at_zero_and_never_go_back(spec, n, seed):
    a = arrival_times(spec, n, np.random.default_rng(seed))
    assert a.dtype == np.float64 and a.shape == (n,)
    assert np.all(np.isfinite(a))
    if n:
        assert a[0] == 0.0
        assert np.all(np.diff(a) >= 0)


@settings(max_examples=50, deadline=None)
@given(
    d=st.fixed_dictionaries(
        {
            "num_requests": st.integers(1, 200),
            "arrival": st.sampled_from(
                [
                    {"rate": 3},
                    {"process": "constant", "rate": 1.5},
                    {"process": "gamma", "rate": 2, "cv": 4},
                    {"rate": "inf"},
                ]
            ),
            "input_len": st.integers(1, 5000) | st.just({"dist": "uniform", "min": 1, "max": 64}),
            "output_len": st.integers(1, 5000) | st.just({"dist": "normal", "mean": 5, "std": 9}),
        }
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_valid_synthetic_spec_builds_a_consistent_table(d, seed):
    t = build_requests(WorkloadSpec.from_dict(d), np.random.default_rng(seed))
    assert len(t) == d["num_requests"]
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s[0] == 0
    assert t.input_tokens.min() >= 1 and t.output_tokens.min() >= 1


def test_pooled_prompts_repeat_whole_prompts_and_their_lengths():
    spec = WorkloadSpec.from_dict(
        {
            "num_requests": 400,
            "arrival": {"process": "poisson", "rate": "inf"},
            "input_len": {"dist": "uniform", "min": 100, "max": 300},
            "output_len": {"dist": "uniform", "min": 1, "max": 50},
            "prompt_pool": 7,
        }
    )
    t = build_requests(spec, np.random.default_rng(3))
    assert t.block_tokens == PROMPT_POOL_BLOCK_TOKENS
    prompts = set(t.prefix_blocks)
    assert len(prompts) == 7  # 400 draws from 7 prompts: every one drawn
    for blocks in prompts:
        sent = [i for i, b in enumerate(t.prefix_blocks) if b == blocks]
        # A prompt is always the same length, its blocks cover it, and its output length is its own.
        assert len(set(t.input_tokens[sent])) == 1 and len(set(t.output_tokens[sent])) == 1
        assert len(blocks) == -(-int(t.input_tokens[sent[0]]) // PROMPT_POOL_BLOCK_TOKENS)
    # Distinct prompts share no block: a repeat hits the cache, another prompt never does.
    all_blocks = [u for b in prompts for u in b]
    assert len(all_blocks) == len(set(all_blocks))
    # The same spec and seed draw the same requests.
    again = build_requests(spec, np.random.default_rng(3))
    assert again.prefix_blocks == t.prefix_blocks


def _pool_order(sampling, n=23, pool=5):
    """Which of `pool` prompts each of `n` requests sends, under `sampling`."""
    spec = WorkloadSpec.from_dict(
        {
            "num_requests": n,
            "arrival": {"process": "poisson", "rate": "inf"},
            "input_len": 100,
            "output_len": 10,
            "prompt_pool": pool,
            "prompt_sampling": sampling,
        }
    )
    t = build_requests(spec, np.random.default_rng(11))
    names = {b: i for i, b in enumerate(dict.fromkeys(sorted(t.prefix_blocks)))}
    return [names[b] for b in t.prefix_blocks]


def test_shuffled_prompts_are_each_sent_once_a_pass_as_aiperf_0_3_samples():
    order = _pool_order("shuffle")
    passes = [order[i : i + 5] for i in range(0, 20, 5)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in passes)  # every prompt once per pass
    assert len(set(order[20:])) == 3  # the last, partial pass repeats none
    assert len({tuple(p) for p in passes}) > 1  # each pass in an order of its own


def test_sequential_prompts_cycle_in_order_and_random_ones_repeat_early():
    sequential = _pool_order("sequential")
    assert sequential == [sequential[i % 5] for i in range(23)] and len(set(sequential[:5])) == 5
    random = _pool_order("random")
    assert any(len(set(random[i : i + 5])) < 5 for i in range(0, 20, 5))  # with replacement
