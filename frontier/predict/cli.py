"""CLI commands of the predictors: `frontier train`, `frontier predict`, `frontier calibration`.

`commands` is what frontier/cli.py registers on the main group. User errors are raised as
FrontierError (one line, exit 2 through the main group).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from frontier.errors import FrontierError

# op -> (required columns, optional columns with defaults)
OP_COLUMNS: dict[str, tuple[tuple[str, ...], dict]] = {
    "gemm": (("m", "k", "n"), {"dtype": "bf16"}),
    "attn_prefill": (("batch", "seq", "hq", "hkv", "d"), {"backend": "flash", "dv": None, "context": 0}),
    "attn_decode": (("batch", "kv_len", "hq", "hkv", "d"), {"backend": "flash", "dv": None}),
    "grouped_gemm": (
        ("experts", "topk", "tokens", "k", "n"),
        {"max_per_expert": None, "active_experts": None, "skew": 0.0, "backend": "grouped_mm", "dtype": "bf16"},
    ),
    "iteration": (("model", "phase", "batch", "seq_or_kv"), {"tp": 1, "cuda_graph": True}),
}
ALLOWED = {
    "dtype": ("bf16", "fp16", "fp8"),
    "attn_backend": ("flash", "cudnn"),
    "moe_backend": ("grouped_mm", "loop", "triton"),
    "phase": ("prefill", "decode"),
}


# --------------------------------------------------------------------------- input checking
def read_input(path: Path, op: str):
    import pandas as pd

    if not path.exists():
        raise FrontierError(f"input file not found: {path}")
    try:
        # Strings, so every input value is copied to the output exactly as written.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise FrontierError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    required, optional = OP_COLUMNS[op]
    missing = [c for c in required if c not in df.columns]
    if missing:
        opt = f" (optional: {', '.join(optional)})" if optional else ""
        raise FrontierError(
            f"{path.name}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; --op {op} needs {', '.join(required)}{opt}"
        )
    if df.empty:
        raise FrontierError(f"{path.name}: no rows to predict")
    return df


def _ints(df, cols, path: Path, positive: bool = True, allow_missing: bool = False) -> dict:
    import pandas as pd

    out = {}
    for c in cols:
        blank = df[c].str.strip() == ""
        col = pd.to_numeric(df[c].where(~blank), errors="coerce")
        present = col.notna()
        unreadable = ~present & (~blank | (not allow_missing))
        out_of_range = present & ((col != col.round()) | ((col <= 0) if positive else (col < 0)))
        bad = unreadable | out_of_range
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            what = "a positive integer" if positive else "a non-negative integer"
            raise FrontierError(f"{path.name}: row {i + 2}, column {c}: '{df[c].iloc[i]}' is not {what}")
        out[c] = col
    return out


def _choice(df, col: str, default, allowed, path: Path):
    if col not in df.columns:
        return [default] * len(df)
    values = [x.strip() or str(default) for x in df[col].tolist()]
    for i, v in enumerate(values):
        if v not in allowed:
            raise FrontierError(f"{path.name}: row {i + 2}, column {col}: '{v}' is not one of {' | '.join(allowed)}")
    return values


def build_ops(df, op: str, path: Path) -> list:
    """Operators of the input rows (every value checked, errors name row and column)."""
    from frontier.ops.operators import AttnDecode, AttnPrefill, Gemm, GroupedGemm
    from frontier.ops.routing import expected_routing

    required, optional = OP_COLUMNS[op]
    v = _ints(df, required, path)
    n = len(df)
    if op == "gemm":
        dtype = _choice(df, "dtype", "bf16", ALLOWED["dtype"], path)
        return [Gemm(int(v["m"][i]), int(v["k"][i]), int(v["n"][i]), dtype[i]) for i in range(n)]
    if op in ("attn_prefill", "attn_decode"):
        backend = _choice(df, "backend", "flash", ALLOWED["attn_backend"], path)
        dv = _ints(df, ["dv"], path, allow_missing=True)["dv"].fillna(v["d"]) if "dv" in df.columns else v["d"]
        if op == "attn_prefill":
            ctx = (
                _ints(df, ["context"], path, positive=False, allow_missing=True)["context"].fillna(0)
                if "context" in df.columns
                else [0] * n
            )
            return [
                AttnPrefill.uniform(
                    int(v["batch"][i]),
                    int(v["seq"][i]),
                    int(v["hq"][i]),
                    int(v["hkv"][i]),
                    int(v["d"][i]),
                    int(dv[i]),
                    backend[i],
                    context=int(ctx[i]),
                )
                for i in range(n)
            ]
        return [
            AttnDecode.uniform(
                int(v["batch"][i]),
                int(v["kv_len"][i]),
                int(v["hq"][i]),
                int(v["hkv"][i]),
                int(v["d"][i]),
                int(dv[i]),
                backend[i],
            )
            for i in range(n)
        ]
    if op == "grouped_gemm":
        import pandas as pd

        backend = _choice(df, "backend", "grouped_mm", ALLOWED["moe_backend"], path)
        dtype = _choice(df, "dtype", "bf16", ALLOWED["dtype"], path)
        skew = pd.Series([0.0] * n)
        if "skew" in df.columns:
            blank = df["skew"].str.strip() == ""
            skew = pd.to_numeric(df["skew"].where(~blank, "0"), errors="coerce")
            if skew.isna().any() or (skew < 0).any():
                raise FrontierError(
                    f"{path.name}: column skew must be a number >= 0 (0 = uniform routing, 1.2 = Zipf-like hot experts)"
                )
        given = {
            c: _ints(df, [c], path, allow_missing=True)[c]
            for c in ("max_per_expert", "active_experts")
            if c in df.columns
        }
        ops = []
        for i in range(n):
            e, k, t = int(v["experts"][i]), int(v["topk"][i]), int(v["tokens"][i])
            if k > e:
                raise FrontierError(f"{path.name}: row {i + 2}: topk {k} > experts {e}")
            busiest, active = expected_routing(t, e, k, float(skew[i]))
            if "max_per_expert" in given and not pd.isna(given["max_per_expert"][i]):
                busiest = int(given["max_per_expert"][i])
            if "active_experts" in given and not pd.isna(given["active_experts"][i]):
                active = int(given["active_experts"][i])
            ops.append(GroupedGemm(e, k, t, int(v["k"][i]), int(v["n"][i]), busiest, active, dtype[i], backend[i]))
        return ops
    raise FrontierError(f"unknown op {op}")


# --------------------------------------------------------------------------- iteration
def predict_iteration(df, gpu, predictor, path: Path) -> list[float]:
    """One whole forward step per row (all layers, final norm, LM head on the last token of each
    sequence, launch gaps; no host overhead): `phase` prefill = `batch` sequences of
    `seq_or_kv` new tokens; decode = `batch` sequences of one new token against `seq_or_kv` KV."""
    from frontier.ops.graph import BatchStats, Parallel
    from frontier.predict.step import BlockCosts, Sequential, StepOverheads
    from frontier.spec.checks import check_tp
    from frontier.spec.model import load_model

    v = _ints(df, ["batch", "seq_or_kv"], path)
    tp = _ints(df, ["tp"], path, allow_missing=True)["tp"].fillna(1) if "tp" in df.columns else [1] * len(df)
    graph = (
        df["cuda_graph"].str.strip().str.lower().isin(["", "1", "true", "yes"])
        if "cuda_graph" in df.columns
        else [True] * len(df)
    )
    out = []
    for i, (name, phase) in enumerate(zip(df["model"], df["phase"])):
        phase = phase.strip()
        if phase not in ("prefill", "decode"):
            raise FrontierError(f"{path.name}: row {i + 2}: phase must be prefill or decode, got '{phase}'")
        b, n = int(v["batch"][i]), int(v["seq_or_kv"][i])
        stats = (
            BatchStats(
                num_prefill=b,
                prefill_tokens=b * n,
                prefill_sum_q2=b * n * n,
                prefill_sum_kv=b * n,
                prefill_max_q=n,
                prefill_max_kv=n,
                num_sampled=b,
            )
            if phase == "prefill"
            else BatchStats.decode(b, n)
        )
        model = load_model(name.strip())
        check_tp(model, gpu, int(tp[i]), f"{path.name}: row {i + 2}, column tp")
        rule = Sequential(
            BlockCosts(
                model,
                Parallel(tp=int(tp[i])),
                predictor,
                StepOverheads(cuda_graph=bool(graph[i]), cpu_overhead_ms=0.0),
                dtype=model.weight_dtype,
            )
        )
        out.append(rule.step(stats).total_s * 1e3)
    return out


# --------------------------------------------------------------------------- commands
@click.command("train")
@click.option("--gpu", required=True, help="GPU name (frontier gpus lists them).")
@click.option(
    "--family",
    "families",
    multiple=True,
    help="Train only this family (repeatable); default: every family with a table.",
)
@click.option("--no-validate", is_flag=True, help="Skip the held-out-shape validation.")
@click.option(
    "--calibration-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Root of the calibration folders (default: the repository's calibration/).",
)
def train(gpu: str, families: tuple[str, ...], no_validate: bool, calibration_dir: Path | None) -> None:
    """Fit one XGBoost predictor per operator family from calibration/<gpu>/tables."""
    from frontier.predict.train import train_gpu

    train_gpu(
        gpu, calibration_dir=calibration_dir, families=list(families) or None, validate=not no_validate, progress=True
    )


@click.command("predict")
@click.option("--gpu", required=True, help="GPU name (frontier gpus lists them).")
@click.option("--op", "op", required=True, type=click.Choice(list(OP_COLUMNS)), help="Operator the rows describe.")
@click.argument("input_csv", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="Write here (default: print the CSV)."
)
@click.option("--calibration-dir", type=click.Path(path_type=Path), default=None, hidden=True)
def predict(gpu: str, op: str, input_csv: Path, output: Path | None, calibration_dir: Path | None) -> None:
    """Predict the latency of each row of INPUT_CSV: copies it and adds `pred_ms`.

    \b
    gemm:          m,k,n                  (optional dtype: bf16 | fp16 | fp8)
    attn_prefill:  batch,seq,hq,hkv,d     (optional backend: flash | cudnn, dv, context)
    attn_decode:   batch,kv_len,hq,hkv,d  (optional backend, dv)
    grouped_gemm:  experts,topk,tokens,k,n (optional max_per_expert, active_experts, skew,
                                            backend: grouped_mm | loop | triton)
    iteration:     model,phase,batch,seq_or_kv (optional tp, cuda_graph)
    Other columns pass through unchanged.
    """
    from rich.console import Console

    from frontier.predict import load_predictor
    from frontier.spec.hardware import get_gpu

    from frontier.paths import check_writable_file

    spec = get_gpu(gpu)
    df = read_input(input_csv, op)
    if output is not None:
        check_writable_file(output)
    predictor = load_predictor(spec, calibration_dir)
    if op == "iteration":
        pred = predict_iteration(df, spec, predictor, input_csv)
    else:
        ops = build_ops(df, op, input_csv)
        pred = predictor.ops_ms(ops)
        source = predictor.model_for(ops[0].family).source
        if source != "xgboost":
            Console(stderr=True).print(
                f"[yellow]note:[/] no calibrated {op} predictor for {spec.name}: predicted by the {source} model",
                highlight=False,
                soft_wrap=True,
            )
    out = df.copy()
    out["pred_ms"] = [round(float(x), 6) for x in pred]
    if output is None:
        out.to_csv(sys.stdout, index=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(output, index=False)
        Console(stderr=True).print(f"wrote {len(out)} rows to {output}", highlight=False)


@click.group("calibration")
def calibration() -> None:
    """Calibration tables: import reference or published measurements."""


@calibration.command("import-aiconfigurator")
@click.option("--system", required=True, help="aiconfigurator system, e.g. h100_sxm, h200_sxm, b200_sxm, gb200.")
@click.option(
    "--backend",
    default="vllm",
    show_default=True,
    type=click.Choice(["vllm", "sglang", "trtllm"]),
    help="Serving framework tables.",
)
@click.option("--gpu", default=None, help="Frontier GPU name (default: the system's name).")
@click.option("--version", "version", default=None, help="Framework version (default: newest).")
@click.option("--overwrite", is_flag=True, help="Replace tables the GPU already has.")
@click.option("--all-rows", is_flag=True, help="Keep every row (default: thinned to LLM shapes, a few MB).")
@click.option("--calibration-dir", type=click.Path(path_type=Path), default=None, hidden=True)
def import_aiconfigurator_cmd(
    system: str,
    backend: str,
    gpu: str | None,
    version: str | None,
    overwrite: bool,
    all_rows: bool,
    calibration_dir: Path | None,
) -> None:
    """Turn aiconfigurator's GEMM, attention, MoE and NCCL tables into Frontier tables."""
    from rich.console import Console

    from frontier.predict.aiconfigurator import import_aiconfigurator

    console = Console(stderr=True)
    with console.status(f"importing aiconfigurator {system}/{backend}"):
        done = import_aiconfigurator(
            system,
            backend,
            gpu=gpu,
            dest_root=calibration_dir,
            overwrite=overwrite,
            version=version,
            thin_rows=not all_rows,
        )
    for family, rows in done["written"].items():
        console.print(f"{done['gpu']}: wrote {family}.csv ({rows} rows)", highlight=False)
    for path, rows in done.get("aside", {}).items():
        console.print(f"{done['gpu']}: set aside {path} ({rows} rows, not trained on)", highlight=False)
    if done["kept"]:
        console.print(f"kept existing tables: {', '.join(done['kept'])} (--overwrite replaces them)", highlight=False)
    if done["missing"]:
        console.print(f"not in the database for {system}/{backend}: {', '.join(done['missing'])}", highlight=False)
    if done["written"]:
        console.print(f"next: frontier train --gpu {done['gpu']}", highlight=False)


