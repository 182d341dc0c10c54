"""Measured vs predicted: the terminal table, validation.json, and the CDF plot.

Error % = (predicted - measured) / measured x 100, so a positive error means the simulator
predicts more (slower latency, higher throughput) than was measured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from frontier.numbers import strict_json_dumps

THROUGHPUT_METRICS = ("request_throughput", "output_throughput", "total_token_throughput")
LATENCY_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2el": "E2E"}
STATS = ("mean", "median", "p90", "p99")
COMPARED_METRICS = THROUGHPUT_METRICS + tuple(f"{s}_{m}_ms" for m in LATENCY_NAMES for s in STATS)
# The columns of the one-row-per-run table over many runs.
SUMMARY_COLUMNS = (
    "output_throughput",
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "mean_e2el_ms",
    "median_e2el_ms",
    "p99_e2el_ms",
)

_LABELS = {
    "request_throughput": "Request throughput (req/s)",
    "output_throughput": "Output throughput (tok/s)",
    "total_token_throughput": "Total token throughput (tok/s)",
}


def metric_label(name: str) -> str:
    if name in _LABELS:
        return _LABELS[name]
    stat, metric, _ = name.split("_")
    stat = {"mean": "Mean", "median": "Median"}.get(stat, stat.upper())
    return f"{stat} {LATENCY_NAMES.get(metric, metric)} (ms)"


def error_pct(measured: float | None, predicted: float | None) -> float | None:
    if measured is None or predicted is None:
        return None
    if not (math.isfinite(measured) and math.isfinite(predicted)):
        return None
    if measured == 0:
        return 0.0 if predicted == 0 else None
    return (predicted - measured) / abs(measured) * 100.0


def _value(d: dict, key: str) -> float | None:
    v = d.get(key)
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


def compare(measured: dict, predicted: dict, metrics: Iterable[str] = COMPARED_METRICS) -> dict:
    """metric -> {"measured", "predicted", "error_pct"}; None where a side lacks the metric."""
    out = {}
    for name in metrics:
        m, p = _value(measured, name), _value(predicted, name)
        out[name] = {"measured": m, "predicted": p, "error_pct": error_pct(m, p)}
    return out


# ---------------------------------------------------------------------------- terminal


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}"


def _fmt_err(e: float | None) -> str:
    if e is None:
        return "-"
    colour = "green" if abs(e) <= 10 else "yellow" if abs(e) <= 25 else "red"
    return f"[{colour}]{e:+.1f}%[/{colour}]"


def comparison_table(comparison: dict, title: str = ""):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) if title else None, title_justify="left")
    table.add_column("metric")
    table.add_column("measured", justify="right")
    table.add_column("predicted", justify="right")
    table.add_column("error", justify="right")
    last_group = None
    for name, row in comparison.items():
        group = "throughput" if name in THROUGHPUT_METRICS else name.split("_")[1]
        if last_group is not None and group != last_group:
            table.add_section()
        last_group = group
        table.add_row(metric_label(name), _fmt(row["measured"]), _fmt(row["predicted"]), _fmt_err(row["error_pct"]))
    return table


def provenance_table(provenance: dict):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="what the replay took from where", title_justify="left")
    table.add_column("field")
    table.add_column("value")
    table.add_column("from")
    for key, entry in provenance.items():
        table.add_row(key, escape(str(entry.get("value"))), escape(str(entry.get("from"))))
    return table


_SHORT = {"request_throughput": "req/s", "output_throughput": "out tok/s", "total_token_throughput": "tok/s"}


def short_label(name: str) -> str:
    """'p99_ttft_ms' -> 'TTFT p99'; 'output_throughput' -> 'out tok/s'."""
    if name in _SHORT:
        return _SHORT[name]
    stat, metric, _ = name.split("_")
    return f"{LATENCY_NAMES.get(metric, metric)} {'p50' if stat == 'median' else stat}"


def summary_table(rows: list[dict], columns: Iterable[str] = SUMMARY_COLUMNS):
    """One row per run (error % per metric) and a last row with the mean absolute error.
    Columns no run can be compared on are left out."""
    from rich.markup import escape
    from rich.table import Table

    columns = [c for c in columns if any(r["metrics"].get(c, {}).get("error_pct") is not None for r in rows)]
    sources = {r.get("source") for r in rows}
    table = Table(title="error % per run (predicted vs measured)", title_justify="left")
    table.add_column("run")
    table.add_column("rate", justify="right")
    for c in columns:
        table.add_column(short_label(c), justify="right")
    for row in rows:
        name = row["run"]
        if len(sources) == 1 and "#" in name:
            name = "#" + name.rsplit("#", 1)[1]
        rate = row.get("request_rate")
        rate_text = "" if rate is None else ("inf" if math.isinf(rate) else f"{rate:g}")
        if row.get("error"):
            table.add_row(
                escape(name), rate_text, f"[red]{escape(row['error'])}[/red]", *[""] * max(len(columns) - 1, 0)
            )
            continue
        table.add_row(escape(name), rate_text, *[_fmt_err(row["metrics"].get(c, {}).get("error_pct")) for c in columns])
    mae = mean_abs_error(rows)
    table.add_section()
    table.add_row(
        "[bold]mean |error|[/bold]", "", *[("-" if mae.get(c) is None else f"{mae[c]:.1f}%") for c in columns]
    )
    return table


def mean_abs_error(rows: list[dict]) -> dict:
    """metric -> mean |error %| over the runs that have it (None if no run has it)."""
    out = {}
    names = [n for n in COMPARED_METRICS]
    for name in names:
        errs = [
            abs(r["metrics"][name]["error_pct"])
            for r in rows
            if not r.get("error") and r["metrics"].get(name, {}).get("error_pct") is not None
        ]
        out[name] = float(np.mean(errs)) if errs else None
    return out


# ---------------------------------------------------------------------------- files


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else None
    if isinstance(value, Path):
        return str(value)
    return value


def validation_dict(validation) -> dict:
    run = validation.run
    return _jsonable(
        {
            "run": {
                "source": str(run.source),
                "label": run.label,
                "kind": run.kind,
                "model": run.settings.model,
                "request_rate": run.settings.request_rate,
                "max_concurrency": run.settings.max_concurrency,
                "num_prompts": run.settings.num_prompts,
                "date": run.settings.date,
                "measured_metrics_from": run.metrics_from,
                "notes": run.notes,
            },
            "metrics": validation.comparison,
            "provenance": validation.replay.provenance,
            "scenario": validation.replay.scenario_dict,
            "frontier": validation.sim.summary.get("frontier", {}),
        }
    )


def write_validation_json(validation, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_json_dumps(validation_dict(validation), indent=2))
    return path


def predicted_per_request(sim) -> dict[str, np.ndarray]:
    """TTFT, TPOT, E2E in ms of the simulator's finished requests."""
    df = sim.requests
    ok = df[df["status"] == "finished"] if "status" in df else df
    ttft = (ok["first_token_s"] - ok["arrival_s"]).to_numpy(dtype=float)
    e2e = (ok["finish_s"] - ok["arrival_s"]).to_numpy(dtype=float)
    out_tok = ok["output_tokens"].to_numpy()
    many = out_tok > 1
    tpot = (e2e[many] - ttft[many]) / (out_tok[many] - 1)
    return {"ttft": ttft * 1e3, "tpot": tpot * 1e3, "e2el": e2e * 1e3}


