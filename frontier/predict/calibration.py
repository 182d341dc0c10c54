"""Calibration data on disk: per-GPU tables of measured operator timings and their meta.json.

Layout (one folder per GPU, named by the GPU's canonical name in `gpus.yaml`):

    calibration/<gpu>/meta.json            GPU, SMs, clocks, versions, date, method, sources
    calibration/<gpu>/tables/<family>.csv  one row = one measured shape
    calibration/<gpu>/predictors/*.json    trained models (see frontier/predict/train.py)

A table of family F has one column per field of F's operator class (`frontier/ops/operators.py`),
then `ms` (median) and `ms_min` (fastest rep); any other column is a label (model layer, head
config, routing skew, ...) that the predictors ignore. The profiler, the reference import below and
the aiconfigurator importer all write this one format.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from frontier.errors import FrontierError
from frontier.ops.operators import (
    FAMILIES,
    OPERATOR_CLASSES,
    TIME_COLUMNS,
    AttnDecode,
    AttnPrefill,
    Operator,
    table_fields,
)
from frontier.paths import CALIBRATION_DIR

REFERENCE_PROVENANCE = "reference measurements, one H100 SXM, see method"
REFERENCE_FILES = ("gemm", "attn_prefill", "attn_decode", "grouped_gemm")


# --------------------------------------------------------------------------- contract columns
def _table_fields(family: str) -> tuple[dataclasses.Field, ...]:
    return table_fields(op_class(family))


def field_columns(family: str) -> list[str]:
    """The operator-field columns of a family's table, in dataclass order."""
    return [f.name for f in _table_fields(family)]


def required_columns(family: str) -> list[str]:
    """Fields without a default (must be in the table) plus `ms`."""
    return [f.name for f in _table_fields(family) if f.default is dataclasses.MISSING] + ["ms"]


def op_class(family: str) -> type:
    try:
        return OPERATOR_CLASSES[family]
    except KeyError:
        raise FrontierError(f"unknown operator family '{family}'; known: {', '.join(FAMILIES)}") from None


def _defaults(family: str) -> dict:
    return {f.name: f.default for f in _table_fields(family) if f.default is not dataclasses.MISSING}


def _coerce(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """Fill defaulted fields, cast ints and strings to the dataclass types."""
    df = df.copy()
    for name, value in _defaults(family).items():
        if name not in df.columns:
            df[name] = value
        else:
            df[name] = df[name].fillna(value)
    for f in _table_fields(family):
        if f.type in ("int", int):
            df[f.name] = df[f.name].astype(np.int64)
        elif f.type in ("str", str):
            df[f.name] = df[f.name].astype(str)
    if "ms_min" not in df.columns:
        df["ms_min"] = df["ms"]
    return df


def check_columns(df: pd.DataFrame, family: str, where: str) -> None:
    missing = [c for c in required_columns(family) if c not in df.columns]
    if missing:
        raise FrontierError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"a {family} table needs {', '.join(required_columns(family))}"
        )


