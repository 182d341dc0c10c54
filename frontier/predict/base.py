"""The predictor interface: operators in, milliseconds out, memoised.

A `FamilyModel` predicts one operator family (gemm, attn_decode, ...). A `Predictor` holds one
model per family for a GPU, falls back to the roofline for families it has no model for, and
memoises its answers: the simulator asks for the same shapes millions of times, so misses are
collected per family and predicted in one vectorised call. The memo is bounded (`MEMO_LIMIT`
operators, then it starts afresh), so a long run's memory does not grow with its distinct shapes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Protocol, Sequence

import numpy as np

from frontier.ops.operators import Operator, windowless


MEMO_LIMIT = 200_000


class FamilyModel(Protocol):
    """Latency model of one operator family."""

    source: str  # what the numbers come from: "xgboost", "roofline", "alpha-beta", ...

    def predict_ms(self, ops: Sequence[Operator]) -> np.ndarray: ...


class Predictor:
    """Per-family models for one GPU, with a fallback and a memo."""

    def __init__(self, gpu_name: str, models: dict[str, FamilyModel], fallback: FamilyModel):
        self.gpu_name = gpu_name
        self.models = dict(models)
        self.fallback = fallback
        self._memo: dict[Operator, float] = {}
        self.hits = 0
        self.misses = 0

    def model_for(self, family: str) -> FamilyModel:
        if family == "ep_exchange":  # expert-parallel traffic: link physics on any GPU
            from frontier.predict.links import EPExchangeModel

            return EPExchangeModel()
        return self.models.get(family, self.fallback)

    def sources(self, families: Iterable[str] | None = None) -> dict[str, str]:
        """Which source predicts each family, e.g. {"gemm": "xgboost", "collective": "alpha-beta"}."""
        from frontier.ops.operators import FAMILIES

        return {f: self.model_for(f).source for f in (families or FAMILIES)}

    def fallback_families(self) -> list[str]:
        from frontier.ops.operators import FAMILIES

        return [f for f in FAMILIES if f not in self.models]

    def op_ms(self, op: Operator) -> float:
        ms = self._memo.get(op)
        if ms is None:
            ms = self.ops_ms([op])[0]
        else:
            self.hits += 1
        return ms

    def ops_ms(self, ops: Sequence[Operator]) -> np.ndarray:
        memo = self._memo
        if len(memo) > MEMO_LIMIT:
            memo.clear()
        out = np.empty(len(ops))
        missing: dict[str, list[int]] = defaultdict(list)
        for i, op in enumerate(ops):
            ms = memo.get(op)
            if ms is None:
                missing[op.family].append(i)
            else:
                out[i] = ms
        self.hits += len(ops) - sum(len(v) for v in missing.values())
        for family, idx in missing.items():
            # Duplicates inside one call are predicted once.
            unique = list(dict.fromkeys(ops[i] for i in idx))
            model = self.model_for(family)
            # Sliding-window attention as it is to a model that knows windows, else windowless.
            values = model.predict_ms(unique if getattr(model, "windows", False) else [windowless(op) for op in unique])
            self.misses += len(unique)
            for op, ms in zip(unique, values):
                memo[op] = float(ms)
            for i in idx:
                out[i] = memo[ops[i]]
        return out
