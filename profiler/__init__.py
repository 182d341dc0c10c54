"""GPU profiler: measures real kernels and writes Frontier's calibration tables.

`python -m profiler --gpu h100-sxm` (or `make profile GPU=h100-sxm`) times GEMMs, attention
(prefill, paged decode, MLA), MoE grouped GEMMs, elementwise ops, collectives and memory copies
on the GPU and appends one CSV row per shape to `calibration/<gpu>/tables/<family>.csv`; and whole
decoder layers as Frontier composes them, launched eagerly and from a CUDA graph (`decode_step`).

torch and triton are imported lazily, inside the functions that need them, so that importing
this package (and `python -m profiler --help`) works on a machine without them.
"""

__all__ = ["FAMILIES"]

# Table families the profiler writes, in the order it measures them.
FAMILIES = (
    "gemm",
    "attn_prefill",
    "attn_decode",
    "grouped_gemm",
    "elementwise",
    "decode_step",
    "collective",
    "memcpy",
)
