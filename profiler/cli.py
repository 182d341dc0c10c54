"""`python -m profiler`: measure operators on this GPU and write Frontier's calibration tables.

    python -m profiler --gpu h100-sxm                      # everything, calibration/h100-sxm/
    python -m profiler --gpu h100-sxm --quick --ops gemm,attn_decode
    python -m profiler --dry-run --out /tmp/tables         # CPU, tiny shapes, every code path
    python -m profiler --gpu h100-sxm --check              # Triton kernels vs PyTorch

Rows already in a table are skipped (resume); rows are appended as they are measured. After
measuring, the predictors are retrained (`frontier train --gpu NAME`) where xgboost is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from profiler import FAMILIES
from profiler.tables import TableError, TableWriter

EXIT_USAGE = 2
PER_CALL_OVERHEAD_MS = 0.3  # flush + spin + launch, per timed or warm-up call (estimate)
PER_CASE_OVERHEAD_MS = 4.0  # allocation, probe call, Python (estimate)
QUICK_BUDGET_MIN = 7.0  # --quick must finish within 8 minutes on one H100


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m profiler",
        description="Measure GEMM, attention, MoE, elementwise, collective and copy timings on this "
        "GPU and write calibration/<gpu>/tables/*.csv + meta.json.",
    )
    p.add_argument(
        "--gpu",
        help="GPU name for the calibration folder, e.g. h100-sxm (default: the "
        "visible GPU's name in frontier/spec/gpus.yaml)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the tables and meta.json (default: tables in "
        "calibration/<gpu>/tables, meta.json in calibration/<gpu>/)",
    )
    p.add_argument("--quick", action="store_true", help="a subset of shapes (minutes, not an hour)")
    p.add_argument(
        "--ops", default=",".join(FAMILIES), help=f"comma-separated families (default all): {','.join(FAMILIES)}"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="run every code path on the CPU with tiny shapes (no GPU needed)"
    )
    p.add_argument("--no-train", action="store_true", help="do not retrain the predictors afterwards")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the Triton kernels against PyTorch and exit (with --dry-run: in Triton's CPU interpreter)",
    )
    p.add_argument("--plan", action="store_true", help="print what would be measured and exit")
    p.add_argument("--models", help="comma-separated model card names to take shapes from (default all)")
    p.add_argument("--models-dir", type=Path, help="folder of model cards (default models/)")
    p.add_argument("--seed", type=int, default=0, help="seed of routing and ragged-batch draws")
    p.add_argument(
        "--budget-min",
        type=float,
        help=f"stop measuring after this many minutes; the rest is left for a rerun, which "
        f"resumes (default {QUICK_BUDGET_MIN:g} with --quick, none otherwise)",
    )
    return p


def fail(message: str) -> int:
    print(f"profiler: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in ops if o not in FAMILIES]
    if unknown:
        return fail(f"unknown --ops {','.join(unknown)}; choose from {','.join(FAMILIES)}")
    from profiler import env

    # --plan only lists shapes: it needs torch (routing draws), not a GPU.
    problem = env.runtime_problem(args.dry_run or args.plan)
    if problem:
        return fail(problem)
    if args.dry_run:
        triton_ok = env.use_triton_interpreter()
    else:
        triton_ok = env.has_triton()
    if args.check:
        return run_check(args, triton_ok)
    if not args.gpu and not args.dry_run:
        args.gpu = detect_gpu()
        if not args.gpu:
            return fail(
                "--gpu NAME is required (the calibration folder, e.g. --gpu h100-sxm); this GPU "
                "is not among the names and aliases of frontier/spec/gpus.yaml"
            )
        print(f"profiler: --gpu {args.gpu} (from the device name)", file=sys.stderr)

    gpu = args.gpu or ("dry-run" if args.dry_run else "gpu")
    tables_dir, meta_path = output_paths(gpu, args.out)
    try:
        writers = {f: TableWriter(f, tables_dir) for f in ops}
    except TableError as exc:
        return fail(str(exc))
    return profile(args, gpu, ops, writers, tables_dir, meta_path, triton_ok)


def detect_gpu() -> str | None:
    """The gpus.yaml name of the visible GPU (its device name is an alias there), if known."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        from frontier.spec.hardware import get_gpu

        return get_gpu(torch.cuda.get_device_name(0)).name
    except Exception:
        return None


def output_paths(gpu: str, out: Path | None) -> tuple[Path, Path]:
    if out is None:
        from frontier.paths import CALIBRATION_DIR

        return CALIBRATION_DIR / gpu / "tables", CALIBRATION_DIR / gpu / "meta.json"
    return Path(out), Path(out) / "meta.json"


