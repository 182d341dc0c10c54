"""Train one XGBoost model per operator family from a GPU's calibration tables.

    train_gpu("h100-sxm") -> report; writes calibration/h100-sxm/predictors/<family>.json
                             (XGBoost's own JSON) and predictors/report.json

Each model predicts log(ms / roofline_ms) from the physics features of `features.py`. Accuracy is
measured on shapes held out of training (leave-shapes-out, never random rows):
- gemm: GroupKFold over (k, n): every m of a held-out weight shape is unseen;
- attention: GroupKFold over (head config, sequence / KV length): every batch size of a held-out
  (heads, length) pair is unseen; a second, harder split leaves whole head configs out;
- grouped GEMM: GroupKFold over (model, projection): a whole MoE layer shape is unseen.
The final model is then fitted on every row. The ragged-batch check of the attention models is
in `ragged.py` and its result goes into the same report.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from frontier.errors import FrontierError
from frontier.predict import calibration as cal
from frontier.predict.features import AXES, FEATURES, axis_values, columns, features, log_target
from frontier.spec.hardware import GPUSpec, get_gpu

TARGET = "log(ms / (roofline_ms + floor_ms))"
FLOOR_FRACTION = 0.5  # floor_ms = half the fastest row of the table: the launch/latency floor
MODEL_FORMAT = 1
SEED = 0
N_SPLITS = 5
TARGET_MEDIAN_APE = 5.0
TARGET_P90_APE = 15.0

# Hyper-parameters (small tables). Checked on held-out shapes: eta 0.05 x 600 rounds of depth 6
# gains nothing over 0.1 x 250 of depth 5, and its model files are 3x bigger (slower to load).
BASE_PARAMS = {
    "objective": "reg:squarederror",
    "eta": 0.1,
    "max_depth": 5,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "tree_method": "hist",
    "seed": SEED,
    "nthread": 0,
}
ROUNDS = {
    "gemm": 250,
    "attn_prefill": 250,
    "attn_decode": 250,
    "grouped_gemm": 250,
    "elementwise": 200,
    "collective": 200,
}


def _heads(df: pd.DataFrame) -> pd.Series:
    return df["hq"].astype(str) + "/" + df["hkv"].astype(str) + "/" + df["d"].astype(str)


def _length(df: pd.DataFrame, family: str) -> pd.Series:
    if family == "attn_prefill":
        return (df["sum_q2"] / df["num_seqs"]).pow(0.5).round().astype(int).astype(str)
    return (df["sum_kv"] // df["batch"]).astype(str)


# Leave-shapes-out groups: rows sharing a group are held out together.
GROUPS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "gemm": lambda df: df["k"].astype(str) + "x" + df["n"].astype(str),
    "attn_prefill": lambda df: _heads(df) + "@" + _length(df, "attn_prefill"),
    "attn_decode": lambda df: _heads(df) + "@" + _length(df, "attn_decode"),
    "grouped_gemm": lambda df: (
        df["model"].astype(str) + "/" + df["proj"].astype(str)
        if {"model", "proj"} <= set(df.columns)
        else df["experts"].astype(str) + "/" + df["k"].astype(str) + "x" + df["n"].astype(str)
    ),
    "elementwise": lambda df: df["name"].astype(str) + "/" + df["width"].astype(str),
    "collective": lambda df: df["size_bytes"].astype(str),
}
GROUP_TEXT = {
    "gemm": "GroupKFold over (k, n): all m of a held-out weight shape unseen",
    "attn_prefill": "GroupKFold over (hq/hkv/d, seq): all batch sizes of a held-out (head config, length) unseen",
    "attn_decode": "GroupKFold over (hq/hkv/d, kv_len): all batch sizes of a held-out (head config, KV length) unseen",
    "grouped_gemm": "GroupKFold over (model, proj): a whole MoE projection shape unseen",
    "elementwise": "GroupKFold over (name, width)",
    "collective": "GroupKFold over message size",
}
SHORT_GROUPS = {
    "gemm": "(k, n)",
    "attn_prefill": "(heads, seq)",
    "attn_decode": "(heads, kv_len)",
    "grouped_gemm": "(model, proj)",
    "elementwise": "(name, width)",
    "collective": "size",
}
# A second, harder split reported alongside (not the target): whole head configs held out.
EXTRA_SPLITS = {
    "attn_prefill": ("leave-head-config-out", _heads),
    "attn_decode": ("leave-head-config-out", _heads),
}


# Backends trained as their own model file (<family>.<backend>.json) instead of a feature of the
# family's model: the per-expert `loop` runs one launch-bound GEMM per expert from Python, a
# different cost structure (and a 2x noisier measurement) than the one-kernel grouped GEMM.
SEPARATE_BACKENDS = {"grouped_gemm": ("loop",)}
SEPARATE_NOTES = {
    "loop": "one F.linear per active expert launched from Python: launch-bound, "
    "reps spread up to 97 % (ms vs ms_min); reported, not held to the target "
    "(serving engines run a grouped or fused MoE kernel)"
}


@dataclass
class FamilyData:
    family: str
    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    roof: np.ndarray  # the baseline the target is relative to: roofline + floor
    floor_ms: float
    ops: list
    grid: dict  # axis -> sorted grid values the model interpolates between


def family_data(table: pd.DataFrame, family: str, gpu: GPUSpec, floor_ms: float | None = None) -> FamilyData:
    """Features and target of a table. The baseline adds a constant floor to the roofline: tiny
    kernels cost a launch/latency floor the roofline knows nothing about."""
    table = table[table["ms"] > 0].reset_index(drop=True)
    ops = cal.ops_from_frame(table, family)
    x, roof = features(family, ops, gpu)
    ms = table["ms"].to_numpy()
    if floor_ms is None:
        floor_ms = FLOOR_FRACTION * float(ms.min())
    base = roof + floor_ms
    return FamilyData(family, table, x, log_target(ms, base), base, floor_ms, ops, make_grid(family, ops, gpu))


def make_grid(family: str, ops, gpu: GPUSpec) -> dict:
    """The distinct values of the family's size axes in the table (interpolation grid)."""
    if family not in AXES or not ops:
        return {}
    return {
        name: sorted(set(np.round(v, 6).tolist())) for name, v in axis_values(family, columns(family, ops, gpu)).items()
    }


