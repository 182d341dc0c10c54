"""Import NVIDIA's aiconfigurator perf database (Apache-2.0) as Frontier calibration tables.

    frontier calibration import-aiconfigurator --system h100_sxm --backend vllm

aiconfigurator (the optional `aiconfigurator` extra of frontier-sim; the layout of 0.12)
ships per-system operator timings measured by its collectors, as parquet tables under
`aiconfigurator_core/systems/data/<system>/<op>/<backend>/<version>/`:
- gemm/<backend>/<v>/gemm_perf.parquet: m, n, k, gemm_dtype, kernel_source, latency (ms);
- attention/<backend>/<v>/context_attention_perf.parquet: batch_size, isl, num_heads,
  num_key_value_heads, head_dim, kv_cache_dtype, window_size, kernel_source, latency;
- attention/<backend>/<v>/generation_attention_perf.parquet: the same, one query token per
  sequence against a KV of isl + step tokens;
- moe/<backend>/<v>/moe_perf.parquet: a whole fused MoE layer (gate_up + activation + down):
  num_tokens, hidden_size, inter_size, topk, num_experts, moe_tp_size, moe_ep_size,
  distribution (balanced | power_law_<alpha>), moe_dtype, kernel_source, latency;
- comm/nccl/<v>/nccl_perf.parquet: op_name, num_gpus, message_size (elements of nccl_dtype),
  latency.

Conversion (each a pure function of a DataFrame, tested on hand-written samples):
- gemm: bf16 and fp8 rows, the dtype's most common kernel; ms = ms_min = latency.
- attention: bf16 KV cache, no sliding window; `AttnPrefill.uniform(batch, isl, ...)`,
  `AttnDecode.uniform(batch, isl + step, ...)`; backend `flash` for FlashAttention-3 (what vLLM runs
  on Hopper), else the kernel's name.
- moe: bf16, no expert parallelism (ep 1), TP-sharded intermediate; the fused layer's time is split
  into its two grouped GEMMs by their FLOPs share (gate_up 2/3, down 1/3: an approximation, the
  activation rides along); routing statistics from `routing.expected_routing` (balanced: exact;
  power_law_a: our Zipf gate model with skew a, an approximation of aiconfigurator's sampler).
- nccl: all_reduce, all_gather, reduce_scatter, alltoall -> collective table over nvlink.
Existing tables of the target GPU are kept unless `overwrite`: importing onto h100-sxm adds only
what the reference measurements lack (the NCCL table).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from frontier.errors import FrontierError, SpecError
from frontier.ops.operators import AttnDecode, AttnPrefill, GroupedGemm
from frontier.predict import calibration as cal
from frontier.ops.routing import expected_routing

EXTRA_HINT = (
    "the aiconfigurator importer needs the optional 'aiconfigurator' extra of "
    "frontier-sim: pip install 'aiconfigurator>=0.12'"
)
LICENSE = "Apache-2.0"
# family -> (op folder, file name, converter name); attention feeds two families.
FILES = {
    "gemm": ("gemm", "gemm_perf.parquet", "convert_gemm"),
    "attn_prefill": ("attention", "context_attention_perf.parquet", "convert_context_attention"),
    "attn_decode": ("attention", "generation_attention_perf.parquet", "convert_generation_attention"),
    "grouped_gemm": ("moe", "moe_perf.parquet", "convert_moe"),
    "collective": ("comm", "nccl_perf.parquet", "convert_nccl"),
}
DTYPES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "fp8": "fp8",
    "int8": "int8",
    "float": "fp32",
    "float32": "fp32",
}
NCCL_ELEM_BYTES = {"half": 2, "float16": 2, "bfloat16": 2, "int8": 1, "float": 4, "float32": 4}
NCCL_KINDS = {
    "all_reduce": "all_reduce",
    "all_gather": "all_gather",
    "reduce_scatter": "reduce_scatter",
    "alltoall": "all_to_all",
    "all_to_all": "all_to_all",
}


# --------------------------------------------------------------------------- converters
def _times(out: pd.DataFrame, latency: pd.Series) -> pd.DataFrame:
    out["ms"] = latency.to_numpy(dtype=float)
    out["ms_min"] = out["ms"]  # one figure per shape in the database
    return out


def _labels(out: pd.DataFrame, df: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        if c in df.columns:
            out[c] = df[c].to_numpy()
    return out


def convert_gemm(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["gemm_dtype"].isin(["bfloat16", "fp8"])].copy()
    df["dtype"] = df["gemm_dtype"].map(DTYPES)
    keep = []
    for _, g in df.groupby("dtype"):  # the dtype's default kernel: the one measured most
        kernel = g["kernel_source"].value_counts().idxmax()
        keep.append(g[g["kernel_source"] == kernel])
    df = pd.concat(keep) if keep else df.iloc[:0]
    df = df.drop_duplicates(["m", "k", "n", "dtype"]).reset_index(drop=True)
    out = pd.DataFrame(
        {"m": df["m"].astype(int), "k": df["k"].astype(int), "n": df["n"].astype(int), "dtype": df["dtype"]}
    )
    return _labels(_times(out, df["latency"]), df, ["kernel_source", "framework", "version"])


def _attention_rows(df: pd.DataFrame) -> pd.DataFrame:
    df = df[(df["kv_cache_dtype"] == "bfloat16") & (df.get("window_size", 0) == 0)]
    if "attn_dtype" in df.columns:
        df = df[df["attn_dtype"] == "bfloat16"]
    df = df.copy()
    df["hkv"] = np.where(df["num_key_value_heads"] > 0, df["num_key_value_heads"], df["num_heads"])
    df["backend"] = df["kernel_source"].map(attention_backend)
    return df.reset_index(drop=True)


def attention_backend(kernel_source: str) -> str:
    k = str(kernel_source).lower()
    if "fa3" in k or k.endswith("flash_attn") or k.endswith("flash_attention"):
        return "flash"
    return re.sub(r"^(vllm|sglang|trtllm)_", "", k)


def convert_context_attention(df: pd.DataFrame) -> pd.DataFrame:
    df = _attention_rows(df)
    df = df.drop_duplicates(["batch_size", "isl", "num_heads", "hkv", "head_dim", "backend"])
    ops = [
        AttnPrefill.uniform(
            int(r.batch_size), int(r.isl), int(r.num_heads), int(r.hkv), int(r.head_dim), backend=r.backend
        )
        for r in df.itertuples()
    ]
    out = cal.frame_from_ops(ops) if ops else pd.DataFrame(columns=cal.field_columns("attn_prefill"))
    out = _times(out, df["latency"])
    out["batch"], out["seq"] = df["batch_size"].to_numpy(), df["isl"].to_numpy()
    return _labels(out, df, ["kernel_source", "framework", "version"])


def convert_generation_attention(df: pd.DataFrame) -> pd.DataFrame:
    df = _attention_rows(df)
    df["kv_len"] = df["isl"] + df["step"]
    df = df.drop_duplicates(["batch_size", "kv_len", "num_heads", "hkv", "head_dim", "backend"])
    ops = [
        AttnDecode.uniform(
            int(r.batch_size), int(r.kv_len), int(r.num_heads), int(r.hkv), int(r.head_dim), backend=r.backend
        )
        for r in df.itertuples()
    ]
    out = cal.frame_from_ops(ops) if ops else pd.DataFrame(columns=cal.field_columns("attn_decode"))
    out = _times(out, df["latency"])
    out["kv_len"] = df["kv_len"].to_numpy()
    return _labels(out, df, ["kernel_source", "framework", "version"])


def moe_backend(kernel_source: str) -> str:
    k = str(kernel_source).lower()
    for name in ("triton", "cutlass", "flashinfer", "deepgemm", "marlin"):
        if name in k:
            return name
    return k


def _routing(tokens: int, experts: int, topk: int, distribution: str) -> tuple[int, int, float]:
    if distribution == "balanced":
        rows = tokens * topk
        return math.ceil(rows / experts), min(experts, rows), 0.0
    m = re.match(r"power_law_([0-9.]+)", str(distribution))
    skew = float(m.group(1)) if m else 0.0
    busiest, active = expected_routing(tokens, experts, topk, skew)
    return busiest, active, skew


def convert_moe(df: pd.DataFrame) -> pd.DataFrame:
    df = df[(df["moe_dtype"] == "bfloat16") & (df["moe_ep_size"] == 1)]
    df = df.drop_duplicates(
        [
            "num_tokens",
            "hidden_size",
            "inter_size",
            "topk",
            "num_experts",
            "moe_tp_size",
            "distribution",
            "kernel_source",
        ]
    ).reset_index(drop=True)
    rows = []
    for r in df.itertuples():
        inter = int(r.inter_size) // int(r.moe_tp_size)
        busiest, active, skew = _routing(int(r.num_tokens), int(r.num_experts), int(r.topk), r.distribution)
        backend = moe_backend(r.kernel_source)
        for proj, k, n, share in (
            ("gate_up", int(r.hidden_size), 2 * inter, 2.0 / 3.0),
            ("down", inter, int(r.hidden_size), 1.0 / 3.0),
        ):
            op = GroupedGemm(int(r.num_experts), int(r.topk), int(r.num_tokens), k, n, busiest, active, "bf16", backend)
            rows.append(
                {
                    **dataclasses.asdict(op),
                    "ms": float(r.latency) * share,
                    "ms_min": float(r.latency) * share,
                    "model": f"h{r.hidden_size}-i{r.inter_size}-e{r.num_experts}-tp{r.moe_tp_size}",
                    "proj": proj,
                    "skew": skew,
                    "distribution": r.distribution,
                    "fused_moe_ms": float(r.latency),
                    "split": f"{share:.3f} of fused MoE (FLOPs share)",
                    "kernel_source": r.kernel_source,
                }
            )
    if not rows:
        return pd.DataFrame(columns=cal.field_columns("grouped_gemm") + ["ms", "ms_min"])
    return pd.DataFrame(rows)


def convert_nccl(df: pd.DataFrame, dtype: str = "half") -> pd.DataFrame:
    df = df[(df["nccl_dtype"] == dtype) & df["op_name"].isin(list(NCCL_KINDS))]
    df = df.drop_duplicates(["op_name", "num_gpus", "message_size"]).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "kind": df["op_name"].map(NCCL_KINDS),
            "size_bytes": df["message_size"].astype(np.int64) * NCCL_ELEM_BYTES[dtype],
            "world": df["num_gpus"].astype(int),
            "link": "nvlink",
        }
    )
    out = _times(out, df["latency"])
    out["nccl_dtype"] = dtype
    return _labels(out, df, ["kernel_source", "version"])


# --------------------------------------------------------------------------- the database on disk
def systems_root() -> Path:
    """The perf-database root of the installed aiconfigurator (lazy import)."""
    try:
        import aiconfigurator_core as core  # aiconfigurator >= 0.12 keeps its data here

        root = Path(core.__file__).parent / "systems"
    except ImportError:
        try:
            import aiconfigurator as aic
        except ImportError:
            raise FrontierError(EXTRA_HINT) from None
        root = Path(aic.__file__).parent / "systems"
    if not (root / "data").is_dir():
        raise FrontierError(f"aiconfigurator found but without a perf database at {root / 'data'}; {EXTRA_HINT}")
    return root


def _version_key(v: str) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.\-+a-z]+", v) if x != "")


def find_table(system_dir: Path, family: str, backend: str, version: str | None = None) -> Path | None:
    op_dir, fname, _ = FILES[family]
    base = system_dir / op_dir / ("nccl" if family == "collective" else backend)
    if not base.is_dir():
        return None
    versions = [d.name for d in base.iterdir() if (d / fname).exists()]
    if version and family != "collective":
        versions = [v for v in versions if v == version]
    if not versions:
        return None
    return base / max(versions, key=_version_key) / fname


def convert(family: str, raw: pd.DataFrame) -> pd.DataFrame:
    return globals()[FILES[family][2]](raw)


def import_aiconfigurator(
    system: str,
    backend: str = "vllm",
    *,
    gpu: str | None = None,
    dest_root: Path | str | None = None,
    overwrite: bool = False,
    version: str | None = None,
    root: Path | None = None,
) -> dict:
    """Write the system's tables into calibration/<gpu>/tables; returns what was done."""
    from frontier.spec.hardware import get_gpu

    try:
        spec = get_gpu(gpu or system)
    except SpecError:
        raise FrontierError(
            f"no GPU spec matches aiconfigurator system '{system}'; pass --gpu NAME of a GPU in frontier/spec/gpus.yaml"
        ) from None
    root = Path(root) if root else systems_root()
    system_dir = root / "data" / system
    if not system_dir.is_dir():
        known = sorted(p.name for p in (root / "data").iterdir() if p.is_dir())
        raise FrontierError(f"aiconfigurator has no system '{system}'; known: {', '.join(known)}")
    gpu_dir = cal.calibration_dir(spec.name, dest_root)
    done: dict = {"gpu": spec.name, "written": {}, "kept": [], "missing": []}
    sources = {}
    device = None
    for family in FILES:
        path = find_table(system_dir, family, backend, version)
        if path is None:
            done["missing"].append(family)
            continue
        if cal.table_path(gpu_dir, family).exists() and not overwrite:
            done["kept"].append(family)
            continue
        raw = pd.read_parquet(path)
        table = convert(family, raw)
        if table.empty:
            done["missing"].append(family)
            continue
        device = device or (str(raw["device"].iloc[0]) if "device" in raw.columns else None)
        cal.write_table(table, gpu_dir, family)
        done["written"][family] = int(len(table))
        sources[family] = {
            "provenance": f"aiconfigurator perf database ({LICENSE}, NVIDIA), imported",
            "system": system,
            "backend": "nccl" if family == "collective" else backend,
            "version": path.parent.name,
            "file": str(path.relative_to(root)),
            "package": _package_version(),
            "rows": int(len(table)),
        }
    meta = cal.read_meta(gpu_dir)
    meta.setdefault("gpu", spec.name)
    meta.setdefault("device_name", device)
    meta.setdefault("sm_count", spec.sm_count)
    meta.setdefault(
        "method",
        "aiconfigurator collectors (see the aiconfigurator repository's "
        "collector/): kernels timed with CUDA events/graphs on the named "
        "framework version; no L2 flush between reps is guaranteed, so "
        "timings may differ from Frontier's profiler method",
    )
    meta.setdefault("date", _dt.date.today().isoformat())
    meta.setdefault("sources", {}).update(sources)
    if sources:
        cal.write_meta(gpu_dir, meta)
    return done


def _package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("aiconfigurator")
    except Exception:
        return None