def run_check(args, triton_ok: bool) -> int:
    if not triton_ok:
        return fail("triton is not importable here; --check needs it (in its interpreter on the CPU)")
    from profiler.check import run_checks

    device = "cpu" if args.dry_run else "cuda"
    results = run_checks(device, small=args.dry_run)
    for r in results:
        print(r.line())
    bad = [r for r in results if not r.ok]
    print(f"profiler: {len(results) - len(bad)} of {len(results)} kernel checks passed on {device}")
    return 1 if bad else 0


class PlanTimer:
    """Stands in for the Timer when only planning (--plan on a machine without a GPU)."""

    def __init__(self, reps: int, warmup: int):
        self.reps, self.warmup = reps, warmup


def make_context(args, triton_ok: bool):
    import torch

    from profiler.runner import Context
    from profiler.timing import DRY_REPS, DRY_WARMUP, REPS_FULL, REPS_QUICK, WARMUP, Timer

    torch.manual_seed(args.seed)
    if args.dry_run:
        torch.set_num_threads(1)  # tiny shapes: threads only add contention
    device = "cpu" if args.dry_run else "cuda"
    ctx = Context(device=device, dry_run=args.dry_run, quick=args.quick, seed=args.seed, triton=triton_ok)
    reps, warmup = (DRY_REPS, DRY_WARMUP) if args.dry_run else (REPS_QUICK if args.quick else REPS_FULL, WARMUP)
    if args.plan and not (args.dry_run or torch.cuda.is_available()):
        ctx.timer = PlanTimer(reps, warmup)
        ctx.sm_count = 132
        return ctx
    ctx.timer = Timer(device, reps=reps, warmup=warmup)
    if ctx.cuda:
        ctx.sm_count = torch.cuda.get_device_properties(0).multi_processor_count
    return ctx


def plan_family(family: str, ctx, specs):
    from profiler.bench import attention, elementwise, gemm, memcpy, moe, step

    planner = {
        "gemm": gemm.plan,
        "attn_prefill": attention.plan_prefill,
        "attn_decode": attention.plan_decode,
        "grouped_gemm": moe.plan,
        "elementwise": elementwise.plan,
        "memcpy": memcpy.plan,
        "decode_step": step.plan,
    }[family]
    return planner(ctx, specs)


@dataclass
class Plan:
    """What a run will measure: rows per family (minus those already in the tables)."""

    cases: dict = field(default_factory=dict)  # family -> [Case]
    skipped: dict = field(default_factory=dict)  # family -> rows already in the table
    estimate_s: dict = field(default_factory=dict)  # family -> rough seconds on an H100
    collectives: dict = field(default_factory=dict)  # world size -> [row]
    coll_backend: str = ""
    coll_mode: str = ""

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.cases.values()) + sum(len(v) for v in self.collectives.values())


def build_plan(args, ctx, ops, writers, specs, gpu_count: int) -> Plan:
    plan = Plan()
    calls = ctx.timer.warmup + ctx.timer.reps + 1
    for family in ops:
        if family == "collective":
            continue
        cases, seen, todo = plan_family(family, ctx, specs), set(), []
        for case in cases:
            key = writers[family].key(case.row)
            if key in seen or writers[family].has(case.row):
                continue
            seen.add(key)
            todo.append(case)
        if args.quick and not args.dry_run and family != "decode_step":
            # A seeded shuffle: a run cut short by the time box keeps an even spread of shapes.
            # (decode_step keeps its order: a chain of layers is built once for its three modes.)
            random.Random(args.seed * 31 + len(family)).shuffle(todo)
        plan.cases[family] = todo
        plan.skipped[family] = sum(1 for c in cases if writers[family].has(c.row))
        plan.estimate_s[family] = (
            sum(PER_CASE_OVERHEAD_MS + calls * (c.cost_ms + PER_CALL_OVERHEAD_MS) for c in todo) / 1e3
        )
    if "collective" in ops:
        from profiler import collectives

        mode = "dry" if ctx.dry_run else ("quick" if ctx.quick else "full")
        sizes = {"dry": collectives.SIZES_DRY, "quick": collectives.SIZES_QUICK, "full": collectives.SIZES_FULL}[mode]
        backend, link = ("gloo", "network") if ctx.dry_run else ("nccl", "nvlink")
        for world in collectives.world_sizes(gpu_count, ctx.dry_run):
            plan.collectives[world] = [
                r for r in collectives.planned(sizes, world, backend, link) if not writers["collective"].has(r)
            ]
        plan.coll_backend, plan.coll_mode = backend, mode
        plan.skipped["collective"] = 0
        plan.estimate_s["collective"] = sum(5 + len(rows) * 0.5 for rows in plan.collectives.values())
        if not plan.collectives:
            ctx.notes.add("unsupported", "collective", f"{gpu_count} GPU visible: no world size >= 2 to measure")
    return plan


