"""Kernels at the clocks a serving GPU sustains, not the ones a kernel benchmark sees.

Every kernel time Frontier starts from was measured in short bursts: the H100 reference (10-15
repetitions per shape), aiconfigurator's collectors (3 warm-up and 6 timed CUDA-graph replays,
collector/helper.py `benchmark_with_power` without its power option). A burst runs at the boost
clock (1,980 MHz on H100 and H200 SXM). A server prefilling back to back draws the board's power
limit (700 W) with dense tensor-core work, and the firmware lowers the SM clock until it holds:
sustained dense GEMM loads settle at roughly 80-95 % of boost (one public burn-in log: an H200
NVL held 1,635 of its 1,785 MHz). Memory-bound kernels (decode GEMMs, attention over a long KV
cache, norms) draw less and barely depend on the SM clock.

So the part of a kernel's time that the tensor cores set runs slower: a kernel of `flops` gains
SUSTAINED_SLOWDOWN x its ideal compute time (flops at the dtype's peak; at most its own time).
A GEMM near the compute roof slows by about the whole factor, a decode GEMM reading its
weights by almost nothing, collectives and transfers not at all.

SUSTAINED_SLOWDOWN is fitted to the development set (`make accuracy`, 471 runs on H100 and H200
SXM; median APE of mean TTFT / TPOT, vLLM and SGLang): 0 (bursts): 14.0 / 7.4 % and 27.1 / 10.5 %;
0.15: 11.7 / 7.3 % and 26.2 / 9.6 %; 0.25: 10.9 / 7.4 % and 24.8 / 8.3 %; 0.35: 12.9 / 7.8 % and
23.5 / 7.4 % (all runs' TTFT 16.1, 14.2, 13.7, 14.4 %). 0.25 is a sustained clock of 1 / 1.25 =
80 % of boost for work at the compute roof, the low end of the range above. Prefill-bound runs
move most (vLLM Llama-3.1-70B FP8 at TP1, 8k prompts: -19..-22 % -> -10..+5 %), decode-bound
ones not at all. The exception was the three disaggregated DeepSeek-V3 runs, whose one prefill
worker is saturated at 128-256 clients: TTFT +17 -> +49 % (median), -23 % once MLA prefill was
priced on FlashAttention-3 (frontier.predict.engine_kernels).
"""

from __future__ import annotations

import numpy as np

SUSTAINED_SLOWDOWN = 0.25


class SustainedClock:
    """`base`'s kernel times with their compute-bound part at the sustained clock."""

    def __init__(self, base, gpu, slowdown: float = SUSTAINED_SLOWDOWN):
        self.base, self.gpu, self.slowdown = base, gpu, slowdown

    def __getattr__(self, name):  # models, model_for(), gpu_name, ... of the base predictor
        return getattr(self.base, name)

    def ops_ms(self, ops) -> np.ndarray:
        ms = np.asarray(self.base.ops_ms(ops), dtype=float)
        if not self.slowdown:
            return ms
        ideal = np.array([self._ideal_ms(op) for op in ops])
        return ms + self.slowdown * np.minimum(ideal, ms)

    def op_ms(self, op) -> float:
        return float(self.ops_ms([op])[0])

    def _ideal_ms(self, op) -> float:
        """The operator's FLOPs at the tensor cores' peak for its dtype (0: no FLOPs counted)."""
        flops = getattr(op, "flops", 0.0)
        if not flops:
            return 0.0
        return flops / (self.gpu.peak_tflops(getattr(op, "dtype", "bf16")) * 1e9)

    def sources(self, families=None) -> dict[str, str]:
        """The base predictor's sources and one more entry for the clock (families unchanged)."""
        out = dict(self.base.sources(families))
        if self.slowdown:
            out["sustained_clock"] = f"compute-bound kernel time +{self.slowdown:.0%} (tables are boost-clock bursts)"
        return out
