"""The side-by-side workload: what the peer (Vidur) is timed on, generated for Frontier.

Llama-2-7B on one H100, Poisson arrivals at 8 requests/s, a 512-token chunked-prefill budget,
at most 128 sequences, no output files. Request lengths are drawn (with replacement, seed 42)
from the Azure 2023 conversation trace shipped in simulate/traces/azure_conv.csv, the trace
the peer's "splitwise_conv" workload comes from, with prompt + output capped at the model's
4,096-token context as the peer does.

    python benchmarks/side_by_side.py generate -n 10000 -o conv.csv   # a Vidur-format CSV
    python benchmarks/side_by_side.py run -n 10000 [--budget 512]     # simulate it, print figures
    python benchmarks/side_by_side.py bench [--sizes 1000,10000,100000] [--repeat 3]

`run` is the whole process the benchmark times: imports, the workload, the simulation and a
one-line summary, nothing written to disk. `bench` times `run` as a subprocess at each size
(the median of --repeat runs; peak RSS from wait4) and prints simulated requests per second
of wall time, peak memory, and steps planned one by one (batches) against steps simulated.
The peer's figure is the issue's measurement: 10,000 requests in 20.1 s of wall time.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONV = REPO / "simulate" / "traces" / "azure_conv.csv"
SEED, RATE, MAX_TOKENS = 42, 8.0, 4096
PEER_REQUESTS, PEER_S = 10_000, 20.1  # Vidur on this workload, 512-token budget, no output files
MIB = 2**20


def conversation_lengths() -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) token counts of every request of the Azure conversation trace."""
    with CONV.open() as f:
        reader = csv.reader(f)
        head = next(reader)
        i, j = head.index("ContextTokens"), head.index("GeneratedTokens")
        rows = [(int(r[i]), int(r[j])) for r in reader]
    lengths = np.array(rows, dtype=np.int64)
    return lengths[:, 0], lengths[:, 1]


def generate(n: int, seed: int = SEED, rate: float = RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival s, prompt tokens, output tokens) of n requests."""
    rng = np.random.default_rng(seed)
    prompts, outputs = conversation_lengths()
    pick = rng.integers(0, len(prompts), n)
    prompt = np.clip(prompts[pick], 1, MAX_TOKENS - 1)
    output = np.clip(np.minimum(outputs[pick], MAX_TOKENS - prompt), 1, None)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    return arrival, prompt, output


def scenario(n: int, budget: int = 512, seqs: int = 128):
    from frontier.spec.scenario import scenario_from_dict

    return scenario_from_dict(
        {
            "name": f"side-by-side-{n}",
            "model": "llama-2-7b",
            "gpu": "h100-sxm",
            "deployment": {"tp": 1, "max_num_batched_tokens": budget, "max_num_seqs": seqs},
            "workload": {
                "num_requests": n,
                "input_len": 1,
                "output_len": 1,
                "arrival": {"process": "poisson", "rate": RATE},
            },
            "seed": SEED,
        }
    )


def run(n: int, budget: int, fast_forward: bool = True) -> dict:
    """Simulate the workload in this process; the summary's headline figures."""
    from frontier.sim.run import simulate
    from frontier.workload import RequestTable

    arrival, prompt, output = generate(n)
    result = simulate(
        scenario(n, budget), RequestTable(arrival, prompt, output), timeline=False, fast_forward=fast_forward
    )
    s = result.summary
    return {
        "n": n,
        "completed": s["completed"],
        "steps": s["frontier"]["steps"],
        "batches": s["frontier"].get("batches"),
        "duration_s": s["duration"],
        "mean_ttft_ms": s["mean_ttft_ms"],
        "p99_itl_ms": s["p99_itl_ms"],
        "mean_tpot_ms": s["mean_tpot_ms"],
        "wall_s": s["frontier"]["wall_time_s"],
    }


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of a subprocess; fails loudly if it fails."""
    import os
    import subprocess
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{out[-2000:]}")
    rss = usage.ru_maxrss / (MIB if sys.platform == "darwin" else 1024)  # KiB on Linux
    return wall, rss, out


def bench(sizes: list[int], budget: int, repeat: int) -> None:
    import json
    import os
    import statistics

    peer_rps = PEER_REQUESTS / PEER_S
    print(
        f"side-by-side workload: llama-2-7b on one H100, Poisson {RATE:g} req/s, conversation lengths "
        f"(seed {SEED}), budget {budget} tokens, 128 seqs; whole process, no output files; "
        f"median of {repeat}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    head = (
        f"{'requests':>9} {'wall s':>7} {'req/s':>7} {'vs peer':>8} {'peak MiB':>9} "
        f"{'steps':>9} {'batches':>9} {'loop s':>7}"
    )
    print(head)
    print("-" * len(head))
    for n in sizes:
        runs = [
            run_child([sys.executable, __file__, "run", "-n", str(n), "--budget", str(budget)]) for _ in range(repeat)
        ]
        wall = statistics.median(w for w, _, _ in runs)
        rss = max(r for _, r, _ in runs)
        fig = json.loads(runs[0][2].strip().splitlines()[-1])
        print(
            f"{n:>9} {wall:>7.2f} {n / wall:>7.0f} {n / wall / peer_rps:>7.1f}x {rss:>9.0f} "
            f"{fig['steps']:>9} {fig['batches']:>9} {fig['wall_s']:>7.2f}",
            flush=True,
        )
    print(
        f"vs peer: requests per wall second / the peer's {peer_rps:.0f} ({PEER_REQUESTS} requests in "
        f"{PEER_S} s). batches: steps or runs of steps planned one by one; loop s: simulate() alone."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["generate", "run", "bench"])
    ap.add_argument("-n", "--num-requests", type=int, default=10_000)
    ap.add_argument("--budget", type=int, default=512, help="max_num_batched_tokens")
    ap.add_argument("-o", "--output", type=Path, help="generate: the CSV to write (default stdout)")
    ap.add_argument("--sizes", default="1000,10000,100000", help="bench: request counts, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="bench: runs per size (median wall)")
    args = ap.parse_args()
    if args.what == "bench":
        bench([int(x) for x in args.sizes.split(",")], args.budget, args.repeat)
        return
    if args.what == "run":
        import json

        print(json.dumps(run(args.num_requests, args.budget)))
        return
    arrival, prompt, output = generate(args.num_requests)
    out = args.output.open("w", newline="") if args.output else sys.stdout
    w = csv.writer(out)
    w.writerow(["arrived_at", "num_prefill_tokens", "num_decode_tokens"])
    w.writerows(zip(np.round(arrival, 6), prompt, output))


if __name__ == "__main__":
    main()