def profile(args, gpu: str, ops, writers, tables_dir: Path, meta_path: Path, triton_ok: bool) -> int:
    import torch

    from profiler import shapes

    started = time.time()
    ctx = make_context(args, triton_ok)
    if args.dry_run:
        specs = shapes.tiny_models()
    else:
        names = [n.strip() for n in args.models.split(",")] if args.models else None
        specs = shapes.load_models(args.models_dir, names, warn=shapes.log)
    gpu_count = (torch.cuda.device_count() or 8) if ctx.cuda else 2  # --plan without a GPU: 8
    plan = build_plan(args, ctx, ops, writers, specs, gpu_count)
    print_plan(plan, tables_dir, ctx)
    if args.plan:
        return 0
    for w in writers.values():
        w.ensure_header()

    budget_min = args.budget_min or (QUICK_BUDGET_MIN if args.quick and not args.dry_run else None)
    end_by = started + 60 * budget_min if budget_min else None
    interrupted = False
    fatal = None
    try:
        fatal = measure_all(plan, ops, writers, ctx, end_by, tables_dir)
    except KeyboardInterrupt:  # the rows measured so far are on disk; say so in meta.json
        interrupted = True
        ctx.notes.add("interrupted", "run", "stopped by the user; rerun the same command to resume")

    written = {f: w.rows_written for f, w in writers.items()}
    if "collective" in writers:  # rank 0 of the spawned group wrote these
        written["collective"] = count_rows(writers["collective"].path) - len(writers["collective"].keys)
    write_meta(meta_path, tables_dir, args, gpu, ctx, ops, written, time.time() - started)
    summary(written, ctx, meta_path)
    if interrupted:
        fail("interrupted; the rows measured so far are kept, rerun the same command to resume")
        return 130
    if fatal:
        fail(f"the GPU failed and the run stopped (rows so far are kept): {fatal}")
        return 1
    if not args.dry_run and not args.no_train:
        train(gpu, args.out)
    return 1 if ctx.notes.errors() and args.dry_run else 0


def measure_all(plan: Plan, ops, writers, ctx, end_by: float | None, tables_dir: Path) -> str | None:
    """Measure the planned rows family by family, then the collectives. Returns a fatal error.

    With a time box (`end_by`), each family gets its estimated share of the time left.
    """
    import torch

    from profiler.progress import Progress
    from profiler.runner import FatalDeviceError, measure_cases

    with Progress(plan.total) as progress:
        for i, family in enumerate(ops):
            if family not in plan.cases:
                continue
            progress.describe(family)
            deadline = None
            if end_by is not None:
                rest = sum(plan.estimate_s.get(f, 0.0) for f in ops[i:]) or 1.0
                deadline = time.time() + (end_by - time.time()) * plan.estimate_s[family] / rest
            try:
                measure_cases(
                    plan.cases[family], writers, ctx, advance=lambda case: progress.advance(), deadline=deadline
                )
            except FatalDeviceError as exc:
                return str(exc)
            finally:
                ctx.cache.clear()
                if ctx.cuda:
                    torch.cuda.empty_cache()
        if plan.collectives:
            from profiler import collectives

            progress.describe("collective")
            for world, rows in plan.collectives.items():
                if not rows:
                    continue
                if end_by is not None and time.time() > end_by:
                    ctx.notes.add(
                        "budget",
                        "collective",
                        f"time budget reached: world {world} left for a rerun of the same command (it resumes)",
                    )
                    progress.advance(len(rows))
                    continue
                for note in collectives.run_world(
                    world, plan.coll_backend, rows, tables_dir, plan.coll_mode, advance=lambda n: progress.advance(n)
                ):
                    where, message = note.split(":", 1)
                    ctx.notes.add("error" if "world" in where else "unsupported", where, message.strip())
    return None


