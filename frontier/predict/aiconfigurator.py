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
- gemm: bf16 and fp8 rows, the dtype's most common kernel; ms = ms_min = latency (FP8: below).
- attention: bf16 KV cache, no sliding window; `AttnPrefill.uniform(batch, isl, ...)`,
  `AttnDecode.uniform(batch, isl + step, ...)`; backend `flash` for FlashAttention-3 (what vLLM runs
  on Hopper), else the kernel's name.
- moe: bf16, no expert parallelism (ep 1), TP-sharded intermediate; the fused layer's time is split
  into its two grouped GEMMs by their FLOPs share (gate_up 2/3, down 1/3: an approximation, the
  activation rides along); routing statistics from `routing.expected_routing` (balanced: exact;
  power_law_a: our Zipf gate model with skew a, an approximation of aiconfigurator's sampler).
- nccl: all_reduce, all_gather, reduce_scatter, alltoall over nvlink -> the published points
  `published/nccl.csv` (rows of other sources, e.g. network figures, kept) and the alpha-beta
  fit in meta.json, as for h100-sxm: not a trained table, because the engines' custom all-reduce
  (frontier/predict/roofline.py) is not an NCCL kernel and must not be answered by an NCCL model.
Existing tables of the target GPU are kept unless `overwrite`: importing onto h100-sxm adds only
what the reference measurements lack (the NCCL table).

FP8 GEMMs. vLLM's FP8 collector (collector/vllm/collect_gemm.py of the aiconfigurator repository)
times `RowParallelLinear.forward` with `Fp8Config(activation_scheme="dynamic")`: the dynamic
activation quantisation kernels *plus* CUTLASS `cutlass_scaled_mm`. A served model quantises its
activations inside the preceding norm / SiLU kernel (vLLM's fusion passes; frontier/ops/graph.py
adds the one unfused quantisation), so the FP8 rows are trained on as the GEMM alone: minus
aiconfigurator's own quantisation timings of the same (m, k) (quantize/<backend>: static
quantisation + the dynamic scale's extra, kept in `quant_ms` and in published/quant_fp8.csv),
as aiconfigurator itself does (aic-core/rust/aiconfigurator-core/src/operators/gemm.rs). Without
those timings the FP8 rows are set aside in published/gemm_fp8.csv, untrained. meta.json
`sources.gemm.dtypes` says which dtypes the table holds; the others are roofline-scaled
(frontier/predict/scaled.py).

What is committed (`thin`, the default; `--all-rows` keeps everything): rows thinned by `THIN`
(below), and label columns constant over a table (or over each dtype: framework, version,
kernel) moved into meta.json, so a GPU's tables stay a few MB.
"""

from __future__ import annotations

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


# Rows kept by `thin` (why: the shapes a served LLM runs, at a few MB per GPU):
# - gemm: k and n of at least 128 (narrower weights are not LLM layers; aiconfigurator sweeps
#   32 and 64 for completeness), every m;
# - grouped_gemm: token counts that are powers of two (1-16384; the sweep adds 48, 80, 96, ... in
#   between, which the trees interpolate).
THIN = {
    "gemm": lambda df: (df["k"] >= 128) & (df["n"] >= 128),
    "grouped_gemm": lambda df: (df["tokens"] & (df["tokens"] - 1)) == 0,
}
# Labels that say how a row was made rather than what it is; dropped from a table when constant.
CONSTANT_LABELS = ("kernel_source", "framework", "version", "nccl_dtype", "split")
TRAINED_GEMM_DTYPE = "bf16"
THIN_TEXT = {
    "gemm": "k >= 128 and n >= 128",
    "grouped_gemm": "token counts that are powers of two",
}


def thin(family: str, table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Thinned rows and the constant labels moved out of them (for meta.json)."""
    keep = THIN.get(family)
    if keep is not None:
        table = table[keep(table)].reset_index(drop=True)
    labels = {}
    for col in CONSTANT_LABELS:
        if col not in table.columns:
            continue
        if table[col].nunique(dropna=False) <= 1:
            labels[col] = table[col].iloc[0] if len(table) else None
            table = table.drop(columns=col)
        elif "dtype" in table.columns and (table.groupby("dtype")[col].nunique(dropna=False) <= 1).all():
            labels[col] = {d: v for d, v in table.groupby("dtype")[col].first().items()}  # one per dtype
            table = table.drop(columns=col)
    # Derivable: fused_moe_ms = ms / the projection's share, split = that share, distribution = skew.
    table = table.drop(columns=[c for c in ("fused_moe_ms", "split", "distribution") if c in table.columns])
    return table, labels


def set_aside(
    family: str, table: pd.DataFrame, quant: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(rows to train on, {dtype: GEMM rows kept under published/}): see the module docstring.

    With `quant` (the FP8 activation-quantisation timings, `read_fp8_quant`) the FP8 GEMM rows are
    trained on as the GEMM alone: ms minus the quantisation they include (column `quant_ms`)."""
    if family != "gemm":
        return table, {}
    trained = [TRAINED_GEMM_DTYPE] + (["fp8"] if quant is not None else [])
    aside = {d: g.reset_index(drop=True) for d, g in table.groupby("dtype") if d not in trained}
    keep = table[table["dtype"].isin(trained)].reset_index(drop=True)
    if quant is not None:
        fp8 = keep["dtype"] == "fp8"
        q = keep.loc[fp8, ["m", "k"]].merge(quant, on=["m", "k"], how="left")
        q_ms = (q["scale_matrix_ms"] + q["compute_scale_ms"]).to_numpy()
        keep["quant_ms"] = 0.0
        keep.loc[fp8, "quant_ms"] = q_ms
        keep.loc[fp8, ["ms", "ms_min"]] = keep.loc[fp8, ["ms", "ms_min"]].sub(q_ms, axis=0).to_numpy()
        # a shape without a quantisation timing, or one it would leave at nothing, is not kept
        keep = keep[~(fp8 & ~(keep["ms"] > 0.2 * (keep["ms"] + keep["quant_ms"])))].reset_index(drop=True)
    return keep, aside


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
                    **cal.op_fields(op),
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
    thin_rows: bool = True,
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
    quant = read_fp8_quant(system_dir, backend, version)
    if quant is not None:
        path_q = gpu_dir / FP8_QUANT
        path_q.parent.mkdir(parents=True, exist_ok=True)
        quant.to_csv(path_q, index=False, float_format="%.6g")
        done["aside"] = {str(FP8_QUANT): int(len(quant))}
        sources["fp8_quant"] = {
            "provenance": f"aiconfigurator perf database ({LICENSE}, NVIDIA)",
            "system": system,
            "backend": backend,
            "file": f"data/{system}/quantize/{backend}",
            "package": _package_version(),
            "rows": int(len(quant)),
            "use": "subtracted from the FP8 GEMM rows (see FP8_QUANT)",
        }
    for family in FILES:
        path = find_table(system_dir, family, backend, version)
        if path is None:
            done["missing"].append(family)
            continue
        has = _has_nccl_points(gpu_dir) if family == "collective" else cal.table_path(gpu_dir, family).exists()
        if has and not overwrite:
            done["kept"].append(family)
            continue
        raw = pd.read_parquet(path)
        table = convert(family, raw)
        if table.empty:
            done["missing"].append(family)
            continue
        device = device or (str(raw["device"].iloc[0]) if "device" in raw.columns else None)
        table, aside = set_aside(family, table, quant)
        if family == "collective":
            done["written"][family] = write_nccl_points(table, gpu_dir, _source_text(path, root))
            sources[family] = {
                "provenance": f"aiconfigurator perf database ({LICENSE}, NVIDIA), alpha-beta fit",
                "file": str(path.relative_to(root)),
                "package": _package_version(),
                "points": str(cal.PUBLISHED_NCCL),
                "rows": int(len(table)),
            }
            continue
        labels = {}
        if thin_rows:
            table, labels = thin(family, table)
            aside = {d: thin(family, rows) for d, rows in aside.items()}
        else:
            aside = {d: (rows, {}) for d, rows in aside.items()}
        cal.write_table(table, gpu_dir, family)
        done["written"][family] = int(len(table))
        for dtype, (rows, _) in aside.items():
            path_aside = gpu_dir / "published" / f"{family}_{dtype}.csv"
            path_aside.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(path_aside, index=False, float_format="%.6g")
            done.setdefault("aside", {})[str(path_aside.relative_to(gpu_dir))] = int(len(rows))
        sources[family] = {
            "provenance": f"aiconfigurator perf database ({LICENSE}, NVIDIA), imported",
            "system": system,
            "backend": "nccl" if family == "collective" else backend,
            "version": path.parent.name,
            "file": str(path.relative_to(root)),
            "package": _package_version(),
            "rows": int(len(table)),
            **({"dtypes": sorted(set(table["dtype"]))} if "dtype" in table.columns else {}),
            **({"labels": labels} if labels else {}),
            **({"thinned": THIN_TEXT[family]} if thin_rows and family in THIN_TEXT else {}),
            **(
                {
                    "set_aside": {
                        f"published/{family}_{d}.csv": {"rows": int(len(r)), **lab} for d, (r, lab) in aside.items()
                    }
                }
                if aside
                else {}
            ),
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


def _source_text(path: Path, root: Path) -> str:
    return f"aiconfigurator-core {_package_version()} ({LICENSE}, NVIDIA): systems/{path.relative_to(root)}, fp16 rows"


# aiconfigurator's own FP8 activation-quantisation timings (collector/vllm/collect_computescale.py):
# scale_matrix = the static per-tensor quantisation kernel, compute_scale = what dynamic per-token
# scaling adds to it. aiconfigurator subtracts them from its FP8 GEMM rows to get the GEMM alone
# (aic-core/rust/aiconfigurator-core/src/operators/gemm.rs, `fp8_static`); so does
# benchmarks/aic_compare.py.
FP8_QUANT = Path("published") / "quant_fp8.csv"


def read_fp8_quant(system_dir: Path, backend: str, version: str | None = None) -> pd.DataFrame | None:
    """m, k, scale_matrix_ms, compute_scale_ms of the system's FP8 quantisation tables, or None."""
    frames = {}
    for name, fname in (("scale_matrix", "scale_matrix_perf.parquet"), ("compute_scale", "computescale_perf.parquet")):
        path = _newest(system_dir / "quantize" / backend, fname, version)
        if path is None:
            return None
        df = pd.read_parquet(path)
        df = df[df["quant_dtype"] == "fp8"].drop_duplicates(["m", "k"])
        frames[name] = df.set_index(["m", "k"])["latency"].rename(f"{name}_ms")
    return pd.concat(frames.values(), axis=1, join="inner").reset_index().sort_values(["k", "m"])


def _newest(base: Path, fname: str, version: str | None = None) -> Path | None:
    if not base.is_dir():
        return None
    versions = [d.name for d in base.iterdir() if (d / fname).exists() and (version is None or d.name == version)]
    return base / max(versions, key=_version_key) / fname if versions else None


def _has_nccl_points(gpu_dir: Path) -> bool:
    path = Path(gpu_dir) / cal.PUBLISHED_NCCL
    return path.exists() and pd.read_csv(path)["source"].astype(str).str.startswith("aiconfigurator").any()


def write_nccl_points(table: pd.DataFrame, gpu_dir: Path, source: str) -> int:
    """Replace the aiconfigurator rows of published/nccl.csv (other sources kept), refit."""
    path = Path(gpu_dir) / cal.PUBLISHED_NCCL
    points = table[["kind", "size_bytes", "world", "link", "ms"]].assign(source=source)
    if path.exists():
        old = pd.read_csv(path)
        points = pd.concat([points, old[~old["source"].astype(str).str.startswith("aiconfigurator")]])
    path.parent.mkdir(parents=True, exist_ok=True)
    points.to_csv(path, index=False, float_format="%.6g")
    cal.attach_collective_fit(gpu_dir)
    return int(len(table))


def _package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("aiconfigurator")
    except Exception:
        return None
