"""A sweep's files besides results.csv and runs/: pareto.csv, skipped.csv, best.json, pareto.png;
and its summary on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from frontier.search.commands import aiperf_command, bench_command, serve_commands, serving_port
from frontier.search.pareto import X, Y, best_row, pareto_rows


def best_config(result) -> dict:
    """best.json: the best SLO-meeting point, its scenario (to simulate it again alone), its
    numbers, and the commands that deploy and measure it."""
    from frontier.spec.model import load_model

    spec = result.spec
    slo = {"targets": spec.slo, "statistic": spec.slo_statistic}
    row = best_row(result.results) if len(result.results) else None
    if row is None:
        return {
            "best": None,
            "slo": slo,
            "reason": "no configuration meets the SLO at any load point"
            + ("" if spec.slo else " (no SLO set: every completed point qualifies)"),
        }
    run = (
        json.loads((result.outdir / "runs" / row.point_id / "summary.json").read_text())
        if result.outdir is not None
        else None
    )
    scenario = run["frontier"]["scenario"] if run else None
    model = load_model(spec.model)
    mid = model.served_id
    deployment = scenario["deployment"] if scenario else None
    serve = serve_commands(mid, deployment) if deployment else {"engine": "vllm", "serve": [], "notes": []}
    port = serving_port(deployment, serve["engine"])
    conc = None if pd.isna(row.concurrency) else int(row.concurrency)
    rate = None if pd.isna(row.request_rate) else float(row.request_rate)
    metrics = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    return {
        "best": {
            "point_id": row.point_id,
            "family": row.family,
            "config": row.config,
            "gpu": row.gpu,
            "gpus": int(row.gpus),
            "concurrency": conc,
            "request_rate": rate,
        },
        "slo": slo,
        "metrics": metrics,
        "scenario": scenario,
        "engine": serve["engine"],
        "serve_commands": serve["serve"],
        "notes": serve["notes"],
        "bench_command": bench_command(
            mid, serve["engine"], port, spec.workload, conc, rate, int(row.num_requests), spec.slo
        ),
        "aiperf_command": aiperf_command(mid, port, spec.workload, conc, rate, int(row.num_requests)),
    }


def write_outputs(result, plots: bool = True) -> list[Path]:
    out = result.outdir
    written = [out / "results.csv"]
    pareto_rows(result.results).to_csv(out / "pareto.csv", index=False)
    skipped = [
        {"family": i.family, "gpu": i.gpu, "config": i.label, "point_id": "", "reason": i.reason}
        for i in result.infeasible
    ]
    skipped += [{"family": "", "gpu": "", "config": "", "point_id": pid, "reason": why} for pid, why in result.skipped]
    pd.DataFrame(skipped, columns=["family", "gpu", "config", "point_id", "reason"]).to_csv(
        out / "skipped.csv", index=False
    )
    (out / "best.json").write_text(json.dumps(best_config(result), indent=2) + "\n")
    written += [out / "pareto.csv", out / "skipped.csv", out / "best.json"]
    if plots and len(result.results):
        written.append(plot_pareto(result, out / "pareto.png"))
    return written


def plot_pareto(result, path: Path) -> Path:
    """Every point, the frontier of each deployment family, the TPOT SLO as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df, spec = result.results, result.spec
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (family, group) in enumerate(df.groupby("family", sort=True)):
        colour = f"C{i}"
        ok = group[group.meets_slo]
        ax.scatter(group[X], group[Y], s=14, color=colour, alpha=0.35)
        front = pareto_rows(group)
        ax.plot(
            front[X].to_numpy()[front[X].argsort()],
            front[Y].to_numpy()[front[X].argsort()],
            "-o",
            color=colour,
            ms=4,
            label=f"{family} (frontier)",
        )
        ax.scatter(ok[X], ok[Y], s=30, facecolors="none", edgecolors=colour)
    if spec.slo and "tpot_ms" in spec.slo:
        ax.axvline(
            1000.0 / spec.slo["tpot_ms"], color="red", ls="--", lw=1, label=f"TPOT SLO {spec.slo['tpot_ms']:g} ms"
        )
    if spec.slo and "ttft_ms" in spec.slo:
        ax.plot([], [], " ", label=f"TTFT SLO {spec.slo['ttft_ms']:g} ms (circled: meets every SLO)")
    ax.set_xlabel("tokens/s/user (1000 / mean TPOT)")
    ax.set_ylabel("output tokens/s/GPU")
    ax.set_title(f"{spec.name}: {spec.model}, up to {spec.max_gpus} GPUs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_sweep(result, console) -> None:
    from rich.table import Table

    df = result.results
    console.print(
        f"{len(df)} points simulated, {len(result.skipped)} skipped, "
        f"{len(result.infeasible)} configurations infeasible, in {result.wall_s:.1f} s",
        highlight=False,
    )
    front = pareto_rows(df)
    table = Table(title="Pareto frontier (tokens/s/GPU vs tokens/s/user)")
    for col in ("config", "gpus", "load", "tok/s/GPU", "tok/s/user", "mean TTFT ms", "mean TPOT ms", "SLO"):
        table.add_column(
            col,
            justify="left" if col in ("config", "load") else "right",
            no_wrap=col != "config",
            min_width=24 if col == "config" else None,
        )
    for _, r in front.iterrows():
        load = f"c={int(r.concurrency)}" if not pd.isna(r.concurrency) else f"{r.request_rate:g} req/s"
        table.add_row(
            r.config,
            str(int(r.gpus)),
            load,
            f"{r[Y]:.0f}",
            f"{r[X]:.1f}",
            f"{r.mean_ttft_ms:.0f}",
            f"{r.mean_tpot_ms:.1f}",
            "yes" if r.meets_slo else "no",
        )
    console.print(table)
    for inf in result.infeasible[:8]:
        console.print(f"[dim]infeasible: {inf.label} on {inf.gpu}: {inf.reason}[/dim]", highlight=False)
    if len(result.infeasible) > 8:
        console.print(f"[dim]... and {len(result.infeasible) - 8} more (skipped.csv)[/dim]")
