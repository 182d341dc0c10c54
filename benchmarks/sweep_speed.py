"""How long does `frontier sweep` take? The issue's two targets, each as the whole command in a
subprocess (interpreter start-up, imports, every point, every output file, pareto.png):

  sweeps/llama3.1-70b-8xh100.yaml  Llama-3.1-70B on up to 8 H100s, TP 1-8 x DP, 6 concurrency
                                   levels, TTFT <= 2 s, TPOT <= 50 ms      target: < 30 s
  sweeps/deepseek-v3-pd-h100.yaml  DeepSeek-V3 prefill/decode splits on 32-128 H100s, 4 rates
                                                                           target: < 120 s

    python benchmarks/sweep_speed.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CASES = [("sweeps/llama3.1-70b-8xh100.yaml", 30.0), ("sweeps/deepseek-v3-pd-h100.yaml", 120.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (the CI machine has 2 cores)")
    args = ap.parse_args()
    frontier = Path(sys.executable).parent / "frontier"
    for spec, target in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run(
                [str(frontier), "sweep", str(ROOT / spec), "-o", tmp, "--quiet", "--jobs", str(args.jobs)],
                check=True,
                capture_output=True,
            )
            wall = time.perf_counter() - t0
            points = len(pd.read_csv(Path(tmp) / "results.csv"))
            skipped = pd.read_csv(Path(tmp) / "skipped.csv")
            best = json.loads((Path(tmp) / "best.json").read_text())["best"]
        print(
            f"{spec}: {wall:.1f} s for {points} points ({len(skipped)} infeasible or skipped), "
            f"{wall / target:.2f} x the {target:.0f} s target; best: "
            f"{best['config'] if best else 'none meets the SLO'}"
        )


if __name__ == "__main__":
    main()
