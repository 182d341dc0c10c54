"""XGBoost family models: load trained predictors and predict a batch of operators at once.

A family's predictor is `calibration/<gpu>/predictors/<family>.json` (XGBoost's own JSON), plus
`<family>.<backend>.json` for a backend trained as its own model (e.g. grouped_gemm.loop.json).
Each model predicts log(ms / (roofline_ms + floor_ms)); the floor and the feature list travel in
the model file's attributes, so a model file is self-describing.

Trees are piecewise constant; along each family's size axes (gemm: m; attention: batch count and
length) a prediction is interpolated log-linearly between the table's grid points around it
(stored in the model file), so it does not jump at every tree split.

The trees are therefore only ever evaluated at grid points, for a given operator shape (gemm:
k, n, dtype; attention: heads, head dims, backend): their answers are a small dense table per
shape, built with one XGBoost call at the shape's first use and cached on disk in
`<predictors>/cache/`, keyed by the model file's hash. A run whose tables are cached loads
neither the model files nor xgboost; predictions are the same numbers either way.

Attention batches are predicted through their equivalent uniform batch (same count, same causal
work or mean KV length). A ragged batch is then kept between two uniform batches the model
knows: its longest sequence alone (lower bound) and every sequence padded to the longest (upper
bound), and never below the time to read its bytes at full memory bandwidth. `ragged.py` checks this
against measured rows.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from frontier.predict.features import (
    AXES,
    BACKENDS,
    attention_bounds,
    axis_values,
    code,
    columns,
    is_ragged,
    matrix,
    memory_floor_ms,
    roofline_ms,
    take,
)
from frontier.spec.hardware import GPUSpec

ATTENTION = ("attn_prefill", "attn_decode")
# The operator fields that, with the size axes, make up a family's features: one table each.
SHAPE_COLUMNS = {
    "gemm": ("k", "n", "elem", "peak"),
    "attn_prefill": ("hq", "hkv", "d", "dv", "backend"),
    "attn_decode": ("hq", "hkv", "d", "dv", "backend"),
}


class XGBoostFamilyModel:
    """FamilyModel over one or more boosters of one family (one per backend where split)."""

    source = "xgboost"

    def __init__(self, family: str, gpu: GPUSpec, boosters: dict, default: str = "*"):
        self.family = family
        self.gpu = gpu
        # backend (or "*" for all others) -> xgboost.Booster, or the Path of its model file until
        # the first prediction needs it (a dense model never loads the MoE predictors).
        self.boosters = boosters
        self.files = {k: b for k, b in boosters.items() if isinstance(b, Path)}
        self.floors: dict[str, float] = {}
        self.grids: dict[str, dict] = {}
        self.default = default
        self._tables: dict[str, "GridTables"] = {}

    def tables(self, key: str) -> "GridTables":
        """The grid tables of one booster: from the disk cache when it matches the model file."""
        t = self._tables.get(key)
        if t is None:
            path = self.files.get(key)
            t = self._tables[key] = GridTables.load(path) if path is not None else None
            if t is None:
                self.booster(key)
                t = self._tables[key] = GridTables(path, self.floors[key], self.grids[key])
            self.floors.setdefault(key, t.floor)
            self.grids.setdefault(key, t.grid)
        return t

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
    def from_booster(cls, family: str, gpu: GPUSpec, booster, floor_ms: float | None = None, grid: dict | None = None):
        _single_thread(booster)
        model = cls(family, gpu, {"*": booster})
        if floor_ms is not None:
            model.floors["*"] = floor_ms
        if grid is not None:
            model.grids["*"] = grid
        return model

    @classmethod
    def load(cls, family: str, gpu: GPUSpec, predictors_dir: Path, lazy: bool = True) -> "XGBoostFamilyModel | None":
        """The family's model(s) in `predictors_dir`, or None when there is none.

        `lazy`: read a model file at its first prediction rather than now."""
        predictors_dir = Path(predictors_dir)
        main = predictors_dir / f"{family}.json"
        extra = sorted(predictors_dir.glob(f"{family}.*.json"))
        if not main.exists() and not extra:
            return None
        boosters = {
            ("*" if path == main else path.name[len(family) + 1 : -len(".json")]): path
            for path in ([main] if main.exists() else []) + extra
        }
        default = "*" if "*" in boosters else next(iter(boosters))
        model = cls(family, gpu, boosters, default)
        return model if lazy else model.load_all()

    def backends(self) -> list[str]:
        """Backends the model was trained on (from the model files)."""
        out = []
        for key in self.boosters:
            out += json.loads(self.booster(key).attr("frontier_backends") or "[]")
        return sorted(set(out))

    @functools.cached_property
    def kinds(self) -> set[str] | None:
        """Elementwise: the operator names the model was trained on (None: not recorded)."""
        names = self.booster(self.default).attr("frontier_kinds")
        return set(json.loads(names)) if names else None

    # ------------------------------------------------------------------ prediction
    def _key(self, op) -> str:
        backend = getattr(op, "backend", None)
        return backend if backend in self.boosters else self.default

    def predict_ms(self, ops: Sequence) -> np.ndarray:
        ops = list(ops)
        if not ops:
            return np.zeros(0)
        if self.family == "elementwise":
            # A kind the table never measured (the trees would file it under "other") is priced
            # by the roofline instead.
            known = self.kinds
            unknown = np.array([known is not None and op.name not in known for op in ops])
            if unknown.any():
                from frontier.predict.roofline import RooflineModel

                out = np.empty(len(ops))
                out[unknown] = RooflineModel(self.gpu).predict_ms([op for op, u in zip(ops, unknown) if u])
                if not unknown.all():
                    out[~unknown] = self.predict_ms([op for op, u in zip(ops, unknown) if not u])
                return out
        if len(self.boosters) == 1:
            return self._predict(ops, self.default)
        out = np.empty(len(ops))
        keys = [self._key(op) for op in ops]
        for key in set(keys):
            idx = [i for i, k in enumerate(keys) if k == key]
            out[idx] = self._predict([ops[i] for i in idx], key)
        return out

    def _predict(self, ops: list, key: str) -> np.ndarray:
        family, gpu = self.family, self.gpu
        tables = self.tables(key) if family in AXES else None
        if tables is None or not tables.grid:
            booster = self.booster(key)
            floor = self.floors[key]
            x, roof = matrix(family, columns(family, ops, gpu), gpu)
            return np.exp(booster.inplace_predict(x).astype(float)) * (roof + floor)
        floor = tables.floor
        if family == "attn_prefill" and len(ops) == 1:
            one = self._one_prefill(ops[0], tables)
            if one is not None:
                return np.array([one])
        cols = columns(family, ops, gpu)
        # Shapes to evaluate: the batch itself and, for ragged attention, its two bounds, all in
        # one pass: each at its own axes (the baseline) with the log ratio interpolated between
        # the grid points around them.
        n = len(ops)
        axes = axis_values(family, cols)
        ragged = np.flatnonzero(is_ragged(family, cols)) if family in ATTENTION else []
        if len(ragged):
            sub = take(cols, ragged)
            lower, upper = attention_bounds(family, sub)
            rows = np.concatenate([np.arange(n), ragged, ragged])
            cols = take(cols, rows)
            axes = {a: np.concatenate([axes[a], lower[a], upper[a]]) for a in AXES[family]}
        base = roofline_ms(family, cols, gpu, axes) + floor
        results = np.exp(tables.log_ratio(self, key, cols, axes)) * base
        pred, r = results[:n], len(ragged)
        if r:
            bound1, bound2 = results[n : n + r], results[n + r :]
            lo, hi = np.minimum(bound1, bound2), np.maximum(bound1, bound2)
            bounded = np.minimum(np.maximum(pred[ragged], lo), hi)  # np.clip, without its overhead
            pred[ragged] = np.maximum(bounded, memory_floor_ms(family, sub, gpu) + floor)
        return pred

    def _one_prefill(self, op, tables: "GridTables") -> float | None:
        """`_predict` of one prefill-attention operator (a step with several prefills at once asks
        for one new shape at a time) in Python floats: the same operations in the same order,
        with numpy only for log and exp (so the same roundings), in a tenth of the time that
        arrays of one row take. None when the operator's shape has no table yet."""
        gpu, floor = self.gpu, tables.floor
        hq, hkv, d, dv = float(op.hq), float(op.hkv), float(op.d), float(op.dv)
        shape = (hq, hkv, d, dv, code(op.backend, BACKENDS))
        table = tables.rows.get(shape)
        if table is None:
            if shape not in tables.shapes:
                return None
            table = tables.rows[shape] = tables.shapes[shape].tolist()
        num_seqs, sum_q, sum_qc, max_q, max_kv = (
            float(op.num_seqs),
            float(op.sum_q),
            float(op.sum_qc),
            float(op.max_q),
            float(op.max_kv),
        )
        # features.axis_values / attention_bounds / is_ragged
        seqs = max(num_seqs, 1.0)
        points = [(seqs, math.sqrt(max((2.0 * sum_qc + float(op.sum_q2)) / seqs, 1.0)))]
        if max_q * seqs != sum_q or sum_qc > 0 or max_kv != max_q:
            longest = math.sqrt(max(2.0 * max_q * max_kv - max_q * max_q, 1.0))
            points += [(1.0, longest), (seqs, longest)]
        # features._prefill's roofline at each point, plus the floor
        peak, bw = gpu.bf16_tflops * 1e12, gpu.mem_bw_gbps * 1e9
        base = []
        for n, length in points:
            flops = 2.0 * hq * n * 0.5 * length * length * (d + dv)
            bytes_ = 2.0 * n * length * (hq + hkv) * (d + dv)
            base.append(max(max(flops / peak * 1e3, bytes_ / bw * 1e3), 1e-6) + floor)
        # GridTables.log_ratio: bilinear in the log of both axes between the grid points
        logs = np.log(np.maximum(np.array(points, dtype=float), 1e-12)).tolist()
        grids = (tables.log_grid_list["seqs"], tables.log_grid_list["length"])
        ratios = []
        for lvs in logs:
            brackets = []
            for lg, lv in zip(grids, lvs):
                if len(lg) == 1:
                    brackets.append((0, 0, 0.0))
                else:
                    hi = min(max(bisect.bisect_left(lg, lv), 1), len(lg) - 1)
                    lo = hi - 1
                    brackets.append((lo, hi, min(max((lv - lg[lo]) / (lg[hi] - lg[lo]), 0.0), 1.0)))
            (lo1, hi1, w1), (lo2, hi2, w2) = brackets
            # The corners' weights and their sum in log_ratio's order (the same roundings).
            a, b, below, above = 1.0 - w1, w1, table[lo1], table[hi1]
            ratios.append(
                a * (1.0 - w2) * below[lo2] + a * w2 * below[hi2] + b * (1.0 - w2) * above[lo2] + b * w2 * above[hi2]
            )
        results = (np.exp(np.array(ratios, dtype=float)) * np.array(base)).tolist()
        pred = results[0]
        if len(results) == 1:
            return pred
        lo, hi = min(results[1], results[2]), max(results[1], results[2])
        bounded = min(max(pred, lo), hi)
        # features.memory_floor_ms
        q_o = sum_q * hq * (d + dv)
        kv = float(op.sum_kv) * hkv * (d + dv)
        return max(bounded, 2.0 * (q_o + kv) / bw * 1e3 + floor)


