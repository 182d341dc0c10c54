"""MoE grouped GEMM: one projection of `tokens` tokens routed top-k over the experts of one GPU.

Backends: `grouped_mm` (torch._grouped_mm, one kernel over rows pre-sorted by expert), `triton`
(the profiler's own fused-MoE-style kernel, which also gathers the rows), `loop` (one F.linear
per active expert). Routing is uniform (`skew` 0) or Zipf-like (`skew` 1.2: expert of popularity
rank r is picked with weight r^-skew), drawn from a seeded generator when the plan is made, so
the realised `max_per_expert` / `active_experts` are known before anything runs.
"""

from __future__ import annotations

from profiler import shapes
from profiler.bench import dtype_of, est_ms
from profiler.runner import Case, Context, Unsupported

SKEWS = (0.0, 1.2)
MOE_TOKENS_FULL = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
MOE_TOKENS_QUICK = (1, 16, 64, 256, 1024, 4096, 16384)


def route(tokens: int, experts: int, topk: int, skew: float, gen):
    """topk_ids [tokens, topk] (CPU int64): distinct experts per token.

    Sampling without replacement in proportion to the weights as an exponential race: each
    expert gets an arrival time Exp(1) / weight and a token takes the first `topk` to arrive
    (the Gumbel-top-k trick without logarithms), vectorised over tokens.
    """
    import torch

    if skew > 0:
        ranks = torch.randperm(experts, generator=gen).float() + 1.0
        weights = ranks**-skew
    else:
        weights = torch.ones(experts)
    arrival = torch.empty(tokens, experts).exponential_(generator=gen) / weights
    return torch.topk(arrival, topk, dim=-1, largest=False).indices


def plan(ctx: Context, specs) -> list[Case]:
    import torch

    if ctx.dry_run:
        token_list, eps, tps = shapes.M_DRY, (1, 2), (2,)
    elif ctx.quick:
        token_list, eps, tps = MOE_TOKENS_QUICK, (1, 8), (8,)
    else:
        token_list, eps, tps = MOE_TOKENS_FULL, (1, 2, 4, 8), (2, 4, 8)
    projs = [p for spec in specs for p in shapes.moe_projs(spec, eps, tps)]
    backends = ["grouped_mm", "triton", "loop"]
    if not ctx.triton:
        ctx.notes.add("unsupported", "grouped_gemm/triton", "triton is not importable here")
        backends.remove("triton")
    seen: set = set()
    cases: list[Case] = []
    for proj in projs:
        key = (proj.experts, proj.topk, proj.k, proj.n)
        if key in seen:
            continue
        seen.add(key)
        for skew in SKEWS:
            for tokens in token_list:
                salt = hash((tokens, proj.experts, proj.topk, skew)) & 0xFFFFFF
                ids = route(tokens, proj.experts, proj.topk, skew, ctx.generator(salt))
                counts = torch.bincount(ids.reshape(-1), minlength=proj.experts)
                for backend in backends:
                    cases.append(_case(ctx, proj, tokens, skew, ids, counts, backend))
    return cases


def _case(ctx: Context, proj, tokens: int, skew: float, ids, counts, backend: str) -> Case:
    rows = tokens * proj.topk
    active = int((counts > 0).sum())
    row = {
        "experts": proj.experts,
        "topk": proj.topk,
        "tokens": tokens,
        "k": proj.k,
        "n": proj.n,
        "max_per_expert": int(counts.max()),
        "active_experts": active,
        "dtype": "fp16" if backend == "triton" and not ctx.cuda else "bf16",  # interpreter: no bf16
        "backend": backend,
        "skew": skew,
        "proj": proj.proj,
        "model": proj.model,
    }
    flops = 2.0 * rows * proj.k * proj.n
    moved = 2.0 * (active * proj.k * proj.n + rows * proj.k + rows * proj.n)
    return Case(
        family="grouped_gemm",
        row=row,
        group=f"grouped_gemm/{backend}",
        setup=lambda: _setup(ctx, proj, tokens, ids, counts, backend),
        derive=lambda ms: {"tflops": flops / (ms * 1e9)},
        cost_ms=est_ms(flops, moved) + (0.01 * active if backend == "loop" else 0.0),
    )


def _setup(ctx: Context, proj, tokens: int, ids, counts, backend: str):
    import torch
    import torch.nn.functional as F

    dev = ctx.device
    dtype = ctx_kernel_dtype(ctx) if backend == "triton" else dtype_of("bf16")
    experts, k, n, topk = proj.experts, proj.k, proj.n, proj.topk
    w = ctx.cache.get(
        ("moe.w", experts, n, k, dtype, dev),  # up to 15 GB: fill in place
        lambda: torch.empty(experts, n, k, device=dev, dtype=dtype).normal_(0.0, k**-0.5),
    )
    rows = tokens * topk
    if backend == "triton":
        from profiler.kernels.grouped_gemm import GroupedGemm

        a_div = topk if proj.proj == "gate_up" else 1
        x = torch.randn(rows // a_div, k, device=dev, dtype=dtype)
        return GroupedGemm(x, w, ids.to(dev), a_div)
    x_sorted = torch.randn(rows, k, device=dev, dtype=dtype)  # rows already grouped by expert
    if backend == "grouped_mm":
        if not hasattr(torch, "_grouped_mm"):
            raise Unsupported(f"torch {torch.__version__} has no _grouped_mm")
        if ctx.cuda and torch.cuda.get_device_capability() < (9, 0):
            raise Unsupported("torch._grouped_mm needs compute capability 9.0+")
        offs = torch.cumsum(counts, 0).to(device=dev, dtype=torch.int32)
        wt = w.transpose(-2, -1)  # [experts, k, n], column-major per expert
        return lambda: torch._grouped_mm(x_sorted, wt, offs=offs)
    if backend == "loop":
        bounds = torch.cumsum(counts, 0).tolist()
        spans = [(e, (bounds[e - 1] if e else 0), bounds[e]) for e in range(experts) if counts[e] > 0]

        def loop():
            return [F.linear(x_sorted[lo:hi], w[e]) for e, lo, hi in spans]

        return loop
    raise Unsupported(f"unknown backend {backend}")


def ctx_kernel_dtype(ctx: Context):
    """bf16 for Triton kernels on the GPU; fp16 in Triton's CPU interpreter (it has no bf16)."""
    import torch

    return torch.bfloat16 if ctx.cuda else torch.float16