def print_plan(plan: Plan, tables_dir: Path, ctx) -> None:
    where = "CPU dry run" if ctx.dry_run else ("quick" if ctx.quick else "full")
    print(f"profiler: {where} plan, tables in {tables_dir}", file=sys.stderr)
    rows = dict(plan.cases)
    if plan.coll_backend:
        rows["collective"] = [r for v in plan.collectives.values() for r in v]
    for family, cases in rows.items():
        est = "" if ctx.dry_run else f", about {plan.estimate_s.get(family, 0) / 60:.1f} min"
        print(
            f"  {family:13s} {len(cases):6d} to measure, {plan.skipped.get(family, 0):6d} already there{est}",
            file=sys.stderr,
        )
    if not ctx.dry_run:
        print(
            f"  total about {sum(plan.estimate_s.values()) / 60:.1f} min on an H100-class GPU "
            "(rough; Triton compiles add a little)",
            file=sys.stderr,
        )


def count_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open() as fh:
        return max(0, sum(1 for _ in fh) - 1)


def write_meta(meta_path: Path, tables_dir: Path, args, gpu: str, ctx, ops, written, seconds) -> None:
    from profiler import env

    meta = {}
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
    try:
        facts = env.device_facts(ctx.device)
    except Exception as exc:  # never lose a run's meta.json over a missing fact
        facts = {"device_facts_error": f"{type(exc).__name__}: {exc}"}
    method = dict(
        ctx.timer.method(),
        quick=bool(args.quick),
        dry_run=bool(args.dry_run),
        dtype="bf16 (fp8 e4m3 for gemm dtype=fp8)",
        collectives="barrier, then the op; slowest rank per rep; nccl-tests bus factors",
    )
    command = "python -m profiler " + shlex.join(args.argv)
    run = {
        "date": env.now_iso(),
        "command": command.strip(),
        "ops": ops,
        "quick": bool(args.quick),
        "rows_written": written,
        "seconds": round(seconds, 1),
    }
    # `sources` is what frontier/predict/calibration.py keeps per table (provenance, path, rows).
    sources = dict(meta.get("sources", {}))
    for family in ops:
        path = tables_dir / f"{family}.csv"
        rel = path.relative_to(meta_path.parent) if path.is_relative_to(meta_path.parent) else path
        sources[family] = {
            "source": "frontier profiler",
            "provenance": "frontier profiler",
            "path": str(rel),
            "rows": count_rows(path),
            "date": run["date"],
        }
    meta.update(facts)
    meta.update(
        {
            "gpu": gpu,
            "device_name": facts.get("gpu_name"),
            "date": run["date"],
            "command": run["command"],
            "method": method,
            "sources": sources,
            "notes": ctx.notes.items,
            "runs": list(meta.get("runs", [])) + [run],
        }
    )
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1, default=str) + "\n")


def summary(written, ctx, meta_path: Path) -> None:
    parts = ", ".join(f"{f} {n}" for f, n in written.items())
    print(f"profiler: rows written: {parts}", file=sys.stderr)
    skipped = [n for n in ctx.notes.items if n["kind"] in ("unsupported", "oom")]
    errors = ctx.notes.errors()
    for note in ctx.notes.items:
        if note["kind"] == "budget":
            print(f"profiler: {note['where']}: {note['message']}", file=sys.stderr)
    if skipped:
        print(
            f"profiler: {len(skipped)} backend/shape groups skipped (unsupported here or out of memory); "
            f"see 'notes' in {meta_path}",
            file=sys.stderr,
        )
    for note in errors:
        print(f"profiler: error in {note['where']}: {note['message']}", file=sys.stderr)


def train(gpu: str, out: Path | None) -> None:
    if out is not None:
        print(
            f"profiler: tables are in {out}, not calibration/{gpu}/tables: copy them there, then run "
            f"`frontier train --gpu {gpu}`",
            file=sys.stderr,
        )
        return
    if importlib.util.find_spec("xgboost") is None or importlib.util.find_spec("frontier.cli") is None:
        print(
            f"profiler: predictors not retrained here (needs xgboost and the frontier CLI): run "
            f"`frontier train --gpu {gpu}` on a machine with xgboost after copying calibration/{gpu}/",
            file=sys.stderr,
        )
        return
    cmd = [sys.executable, "-c", "from frontier.cli import main; main()", "train", "--gpu", gpu]
    print(f"profiler: retraining predictors: frontier train --gpu {gpu}", file=sys.stderr)
    result = subprocess.run(cmd)
    if result.returncode:
        print(
            f"profiler: `frontier train --gpu {gpu}` failed (exit {result.returncode}); the tables are kept",
            file=sys.stderr,
        )
