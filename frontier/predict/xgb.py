"""XGBoost family models: load trained predictors and predict a batch of operators at once.

A family's predictor is `calibration/<gpu>/predictors/<family>.json` (XGBoost's own JSON), plus
`<family>.<backend>.json` for a backend trained as its own model (e.g. grouped_gemm.loop.json).
Each model predicts log(ms / (roofline_ms + floor_ms)); the floor and the feature list travel in
the model file's attributes, so a model file is self-describing.

Trees are piecewise constant; along each family's size axes (gemm: m; attention: batch count and
length) a prediction is interpolated log-linearly between the table's grid points around it
(stored in the model file), so it does not jump at every tree split.

Attention batches are predicted through their equivalent uniform batch (same count, same causal
work or mean KV length). A ragged batch is then kept between two uniform batches the model
knows: its longest sequence alone (lower bound) and every sequence padded to the longest (upper
bound), and never below the time to read its bytes at full memory bandwidth. `ragged.py` checks this
against measured rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from frontier.predict.features import (AXES, attention_bounds, axis_values, columns, corners,
                                       is_ragged, matrix, memory_floor_ms, stack, take)
from frontier.spec.hardware import GPUSpec

ATTENTION = ("attn_prefill", "attn_decode")


class XGBoostFamilyModel:
    """FamilyModel over one or more boosters of one family (one per backend where split)."""

    source = "xgboost"

    def __init__(self, family: str, gpu: GPUSpec, boosters: dict, default: str = "*"):
        self.family = family
        self.gpu = gpu
        # backend (or "*" for all others) -> xgboost.Booster, or the Path of its model file until
        # the first prediction needs it (a dense model never loads the MoE predictors).
        self.boosters = boosters
        self.floors: dict[str, float] = {}
        self.grids: dict[str, dict] = {}
        self.default = default

    def booster(self, key: str):
        b = self.boosters[key]
        if isinstance(b, Path):
            import xgboost as xgb

            b = xgb.Booster()
            b.load_model(str(self.boosters[key]))
            _single_thread(b)
            self.boosters[key] = b
        if key not in self.floors:
            self.floors[key] = float(b.attr("frontier_floor_ms") or 0.0)
        if key not in self.grids:
            self.grids[key] = json.loads(b.attr("frontier_grid") or "{}")
        return b

    def load_all(self) -> "XGBoostFamilyModel":
        for key in self.boosters:
            self.booster(key)
        return self

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_booster(cls, family: str, gpu: GPUSpec, booster, floor_ms: float | None = None,
                     grid: dict | None = None):
        _single_thread(booster)
        model = cls(family, gpu, {"*": booster})
        if floor_ms is not None:
            model.floors["*"] = floor_ms
        if grid is not None:
            model.grids["*"] = grid
        return model

    @classmethod
    def load(cls, family: str, gpu: GPUSpec, predictors_dir: Path,
             lazy: bool = True) -> "XGBoostFamilyModel | None":
        """The family's model(s) in `predictors_dir`, or None when there is none.

        `lazy`: read a model file at its first prediction rather than now."""
        predictors_dir = Path(predictors_dir)
        main = predictors_dir / f"{family}.json"
        extra = sorted(predictors_dir.glob(f"{family}.*.json"))
        if not main.exists() and not extra:
            return None
        boosters = {("*" if path == main else path.name[len(family) + 1:-len(".json")]): path
                    for path in ([main] if main.exists() else []) + extra}
        default = "*" if "*" in boosters else next(iter(boosters))
        model = cls(family, gpu, boosters, default)
        return model if lazy else model.load_all()

    def backends(self) -> list[str]:
        """Backends the model was trained on (from the model files)."""
        out = []
        for key in self.boosters:
            out += json.loads(self.booster(key).attr("frontier_backends") or "[]")
        return sorted(set(out))

    # ------------------------------------------------------------------ prediction
    def _key(self, op) -> str:
        backend = getattr(op, "backend", None)
        return backend if backend in self.boosters else self.default

    def predict_ms(self, ops: Sequence) -> np.ndarray:
        ops = list(ops)
        if not ops:
            return np.zeros(0)
        if len(self.boosters) == 1:
            return self._predict(ops, self.default)
        out = np.empty(len(ops))
        keys = [self._key(op) for op in ops]
        for key in set(keys):
            idx = [i for i, k in enumerate(keys) if k == key]
            out[idx] = self._predict([ops[i] for i in idx], key)
        return out

    def _predict(self, ops: list, key: str) -> np.ndarray:
        booster = self.booster(key)
        floor, grid = self.floors[key], self.grids[key]
        family, gpu = self.family, self.gpu
        cols = columns(family, ops, gpu)
        if family not in AXES or not grid:
            x, roof = matrix(family, cols, gpu)
            return np.exp(booster.inplace_predict(x).astype(float)) * (roof + floor)
        # Shapes to evaluate: the batch itself and, for ragged attention, its two bounds.
        plan = [(cols, axis_values(family, cols))]
        ragged = np.flatnonzero(is_ragged(family, cols)) if family in ATTENTION else []
        if len(ragged):
            sub = take(cols, ragged)
            lower, upper = attention_bounds(family, sub)
            plan += [(sub, lower), (sub, upper)]
        # Every evaluation in one feature matrix: per shape its own axes (for the baseline) and
        # the grid corners around them (for the interpolated log ratio).
        blocks, weights = [], []
        for part, axes in plan:
            blocks.append((part, axes))
            for at, w in corners(axes, grid):
                blocks.append((part, at))
                weights.append(w)
        x, roof = matrix(family, stack([p for p, _ in blocks]), gpu,
                         {a: np.concatenate([ax[a] for _, ax in blocks]) for a in AXES[family]})
        sizes = [len(next(iter(p.values()))) for p, _ in blocks]
        starts = np.cumsum([0] + sizes)
        is_corner = np.ones(len(roof), dtype=bool)
        per_shape = 1 + len(weights) // len(plan)
        for b in range(0, len(blocks), per_shape):
            is_corner[starts[b]:starts[b + 1]] = False
        y = np.empty(len(roof))
        y[is_corner] = booster.inplace_predict(x[is_corner]).astype(float)  # one call
        results, w_i = [], 0
        for b in range(0, len(blocks), per_shape):
            base = roof[starts[b]:starts[b + 1]] + floor
            log_ratio = np.zeros(len(base))
            for c in range(b + 1, b + per_shape):
                log_ratio += weights[w_i] * y[starts[c]:starts[c + 1]]
                w_i += 1
            results.append(np.exp(log_ratio) * base)
        pred = results[0]
        if len(ragged):
            lo, hi = np.minimum(results[1], results[2]), np.maximum(results[1], results[2])
            bounded = np.clip(pred[ragged], lo, hi)
            pred[ragged] = np.maximum(bounded, memory_floor_ms(family, sub, gpu) + floor)
        return pred


def _single_thread(booster) -> None:
    # Batches from the simulator are small: one thread avoids the thread-pool start-up per call.
    booster.set_param({"nthread": 1})
