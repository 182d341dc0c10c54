"""Whole decode steps: decoder layers as Frontier composes them, launched eagerly and from a CUDA graph.

Frontier prices a step as the sum of its kernels, each timed alone (L2 flushed, behind a spin
kernel), corrected for what changes when they run back to back: inside a CUDA graph a kernel's
launch and prologue overlap its neighbour's tail (`frontier.predict.blocks.GRAPH_OVERLAP_US`,
`StepOverheads.graph_launch_us`), outside one every launch costs the CPU
`StepOverheads.eager_launch_us`. Those constants were fitted to measured serving runs; this
family measures them. For each model card at TP 1, `layers` decoder layers (each with its own
weights and KV cache) of a decode batch of `batch` sequences with `kv` cached tokens each are
built from the operators of one layer in the order they run (`frontier.ops.graph.decoder_layer`:
norms, projections, rotary, KV-cache write, attention, MLP or router and experts; the embedding,
LM head and sampling of a step are left out), one call per operator, and timed three ways
(column `mode`):

- `alone`: each call of one layer timed by the standard method (`profiler.timing`), summed and
  times `layers`: what Frontier adds up;
- `eager`: the calls launched one after another from Python between CUDA events, the GPU idle
  before the first: launch gaps included, as a step outside CUDA graphs runs;
- `graph`: the calls captured once in a `torch.cuda.CUDAGraph` and replayed.

`ms` is the time of the whole chain, `ms_per_layer` = ms / layers and `kernels` the calls per
layer, so (alone - graph) / (layers x kernels) is the time a kernel saves inside a graph and,
where the chain is launch-bound (slower eagerly than its kernels alone), eager / (layers x
kernels) the launch cost per kernel outside one (`frontier.predict.whole_step` fits both). Norms, rotary, the KV-cache write, SiLU-and-mul, FP8
quantisation run as one kernel each, as the engines' fused kernels do: torch.compile fuses each
into one Triton kernel on the GPU (top-k gating keeps PyTorch's top-k beside it, two or three
kernels where the engines launch one); the CPU dry run runs them in PyTorch eager. The MoE
experts run `torch._grouped_mm` (Hopper and later) or the profiler's own Triton kernel, attention
the first of `PAGED_DECODE` that runs here (FlashAttention, FlashInfer, PyTorch's varlen flash
attention or the profiler's Triton kernel over a paged cache).
"""

from __future__ import annotations

import dataclasses
import statistics

from profiler.bench import attention, dtype_of, est_ms, gemm, moe
from profiler.runner import Case, Context, TensorCache, Unsupported
from profiler.shapes import FUSED_ELEMENTWISE
from profiler.timing import Timing, time_synchronised

LAYERS = 4
BATCHES = {"dry": (1, 4), "quick": (1, 16, 128), "full": (1, 4, 16, 64, 256)}
KV_LENS = {"dry": (64,), "quick": (2048,), "full": (1024, 8192)}
MODES = ("alone", "eager", "graph")
MAX_CHAIN_BYTES = 24 * 2**30  # weights + KV of the chain; larger ones are left out (a note says so)
# Decode attention as the engines run it, first choice first (a paged KV cache); else SDPA.
PAGED_DECODE = ("flash_attn", "flashinfer", "flash_paged", "triton_paged")


def _mode(ctx: Context) -> str:
    return "dry" if ctx.dry_run else ("quick" if ctx.quick else "full")


def unsupported_reason(spec) -> str | None:
    if spec.linear_attention is not None:
        return "hybrid (linear-attention) layers are not built"
    if spec.dsa is not None:
        return "sparse-attention (DSA) layers are not built"
    return None


def plan(ctx: Context, specs) -> list[Case]:
    """Every model's chains, batch by batch (a run cut short by its time box has the small batches of
    every model), each chain's three modes one after another (it is built once for them)."""
    from frontier.ops.graph import decoder_layer  # (numpy: imported when the family is planned)

    mode = _mode(ctx)
    built = []
    for spec in specs:
        reason = unsupported_reason(spec)
        if reason:
            ctx.notes.add("unsupported", f"decode_step/{spec.name}", reason)
        else:
            built.append(spec)
    cases = []
    for batch in BATCHES[mode]:
        for kv in KV_LENS[mode]:
            for spec in built:
                ops = decoder_layer(spec, batch, kv)
                layer_bytes = chain_bytes(ops)
                if LAYERS * layer_bytes > MAX_CHAIN_BYTES:
                    ctx.notes.add(
                        "unsupported",
                        f"decode_step/{spec.name}",
                        f"{LAYERS} layers need more than {MAX_CHAIN_BYTES / 2**30:.0f} GiB",
                    )
                    continue
                cases += [_case(ctx, spec, ops, layer_bytes, batch, kv, how) for how in MODES]
    return cases


