"""Collectives from published NCCL figures: an alpha-beta fit per link, kind and world size.

    time = min over NCCL protocols of (alpha + wire_factor(kind, world) * size_bytes / busbw)

`wire_factor` is nccl-tests' bus-bandwidth factor (2(w-1)/w for all-reduce, (w-1)/w for
all-gather, reduce-scatter and all-to-all, 1 for send/recv), so `busbw` is the figure nccl-tests
prints and vendors publish. The fit minimises relative error, so the small-message latency
(alpha) and the large-message bandwidth are both honoured. Up to three protocols (NCCL's LL,
LL128 and Simple) per (link, kind, world).

Used for a GPU whose calibration has no measured collective table: `meta.json` holds the fit
(`collective_fit`) and where its points came from; `CollectiveFitModel` predicts from it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from frontier.ops.operators import Collective
from frontier.predict.roofline import WIRE_FACTOR

# A kind with no fitted points borrows the fit of a kind that moves data the same way.
KIND_FALLBACK = {
    "send_recv": "all_to_all",
    "all_gather": "all_to_all",
    "reduce_scatter": "all_to_all",
    "all_to_all": "all_reduce",
    "all_reduce": "all_to_all",
}
LINKS = ("nvlink", "network")


def wire_bytes(kind: str, world: int, size_bytes: float) -> float:
    return WIRE_FACTOR[kind](world) * size_bytes


def _line(x: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """ms = alpha + beta * x, least squares in relative error, alpha and beta kept positive."""
    a = np.stack([np.ones_like(x), x], axis=1) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if alpha <= 0 or beta <= 0:  # the two ends of the sweep
        alpha = max(float(t[np.argmin(x)]), 1e-6)
        beta = max((float(t.max()) - alpha) / float(x.max()), 1e-18)
    return float(alpha), float(beta)


def _predict(protocols: list[tuple[float, float]], x: np.ndarray) -> np.ndarray:
    return np.min([alpha + beta * x for alpha, beta in protocols], axis=0)


def _score(ape: np.ndarray) -> float:
    return float(np.median(ape) + 0.2 * ape.max())


def fit_alpha_beta(size_bytes: np.ndarray, ms: np.ndarray, kind: str, world: int) -> dict:
    """Alpha-beta fit of one (kind, world) sweep.

    NCCL has three protocols (LL, LL128, Simple: lower latency traded for lower bandwidth) and
    picks the fastest for each message size, so the fit is the minimum of one alpha-beta line per
    protocol: 1, 2 or 3 lines, each fitted to a contiguous range of sizes, the split sizes chosen
    to minimise median + 0.2 x max relative error, an extra line kept only where it buys more
    than one point of that score."""
    x = np.array([wire_bytes(kind, world, s) for s in size_bytes], dtype=float)
    t = np.asarray(ms, dtype=float)
    order = np.argsort(x)
    x, t = x[order], t[order]
    if len(t) < 2 or np.ptp(x) == 0:
        protocols = [(float(t.min()), 1e-18)]
    else:

        def score(lines):
            ape = np.abs(_predict(lines, x) / t - 1) * 100
            return _score(ape)

        best_lines = [_line(x, t)]
        best = score(best_lines)
        n, m = len(t), 3  # at least m points per line
        two = [[_line(x[:a], t[:a]), _line(x[a:], t[a:])] for a in range(m, n - m + 1)]
        three = [
            [_line(x[:a], t[:a]), _line(x[a:b], t[a:b]), _line(x[b:], t[b:])]
            for a in range(m, n - 2 * m + 1)
            for b in range(a + m, n - m + 1)
        ]
        for candidates in (two, three):
            if not candidates:
                continue
            scores = [score(c) for c in candidates]
            i = int(np.argmin(scores))
            if scores[i] < best - 1.0:
                best, best_lines = scores[i], candidates[i]
        protocols = best_lines
    ape = np.abs(_predict(protocols, x) / t - 1) * 100
    return {
        "protocols": [{"alpha_us": round(a * 1e3, 3), "busbw_gbps": round(1.0 / b / 1e6, 2)} for a, b in protocols],
        "points": int(len(t)),
        "median_ape": round(float(np.median(ape)), 2),
        "max_ape": round(float(ape.max()), 2),
    }


def fit_points(points) -> dict:
    """{link: {kind: {world: fit}}} from rows of kind, size_bytes, world, link, ms."""
    fits: dict = {}
    for (link, kind, world), g in points.groupby(["link", "kind", "world"]):
        g = g.sort_values("size_bytes")
        fits.setdefault(link, {}).setdefault(kind, {})[str(int(world))] = fit_alpha_beta(
            g["size_bytes"].to_numpy(), g["ms"].to_numpy(), kind, int(world)
        )
    return fits


class CollectiveFitModel:
    """FamilyModel for collectives from a fitted {link: {kind: {world: {"protocols": [{alpha_us, busbw_gbps}]}}}}.

    A world size between fitted ones uses the nearest fitted world (in log2), a kind without a fit
    borrows a related kind's, a link without a fit falls back to `fallback` (the spec's
    alpha-beta model)."""

    source = "alpha-beta fit"

    def __init__(self, fits: dict, fallback=None, source: str | None = None):
        self.fits = fits
        self.fallback = fallback
        if source:
            self.source = source

    def _params(self, op: Collective) -> dict | None:
        kinds = self.fits.get(op.link)
        if not kinds:
            return None
        kind, seen = op.kind, set()
        while kind not in kinds and kind not in seen:
            seen.add(kind)
            kind = KIND_FALLBACK.get(kind, kind)
        worlds = kinds.get(kind)
        if not worlds:
            return None
        w = min(worlds, key=lambda k: abs(math.log2(int(k)) - math.log2(max(op.world, 1))))
        return worlds[w]

    def op_ms(self, op: Collective) -> float:
        if op.world <= 1 or op.size_bytes <= 0:
            return 0.0
        p = self._params(op)
        if p is None:
            if self.fallback is None:
                raise ValueError(f"no collective fit for link {op.link}")
            return float(self.fallback.predict_ms([op])[0])
        wire = wire_bytes(op.kind, op.world, op.size_bytes)
        return min(q["alpha_us"] * 1e-3 + wire / (q["busbw_gbps"] * 1e9) * 1e3 for q in p["protocols"])

    def predict_ms(self, ops: Sequence[Collective]) -> np.ndarray:
        return np.array([self.op_ms(op) for op in ops], dtype=float)
