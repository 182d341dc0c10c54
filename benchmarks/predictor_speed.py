"""How fast the calibrated predictor answers: cached (memo hits) vs uncached (XGBoost calls).

    python benchmarks/predictor_speed.py [--gpu h100-sxm] [--ops 20000]

The simulator asks for the same shapes again and again; the Predictor memoises every answer and
predicts the misses of one call per family in one XGBoost call. This prints predictions per second
for: uncached batches (a step's worth of new shapes per call), uncached single operators, cached
batches and cached single operators, and the cached/uncached ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from frontier.ops.operators import AttnDecode, AttnPrefill, Gemm, GroupedGemm
from frontier.predict import load_predictor
from frontier.predict.base import Predictor
from frontier.ops.routing import expected_routing


def operator_stream(n: int, seed: int = 0) -> list:
    """n distinct-ish operators shaped like a serving run's (Llama-8B-like and Qwen3-MoE-like)."""
    rng = np.random.default_rng(seed)
    ops = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            k, nn = [(4096, 6144), (4096, 4096), (4096, 28672), (14336, 4096)][int(rng.integers(4))]
            ops.append(Gemm(int(rng.integers(1, 8192)), k, nn))
        elif kind == 1:
            b = int(rng.integers(1, 256))
            mean_kv = int(rng.integers(128, 8192))
            ops.append(AttnDecode(b, b * mean_kv, int(mean_kv * rng.uniform(1, 2)), 32, 8, 128, 128))
        elif kind == 2:
            ops.append(
                AttnPrefill.uniform(
                    int(rng.integers(1, 8)), int(rng.integers(64, 4096)), 32, 8, 128, context=int(rng.integers(0, 4096))
                )
            )
        else:
            t = int(rng.integers(1, 4096))
            busiest, active = expected_routing(t, 128, 8, 0.0)
            ops.append(GroupedGemm(128, 8, t, 2048, 1536, busiest, active))
    return ops


def rate(fn, count: int, min_s: float = 0.5) -> float:
    """Operations per second of fn() (which handles `count` operators), repeated >= min_s."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return calls * count / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64, help="operators per uncached call")
    args = ap.parse_args()

    t0 = time.perf_counter()
    base = load_predictor(args.gpu, lazy=False)
    load_s = time.perf_counter() - t0
    print(f"load_predictor({args.gpu!r}, lazy=False): {load_s * 1e3:.0f} ms; sources: {base.sources()}")
    ops = operator_stream(args.ops)

    def fresh() -> Predictor:
        return Predictor(base.gpu_name, base.models, base.fallback)

    # Uncached, batched: a new predictor (empty memo) per pass over the stream.
    def uncached_batches():
        p = fresh()
        for i in range(0, len(ops), args.batch):
            p.ops_ms(ops[i : i + args.batch])

    r_unc_batch = rate(uncached_batches, len(ops))

    # Uncached, one operator per call.
    subset = ops[:2000]

    def uncached_single():
        p = fresh()
        for op in subset:
            p.op_ms(op)

    r_unc_single = rate(uncached_single, len(subset))

    warm = fresh()
    warm.ops_ms(ops)

    def cached_batches():
        for i in range(0, len(ops), args.batch):
            warm.ops_ms(ops[i : i + args.batch])

    r_cached_batch = rate(cached_batches, len(ops))

    def cached_single():
        for op in ops:
            warm.op_ms(op)

    r_cached_single = rate(cached_single, len(ops))

    print(f"{'':28s}{'predictions/s':>16s}")
    print(f"{'uncached, batches of ' + str(args.batch):28s}{r_unc_batch:16,.0f}")
    print(f"{'uncached, one per call':28s}{r_unc_single:16,.0f}")
    print(f"{'cached, batches of ' + str(args.batch):28s}{r_cached_batch:16,.0f}")
    print(f"{'cached, one per call':28s}{r_cached_single:16,.0f}")
    print(
        f"ratio cached/uncached: batches {r_cached_batch / r_unc_batch:,.0f}x, "
        f"single {r_cached_single / r_unc_single:,.0f}x; "
        f"batching the misses: {r_unc_batch / r_unc_single:,.1f}x faster than one per call"
    )


if __name__ == "__main__":
    main()
