"""Analytic fallback: roofline for kernels, alpha-beta for collectives, from the GPU spec.

Used for any family without a calibration table: datasheet peaks times the fraction tuned
kernels typically reach, so it misses kernel-specific effects (tile quantisation, launch-bound
small shapes) that the calibrated predictors learn. The summary says when it was used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from frontier.ops.operators import Collective, Operator
from frontier.spec.hardware import GPUSpec

# Fractions of datasheet peaks that tuned kernels reach on Hopper-class GPUs. FP8 GEMMs reach
# a smaller fraction of their (twice as high) peak than bf16 ones: per-token/per-block scaling
# in the epilogue and fewer tuned tile configurations (cuBLASLt and CUTLASS FP8 on H100: about
# 1,300 of 1,979 dense TFLOPS on large shapes, bf16 about 750 of 989).
COMPUTE_EFFICIENCY = 0.70
FP8_COMPUTE_EFFICIENCY = 0.60
MEMORY_EFFICIENCY = 0.80
LINK_EFFICIENCY = 0.80
KERNEL_FLOOR_MS = 0.005  # the shortest kernel a GPU runs, launch included (~5 us)

DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0}

# Bytes on the wire per byte of `size_bytes`, as a function of world size (ring algorithms).
WIRE_FACTOR = {
    "all_reduce": lambda w: 2.0 * (w - 1) / w,
    "custom_all_reduce": lambda w: 2.0 * (w - 1) / w,
    "all_gather": lambda w: (w - 1) / w,
    "reduce_scatter": lambda w: (w - 1) / w,
    "all_to_all": lambda w: (w - 1) / w,
    "send_recv": lambda w: 1.0,
}
# Latency steps of the algorithm (ring: 2(w-1) for all-reduce).
_STEPS = {
    "all_reduce": lambda w: 2 * (w - 1),
    "custom_all_reduce": lambda w: 2,
    "all_gather": lambda w: w - 1,
    "reduce_scatter": lambda w: w - 1,
    "all_to_all": lambda w: 1,
    "send_recv": lambda w: 1,
}


class RooflineModel:
    """max(compute, memory) time of a kernel at an achievable fraction of peak."""

    source = "roofline"

    def __init__(self, gpu: GPUSpec):
        self.gpu = gpu

    def kernel_ms(self, op: Operator) -> float:
        dtype = getattr(op, "dtype", "bf16")
        elem = DTYPE_BYTES.get(dtype, 2.0)
        mem_s = op.bytes_moved(elem) / (self.gpu.mem_bw_gbps * 1e9 * MEMORY_EFFICIENCY)
        flops = getattr(op, "flops", 0.0)
        efficiency = FP8_COMPUTE_EFFICIENCY if dtype == "fp8" else COMPUTE_EFFICIENCY
        compute_s = flops / (self.gpu.peak_tflops(dtype) * 1e12 * efficiency)
        return max(compute_s, mem_s) * 1e3 + KERNEL_FLOOR_MS

    def predict_ms(self, ops: Sequence[Operator]) -> np.ndarray:
        return np.array(
            [collective_ms(op, self.gpu) if isinstance(op, Collective) else self.kernel_ms(op) for op in ops]
        )


class AlphaBetaModel:
    """Collectives: latency per algorithm step plus bytes over the link bandwidth."""

    source = "alpha-beta"

    def __init__(self, gpu: GPUSpec):
        self.gpu = gpu

    def predict_ms(self, ops: Sequence[Collective]) -> np.ndarray:
        return np.array([collective_ms(op, self.gpu) for op in ops])


def link_gbps_and_latency_us(gpu: GPUSpec, link: str) -> tuple[float, float]:
    if link == "network":
        return gpu.network_gbps, gpu.network_latency_us
    return gpu.intra_node_gbps, gpu.nvlink_latency_us


# vLLM's and SGLang's custom all-reduce (vllm/csrc/custom_all_reduce.cuh, used below 8 MiB on
# NVLink): one-shot (each GPU reads every peer's buffer over NVLink P2P and reduces) for 2 GPUs,
# for messages under 512 KiB on up to 4 GPUs and under 256 KiB on up to 8; else two-shot
# (reduce-scatter then all-gather through the same buffers). Each stage ends in a flag barrier
# that waits on every peer's flag over NVLink: a stage's latency is a fixed part plus one per
# peer. Both fitted to the development set's Llama-3.1-70B FP8 decode steps on 2, 4 and 8 H200s
# (4-8 clients), where the all-reduces are the only part that changes with the peer count.
CUSTOM_ALLREDUCE_BASE_US = 4.0
CUSTOM_ALLREDUCE_PER_PEER_US = 1.0


def custom_all_reduce_ms(size_bytes: float, world: int, gpu: GPUSpec) -> float:
    one_shot = world == 2 or size_bytes < (512 if world <= 4 else 256) * 1024
    wire = (world - 1) * size_bytes if one_shot else 2.0 * (world - 1) / world * size_bytes
    stages = 1 if one_shot else 2
    stage_us = CUSTOM_ALLREDUCE_BASE_US + CUSTOM_ALLREDUCE_PER_PEER_US * (world - 1)
    return stages * stage_us * 1e-3 + wire / (gpu.intra_node_gbps * 1e9 * LINK_EFFICIENCY) * 1e3


# vLLM's symmetric-memory all-reduce on NVSwitch systems (torch.ops.symm_mem.multimem_all_reduce_,
# frontier.ops.graph SYMM_MEM_MAX): each rank reduces its 1/w of the message in the switch
# (multimem.ld_reduce) and multicasts the result (multimem.st), so every GPU's NVLink carries the
# message once each way, whatever the world size. Fitted to the published SM 9.0 timings of
# vLLM PR #42324 (benchmarks/kernels/benchmark_device_communicators.py, 0.5-48 MiB: 11-244 us,
# within 5 %): 8.5 us plus the message at 47 % of one direction of NVLink (212 GB/s on H100).
MULTIMEM_BASE_US = 8.5
MULTIMEM_LINK_EFFICIENCY = 0.47


def multimem_all_reduce_ms(size_bytes: float, gpu: GPUSpec) -> float:
    return MULTIMEM_BASE_US * 1e-3 + size_bytes / (gpu.intra_node_gbps * 1e9 * MULTIMEM_LINK_EFFICIENCY) * 1e3


def collective_ms(op: Collective, gpu: GPUSpec) -> float:
    if op.world <= 1 or op.size_bytes <= 0:
        return 0.0
    if op.kind == "custom_all_reduce":
        return custom_all_reduce_ms(op.size_bytes, op.world, gpu)
    if op.kind == "multimem_all_reduce":
        return multimem_all_reduce_ms(op.size_bytes, gpu)
    bw_gbps, lat_us = link_gbps_and_latency_us(gpu, op.link)
    wire = WIRE_FACTOR[op.kind](op.world) * op.size_bytes
    return _STEPS[op.kind](op.world) * lat_us * 1e-3 + wire / (bw_gbps * 1e9 * LINK_EFFICIENCY) * 1e3
