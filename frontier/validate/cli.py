"""`frontier validate PATH`: replay measured runs and show predicted vs measured."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from frontier.engine import ENGINES, FRONTENDS
from frontier.errors import FrontierError
from frontier.validate.loaders import AIPERF_SUMMARY

DEFAULT_OUT = Path("results") / "validate"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def _run_dir(run) -> str:
    """A run's folder name: the file's stem (an aiperf summary's: its folder's), with the run
    number for multi-run files."""
    stem = run.source.stem if run.source.is_file() else run.source.name
    if run.kind == "aiperf" and run.source.name == AIPERF_SUMMARY:
        stem = run.source.parent.name
    return _slug(stem if run.index is None else f"{stem}-{run.index}")


@click.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "outdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for validation.json and the CDF plot [default: results/validate/<name>].",
)
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Scenario YAML supplying what the result file does not say (model, gpu, deployment knobs).",
)
@click.option("--model", default=None, help="Model card or config.json path (overrides the file).")
@click.option("--gpu", default=None, help="GPU name, e.g. h100-sxm (overrides the file).")
@click.option("--tp", type=click.IntRange(min=1), default=None, help="Tensor-parallel size.")
@click.option("--pp", type=click.IntRange(min=1), default=None, help="Pipeline-parallel size.")
@click.option("--dp", type=click.IntRange(min=1), default=None, help="Data-parallel replicas.")
@click.option("--ep", type=click.IntRange(min=1), default=None, help="Expert-parallel size.")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=None)
@click.option("--max-num-batched-tokens", type=click.IntRange(min=1), default=None)
@click.option("--enable-prefix-caching/--no-enable-prefix-caching", default=None)
@click.option("--engine", type=click.Choice(ENGINES), default=None, help="Serving engine (aiperf records none: vllm).")
@click.option("--engine-version", default=None, help="Engine release whose defaults apply, e.g. 0.12.0.")
@click.option(
    "--frontend",
    type=click.Choice(FRONTENDS),
    default=None,
    help="Front end the requests entered by (dynamo: NVIDIA Dynamo's).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show simulation progress [default: when the terminal is interactive].",
)
def validate(path: Path, outdir: Path | None, scenario_file: Path | None, progress: bool | None, **overrides) -> None:
    """Replay a measured vLLM or SGLang benchmark run and compare, metric by metric.

    PATH is a `vllm bench serve --save-result` JSON, an SGLang `bench_serving` JSONL (one run
    per line), an aiperf profile_export_aiperf.json, a run folder with requests.jsonl +
    meta.json, or a folder of any of these.
    """
    try:
        _validate(path, outdir, scenario_file, progress, overrides)
    except FrontierError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _validate(
    path: Path, outdir: Path | None, scenario_file: Path | None, progress: bool | None, overrides: dict
) -> None:
    from rich.console import Console
    from rich.markup import escape

    from frontier.metrics.report import predictor_notes
    from frontier.paths import check_writable_dir
    from frontier.validate.loaders import load_folder, load_measured
    from frontier.validate.replay import validate_run
    from frontier.validate.report import (
        comparison_table,
        plot_cdfs,
        provenance_table,
        summary_row,
        summary_table,
        write_summary_json,
        write_validation_json,
    )
    from frontier.validate.writer import write_vllm_result

    # Wide enough for the tables when the output is a file or a pipe (rich assumes 80 there).
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if progress is None:
        progress = sys.stderr.isatty()
    skipped: list[str] = []
    if path.is_dir() and not (path / "requests.jsonl").is_file():
        runs, skipped = load_folder(path)
    else:
        runs = load_measured(path)
    name = path.stem if path.is_file() else path.name
    given_outdir = outdir is not None
    outdir = outdir if outdir is not None else DEFAULT_OUT / _slug(name)
    check_writable_dir(outdir, "-o" if given_outdir else "results folder")
    for s in skipped:
        console.print(f"[dim]skipped {escape(s)}[/dim]")

    single = len(runs) == 1
    rows = []
    for run in runs:
        run_dir = outdir if single else outdir / _run_dir(run)
        if single:
            val = validate_run(run, overrides, scenario_file, progress=progress)
        else:
            try:
                val = validate_run(run, overrides, scenario_file, progress=progress)
            except FrontierError as exc:  # one bad run does not hide the others
                rows.append(summary_row(run, error=str(exc)))
                continue
        json_path = write_validation_json(val, run_dir / "validation.json")
        png_path = plot_cdfs(val, run_dir / "cdf.png")
        write_vllm_result(val.sim, run_dir / "predicted_vllm_result.json", scenario=val.replay.scenario)
        rows.append(summary_row(run, val))
        if single:
            console.print(provenance_table(val.replay.provenance))
            console.print(
                comparison_table(val.comparison, title=f"{run.label}: measured ({run.metrics_from}) vs predicted")
            )
            for note in run.notes:
                console.print(f"[dim]note: {escape(note)}[/dim]")
            for note in predictor_notes(val.sim.summary.get("frontier", {})):
                console.print(f"[yellow]note: {escape(note)}[/yellow]")
            console.print(f"wrote {json_path}" + (f", {png_path}" if png_path else ""))
    if not single:
        console.print(summary_table(rows))
        summary_path = write_summary_json(rows, outdir / "summary.json")
        console.print(f"wrote {summary_path} and one folder per run under {outdir}")
