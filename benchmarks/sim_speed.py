"""How fast does Frontier simulate? 10,000 requests of the Azure 2023 conversation trace with
Llama-3.1-8B on one H100, and on 8 H100 replicas (dp 8, the trace sped up 8x so each replica
sees the same load).

For each case it prints simulated requests per wall-clock second
  loop      the event loop alone: `simulate()` on prebuilt requests (timed inside a fresh
            process that loads the scenario and trace first)
  process   the whole `frontier simulate SCENARIO -o DIR --quiet` as a subprocess (interpreter
            start-up, imports, trace loading, simulation, summary, requests.csv, trace.json),
            with --no-plots and with the PNG plots
and peak memory (max RSS of each process from wait4; with --tracemalloc also the peak of the
loop's Python allocations, from one more, slower run). Ratio: against the target (the whole 10,000-request run in under 3 s).
The comparison with the peer on identical work is benchmarks/side_by_side.py.

    python benchmarks/sim_speed.py [--num-requests 10000] [--repeat 1] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "simulate" / "traces" / "azure_conv.csv"
TARGET_S = 3.0  # the whole 10,000-request run, start-up and output included
MIB = 2**20


def scenario_dict(name: str, dp: int, num_requests: int) -> dict:
    return {
        "name": name,
        "model": "llama-3.1-8b",
        "gpu": "h100-sxm",
        "deployment": {"tp": 1, "dp": dp, "router": "least_outstanding" if dp > 1 else "round_robin"},
        "workload": {"num_requests": num_requests, "trace": {"path": str(TRACE), "time_scale": float(dp)}},
        "slo": {"ttft_ms": 1000, "tpot_ms": 50},
        "seed": 0,
    }


def frontier_command() -> list[str]:
    """The installed `frontier` entry point beside this interpreter, else the module's main."""
    exe = Path(sys.executable).with_name("frontier")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from frontier.cli import main; main()"]


def run_child(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(wall s, max RSS MiB, exit code, output tail) of one subprocess, its rusage from wait4."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = log.read().decode(errors="replace")[-2000:]
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss / (MIB if sys.platform == "darwin" else 1024)
    return wall, rss, proc.returncode, tail


def loop_child(dp: int, num_requests: int, repeat: int, traced: bool) -> None:
    """In a fresh process: time `simulate()` alone on prebuilt requests; print one JSON line."""
    import resource

    from frontier.sim.run import simulate
    from frontier.spec.scenario import scenario_from_dict
    from frontier.workload import build_requests

    d = scenario_dict(f"bench-dp{dp}", dp, num_requests)
    scenario = scenario_from_dict(d, name=d["name"])
    requests = build_requests(scenario.workload, np.random.default_rng(scenario.seed))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = simulate(scenario, requests)
        best = min(best, time.perf_counter() - t0)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = MIB if sys.platform == "darwin" else 1024
    peak = None
    if traced:  # Python allocations of one more run; tracing slows it several times over
        tracemalloc.start()
        simulate(scenario, requests)
        peak = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    s = result.summary
    print(
        json.dumps(
            {
                "n": len(requests),
                "loop_s": best,
                "rss_growth_mib": (rss1 - rss0) / unit,
                "traced_peak_mib": peak,
                "completed": s["completed"],
                "failed": s["failed"],
                "steps": s["frontier"]["steps"],
                "sim_duration_s": s["duration"],
                "mean_ttft_ms": s["mean_ttft_ms"],
                "mean_tpot_ms": s["mean_tpot_ms"],
            }
        )
    )


def time_loop(dp: int, num_requests: int, repeat: int, traced: bool, cwd: Path) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--loop-child",
        str(dp),
        "--num-requests",
        str(num_requests),
        "--repeat",
        str(repeat),
    ] + (["--tracemalloc"] if traced else [])
    _, rss, rc, out = run_child(cmd, cwd)
    if rc != 0:
        sys.exit(f"error: the event-loop run exited {rc}:\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_mib"] = rss
    return result