def group_folds(groups: pd.Series, n_splits: int = N_SPLITS, seed: int = SEED) -> list[np.ndarray]:
    """Test-row indices per fold; each group lands in exactly one fold (balanced by rows)."""
    uniq = np.array(sorted(groups.unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    sizes = groups.value_counts()
    n_splits = min(n_splits, len(uniq))
    load = np.zeros(n_splits)
    fold_of = {}
    for g in sorted(uniq, key=lambda g: -sizes[g]):  # biggest groups first, to the lightest fold
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    assign = groups.map(fold_of).to_numpy()
    return [np.flatnonzero(assign == f) for f in range(n_splits)]


def fit_booster(x: np.ndarray, y: np.ndarray, family: str, names: list[str]):
    import xgboost as xgb

    dtrain = xgb.DMatrix(x, label=y, feature_names=names)
    return xgb.train(BASE_PARAMS, dtrain, num_boost_round=ROUNDS.get(family, 250))


def cross_validate(data: FamilyData, groups: pd.Series, gpu: GPUSpec) -> np.ndarray:
    """Out-of-fold predicted ms for every row, each from a model that never saw its group,
    through the same prediction path the simulator uses (grid interpolation included)."""
    from frontier.predict.xgb import XGBoostFamilyModel

    pred = np.full(len(data.y), np.nan)
    names = FEATURES[data.family]
    for test in group_folds(groups):
        train = np.setdiff1d(np.arange(len(data.y)), test)
        booster = fit_booster(data.x[train], data.y[train], data.family, names)
        model = XGBoostFamilyModel.from_booster(
            data.family, gpu, booster, data.floor_ms, make_grid(data.family, [data.ops[i] for i in train], gpu)
        )
        pred[test] = model.predict_ms([data.ops[i] for i in test])
    return pred


def ape_stats(pred_ms: np.ndarray, ms: np.ndarray) -> dict:
    ape = np.abs(pred_ms / ms - 1.0) * 100
    return {
        "median_ape": round(float(np.median(ape)), 2),
        "p90_ape": round(float(np.percentile(ape, 90)), 2),
        "max_ape": round(float(ape.max()), 2),
    }


def predictors_dir(gpu_dir: Path) -> Path:
    return Path(gpu_dir) / "predictors"


def save_booster(booster, path: Path, family: str, gpu: GPUSpec, data: FamilyData) -> None:
    booster.set_attr(
        frontier_family=family,
        frontier_gpu=gpu.name,
        frontier_target=TARGET,
        frontier_floor_ms=repr(data.floor_ms),
        frontier_grid=json.dumps(data.grid),
        frontier_features=json.dumps(FEATURES[family]),
        frontier_backends=json.dumps(
            sorted(data.frame["backend"].unique().tolist()) if "backend" in data.frame else []
        ),
        frontier_kinds=json.dumps(sorted(data.frame["name"].unique().tolist())) if family == "elementwise" else "",
        frontier_format=str(MODEL_FORMAT),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))


def train_family(
    table: pd.DataFrame, family: str, gpu: GPUSpec, *, validate: bool = True
) -> tuple[object, dict, FamilyData]:
    """Validate on held-out shapes, then fit on all rows. Returns (booster, report entry, data)."""
    data = family_data(table, family, gpu)
    entry: dict = {
        "rows": int(len(data.y)),
        "features": FEATURES[family],
        "target": TARGET,
        "floor_ms": round(data.floor_ms, 5),
    }
    if "backend" in data.frame:
        entry["backends"] = sorted(data.frame["backend"].unique().tolist())
    if validate:
        groups = GROUPS[family](data.frame)
        oof = cross_validate(data, groups, gpu)
        ms = data.frame["ms"].to_numpy()
        entry.update(ape_stats(oof, ms))
        entry["validation"] = (
            f"{GROUP_TEXT[family]}; {min(N_SPLITS, groups.nunique())} folds, {groups.nunique()} held-out shape groups"
        )
        if "backend" in data.frame and data.frame["backend"].nunique() > 1:
            entry["by_backend"] = {
                b: ape_stats(oof[m], ms[m])
                for b, m in (
                    (b, (data.frame["backend"] == b).to_numpy()) for b in sorted(data.frame["backend"].unique())
                )
            }
        if family in EXTRA_SPLITS:
            name, fn = EXTRA_SPLITS[family]
            extra = cross_validate(data, fn(data.frame), gpu)
            entry[name] = ape_stats(extra, ms)
        entry["meets_target"] = bool(entry["median_ape"] <= TARGET_MEDIAN_APE and entry["p90_ape"] <= TARGET_P90_APE)
    booster = fit_booster(data.x, data.y, family, FEATURES[family])
    return booster, entry, data


def train_gpu(
    gpu: GPUSpec | str,
    calibration_dir: Path | str | None = None,
    progress: bool = True,
    families: list[str] | None = None,
    validate: bool = True,
    console=None,
) -> dict:
    """Train every family that has a table; write predictors and report.json; print a table."""
    from rich.console import Console
    from rich.progress import Progress

    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    gpu_dir = cal.calibration_dir(spec.name, calibration_dir)
    available = cal.table_families(gpu_dir)
    todo = [f for f in (families or available) if f in available]
    if not todo:
        raise FrontierError(
            f"no calibration tables for {spec.name} in {gpu_dir / 'tables'}; "
            f"run the profiler or import a calibration first"
        )
    console = console or Console(stderr=True)
    report: dict = {
        "gpu": spec.name,
        "trained": _dt.datetime.now().isoformat(timespec="seconds"),
        "xgboost": _xgb_version(),
        "target": TARGET,
        "accuracy_target": {"median_ape": TARGET_MEDIAN_APE, "p90_ape": TARGET_P90_APE},
        "families": {},
    }
    out_dir = predictors_dir(gpu_dir)
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("training", total=len(todo))
        for family in todo:
            bar.update(task, description=f"training {family}")
            t0 = time.perf_counter()
            table = cal.read_table(gpu_dir, family)
            for stale in [out_dir / f"{family}.json", *out_dir.glob(f"{family}.*.json")]:
                stale.unlink(missing_ok=True)
            parts = split_backends(table, family)
            entry = None
            for name, part in parts.items():
                booster, part_entry, data = train_family(part, family, spec, validate=validate)
                fname = f"{family}.json" if name == "*" else f"{family}.{name}.json"
                save_booster(booster, out_dir / fname, family, spec, data)
                if validate and family in ("attn_prefill", "attn_decode"):
                    from frontier.predict.ragged import ragged_check

                    part_entry["ragged_check"] = ragged_check(part, family, spec, booster, data.floor_ms, data.grid)
                if name == "*":
                    entry = part_entry
                else:
                    if name in SEPARATE_NOTES:
                        part_entry["note"] = SEPARATE_NOTES[name]
                    entry.setdefault("separate_backends", {})[name] = part_entry
            entry["train_s"] = round(time.perf_counter() - t0, 1)
            report["families"][family] = entry
            bar.advance(task)
    report_path = out_dir / "report.json"
    old = json.loads(report_path.read_text()) if report_path.exists() else None
    if families and old:  # a partial retrain keeps the other families' entries
        report["families"] = {**old.get("families", {}), **report["families"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    if old and _without_timings(old) == _without_timings(report):
        report = old  # same predictors: keep the file (and its date) so a checkout stays clean
    else:
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    if progress:
        print_report(report, console)
    return report


def _without_timings(report: dict) -> dict:
    """The report less what changes from run to run of the same training (date, seconds)."""
    families = {f: {k: v for k, v in e.items() if k != "train_s"} for f, e in report.get("families", {}).items()}
    return {**{k: v for k, v in report.items() if k != "trained"}, "families": families}


def split_backends(table: pd.DataFrame, family: str) -> dict[str, pd.DataFrame]:
    """{"*": rows of the family's main model, backend: rows of a separately trained backend}."""
    separate = [b for b in SEPARATE_BACKENDS.get(family, ()) if "backend" in table and (table["backend"] == b).any()]
    main = table[~table["backend"].isin(separate)] if separate else table
    if main.empty:  # only separate backends: the first one becomes the main model
        main, separate = table[table["backend"] == separate[0]], separate[1:]
    parts = {"*": main.reset_index(drop=True)}
    for b in separate:
        parts[b] = table[table["backend"] == b].reset_index(drop=True)
    return parts


def _xgb_version() -> str:
    import xgboost as xgb

    return xgb.__version__


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(
        title=f"predictors for {report['gpu']}: absolute % error on held-out shapes "
        f"(target: median <= {TARGET_MEDIAN_APE:g}, p90 <= {TARGET_P90_APE:g})"
    )
    for col in ("family", "rows", "median %", "p90 %", "target", "held out", "ragged check"):
        table.add_column(col, justify="right" if col in ("rows", "median %", "p90 %") else "left")

    def row(name: str, e: dict) -> None:
        ok = e.get("meets_target")
        ragged = e.get("ragged_check")
        table.add_row(
            name,
            str(e["rows"]),
            f"{e['median_ape']:.1f}" if "median_ape" in e else "-",
            f"{e['p90_ape']:.1f}" if "p90_ape" in e else "-",
            "-" if ok is None else ("[green]met[/]" if ok else ("[yellow]n/a[/]" if "note" in e else "[red]missed[/]")),
            SHORT_GROUPS.get(e.get("family_key", name.split(".")[0]), "-") if "validation" in e else "not validated",
            f"{ragged['inside_bracket_pct']:.0f} % in bracket" if ragged else "",
        )

    for family, e in report["families"].items():
        row(family, e)
        for backend, sub in e.get("separate_backends", {}).items():
            row(f"{family}.{backend}", {**sub, "family_key": family})
    console.print(table)
    console.print(f"wrote {report['gpu']} predictors and report.json", highlight=False)
