"""Memory-bound ops around the GEMMs: norms, rotary, KV-cache write, activation, FP8 quantisation,
sampling.

The operators and widths are those Frontier's operator graph emits (`shapes.elementwise_ops`),
and each is timed as the engines run it: the norms, rotary, KV-cache write, SiLU-and-mul and FP8
quantisation as one fused kernel each (vLLM's `fused_add_rms_norm`, `rotary_embedding`,
`reshape_and_cache_flash`, `silu_and_mul`; SGLang's sgl-kernel equivalents), built here by
torch.compile exactly as the decode-step family builds them (`step.elementwise_call`, backend
`compiled`); the CPU dry run runs the same functions in PyTorch eager (backend `torch`). The
sampler stays PyTorch eager (softmax and an exponential race, as vLLM samples).
"""

from __future__ import annotations

from profiler import shapes
from profiler.bench import est_ms
from profiler.runner import Case, Context

SAMPLING_MAX_TOKENS = 2048  # sampling runs on one token per sequence: decode-batch sizes


def plan(ctx: Context, specs) -> list[Case]:
    ms = shapes.M_DRY if ctx.dry_run else (shapes.M_QUICK if ctx.quick else shapes.M_FULL)
    tps = (1, 2) if ctx.dry_run else shapes.TP_DEGREES
    ops = shapes.unique(
        op for spec in specs for tp in tps if shapes.tp_ok(spec, tp) for op in shapes.elementwise_ops(spec, tp)
    )
    return [_case(ctx, op, m) for op in ops for m in ms if not (op.name == "sampling" and m > SAMPLING_MAX_TOKENS)]


def _case(ctx: Context, op, tokens: int) -> Case:
    from frontier.ops.operators import Elementwise

    fused = op.name in shapes.FUSED_ELEMENTWISE
    backend = "compiled" if fused and ctx.cuda else "torch"
    row = {"name": op.name, "tokens": tokens, "width": op.width, "backend": backend, "model": op.model}
    operator = Elementwise(op.name, tokens, op.width)
    moved = operator.bytes_moved(4.0 if op.name == "sampling" else 2.0)  # the sampler works in fp32
    return Case(
        family="elementwise",
        row=row,
        group=f"elementwise/{op.name}",
        setup=lambda: _setup(ctx, operator, fused),
        derive=lambda ms: {"gbps": moved / (ms * 1e6)},
        cost_ms=est_ms(0, moved),
    )


def _setup(ctx: Context, op, fused: bool):
    import torch

    if fused:
        from profiler.bench.step import elementwise_call

        return elementwise_call(ctx, op)
    logits = torch.randn(op.tokens, op.width, device=ctx.device, dtype=torch.bfloat16)
    inv_temp = 1.0 / 0.7

    def sample():  # softmax, then argmax(p / Exp(1)) == a draw from p (vLLM's sampler trick)
        probs = torch.softmax(logits.float() * inv_temp, dim=-1)
        return torch.argmax(probs / torch.empty_like(probs).exponential_(), dim=-1)

    return sample