def chain_bytes(ops) -> int:
    """Bytes one layer's calls allocate (weights in bf16 or fp8, the KV cache, activations)."""
    from frontier.ops.operators import AttnDecode, Gemm, GroupedGemm

    total = 0
    for op in ops:
        if isinstance(op, Gemm):
            total += op.k * op.n * (1 if op.dtype == "fp8" else 2) + 4 * op.m * (op.k + op.n)
        elif isinstance(op, GroupedGemm):
            total += 2 * op.experts * op.k * op.n + 4 * op.tokens * op.topk * (op.k + op.n)
        elif isinstance(op, AttnDecode):
            total += 2 * op.hkv * (op.d + op.dv) * (op.sum_kv + 256 * op.batch)
    return total


def _case(ctx: Context, spec, ops, layer_bytes: int, batch: int, kv: int, how: str) -> Case:
    dtype = "fp8" if any(getattr(op, "dtype", "") == "fp8" for op in ops) else "bf16"
    row = {"model": spec.name, "batch": batch, "kv": kv, "layers": LAYERS, "dtype": dtype, "mode": how}
    row["kernels"] = len(ops)
    flops = sum(getattr(op, "flops", 0.0) for op in ops)
    chain_key = ("decode_step.chain", spec.name, batch, kv)

    def setup():
        chain = ctx.cache.get(chain_key, lambda: Chain(ctx, ops, LAYERS, spec.hidden_size, layer_bytes))
        row.update(attn_backend=chain.attn_backend, moe_backend=chain.moe_backend)
        return chain.timing(how)

    return Case(
        family="decode_step",
        row=row,
        group=f"decode_step/{spec.name}/{how}",
        setup=setup,
        derive=lambda ms: {"ms_per_layer": ms / LAYERS},
        cost_ms=LAYERS * est_ms(flops, layer_bytes) * (len(ops) if how == "alone" else 1),
    )


class Chain:
    """`layers` decoder layers' calls, each layer with its own weights and KV cache."""

    def __init__(self, ctx: Context, ops: list, layers: int, hidden: int, layer_bytes: int):
        self.ctx, self.hidden, self.attn_backend, self.moe_backend = ctx, hidden, "", ""
        self.fp8 = not gemm.fp8_problem(ctx)
        self.layers = []
        for _ in range(layers):
            own = dataclasses.replace(ctx, cache=TensorCache(capacity=len(ops) + 1, max_bytes=2**62))
            self.layers.append([self._call(own, op) for op in ops])
        self.calls = [call for layer in self.layers for call in layer]
        self.nbytes = layers * layer_bytes  # lets the case cache drop older chains

    def __call__(self) -> None:
        for call in self.calls:
            call()

    def timing(self, how: str) -> Timing:
        if how == "alone":
            times = [self.ctx.timer.measure(call) for call in self.layers[0]]
            n = len(self.layers)
            return Timing(n * sum(t.ms for t in times), n * sum(t.ms_min for t in times), times[0].reps)
        if how == "eager":
            return time_back_to_back(self.ctx, self)
        return self.ctx.timer.measure(self._graph())

    def _graph(self):
        """The chain captured in a CUDA graph (after warm-up calls outside the capture, which
        compile and autotune what needs it); its replay is what is timed."""
        if not self.ctx.cuda:
            raise Unsupported("CUDA graphs need a GPU")
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self()
        torch.cuda.synchronize()
        return graph.replay

    def _call(self, ctx: Context, op):
        from frontier.ops.operators import AttnDecode, Elementwise, Gemm, GroupedGemm

        if isinstance(op, Gemm):
            dtype = "fp8" if op.dtype == "fp8" and self.fp8 else "bf16"
            return gemm._setup(ctx, op.m, op.k, op.n, dtype)
        if isinstance(op, AttnDecode):
            return self._attention(ctx, op)
        if isinstance(op, GroupedGemm):
            return self._experts(ctx, op)
        if isinstance(op, Elementwise):
            return elementwise_call(ctx, op)
        raise Unsupported(f"{type(op).__name__} is not built in a decode step")

    def _attention(self, ctx: Context, op):
        from profiler.shapes import HeadConfig

        mla = op.hkv == 1 and op.d != op.dv
        head = HeadConfig("step", op.hq, op.hkv, op.d, op.dv, mla=mla)
        lens = [op.max_kv] * op.batch
        backends = attention._decode_backends(ctx, head, "uniform")
        backends.sort(key=lambda b: PAGED_DECODE.index(b) if b in PAGED_DECODE else len(PAGED_DECODE))
        for backend in backends:
            page = attention.PAGE_FLASH if backend in ("flash_paged", "flash_attn") else attention.PAGE_TRITON
            try:
                call = attention._setup_decode(ctx, head, lens, backend, page, "uniform")
            except Unsupported:
                continue
            self.attn_backend = backend
            return call
        raise Unsupported(f"no decode attention backend runs {op}")

    def _experts(self, ctx: Context, op):
        import torch

        from profiler.shapes import MoeProj

        proj = MoeProj("step", "gate_up" if op.k == self.hidden else "down", op.experts, op.topk, op.k, op.n)
        ids = moe.route(op.tokens, op.experts, op.topk, 0.0, ctx.generator(op.tokens))
        counts = torch.bincount(ids.reshape(-1), minlength=op.experts)
        hopper = ctx.cuda and torch.cuda.get_device_capability() >= (9, 0) and hasattr(torch, "_grouped_mm")
        backends = (["grouped_mm"] if hopper else []) + (["triton"] if ctx.triton else []) + ["loop"]
        self.moe_backend = backends[0]
        return moe._setup(ctx, proj, op.tokens, ids, counts, backends[0])


