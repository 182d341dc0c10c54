"""Run a sweep: every feasible deployment at every load point, on a process pool or Ray.

Points run in parallel (one process per core by default, or as Ray tasks with `ray_address`).
A configuration's load points run in ascending order so that, once one misses the SLO by more
than `EARLY_STOP_MARGIN`, its higher loads (which only queue more) are skipped. Each finished
point is appended to `results.csv` and its full summary written to `runs/<point>/summary.json`
at once, so an interrupted sweep keeps what it did and `resume=True` skips it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from frontier.errors import FrontierError
from frontier.search.space import Candidate, Infeasible, enumerate_space
from frontier.search.spec import LoadPoint, SweepSpec

EARLY_STOP_MARGIN = 1.5  # "clearly missed": the SLO statistic over 1.5 x its target
STATS = ("mean", "median", "p90", "p99")
METRIC_COLUMNS = (
    [
        "completed",
        "failed",
        "outputs_clipped",
        "tokens_per_s_per_gpu",
        "tokens_per_s_per_user",
        "request_throughput",
        "output_throughput",
        "request_goodput",
    ]
    + [f"{s}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in STATS]
    + ["meets_slo", "wall_time_s"]
)


@dataclass
class Point:
    id: str
    candidate: Candidate
    load: LoadPoint
    scenario: dict


@dataclass
class SweepResult:
    spec: SweepSpec
    results: pd.DataFrame
    infeasible: list[Infeasible]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (point id, why not run)
    outdir: Path | None = None
    wall_s: float = 0.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")


def _workload_base(spec: SweepSpec) -> dict:
    """The sweep's workload block, its trace path made absolute so that a worker (or best.json)
    finds it from anywhere."""
    from frontier.workload.spec import resolve_trace_path

    base = dict(spec.workload)
    if "trace" in base:
        trace = base["trace"] if isinstance(base["trace"], dict) else {"path": base["trace"]}
        path = resolve_trace_path(trace.get("path"), "workload.trace.path", spec.base_dir)
        base["trace"] = dict(trace, path=str(path))
    return base


def longest_request(spec: SweepSpec) -> int:
    """Prompt + output tokens of the longest request any load point sends."""
    from frontier.workload import WorkloadSpec, build_requests

    base, longest = _workload_base(spec), 1
    for load in spec.loads:
        table = build_requests(WorkloadSpec.from_dict(load.workload(base)), np.random.default_rng(spec.seed))
        longest = max(longest, int((table.input_tokens + table.output_tokens).max()))
    return longest


def make_points(spec: SweepSpec, candidates: list[Candidate]) -> list[Point]:
    base = _workload_base(spec)
    points = []
    for c in candidates:
        for load in spec.loads:
            scenario = {
                "name": f"{spec.name} {c.label} {load.label}",
                "model": spec.model,
                "gpu": c.gpu,
                "deployment": c.deployment,
                "workload": load.workload(base),
                "seed": spec.seed,
            }
            if spec.slo:
                scenario["slo"] = dict(spec.slo)
            digest = hashlib.sha1(
                json.dumps([scenario["gpu"], c.deployment, scenario["workload"]], sort_keys=True).encode()
            ).hexdigest()[:8]
            pid = _slug(f"{c.gpu}-{c.label}-{load.label}")[:80] + f"-{digest}"
            points.append(Point(pid, c, load, scenario))
    return points


def simulate_point(scenario: dict) -> dict:
    """One point, in a worker: the run's vLLM-format summary (or the error that stopped it)."""
    from frontier.metrics.vllm_result import vllm_result
    from frontier.sim.run import run_scenario
    from frontier.spec.scenario import scenario_from_dict

    t0 = time.perf_counter()
    try:
        result = run_scenario(scenario_from_dict(scenario, name=scenario["name"]), timeline=False)
    except FrontierError as exc:
        return {"error": str(exc)}
    summary = vllm_result(result)
    summary["frontier"]["point_wall_time_s"] = time.perf_counter() - t0
    return {"summary": summary}


def slo_value(row: dict, metric: str, statistic: str) -> float:
    return row.get(f"{statistic}_{metric}_ms", math.nan)


