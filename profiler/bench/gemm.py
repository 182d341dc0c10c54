"""GEMM: y[m, n] = x[m, k] @ w[n, k]^T in bf16 (F.linear, cuBLAS) and fp8 e4m3 (torch._scaled_mm)."""

from __future__ import annotations

from profiler import shapes
from profiler.bench import est_ms
from profiler.runner import Case, Context, Unsupported


def plan(ctx: Context, specs) -> list[Case]:
    ms = shapes.M_DRY if ctx.dry_run else (shapes.M_QUICK if ctx.quick else shapes.M_FULL)
    tps = (1, 2) if ctx.dry_run else shapes.TP_DEGREES
    linears = shapes.unique(
        lin for spec in specs for tp in tps if shapes.tp_ok(spec, tp) for lin in shapes.linears(spec, tp)
    )
    seen: set = set()
    fp8 = fp8_problem(ctx)
    if fp8:
        ctx.notes.add("unsupported", "gemm/fp8", fp8)
    cases = []
    for dtype in ("bf16", "fp8"):
        if dtype == "fp8" and fp8:
            continue
        for lin in linears:
            if dtype == "fp8" and (lin.k % 16 or lin.n % 16):
                continue  # _scaled_mm needs k and n divisible by 16
            if (lin.k, lin.n, dtype) in seen:
                continue
            seen.add((lin.k, lin.n, dtype))
            for m in ms:
                cases.append(_case(ctx, lin, m, dtype))
    return cases


def backend_name(ctx: Context, dtype: str) -> str:
    if dtype == "fp8":
        return "scaled_mm"
    return "cublas" if ctx.cuda else "cpu"


def fp8_problem(ctx: Context) -> str | None:
    """Why fp8 GEMMs cannot run here (None when they can): a 16x16x16 probe."""
    import torch

    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no float8_e4m3fn / _scaled_mm"
    if ctx.cuda and not torch.cuda.is_available():
        return None  # planning only (--plan on a machine without a GPU): assume fp8 works
    if ctx.cuda and torch.cuda.get_device_capability() < (8, 9):
        return "fp8 tensor cores need compute capability 8.9+ (Ada, Hopper, Blackwell)"
    try:
        x = torch.ones(16, 16, device=ctx.device).to(torch.float8_e4m3fn)
        one = torch.ones((), device=ctx.device, dtype=torch.float32)
        torch._scaled_mm(x, x.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    except Exception as exc:
        return f"torch._scaled_mm fails here: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def _case(ctx: Context, lin, m: int, dtype: str) -> Case:
    row = {"m": m, "k": lin.k, "n": lin.n, "dtype": dtype, "backend": backend_name(ctx, dtype), "name": lin.name}
    flops = 2.0 * m * lin.k * lin.n
    elem = 1 if dtype == "fp8" else 2
    return Case(
        family="gemm",
        row=row,
        group=f"gemm/{dtype}",
        setup=lambda: _setup(ctx, m, lin.k, lin.n, dtype),
        derive=lambda ms: {"tflops": flops / (ms * 1e9)},
        cost_ms=est_ms(flops, elem * (m * lin.k + lin.k * lin.n) + 2 * m * lin.n),
    )


def _setup(ctx: Context, m: int, k: int, n: int, dtype: str):
    import torch
    import torch.nn.functional as F

    dev = ctx.device

    def weight():  # fp8: unit scale values (the k^-1/2 goes into scale_b), so few underflow to 0
        w = torch.empty(n, k, device=dev, dtype=torch.bfloat16).normal_(0.0, 1.0 if dtype == "fp8" else k**-0.5)
        return w.to(torch.float8_e4m3fn) if dtype == "fp8" else w

    w = ctx.cache.get(("gemm.w", k, n, dtype, dev), weight)
    x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    if dtype == "bf16":
        return lambda: F.linear(x, w)
    if dtype != "fp8":
        raise Unsupported(f"dtype {dtype}")
    xq = x.to(torch.float8_e4m3fn)
    scale_a = torch.ones((), device=dev, dtype=torch.float32)
    scale_b = torch.full((), k**-0.5, device=dev, dtype=torch.float32)
    wt = w.t()  # column-major view, as _scaled_mm wants its second operand
    return lambda: torch._scaled_mm(xq, wt, scale_a=scale_a, scale_b=scale_b, out_dtype=torch.bfloat16)