def order_columns(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """Contract columns first (fields, ms, ms_min), labels after."""
    first = field_columns(family) + list(TIME_COLUMNS)
    return df[first + [c for c in df.columns if c not in first]]


# --------------------------------------------------------------------------- paths, read, write
def calibration_dir(gpu: str, root: Path | str | None = None) -> Path:
    return Path(root or CALIBRATION_DIR) / gpu


def table_path(gpu_dir: Path, family: str) -> Path:
    return Path(gpu_dir) / "tables" / f"{family}.csv"


def table_families(gpu_dir: Path) -> list[str]:
    """Families with a table in this calibration folder, in FAMILIES order."""
    return [f for f in FAMILIES if table_path(gpu_dir, f).exists()]


def read_table(gpu_dir: Path, family: str) -> pd.DataFrame:
    path = table_path(gpu_dir, family)
    if not path.exists():
        raise FrontierError(f"no {family} table at {path}")
    df = pd.read_csv(path)
    check_columns(df, family, str(path))
    return _coerce(df, family)


def write_table(df: pd.DataFrame, gpu_dir: Path, family: str) -> Path:
    check_columns(df, family, f"{family} table")
    df = order_columns(_coerce(df, family), family)
    path = table_path(gpu_dir, family)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def read_meta(gpu_dir: Path) -> dict:
    path = Path(gpu_dir) / "meta.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_meta(gpu_dir: Path, meta: dict) -> Path:
    path = Path(gpu_dir) / "meta.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    return path


def calibration_kind(gpu_dir: Path) -> str:
    """`imported` when every table of the folder came from a published perf database
    (aiconfigurator), else `measured` (the reference measurements or our profiler)."""
    sources = read_meta(gpu_dir).get("sources", {})
    tables = [s for family, s in sources.items() if family in FAMILIES]
    imported = [s for s in tables if "aiconfigurator" in str(s.get("provenance", ""))]
    return "imported" if tables and len(imported) == len(tables) else "measured"


# --------------------------------------------------------------------------- rows <-> operators
def ops_from_frame(df: pd.DataFrame, family: str) -> list[Operator]:
    """One operator per row (label columns ignored)."""
    cls = op_class(family)
    cols = field_columns(family)
    df = _coerce(df, family) if any(c not in df.columns for c in cols) else df
    values = [df[c].tolist() for c in cols]
    return [cls(*row) for row in zip(*values)]


def frame_from_ops(ops: Sequence[Operator]) -> pd.DataFrame:
    """Field columns of a list of same-family operators."""
    return pd.DataFrame([op_fields(op) for op in ops])


def op_fields(op: Operator) -> dict:
    """An operator's table columns (its fields less the TABLE_EXEMPT ones)."""
    return {name: getattr(op, name) for name in field_columns(op.family)}


# --------------------------------------------------------------------------- reference import
def convert_reference(family: str, raw: pd.DataFrame) -> pd.DataFrame:
    """One reference CSV (../shared/h100-reference) -> the contract schema of its family."""
    if family == "gemm":
        out = raw.copy()
        out["dtype"] = "bf16"
        return order_columns(out, "gemm")
    if family == "attn_prefill":
        ops = [
            AttnPrefill.uniform(int(r.batch), int(r.seq), int(r.hq), int(r.hkv), int(r.d), backend=str(r.backend))
            for r in raw.itertuples()
        ]
        out = frame_from_ops(ops)
        labels = raw[[c for c in raw.columns if c not in out.columns]].reset_index(drop=True)
        return order_columns(pd.concat([out, labels], axis=1), family)
    if family == "attn_decode":
        ops = [
            AttnDecode.uniform(int(r.batch), int(r.kv_len), int(r.hq), int(r.hkv), int(r.d), backend=str(r.backend))
            for r in raw.itertuples()
        ]
        out = frame_from_ops(ops)
        labels = raw[[c for c in raw.columns if c not in out.columns]].reset_index(drop=True)
        return order_columns(pd.concat([out, labels], axis=1), family)
    if family == "grouped_gemm":
        out = raw.rename(columns={"impl": "backend"}).copy()
        out["dtype"] = "bf16"
        return order_columns(out, family)
    raise FrontierError(f"no reference conversion for family '{family}'")


def _readme_method(readme: Path) -> tuple[str, int | None]:
    """The method section and the SM clock (MHz) of the reference README."""
    if not readme.exists():
        return "", None
    text = readme.read_text()
    m = re.search(r"## Method[^\n]*\n(.*?)(?=\n## |\Z)", text, re.S)
    method = " ".join(line.strip(" -") for line in (m.group(1) if m else "").splitlines() if line.strip())
    clock = re.search(r"SM clock (\d+) MHz", text)
    return method, int(clock.group(1)) if clock else None


def import_reference(src_dir: Path | str, gpu: str = "h100-sxm", dest_root: Path | str | None = None) -> Path:
    """Convert ../shared/h100-reference into calibration/<gpu>/tables + meta.json.

    Keeps whatever meta.json already holds that the import does not set (e.g. the collective
    fit), so re-importing is safe.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise FrontierError(f"reference folder not found: {src}")
    gpu_dir = calibration_dir(gpu, dest_root)
    env = json.loads((src / "env.json").read_text()) if (src / "env.json").exists() else {}
    method, clock = _readme_method(src / "README.md")
    sources = {}
    for family in REFERENCE_FILES:
        path = src / f"{family}.csv"
        if not path.exists():
            continue
        table = convert_reference(family, pd.read_csv(path))
        write_table(table, gpu_dir, family)
        sources[family] = {"provenance": REFERENCE_PROVENANCE, "path": str(path.resolve()), "rows": int(len(table))}
    if not sources:
        raise FrontierError(f"{src}: none of {', '.join(f + '.csv' for f in REFERENCE_FILES)} found")
    measured = (
        _dt.date.fromtimestamp((src / "env.json").stat().st_mtime).isoformat() if (src / "env.json").exists() else None
    )
    meta = read_meta(gpu_dir)
    meta.update(
        {
            "gpu": gpu,
            "device_name": env.get("name"),
            "sm_count": env.get("sms"),
            "sm_clock_mhz": clock,
            "memory_gib": env.get("mem_gib"),
            "driver": env.get("driver"),
            "cuda": env.get("cuda"),
            "cudnn": env.get("cudnn"),
            "torch": env.get("torch"),
            "triton": env.get("triton"),
            "date": measured,
            "imported": _dt.date.today().isoformat(),
            "method": method,
            "tiny_kernel_wall_ms": env.get("tiny_kernel_wall_ms"),
        }
    )
    meta["sources"] = {**meta.get("sources", {}), **sources}
    write_meta(gpu_dir, meta)
    if (gpu_dir / PUBLISHED_NCCL).exists() and not table_path(gpu_dir, "collective").exists():
        attach_collective_fit(gpu_dir)
    return gpu_dir


# --------------------------------------------------------------------------- published collectives
PUBLISHED_NCCL = Path("published") / "nccl.csv"
COLLECTIVE_FIT_METHOD = (
    "Not measured here. Per link (nvlink, network), kind and world size: "
    "time = min over NCCL protocols of (alpha + wire_factor * size_bytes / busbw), wire_factor = "
    "nccl-tests' bus-bandwidth factor, fitted in relative error to the published points in "
    "published/nccl.csv (their `source` column names each figure). NVLink: NVIDIA's NCCL 2.29.2 "
    "sweep of 8x H100 SXM (2, 4, 8 GPUs, 256 B-512 MiB) shipped in the Apache-2.0 aiconfigurator "
    "package. Network: two anchors per kind for 2 nodes x 8 GPUs over 400 Gb/s NDR InfiniBand "
    "(small-message latency, large-message per-NIC bus bandwidth) from NVIDIA engineers' figures."
)


def attach_collective_fit(gpu_dir: Path, points_path: Path | None = None) -> dict:
    """Fit alpha-beta collectives to published points and store the fit in meta.json."""
    from frontier.predict.collective import fit_points

    gpu_dir = Path(gpu_dir)
    path = Path(points_path) if points_path else gpu_dir / PUBLISHED_NCCL
    if not path.exists():
        raise FrontierError(f"no published collective points at {path}")
    points = pd.read_csv(path)
    check = [c for c in ("kind", "size_bytes", "world", "link", "ms") if c not in points.columns]
    if check:
        raise FrontierError(f"{path}: missing columns {', '.join(check)}")
    fit = {
        "method": COLLECTIVE_FIT_METHOD,
        "points_file": str(path.relative_to(gpu_dir)) if path.is_relative_to(gpu_dir) else str(path),
        "sources": sorted(points["source"].dropna().unique().tolist()) if "source" in points else [],
        "fits": fit_points(points),
    }
    meta = read_meta(gpu_dir)
    meta["collective_fit"] = fit
    write_meta(gpu_dir, meta)
    return fit