def meets_slo(row: dict, slo: dict | None, statistic: str) -> bool:
    """Every request served whole (none failed, no output cut short by SGLang's pool) within the SLO."""
    if row["completed"] == 0 or row["failed"] > 0 or row.get("outputs_clipped", 0) > 0:
        return False
    return all(slo_value(row, k.removesuffix("_ms"), statistic) <= v for k, v in (slo or {}).items())


def clearly_missed(row: dict, slo: dict | None, statistic: str) -> bool:
    if not slo:
        return False
    if row["completed"] == 0:
        return True
    return any(slo_value(row, k.removesuffix("_ms"), statistic) > EARLY_STOP_MARGIN * v for k, v in slo.items())


def result_row(point: Point, summary: dict, spec: SweepSpec) -> dict:
    c, load = point.candidate, point.load
    tpot = summary.get("mean_tpot_ms") or 0.0
    row = {
        "point_id": point.id,
        "family": c.family,
        "config": c.label,
        "gpu": c.gpu,
        "gpus": c.gpus,
        **{k: v for k, v in c.fields.items()},
        "concurrency": load.concurrency,
        "request_rate": load.rate,
        "num_requests": point.scenario["workload"]["num_requests"],
        "completed": summary["completed"],
        "failed": summary["failed"],
        "outputs_clipped": summary["frontier"].get("outputs_clipped", 0),
        "tokens_per_s_per_gpu": summary["output_throughput"] / c.gpus,
        "tokens_per_s_per_user": 1000.0 / tpot if tpot > 0 else 0.0,
    }
    for key in METRIC_COLUMNS:
        if key not in row and key in summary:
            row[key] = summary[key]
    row["meets_slo"] = meets_slo(row, spec.slo, spec.slo_statistic)
    row["wall_time_s"] = summary["frontier"].get("point_wall_time_s", summary["frontier"]["wall_time_s"])
    return row


