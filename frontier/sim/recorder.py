"""What a run leaves behind besides request timestamps: token gaps and the batch timeline."""
from __future__ import annotations

import numpy as np


class Recorder:
    """Inter-token gaps (pooled, as weighted samples) and one timeline row per batch."""

    def __init__(self, timeline: bool = True):
        self._gaps: list[float] = []
        self._runs: list[tuple[np.ndarray, int]] = []
        self.timeline_enabled = timeline
        # (instance, start_s, end_s, kind, seqs, iterations, tokens)
        self.timeline: list[tuple[str, float, float, str, int, int, int]] = []
        self.transfers: list[tuple[str, float, float, str]] = []

    def gap(self, seconds: float) -> None:
        self._gaps.append(seconds)

    def gaps(self, seconds: np.ndarray, times: int) -> None:
        """Each of `seconds` occurred `times` times (one per request of a decode run)."""
        if len(seconds):
            self._runs.append((seconds, times))

    def step(self, instance: str, start_s: float, end_s: float, kind: str, seqs: int,
             iterations: int, tokens: int | None = None) -> None:
        if self.timeline_enabled:
            self.timeline.append((instance, start_s, end_s, kind, seqs, iterations,
                                  seqs * iterations if tokens is None else tokens))

    def transfer(self, name: str, start_s: float, end_s: float, what: str) -> None:
        if self.timeline_enabled:
            self.transfers.append((name, start_s, end_s, what))

    def itl_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(gap values in s, weights): every inter-token gap of the run."""
        values = [np.asarray(self._gaps, dtype=float)] + [r for r, _ in self._runs]
        weights = [np.ones(len(self._gaps))] + [np.full(len(r), w, dtype=float) for r, w in self._runs]
        return np.concatenate(values), np.concatenate(weights)
