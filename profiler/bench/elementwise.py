"""Memory-bound ops around the GEMMs: norms, rotary, activation, residual, MoE routing, sampling.

Each op is what a PyTorch-eager serving step runs (`backend` = torch; several kernels for rotary
or sampling, where serving engines fuse them: an upper bound for those). Widths follow
`shapes.elementwise_ops`.
"""

from __future__ import annotations

from profiler import shapes
from profiler.bench import est_ms
from profiler.runner import Case, Context, Unsupported

SAMPLING_MAX_TOKENS = 2048  # sampling runs on one token per sequence: decode-batch sizes


def plan(ctx: Context, specs) -> list[Case]:
    ms = shapes.M_DRY if ctx.dry_run else (shapes.M_QUICK if ctx.quick else shapes.M_FULL)
    tps = (1, 2) if ctx.dry_run else shapes.TP_DEGREES
    ops = shapes.unique(
        op for spec in specs for tp in tps if shapes.tp_ok(spec, tp) for op in shapes.elementwise_ops(spec, tp)
    )
    cases, seen = [], set()
    for op in ops:
        for m in ms:
            if op.name == "sampling" and m > SAMPLING_MAX_TOKENS:
                continue
            tokens = m * op.topk if op.name in ("moe_permute", "moe_combine") else m
            if (op.name, tokens, op.width) in seen:
                continue
            seen.add((op.name, tokens, op.width))
            cases.append(_case(ctx, op, m, tokens))
    return cases


def _case(ctx: Context, op, m: int, tokens: int) -> Case:
    backend = _backend(op.name)
    row = {"name": op.name, "tokens": tokens, "width": op.width, "backend": backend, "model": op.model}
    reads = {"silu_mul": 2, "residual_add": 2, "moe_combine": 1}.get(op.name, 1)
    elem = 4 if op.name in ("sampling", "topk_gating") else 2
    moved = elem * tokens * op.width * (reads + 1)
    return Case(
        family="elementwise",
        row=row,
        group=f"elementwise/{op.name}",
        setup=lambda: _setup(ctx, op, m, backend),
        derive=lambda ms: {"gbps": moved / (ms * 1e6)},
        cost_ms=est_ms(0, moved),
    )


def _backend(name: str) -> str:
    return "torch"


def _setup(ctx: Context, op, m: int, backend: str):
    import torch
    import torch.nn.functional as F

    dev, bf16 = ctx.device, torch.bfloat16
    w = op.width
    if op.name == "rmsnorm":
        x = torch.randn(m, w, device=dev, dtype=bf16)
        weight = torch.ones(w, device=dev, dtype=bf16)
        if hasattr(F, "rms_norm"):
            return lambda: F.rms_norm(x, (w,), weight, 1e-6)
        return lambda: x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(bf16) * weight
    if op.name == "residual_add":
        x, r = torch.randn(m, w, device=dev, dtype=bf16), torch.randn(m, w, device=dev, dtype=bf16)
        out = torch.empty_like(x)
        return lambda: torch.add(x, r, out=out)
    if op.name == "silu_mul":
        x = torch.randn(m, 2 * w, device=dev, dtype=bf16)
        return lambda: F.silu(x[:, :w]) * x[:, w:]
    if op.name == "rotary":
        hd = op.head_dim
        heads = w // hd
        x = torch.randn(m, heads, hd, device=dev, dtype=bf16)
        angles = torch.randn(m, hd // 2, device=dev, dtype=torch.float32)
        cos, sin = angles.cos().to(bf16)[:, None, :], angles.sin().to(bf16)[:, None, :]

        def rotary():  # neox style: rotate the two halves of each head
            x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
            return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

        return rotary
    if op.name == "topk_gating":
        logits = torch.randn(m, w, device=dev, dtype=bf16)

        def gating():
            probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
            weights, ids = torch.topk(probs, op.topk, dim=-1)
            return weights / weights.sum(-1, keepdim=True), ids

        return gating
    if op.name == "sampling":
        logits = torch.randn(m, w, device=dev, dtype=bf16)
        inv_temp = 1.0 / 0.7

        def sample():  # softmax, then argmax(p / Exp(1)) == a draw from p (vLLM's sampler trick)
            probs = torch.softmax(logits.float() * inv_temp, dim=-1)
            return torch.argmax(probs / torch.empty_like(probs).exponential_(), dim=-1)

        return sample
    if op.name in ("moe_permute", "moe_combine"):
        from profiler.bench.moe import route

        experts = max(op.topk * 4, 8)
        ids = route(m, experts, op.topk, 0.0, ctx.generator(m)).to(dev)
        if op.name == "moe_permute":
            x = torch.randn(m, w, device=dev, dtype=bf16)

            def permute():  # sort routed rows by expert and gather their tokens
                order = torch.argsort(ids.reshape(-1), stable=True)
                return x.index_select(0, order // op.topk)

            return permute
        y = torch.randn(m * op.topk, w, device=dev, dtype=bf16)
        gate = torch.rand(m, op.topk, device=dev, dtype=bf16)
        inverse = torch.argsort(torch.argsort(ids.reshape(-1), stable=True))

        def combine():  # un-sort the expert outputs and sum each token's top-k, weighted
            back = y.index_select(0, inverse).view(m, op.topk, w)
            return (back * gate.unsqueeze(-1)).sum(dim=1)

        return combine
    raise Unsupported(f"unknown elementwise op {op.name}")