class _Executor:
    """submit(scenario) -> concurrent Future, on a local process pool, Ray, or inline."""

    def __init__(self, jobs: int, ray_address: str | None):
        self.pool = self.ray = None
        self.started_ray = False
        if ray_address is not None:
            try:
                import ray
            except ImportError:
                raise FrontierError("--ray needs the ray package: pip install 'frontier-sim[ray]'") from None
            self.ray = ray
            if not ray.is_initialized():
                kwargs = {"include_dashboard": False, "log_to_driver": False}
                if ray_address in ("", "local"):
                    ray.init(num_cpus=jobs, **kwargs)
                else:
                    ray.init(address=ray_address, **kwargs)
                self.started_ray = True
            self.remote = ray.remote(simulate_point)
        elif jobs > 1:
            import multiprocessing as mp

            # fork while this process has not run XGBoost: workers inherit the loaded simulator,
            # and a user's script needs no `if __name__ == "__main__":` guard. After XGBoost
            # has run, its OpenMP threads make fork deadlock, so workers then come from a
            # forkserver (a clean process that imported the simulator once).
            methods = mp.get_all_start_methods()
            if "fork" in methods and "xgboost" not in sys.modules:
                ctx = mp.get_context("fork")
            else:
                ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
                if ctx.get_start_method() == "forkserver":
                    ctx.set_forkserver_preload(["frontier.sim.run", "frontier.metrics.vllm_result"])
            self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)

    def submit(self, scenario: dict) -> Future:
        if self.ray is not None:
            return self.remote.remote(scenario).future()
        if self.pool is not None:
            return self.pool.submit(simulate_point, scenario)
        f: Future = Future()
        f.set_result(simulate_point(scenario))
        return f

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.started_ray:
            self.ray.shutdown()


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("points"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("sweep", total=total)
            self.bar.start()

    def advance(self, k: int = 1) -> None:
        if self.bar:
            self.bar.advance(self.task, k)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def _columns(candidates: list[Candidate]) -> list[str]:
    fields: list[str] = []
    for c in candidates:
        fields += [k for k in c.fields if k not in fields]
    return (
        ["point_id", "family", "config", "gpu", "gpus"]
        + fields
        + ["concurrency", "request_rate", "num_requests"]
        + METRIC_COLUMNS
    )


def run_sweep(
    spec: SweepSpec,
    outdir: str | Path | None = None,
    *,
    jobs: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> SweepResult:
    """Simulate the sweep; with `outdir`, stream results.csv and runs/ there as points finish."""
    from frontier.spec.model import load_model

    t0 = time.perf_counter()
    model = load_model(spec.model)
    candidates, infeasible = enumerate_space(spec, model, longest_request(spec))
    points = make_points(spec, candidates)
    columns = _columns(candidates)
    out = Path(outdir) if outdir is not None else None
    done: dict[str, dict] = {}
    if out is not None:
        results_csv = out / "results.csv"
        if resume and results_csv.is_file():
            previous = pd.read_csv(results_csv)
            if list(previous.columns) != columns:
                raise FrontierError(
                    f"{results_csv}: written by a different sweep (other columns); "
                    "run without --resume or into another folder"
                )
            done = {r["point_id"]: r for r in previous.to_dict("records")}
        else:
            for stale in ("results.csv", "pareto.csv", "best.json", "pareto.png", "skipped.csv"):
                (out / stale).unlink(missing_ok=True)
            shutil.rmtree(out / "runs", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        if not results_csv.is_file():
            with open(results_csv, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    rows: list[dict] = [done[p.id] for p in points if p.id in done]
    skipped: list[tuple[str, str]] = []
    # Each configuration's load points form series (concurrency, rate), run low to high.
    queues: dict[tuple[str, str], list[Point]] = {}
    for p in points:
        queues.setdefault((p.candidate.label + p.candidate.gpu, p.load.series), []).append(p)
    for q in queues.values():
        q.sort(key=lambda p: p.load.concurrency if p.load.concurrency is not None else p.load.rate)

    executor = _Executor(jobs or os.cpu_count() or 1, ray_address)
    in_flight: dict[Future, tuple[Point, tuple]] = {}
    bar = _Progress(len(points), False)

    def stop(key, reason: str) -> None:
        for p in queues[key]:
            if p.id not in done:
                skipped.append((p.id, reason))
                bar.advance()
        queues[key] = []

    def feed(key) -> None:
        """Start the series' next points: one at a time with early stop, else all."""
        q = queues[key]
        while q:
            p = q[0]
            if p.id in done:
                q.pop(0)
                if spec.early_stop and clearly_missed(done[p.id], spec.slo, spec.slo_statistic):
                    stop(key, f"not run: the SLO was clearly missed at {p.load.label}")
                    return
                continue
            q.pop(0)
            in_flight[executor.submit(p.scenario)] = (p, key)
            if spec.early_stop:
                return

    try:
        for key in queues:
            feed(key)
        bar = _Progress(len(points), progress)
        bar.advance(len(rows) + len(skipped))
        while in_flight:
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in finished:
                p, key = in_flight.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    raise FrontierError(
                        "sweep worker processes stopped: a script that calls frontier.sweep after "
                        'other Frontier work must run it under `if __name__ == "__main__":` '
                        "(workers re-import the script), or pass jobs=1"
                    ) from None
                bar.advance()
                if "error" in outcome:
                    skipped.append((p.id, f"failed: {outcome['error']}"))
                    stop(key, f"not run: {p.load.label} failed")
                    continue
                row = result_row(p, outcome["summary"], spec)
                rows.append(row)
                if out is not None:
                    _write_point(out, p, row, outcome["summary"], columns)
                if spec.early_stop and clearly_missed(row, spec.slo, spec.slo_statistic):
                    stop(key, f"not run: the SLO was clearly missed at {p.load.label}")
                else:
                    feed(key)
    finally:
        executor.close()
        bar.close()
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        df["meets_slo"] = df["meets_slo"].astype(bool)
    return SweepResult(spec, df, infeasible, skipped, out, time.perf_counter() - t0)


def _write_point(out: Path, point: Point, row: dict, summary: dict, columns: list[str]) -> None:
    from frontier.metrics.report import write_json

    run_dir = out / "runs" / point.id
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(summary, run_dir / "summary.json")
    with open(out / "results.csv", "a", newline="") as f:
        csv.writer(f).writerow([_cell(row.get(c)) for c in columns])
        f.flush()


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value