def measured_per_request(run) -> dict[str, np.ndarray] | None:
    if not run.has_latencies:
        return None
    return {"ttft": run.ttft_s * 1e3, "tpot": run.tpot_s * 1e3, "e2el": run.e2el_s * 1e3}


def plot_cdfs(validation, path: str | Path) -> Path | None:
    """Measured and predicted CDFs of TTFT, TPOT and E2E latency; None without per-request
    measurements (a summary-only result file has no distribution to draw)."""
    measured = measured_per_request(validation.run)
    if measured is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = predicted_per_request(validation.sim)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes, ("ttft", "tpot", "e2el")):
        for label, data, style in (("measured", measured[key], "-"), ("predicted", predicted[key], "--")):
            x = np.sort(data)
            if x.size:
                ax.step(x, np.arange(1, x.size + 1) / x.size, style, where="post", label=label)
        ax.set_xlabel(f"{LATENCY_NAMES[key]} (ms)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of requests")
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{validation.run.label}: measured vs predicted")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_row(run, validation=None, error: str | None = None) -> dict:
    """One run's line of the many-runs summary (its comparison, or why it could not run)."""
    row = {
        "run": run.label,
        "source": str(run.source),
        "kind": run.kind,
        "request_rate": run.settings.request_rate,
        "max_concurrency": run.settings.max_concurrency,
    }
    if error is not None:
        return row | {"error": error, "metrics": {}}
    return row | {"metrics": validation.comparison}


def write_summary_json(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable({"runs": rows, "mean_abs_error_pct": mean_abs_error(rows)}), indent=2))
    return path
