"""Roofline-scaled predictions against an imported calibration (H100 -> H200 by default).

    .venv/bin/python benchmarks/aic_compare.py [--gpu h200] [--ref h100-sxm] [-o aic_compare.json]

For every row of calibration/aiconfigurator/<gpu>/tables (NVIDIA's measurements, imported from
aiconfigurator; `--imported` names another calibration root),
the time Frontier predicts for that shape *without* <gpu>'s own calibration: the tables of <ref>
scaled by per-operator roofline ratios (frontier/predict/scaled.py), exactly what
`load_predictor(gpu)` answers when calibration/<gpu>/predictors is absent. Collectives: the
points of published/nccl.csv. Reported per family (and GEMM m range): median APE and median
bias (predicted / measured - 1; negative = predicted faster).

FP8: aiconfigurator's FP8 GEMM rows time `RowParallelLinear.forward` with dynamic activation
scales, i.e. the activation quantisation kernel(s) plus the CUTLASS GEMM. They are compared as
measured and minus aiconfigurator's own quantisation timings (published/quant_fp8.csv: static
quantisation + dynamic-scale overhead, what aiconfigurator itself subtracts; the table keeps
them in `quant_ms`), against the scaled FP8 prediction from <ref> and against <gpu>'s own bf16
rows times the roofline FP8/bf16 ratio (what <gpu> predicts without FP8 rows).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from frontier.ops.operators import Collective, Gemm
from frontier.paths import CALIBRATION_DIR
from frontier.predict import calibration as cal
from frontier.predict import load_predictor
from frontier.predict.aiconfigurator import FP8_QUANT

M_RANGES = ((1, 16), (17, 256), (257, 1 << 30))


def stats(pred: np.ndarray, ms: np.ndarray) -> dict:
    ratio = np.asarray(pred, float) / np.asarray(ms, float)
    return {
        "rows": int(len(ratio)),
        "median_ape": round(float(np.median(np.abs(ratio - 1)) * 100), 1),
        "p90_ape": round(float(np.percentile(np.abs(ratio - 1), 90) * 100), 1),
        "bias": round(float(np.median(ratio - 1) * 100), 1),
    }


def by_m(df: pd.DataFrame, pred: np.ndarray, ms: np.ndarray) -> dict:
    out = {"all": stats(pred, ms)}
    for lo, hi in M_RANGES:
        sel = ((df["m"] >= lo) & (df["m"] <= hi)).to_numpy()
        if sel.any():
            out[f"m {lo}-{hi}" if hi < 1 << 30 else f"m {lo}+"] = stats(pred[sel], ms[sel])
    return out


def scaled_predictor(gpu: str, ref: str, root: Path):
    """`gpu`'s predictor from `ref`'s calibration alone (a folder holding only `ref`)."""
    tmp = Path(tempfile.mkdtemp(prefix="aic-compare-"))
    (tmp / ref).symlink_to((root / ref).resolve())
    return load_predictor(gpu, tmp)


def compare(gpu: str, ref: str, imported: Path, root: Path = CALIBRATION_DIR) -> dict:
    """`imported`: the calibration root holding `gpu`'s import; `root`: the one holding `ref`."""
    gpu_dir = imported / gpu
    scaled = scaled_predictor(gpu, ref, root)
    report: dict = {"gpu": gpu, "ref": ref, "families": {}}
    for family in cal.table_families(gpu_dir):
        table = cal.read_table(gpu_dir, family)
        table = table[table["ms"] > 0].reset_index(drop=True)
        name = family
        if family == "gemm":  # FP8 rows: see compare_fp8
            table, name = table[table["dtype"] == "bf16"].reset_index(drop=True), "gemm bf16"
        ops = cal.ops_from_frame(table, family)
        pred = scaled.ops_ms(ops)
        ms = table["ms"].to_numpy()
        report["families"][name] = by_m(table, pred, ms) if family == "gemm" else {"all": stats(pred, ms)}
        if family == "gemm":  # the weight shapes the reference GPU measured itself (no extrapolation)
            ref_shapes = cal.read_table(root / ref, "gemm")[["k", "n"]].drop_duplicates()
            both = table.reset_index().merge(ref_shapes, on=["k", "n"])["index"].to_numpy()
            if len(both):
                report["families"][f"gemm bf16, (k, n) measured on {ref}"] = by_m(
                    table.iloc[both].reset_index(drop=True), pred[both], ms[both]
                )
    nccl = gpu_dir / cal.PUBLISHED_NCCL
    if nccl.exists():
        pts = pd.read_csv(nccl)
        pts = pts[pts["source"].astype(str).str.startswith("aiconfigurator")]
        ops = [Collective(r.kind, int(r.size_bytes), int(r.world), r.link) for r in pts.itertuples()]
        report["families"]["collective (NCCL, nvlink)"] = {"all": stats(scaled.ops_ms(ops), pts["ms"].to_numpy())}
    rows = fp8_rows(gpu_dir)
    if rows is not None:
        report["fp8"] = compare_fp8(rows, scaled, load_predictor(gpu, imported), gpu_dir)
    return report


