"""Predictions for shapes or GPUs the calibration did not measure, scaled by roofline ratios.

A calibrated predictor knows one GPU and (for GEMMs) bf16. An FP8 or 4-bit-weight GEMM on that
GPU, or any operator on a GPU without a calibration of its own, is predicted as the measured
time of the reference operator (bf16, on the calibrated GPU) times the ratio of the two
rooflines:

    t(op, gpu) = t_measured(ref, ref_gpu) x roofline(op, gpu) / roofline(ref, ref_gpu)

Each roofline is max(compute, memory) at the same achievable fractions of peak, plus the same
kernel floor, so the ratio follows each shape's own regime: a memory-bound decode GEMM speeds
up with the weight bytes (FP8 halves them, 4-bit quarters them) or the HBM bandwidth (H200:
4.8 vs 3.35 TB/s), a compute-bound prefill GEMM with the tensor-core peak (FP8: 2x), and a
launch-bound tiny kernel not at all. What the measurement learned about the shape (tile
quantisation, wave effects) carries over; what differs between the kernels themselves (an FP8
kernel's scaling epilogue) does not, which is why a measured table always wins: a dtype the
calibration's table holds (meta.json `sources.<family>.dtypes`) is predicted as measured.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from frontier.ops.operators import Collective, Gemm, GroupedGemm, Operator
from frontier.predict.roofline import RooflineModel, collective_ms
from frontier.spec.hardware import GPUSpec

CALIBRATED_DTYPE = "bf16"
# How a scaled model's source ends, after its base's source and the reference GPU's name.
SCALED_MARK = ", roofline-scaled"
# The engines' quantised MoE kernels (Triton fused_moe with FP8 block scales, Marlin / FlashInfer
# 4-bit-weight MoE) reach a smaller fraction of their roofline than the measured bf16 grouped GEMM:
# they gather the routed tokens and dequantise scales in the main loop. Fitted to the decode steps
# of the development set's MoE runs with 4 clients (Qwen3-235B FP8, MiniMax-M2.5 FP8, gpt-oss-120b
# MXFP4, Kimi-K2.5 INT4, DeepSeek-R1 FP8; mean TPOT of 1,024-8,192-token outputs): 15 % too fast
# without it on the first four, 1.5 % too slow on DeepSeek; 1.15 splits the difference.
QUANTIZED_MOE_KERNEL_FACTOR = 1.15


def scaled_from(source: str) -> str | None:
    """The GPU whose calibration a family's predictions were scaled from (a `Predictor.sources`
    value written by `ScaledModel`, last in a chain of fallbacks), or None."""
    if not source.endswith(SCALED_MARK):
        return None
    return source.removesuffix(SCALED_MARK).rsplit(" ", 1)[-1]


def measured_dtypes(gpu_dir: Path, family: str) -> tuple[str, ...]:
    """The GEMM dtypes a calibration's table of `family` holds (meta.json `sources.<family>.dtypes`;
    bf16 where not recorded)."""
    meta = Path(gpu_dir) / "meta.json"
    source = json.loads(meta.read_text()).get("sources", {}).get(family, {}) if meta.exists() else {}
    return tuple(source.get("dtypes", (CALIBRATED_DTYPE,)))


def reference_op(op: Operator, measured: tuple[str, ...] = (CALIBRATED_DTYPE,)) -> Operator:
    """The operator the calibration measured in place of `op` (GEMMs of an unmeasured dtype: bf16)."""
    if isinstance(op, Gemm) and op.dtype not in measured:
        return Gemm(op.m, op.k, op.n, CALIBRATED_DTYPE)
    if isinstance(op, GroupedGemm) and op.dtype not in measured:
        return replace(op, dtype=CALIBRATED_DTYPE)
    return op


class ScaledModel:
    """A family model of `ref_gpu` used for `gpu` and for other dtypes, by roofline ratios."""

    def __init__(self, base, ref_gpu: GPUSpec, gpu: GPUSpec, measured: tuple[str, ...] = (CALIBRATED_DTYPE,)):
        self.base, self.ref_gpu, self.gpu, self.measured = base, ref_gpu, gpu, tuple(measured)
        self._ref_roof, self._roof = RooflineModel(ref_gpu), RooflineModel(gpu)
        # On its own GPU only unmeasured dtypes are scaled; the measured shapes answer as before.
        self.source = base.source if ref_gpu.name == gpu.name else f"{base.source} {ref_gpu.name}{SCALED_MARK}"

    def _roofline(self, model: RooflineModel, op: Operator) -> float:
        if isinstance(op, Collective):
            return collective_ms(op, model.gpu)
        return model.kernel_ms(op)

    def predict_ms(self, ops: Sequence[Operator]) -> np.ndarray:
        refs = [reference_op(op, self.measured) for op in ops]
        t = np.asarray(self.base.predict_ms(refs), dtype=float)
        same_gpu = self.ref_gpu.name == self.gpu.name
        for i, (op, ref) in enumerate(zip(ops, refs)):
            if same_gpu and op is ref:
                continue
            ref_ms = self._roofline(self._ref_roof, ref)
            if ref_ms > 0:
                t[i] *= self._roofline(self._roof, op) / ref_ms
            if isinstance(op, GroupedGemm) and op is not ref:
                t[i] *= QUANTIZED_MOE_KERNEL_FACTOR
        return t


def nearest_calibrated(gpu: GPUSpec, calibrated: list[GPUSpec]) -> GPUSpec | None:
    """The calibrated GPU closest to `gpu` in (bf16 peak, HBM bandwidth), on a log scale."""
    if not calibrated:
        return None

    def distance(c: GPUSpec) -> float:
        return abs(np.log(c.bf16_tflops / gpu.bf16_tflops)) + abs(np.log(c.mem_bw_gbps / gpu.mem_bw_gbps))

    return min(calibrated, key=distance)
