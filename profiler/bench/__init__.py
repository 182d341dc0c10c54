"""One module per table family: `plan(ctx, specs)` returns the cases (rows) to measure."""

from __future__ import annotations

# Rough H100 numbers, only to estimate how long a plan takes (printed before measuring).
EST_TFLOPS = 600.0
EST_TBPS = 2.8


def est_ms(flops: float = 0.0, bytes_moved: float = 0.0) -> float:
    return max(flops / (EST_TFLOPS * 1e9), bytes_moved / (EST_TBPS * 1e9), 0.005)


def dtype_of(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]
