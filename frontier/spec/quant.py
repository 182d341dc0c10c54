"""Precisions of weights and KV cache, by the names vLLM and SGLang use.

`deployment.quantization` takes vLLM's `--quantization` names; a checkpoint's own
`quantization_config` (config.json) says the same in its `quant_method`. Each precision fixes
the bytes a weight takes in GPU memory (scales included) and the GEMM family that runs it:

| name | weights | activations | GEMM family | bytes / param |
| --- | --- | --- | --- | --- |
| `none` (bf16) | bf16 | bf16 | bf16 | 2 |
| `fp8` | fp8 e4m3, per-tensor/per-channel scale | fp8 (dynamic per-token) | fp8 | 1 |
| `fp8_block` | fp8 e4m3, 128x128 block scales (DeepSeek) | fp8, 1x128 group scales | fp8 | 1 + 4/128² |
| `mxfp4` | 4-bit e2m1, one e8m0 scale per 32 (gpt-oss experts) | bf16 (Hopper) | w4a16 | (4 + 8/32)/8 |
| `nvfp4` | 4-bit e2m1, one fp8 scale per 16 | fp8 on Hopper | w4a16 | (4 + 8/16)/8 |
| `int4` (`awq`, `gptq`, compressed-tensors W4A16) | int4, group 128 with bf16 scale | bf16 | w4a16 | (4 + 16/128)/8 |

On Hopper there is no FP4 tensor-core path: 4-bit weights are dequantised in the GEMM's main
loop (Marlin / Triton W4A16 kernels), so their GEMMs run at bf16 math with a quarter of the
weight bytes. Sources: vllm/model_executor/layers/quantization/{fp8,mxfp4,awq_marlin,
compressed_tensors}.py; sglang/srt/layers/quantization/.
"""

from __future__ import annotations

from frontier.errors import SpecError

QUANTIZATIONS = ("none", "fp8", "fp8_block", "mxfp4", "nvfp4", "int4")
ALIASES = {
    "bf16": "none",
    "fp16": "none",
    "float16": "none",
    "bfloat16": "none",
    "awq": "int4",
    "gptq": "int4",
    "awq_marlin": "int4",
    "gptq_marlin": "int4",
    "w4a16": "int4",
    "compressed-tensors": "int4",
    "modelopt_fp4": "nvfp4",
    "fp4": "nvfp4",
}
BYTES_PER_PARAM = {
    "none": 2.0,
    "fp8": 1.0,
    "fp8_block": 1.0 + 4 / 128**2,
    "mxfp4": (4 + 8 / 32) / 8,
    "nvfp4": (4 + 8 / 16) / 8,
    "int4": (4 + 16 / 128) / 8,
}
# The GEMM a linear layer of that precision runs (the predictor's dtype).
GEMM_DTYPE = {"none": "bf16", "fp8": "fp8", "fp8_block": "fp8", "mxfp4": "w4a16", "nvfp4": "w4a16", "int4": "w4a16"}
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bf16")


def quantization_name(value: str, where: str) -> str:
    """A precision name in this module's vocabulary, or a one-line error."""
    v = str(value).strip().lower()
    v = ALIASES.get(v, v)
    if v not in QUANTIZATIONS:
        raise SpecError(
            f"{where}: '{value}' is not a known quantization; use one of "
            f"{', '.join(QUANTIZATIONS)} (or awq, gptq, fp4 as aliases)"
        )
    return v


def kv_cache_bytes(kv_cache_dtype: str, model_bytes: int) -> int:
    """Bytes per KV element: fp8 caches take one, `auto` keeps the model's dtype."""
    return 1 if kv_cache_dtype.startswith("fp8") else (2 if kv_cache_dtype == "bf16" else model_bytes)