class GridTables:
    """A booster's answers at every grid point, per operator shape: {shape: array over the grid}.

    Stored beside the model file as cache/<model file>-<hash>.npz (with the floor and the grid),
    so later runs need neither the booster nor xgboost."""

    def __init__(self, source: Path | None, floor: float, grid: dict, shapes: dict | None = None):
        self.path = self.cache_path(source) if source is not None else None
        self.floor, self.grid = floor, grid
        self.shapes: dict[tuple, np.ndarray] = shapes or {}
        self.rows: dict[tuple, list] = {}  # a shape's table as Python lists (`_one_prefill`)
        self.log_grid = {a: np.log(np.asarray(g, dtype=float)) for a, g in grid.items()}
        self.log_grid_list = {a: g.tolist() for a, g in self.log_grid.items()}  # for bisect

    @staticmethod
    def cache_path(source: Path) -> Path:
        # The features the trees read are part of what the table holds.
        from frontier.predict import features

        digest = hashlib.sha1(source.read_bytes() + Path(features.__file__).read_bytes()).hexdigest()[:16]
        return source.parent / "cache" / f"{source.stem}-{digest}.npz"

    @classmethod
    def load(cls, source: Path) -> "GridTables | None":
        path = cls.cache_path(source)
        if not path.exists():
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                shapes = {tuple(k): z[f"t{i}"] for i, k in enumerate(meta["shapes"])}
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache is rebuilt
        return cls(source, meta["floor"], meta["grid"], shapes)

    def save(self) -> None:
        """Write the cache (atomically; a read-only calibration folder just goes uncached)."""
        path = self.path
        if path is None:
            return
        keys = list(self.shapes)
        meta = json.dumps({"floor": self.floor, "grid": self.grid, "shapes": [list(k) for k in keys]})
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(meta), **{f"t{i}": self.shapes[k] for i, k in enumerate(keys)})
            os.replace(tmp, path)
        except OSError:
            pass

    def log_ratio(self, model: XGBoostFamilyModel, key: str, cols: dict, at: dict) -> np.ndarray:
        """The booster's log ratio at axis values `at`, interpolated log-linearly between the grid
        points around them (outside the grid the nearest point counts), for operators of
        fields `cols`."""
        family = model.family
        # Per axis: the bracketing grid indices and the weight of the upper one.
        brackets = []
        for a in AXES[family]:
            lg = self.log_grid[a]
            lv = np.log(np.maximum(at[a], 1e-12))
            if len(lg) == 1:
                zero = np.zeros(len(lv), dtype=np.int64)
                brackets.append((zero, zero, np.zeros(len(lv))))
                continue
            # (np.minimum/np.maximum: np.clip costs several microseconds a call on small arrays)
            hi = np.minimum(np.maximum(np.searchsorted(lg, lv), 1), len(lg) - 1)
            lo = hi - 1
            brackets.append((lo, hi, np.minimum(np.maximum((lv - lg[lo]) / (lg[hi] - lg[lo]), 0.0), 1.0)))
        shape_cols = np.stack([cols[c] for c in SHAPE_COLUMNS[family]], axis=1)
        # Calls rarely mix shapes: group rows by shape without sorting them all.
        groups: dict[tuple, object] = {}
        if len(shape_cols) == 1 or (shape_cols == shape_cols[0]).all():
            groups[tuple(shape_cols[0].tolist())] = slice(None)
        else:
            for i, row in enumerate(map(tuple, shape_cols.tolist())):
                groups.setdefault(row, []).append(i)
        out = np.zeros(len(shape_cols))
        added = False
        for k, rows in groups.items():
            table = self.shapes.get(k)
            if table is None:
                table = self.shapes[k] = self._build(model, key, np.array(k))
                added = True
            corners = [(np.ones(len(out))[rows], ())]
            for lo, hi, w in brackets:
                corners = [
                    (cw * ww, idx + (i[rows],)) for cw, idx in corners for i, ww in ((lo, 1.0 - w[rows]), (hi, w[rows]))
                ]
            out[rows] = sum(cw * table[idx] for cw, idx in corners)
        if added:
            self.save()
        return out

    def _build(self, model: XGBoostFamilyModel, key: str, shape: np.ndarray) -> np.ndarray:
        """One XGBoost call over the whole grid for one operator shape."""
        family = model.family
        axes = AXES[family]
        mesh = np.meshgrid(*[np.asarray(self.grid[a], dtype=float) for a in axes], indexing="ij")
        n = mesh[0].size
        cols = {c: np.full(n, v) for c, v in zip(SHAPE_COLUMNS[family], shape)}
        x, _ = matrix(family, cols, model.gpu, {a: m.ravel() for a, m in zip(axes, mesh)})
        return model.booster(key).inplace_predict(x).astype(float).reshape(mesh[0].shape)


def _single_thread(booster) -> None:
    # Batches from the simulator are small: one thread avoids the thread-pool start-up per call.
    booster.set_param({"nthread": 1})
