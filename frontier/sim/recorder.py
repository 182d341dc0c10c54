"""What a run leaves behind besides request timestamps: token gaps and the batch timeline."""

from __future__ import annotations

from array import array

import numpy as np


class GapSketch:
    """Inter-token gaps as weighted samples, in bounded memory.

    Gaps are kept exactly (8 bytes each; a decode run's gaps once, weighted by its requests)
    until `cap` samples are held; then all are folded into a histogram of 0.1 %-wide
    logarithmic bins, each keeping its weight and the weighted sum of its values. The mean
    stays exact, percentiles come within 0.1 % of their value, and memory stays flat however
    many tokens a run generates."""

    LOW_S, HIGH_S, RATIO = 1e-7, 1e5, 1.001

    def __init__(self, cap: int = 1 << 20):
        self.cap = cap
        self._single = array("d")
        self._runs: list[tuple[np.ndarray, float]] = []
        self._held = 0
        self._weight: np.ndarray | None = None  # per bin
        self._sum: np.ndarray | None = None  # per bin: sum of weight x value

    def add(self, seconds: float) -> None:
        self._single.append(seconds)
        if len(self._single) >= self.cap:
            self._fold()

    def add_list(self, seconds: list[float]) -> None:
        self._single.extend(seconds)
        if len(self._single) >= self.cap:
            self._fold()

    def add_run(self, seconds: np.ndarray, weight: int) -> None:
        """Each of `seconds` occurred `weight` times."""
        if len(seconds) and weight:
            self._runs.append((seconds, float(weight)))
            self._held += len(seconds)
            if self._held >= self.cap:
                self._fold()

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        single = np.frombuffer(self._single, dtype=float) if len(self._single) else np.zeros(0)
        runs = self._runs
        values = np.concatenate([single] + [r for r, _ in runs])
        counts = np.array([len(single)] + [len(r) for r, _ in runs])
        weights = np.repeat(np.array([1.0] + [w for _, w in runs]), counts)
        return values, weights

    def _fold(self) -> None:
        values, weights = self._exact()
        bins = int(np.ceil(np.log(self.HIGH_S / self.LOW_S) / np.log(self.RATIO))) + 1
        if self._weight is None:
            self._weight, self._sum = np.zeros(bins), np.zeros(bins)
        idx = np.log(np.maximum(values, self.LOW_S) / self.LOW_S) / np.log(self.RATIO)
        idx = np.clip(idx.astype(np.int64), 0, bins - 1)
        self._weight += np.bincount(idx, weights, bins)
        self._sum += np.bincount(idx, weights * values, bins)
        self._single, self._runs, self._held = array("d"), [], 0

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(gap values in s, weights)."""
        values, weights = self._exact()
        if self._weight is None:
            return values, weights
        held = self._weight > 0
        binned = self._sum[held] / self._weight[held]
        return np.concatenate([binned, values]), np.concatenate([self._weight[held], weights])


class Recorder:
    """Inter-token gaps (pooled, as weighted samples) and one timeline row per batch."""

    def __init__(self, timeline: bool = True):
        self.reset_gaps()
        self.timeline_enabled = timeline
        # (instance, start_s, end_s, kind, seqs, iterations, tokens)
        self.timeline: list[tuple[str, float, float, str, int, int, int]] = []
        self.transfers: list[tuple[str, float, float, str]] = []

    def reset_gaps(self) -> None:
        """Keep the inter-token gaps from now on only (a warmup's are not measured)."""
        self.itl = GapSketch()
        self.gap_list = self.itl.add_list
        self.gaps = self.itl.add_run

    def step(
        self,
        instance: str,
        start_s: float,
        end_s: float,
        kind: str,
        seqs: int,
        iterations: int,
        tokens: int | None = None,
    ) -> None:
        if self.timeline_enabled:
            self.timeline.append(
                (instance, start_s, end_s, kind, seqs, iterations, seqs * iterations if tokens is None else tokens)
            )

    def transfer(self, name: str, start_s: float, end_s: float, what: str) -> None:
        if self.timeline_enabled:
            self.transfers.append((name, start_s, end_s, what))

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(gap values in s, weights): every inter-token gap of the run."""
        return self.itl.samples()


class RequestLog:
    """One row per request, written when the request leaves (finished or failed): the simulator
    holds only the requests in flight, and memory grows by a few dozen bytes per request."""

    FLOATS = ("arrival_s", "first_token_s", "finish_s")
    INTS = ("cached_tokens", "preemptions", "max_output_tokens")  # output: what it was served
    TEXTS = ("path", "status", "fail_reason")

    def __init__(self, n: int):
        self.columns: dict[str, np.ndarray] = {}
        for name in self.FLOATS:
            self.columns[name] = np.full(n, np.nan)
        for name in self.INTS:
            self.columns[name] = np.zeros(n, dtype=np.int64)
        self.columns["path"] = np.full(n, "", dtype=object)
        self.columns["status"] = np.full(n, "pending", dtype=object)
        self.columns["fail_reason"] = np.full(n, "", dtype=object)

    def record(self, req) -> None:
        i, c = req.id, self.columns
        for name in self.FLOATS + self.INTS + self.TEXTS:
            c[name][i] = getattr(req, name)

    def close(self, reason: str, arrivals) -> None:
        """Requests that never left fail with `reason` (their arrival as the workload has it)."""
        pending = self.columns["status"] == "pending"
        self.columns["arrival_s"][pending] = np.asarray(arrivals)[pending]
        self.columns["status"][pending] = "failed"
        self.columns["fail_reason"][pending] = reason