def time_back_to_back(ctx: Context, fn) -> Timing:
    """`fn` launched from Python with the GPU idle before it and nothing hiding its launches
    (no spin kernel): the standard warm-up and reps, the L2 flushed before each rep."""
    timer = ctx.timer
    for _ in range(timer.warmup):
        fn()
    times = time_synchronised(fn, ctx.cuda, timer.reps, before=timer.flush)
    return Timing(statistics.median(times), min(times), timer.reps)


# --------------------------------------------------------------------- one-kernel elementwise ops


def _kernels():
    """The elementwise ops as plain PyTorch functions (compiled into one kernel each on the GPU)."""
    import torch

    def add_rmsnorm(x, residual, weight):
        h = x.float() + residual.float()
        residual.copy_(h)
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * weight

    def rmsnorm(x, weight):
        h = x.float()
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * weight

    def rotary(x, cos, sin):  # neox style over every head of q and k: [tokens, heads, dim]
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    def kv_cache_write(cache, slots, kv):
        cache.index_copy_(0, slots, kv)

    def silu_mul(x):
        half = x.shape[-1] // 2
        return torch.nn.functional.silu(x[:, :half]) * x[:, half:]

    def topk_gating(logits, k: int):
        weights, ids = torch.topk(torch.softmax(logits.float(), dim=-1), k, dim=-1)
        return weights / weights.sum(-1, keepdim=True), ids

    def quant_fp8(x):  # dynamic per-token scales, as the FP8 linear layers quantise activations
        scale = x.float().abs().amax(-1, keepdim=True).clamp(min=1e-12) / 448.0
        return (x.float() / scale).to(torch.float8_e4m3fn), scale

    return {name: fn for name, fn in locals().items() if name in FUSED_ELEMENTWISE}


_COMPILED: dict = {}


def _kernel(ctx: Context, name: str):
    if not ctx.cuda:
        return _kernels()[name]
    if not _COMPILED:
        import torch

        _COMPILED.update({n: torch.compile(fn, dynamic=True) for n, fn in _kernels().items()})
    return _COMPILED[name]


def elementwise_call(ctx: Context, op):
    """One Frontier elementwise operator as a zero-argument call on its own inputs."""
    import torch

    if op.name not in FUSED_ELEMENTWISE:
        raise Unsupported(f"elementwise op {op.name} is not built in a decode step")
    dev, dtype = ctx.device, dtype_of("bf16")
    fn, t, w = _kernel(ctx, op.name), op.tokens, op.width

    def rand(*shape):
        return torch.randn(*shape, device=dev, dtype=dtype)

    if op.name == "add_rmsnorm":
        x, residual, weight = rand(t, w), rand(t, w), torch.ones(w, device=dev, dtype=dtype)
        return lambda: fn(x, residual, weight)
    if op.name == "rmsnorm":
        x, weight = rand(t, w), torch.ones(w, device=dev, dtype=dtype)
        return lambda: fn(x, weight)
    if op.name == "rotary":
        head_dim = 128 if w % 128 == 0 else 64
        x = rand(t, w // head_dim, head_dim)
        angles = torch.rand(t, 1, head_dim // 2, device=dev)
        cos, sin = angles.cos(), angles.sin()
        return lambda: fn(x, cos, sin)
    if op.name == "kv_cache_write":
        cache = torch.zeros(4 * t + 64, w, device=dev, dtype=dtype)
        slots = torch.randperm(cache.shape[0], generator=ctx.generator(t))[:t].to(dev)
        kv = rand(t, w)
        return lambda: fn(cache, slots, kv)
    if op.name == "silu_mul":
        x = rand(t, 2 * w)
        return lambda: fn(x)
    if op.name == "topk_gating":
        logits, k = rand(t, w), min(8, w)
        return lambda: fn(logits, k)
    if not hasattr(torch, "float8_e4m3fn"):
        raise Unsupported(f"torch {torch.__version__} has no float8_e4m3fn")
    x = rand(t, w)
    return lambda: fn(x)
