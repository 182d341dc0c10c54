"""Synthetic workloads: arrival processes and token-length distributions.

All randomness comes from the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

import math

import numpy as np

from frontier.workload.spec import ArrivalSpec, LengthSpec


def arrival_times(spec: ArrivalSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """n arrival times in seconds, sorted, the first at t = 0.

    Gaps have mean 1/rate: exponential (poisson), gamma with shape 1/cv^2 (gamma), or exactly
    1/rate (constant). Rate inf puts every request at t = 0.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    if math.isinf(spec.rate):
        return np.zeros(n, dtype=np.float64)
    if spec.process == "constant":
        return np.arange(n, dtype=np.float64) / spec.rate
    mean_gap = 1.0 / spec.rate
    if spec.process == "poisson":
        gaps = rng.exponential(mean_gap, size=n - 1)
    elif spec.process == "gamma":
        shape = 1.0 / (spec.cv * spec.cv)
        gaps = rng.gamma(shape, mean_gap / shape, size=n - 1)
    else:  # ArrivalSpec.from_dict only lets the processes above through
        raise ValueError(f"unknown arrival process {spec.process!r}")
    out = np.empty(n, dtype=np.float64)
    out[0] = 0.0
    np.cumsum(gaps, out=out[1:])
    return out


def lognormal_params(mean: float, std: float) -> tuple[float, float]:
    """(mu, sigma) of the underlying normal for a lognormal with this mean and std."""
    sigma2 = math.log1p((std / mean) ** 2)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def sample_lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """n token counts (int64), whole numbers clipped to [spec.min, spec.max]."""
    if spec.dist == "fixed":
        return np.full(n, spec.value, dtype=np.int64)
    if spec.dist == "uniform":
        return rng.integers(spec.min, spec.max, size=n, endpoint=True, dtype=np.int64)
    if spec.dist == "normal":
        x = rng.normal(spec.mean, spec.std, size=n)
    elif spec.dist == "lognormal":
        mu, sigma = lognormal_params(spec.mean, spec.std)
        x = rng.lognormal(mu, sigma, size=n)
    else:  # LengthSpec.from_value only lets the distributions above through
        raise ValueError(f"unknown length distribution {spec.dist!r}")
    hi = spec.max if spec.max is not None else np.iinfo(np.int64).max // 2
    # Clip before the integer cast so that huge tails cannot overflow int64.
    return np.clip(np.rint(x), max(spec.min, 1), hi).astype(np.int64)