@calibration.command("import-engine-kernels")
@click.option("--system", required=True, help="aiconfigurator system, e.g. h100_sxm, h200_sxm.")
@click.option("--engine", default="vllm", show_default=True, type=click.Choice(["vllm", "sglang"]))
@click.option("--gpu", default=None, help="Frontier GPU name (default: the system's name).")
@click.option("--version", "version", default=None, help="Engine release (default: newest measured).")
@click.option("--calibration-dir", type=click.Path(path_type=Path), default=None, hidden=True)
def import_engine_kernels_cmd(
    system: str, engine: str, gpu: str | None, version: str | None, calibration_dir: Path | None
) -> None:
    """The engine's measured dense GEMMs, FlashAttention-3, fused-MoE layers, MLA attention and
    gated-DeltaNet kernels (aiconfigurator) as calibration/<gpu>/engine_kernels."""
    import pandas as pd

    from frontier.errors import FrontierError
    from frontier.paths import CALIBRATION_DIR
    from frontier.predict.aiconfigurator import find_table, read_fp8_quant, systems_root
    from frontier.predict.engine_kernels import (
        CUTLASS_MOE,
        convert,
        convert_attention,
        convert_dense_gemm,
        convert_gdn,
        convert_mla_decode,
        table_path,
    )
    from frontier.spec.hardware import get_gpu

    system_dir = systems_root() / "data" / system
    path = find_table(system_dir, "grouped_gemm", engine, version)
    if path is None:
        raise FrontierError(
            f"aiconfigurator has no {engine} MoE table for {system}" + (f" {version}" if version else "")
        )
    spec = get_gpu(gpu or system.replace("_", "-"))
    release = path.parent.name
    rows = convert(pd.read_parquet(path))
    out = table_path(Path(calibration_dir or CALIBRATION_DIR) / spec.name, engine, release)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False, float_format="%.5g")
    click.echo(f"{spec.name}: wrote {out.name} ({len(rows)} rows: {engine} {release}, from {path.name})")
    # SGLang's FP8 GEMM rows cover half the grid and, less their quantisation, stream the weights
    # faster than HBM can (29 MB in 5.6 us on H200): its GEMMs are answered from vLLM's table
    # (the same cuBLAS bf16 GEMM, CUTLASS FP8), see engine_kernels.DenseGemm.
    gemm = find_table(system_dir, "gemm", engine, release) if engine == "vllm" else None
    if gemm is not None:
        gemm_rows = convert_dense_gemm(pd.read_parquet(gemm), read_fp8_quant(system_dir, engine, release))
        gemm_out = out.parent / f"gemm_{engine}_{release}.csv"
        gemm_rows.to_csv(gemm_out, index=False, float_format="%.5g")
        click.echo(f"{spec.name}: wrote {gemm_out.name} ({len(gemm_rows)} rows, from {gemm.name})")
    if engine == "vllm":  # its other fused MoE, FlashInfer's CUTLASS MoE, as TensorRT-LLM measured it
        cutlass = _cutlass_moe_rows(system_dir)
        if cutlass is not None:
            trtllm_release, cutlass_rows = cutlass
            cutlass_out = table_path(out.parent.parent, CUTLASS_MOE, trtllm_release)
            cutlass_rows.to_csv(cutlass_out, index=False, float_format="%.5g")
            click.echo(
                f"{spec.name}: wrote {cutlass_out.name} ({len(cutlass_rows)} rows: TensorRT-LLM {trtllm_release})"
            )
    for phase, table in (("prefill", "context_attention_perf"), ("decode", "generation_attention_perf")):
        src = system_dir / "attention" / engine / release / f"{table}.parquet"
        if src.is_file():
            attn_out = out.parent / f"attn_{phase}_{engine}_{release}.csv"
            attn_rows = convert_attention(pd.read_parquet(src))
            attn_rows.to_csv(attn_out, index=False, float_format="%.5g")
            click.echo(f"{spec.name}: wrote {attn_out.name} ({len(attn_rows)} rows, from {src.name})")
    for kind, folder, table, conv in (
        ("mla_decode", "mla", "generation_mla_perf", convert_mla_decode),
        ("gdn", "linear_attention", "gdn_perf", convert_gdn),
    ):
        src = system_dir / folder / engine / release / f"{table}.parquet"
        if src.is_file():
            kind_out = out.parent / f"{kind}_{engine}_{release}.csv"
            kind_rows = conv(pd.read_parquet(src))
            kind_rows.to_csv(kind_out, index=False, float_format="%.5g")
            click.echo(f"{spec.name}: wrote {kind_out.name} ({len(kind_rows)} rows, from {src.name})")