def time_process(path: Path, outdir: Path, plots: bool, repeat: int) -> tuple[float, float]:
    best_wall, rss = float("inf"), 0.0
    for _ in range(repeat):
        shutil.rmtree(outdir, ignore_errors=True)
        cmd = frontier_command() + ["simulate", str(path), "-o", str(outdir), "--quiet"]
        if not plots:
            cmd.append("--no-plots")
        wall, rss_i, rc, tail = run_child(cmd, path.parent)
        if rc != 0:
            sys.exit(f"error: {' '.join(cmd)} exited {rc}:\n{tail}")
        best_wall, rss = min(best_wall, wall), max(rss, rss_i)
    return best_wall, rss


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is kept")
    ap.add_argument(
        "--tracemalloc", action="store_true", help="also trace the loop's Python allocations (one more, slower run)"
    )
    ap.add_argument("--loop-child", type=int, metavar="DP", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.loop_child is not None:
        loop_child(args.loop_child, args.num_requests, args.repeat, args.tracemalloc)
        return

    tmp = Path(tempfile.mkdtemp(prefix="frontier-bench-"))
    try:
        floor_s, floor_rss, _, _ = run_child(
            [sys.executable, "-c", "import frontier.cli, frontier.sim.run, frontier.metrics.report"], tmp
        )
        rows = []
        for label, dp in (("1 x H100", 1), ("8 x H100 (dp 8, trace x8)", 8)):
            d = scenario_dict(f"bench-dp{dp}", dp, args.num_requests)
            path = tmp / f"bench-dp{dp}.yaml"
            path.write_text(yaml.safe_dump(d, sort_keys=False))
            note(f"{label}: event loop ...")
            loop = time_loop(dp, args.num_requests, args.repeat, args.tracemalloc, tmp)
            note(f"{label}: whole process ...")
            no_plots_s, no_plots_rss = time_process(path, tmp / f"out-dp{dp}-np", False, args.repeat)
            plots_s, plots_rss = time_process(path, tmp / f"out-dp{dp}", True, args.repeat)
            rows.append((label, loop, no_plots_s, no_plots_rss, plots_s, plots_rss))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"frontier simulation speed: Azure conv trace, llama-3.1-8b, {args.num_requests} requests "
        f"(best of {args.repeat}); python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(f"start-up floor (python + imports): {floor_s:.2f} s, {floor_rss:.0f} MiB RSS\n")
    head = f"{'case':<27} {'what':<22} {'wall s':>7} {'req/s':>8} {'peak MiB':>9} {'vs 3 s target':>13}"
    print(head)
    print("-" * len(head))
    for label, loop, np_s, np_rss, p_s, p_rss in rows:
        n = loop["n"]
        entries = [
            ("event loop (simulate)", loop["loop_s"], loop["rss_mib"], "RSS"),
            ("process, --no-plots", np_s, np_rss, "RSS"),
            ("process, with plots", p_s, p_rss, "RSS"),
        ]
        for i, (what, wall, mem, _) in enumerate(entries):
            target = f"{TARGET_S / wall * n / 10_000:.2f}x" if "process" in what else ""
            print(f"{label if i == 0 else '':<27} {what:<22} {wall:>7.2f} {n / wall:>8.0f} {mem:>9.0f} {target:>13}")
        print(
            f"{'':<27} simulated {loop['sim_duration_s']:.0f} s, {loop['steps']} steps, "
            f"{loop['completed']} completed / {loop['failed']} failed, mean TTFT "
            f"{loop['mean_ttft_ms']:.0f} ms, TPOT {loop['mean_tpot_ms']:.1f} ms"
        )
        traced = (
            f", Python allocations peak {loop['traced_peak_mib']:.0f} MiB (tracemalloc)"
            if loop["traced_peak_mib"] is not None
            else ""
        )
        print(f"{'':<27} event loop: RSS grew {loop['rss_growth_mib']:.0f} MiB while simulating{traced}")
    print(
        "\npeak MiB: max RSS of the process (the loop's: a process that loads the trace, "
        "builds the requests and runs simulate())."
    )
    print("vs 3 s target: 3 s / wall, scaled to 10,000 requests (>= 1.00x meets the target).")
    print("vs the peer on the same work: python benchmarks/side_by_side.py bench")


if __name__ == "__main__":
    main()
