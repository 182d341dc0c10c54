"""The side-by-side workload: what the peer (Vidur) is timed on, generated for Frontier.

Llama-2-7B on one H100, Poisson arrivals at 8 requests/s, a 512-token chunked-prefill budget,
at most 128 sequences, no output files. Request lengths are drawn (with replacement, seed 42)
from the Azure 2023 conversation trace shipped in simulate/traces/azure_conv.csv, the trace
the peer's "splitwise_conv" workload comes from, with prompt + output capped at the model's
4,096-token context as the peer does.

    python benchmarks/side_by_side.py generate -n 10000 -o conv.csv   # a Vidur-format CSV
    python benchmarks/side_by_side.py run -n 10000 [--budget 512]     # simulate it, print figures

`run` is the whole process the benchmark times: imports, the workload, the simulation and a
one-line summary, nothing written to disk.
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


def conversation_lengths() -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) token counts of every request of the Azure conversation trace."""
    with CONV.open() as f:
        rows = [(int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(f)]
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

    return scenario_from_dict({
        "name": f"side-by-side-{n}", "model": "llama-2-7b", "gpu": "h100-sxm",
        "deployment": {"tp": 1, "max_num_batched_tokens": budget, "max_num_seqs": seqs},
        "workload": {"num_requests": n, "input_len": 1, "output_len": 1,
                     "arrival": {"process": "poisson", "rate": RATE}},
        "seed": SEED})


def run(n: int, budget: int, fast_forward: bool = True) -> dict:
    """Simulate the workload in this process; the summary's headline figures."""
    from frontier.sim.run import simulate
    from frontier.workload import RequestTable

    arrival, prompt, output = generate(n)
    result = simulate(scenario(n, budget), RequestTable(arrival, prompt, output), timeline=False,
                      fast_forward=fast_forward)
    s = result.summary
    return {"n": n, "completed": s["completed"], "steps": s["frontier"]["steps"],
            "batches": s["frontier"]["batches"], "duration_s": s["duration"],
            "mean_ttft_ms": s["mean_ttft_ms"], "p99_itl_ms": s["p99_itl_ms"],
            "mean_tpot_ms": s["mean_tpot_ms"], "wall_s": s["frontier"]["wall_time_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["generate", "run"])
    ap.add_argument("-n", "--num-requests", type=int, default=10_000)
    ap.add_argument("--budget", type=int, default=512, help="max_num_batched_tokens")
    ap.add_argument("-o", "--output", type=Path, help="generate: the CSV to write (default stdout)")
    args = ap.parse_args()
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