def _cutlass_moe_rows(system_dir: Path):
    """(release, rows) of the newest TensorRT-LLM release whose MoE table has its CUTLASS MoE
    rows (`engine_kernels.convert_cutlass_moe`), or None."""
    import pandas as pd

    from frontier.predict.aiconfigurator import _version_key, find_table
    from frontier.predict.engine_kernels import convert_cutlass_moe

    base = system_dir / "moe" / "trtllm"
    releases = [d.name for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
    for release in sorted(releases, key=_version_key, reverse=True):
        path = find_table(system_dir, "grouped_gemm", "trtllm", release)
        rows = None if path is None else convert_cutlass_moe(pd.read_parquet(path))
        if rows is not None and len(rows):
            return release, rows
    return None


# The command's name before it imported dense GEMMs too.
calibration.add_command(
    click.Command(
        "import-engine-moe",
        params=import_engine_kernels_cmd.params,
        callback=import_engine_kernels_cmd.callback,
        hidden=True,
    )
)


@calibration.command("import-reference")
@click.argument("src", type=click.Path(path_type=Path), required=False)
@click.option("--gpu", default="h100-sxm", show_default=True)
@click.option("--calibration-dir", type=click.Path(path_type=Path), default=None, hidden=True)
def import_reference_cmd(src: Path | None, gpu: str, calibration_dir: Path | None) -> None:
    """Convert the reference measurements (default ../shared/h100-reference) into tables."""
    from frontier.paths import SHARED_DIR
    from frontier.predict.calibration import import_reference

    out = import_reference(src or SHARED_DIR / "h100-reference", gpu, calibration_dir)
    click.echo(f"wrote {out}", err=True)


@calibration.command("decode-steps")
@click.option("--gpu", default="h100-sxm", show_default=True)
@click.option(
    "--calibration-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Root of the calibration folders (default: the repository's calibration/; "
    "the profiler's H200 run: calibration/profiled).",
)
def decode_steps_cmd(gpu: str, calibration_dir: Path | None) -> None:
    """Whole decode steps the profiler measured on a GPU (its decode_step table): per kernel, the
    time alone, launched eagerly and what a CUDA graph saves; each chain against Frontier's
    prediction of it; and the step rule's launch constants fitted to them beside those in use."""
    from frontier.predict import whole_step
    from frontier.predict.blocks import GRAPH_OVERLAP_US, StepOverheads

    chains = whole_step.per_kernel(whole_step.load(gpu, calibration_dir))
    if chains.empty:
        raise FrontierError(f"{gpu}: the decode_step table has no chain timed alone, eagerly and as a graph")
    chains = whole_step.predicted(chains, gpu, calibration_dir)
    shown = chains[["model", "batch", "kv", "kernels", "alone_us", "eager_us", "graph_saving_us"]].copy()
    err = {mode: 100 * (chains[f"pred_{mode}"] / chains[mode] - 1) for mode in whole_step.MODES}
    for mode in whole_step.MODES:
        shown[f"{mode} ms"], shown[f"{mode} err %"] = chains[mode], err[mode]
    click.echo(shown.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    click.echo(
        "median APE of the predicted chains: " + ", ".join(f"{m} {e.abs().median():.1f} %" for m, e in err.items())
    )
    in_use = StepOverheads()
    got = whole_step.fit(chains, in_use.graph_launch_us)
    click.echo(
        f"GRAPH_OVERLAP_US: {got['graph_overlap_us']:.2f} us fitted to {got['graph_chains']} chains "
        f"(in use: {GRAPH_OVERLAP_US:g}, with graph_launch_us {in_use.graph_launch_us:g})"
    )
    if got["eager_launch_us"] is None:
        click.echo(f"eager_launch_us: no launch-bound chain (in use: {in_use.eager_launch_us:g})")
    else:
        click.echo(
            f"eager_launch_us: {got['eager_launch_us']:.2f} us fitted to {got['eager_chains']} launch-bound "
            f"chains (in use: {in_use.eager_launch_us:g})"
        )


commands = [train, predict, calibration]