def fp8_rows(gpu_dir: Path) -> pd.DataFrame | None:
    """m, k, n, ms (as aiconfigurator measured it: quantisation + GEMM), quant_ms, or None."""
    gemm = cal.read_table(gpu_dir, "gemm")
    if "quant_ms" in gemm.columns and (gemm["dtype"] == "fp8").any():  # trained on: ms is the GEMM alone
        rows = gemm[gemm["dtype"] == "fp8"].copy()
        rows["ms"] = rows["ms"] + rows["quant_ms"]
        return rows.reset_index(drop=True)
    aside, quant = gpu_dir / "published" / "gemm_fp8.csv", gpu_dir / FP8_QUANT
    if not (aside.exists() and quant.exists()):
        return None
    q = pd.read_csv(quant)
    q["quant_ms"] = q["scale_matrix_ms"] + q["compute_scale_ms"]
    return pd.read_csv(aside).merge(q[["m", "k", "quant_ms"]], on=["m", "k"])


def compare_fp8(rows: pd.DataFrame, scaled, own, gpu_dir: Path) -> dict:
    from frontier.predict.scaled import ScaledModel
    from frontier.spec.hardware import get_gpu

    rows = rows[rows["ms"] > rows["quant_ms"]].reset_index(drop=True)
    ops = [Gemm(int(r.m), int(r.k), int(r.n), "fp8") for r in rows.itertuples()]
    measured, alone = rows["ms"].to_numpy(), (rows["ms"] - rows["quant_ms"]).to_numpy()
    share = rows["quant_ms"] / rows["ms"]
    spec = get_gpu(gpu_dir.name)
    bf16_only = ScaledModel(own.models["gemm"].base, spec, spec, ("bf16",))  # own bf16 x roofline ratio
    return {
        "quantisation share of the measured row": {
            name: {"rows": int(sel.sum()), "median_share_%": round(float(share[sel].median()) * 100, 1)}
            for name, sel in [("all", share.notna())]
            + [(f"m {lo}-{hi}" if hi < 1 << 30 else f"m {lo}+", rows["m"].between(lo, hi)) for lo, hi in M_RANGES]
        },
        "scaled from ref vs measured (quantisation + GEMM)": by_m(rows, scaled.ops_ms(ops), measured),
        "scaled from ref vs GEMM alone (measured minus quantisation)": by_m(rows, scaled.ops_ms(ops), alone),
        "own bf16 x roofline FP8 ratio vs GEMM alone": by_m(rows, bf16_only.predict_ms(ops), alone),
    }


def print_report(report: dict) -> None:
    print(f"{report['gpu']}: predictions scaled from {report['ref']} vs the imported measurements")
    print(f"{'family':<34} {'rows':>6} {'median APE %':>13} {'p90 APE %':>10} {'bias %':>7}")
    for family, parts in report["families"].items():
        for part, s in parts.items():
            name = family if part == "all" else f"  {part}"
            print(f"{name:<34} {s['rows']:>6} {s['median_ape']:>13} {s['p90_ape']:>10} {s['bias']:>+7}")
    for what, parts in report.get("fp8", {}).items():
        print(f"FP8 GEMM: {what}")
        for part, s in parts.items():
            if "median_share_%" in s:
                print(f"  {part:<32} {s['rows']:>6}   median {s['median_share_%']} % of the row")
            else:
                print(f"  {part:<32} {s['rows']:>6} {s['median_ape']:>13} {s['p90_ape']:>10} {s['bias']:>+7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", default="h200")
    ap.add_argument("--ref", default="h100-sxm")
    ap.add_argument("--imported", type=Path, default=CALIBRATION_DIR / "aiconfigurator")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args()
    report = compare(args.gpu, args.ref, args.imported)
    print_report(report)
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
