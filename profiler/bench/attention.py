"""Attention: prefill (causal, GQA; equal-length, chunked on earlier context, ragged and mixed
batches) and decode (one query token per sequence) against a paged KV cache and a contiguous one,
including DeepSeek MLA in its absorbed decode form.

Backends, each recorded in the `backend` column:
    flash, cudnn, efficient, math   PyTorch SDPA with that kernel forced (math: CPU dry run only)
    flash_varlen                    torch.nn.attention.varlen.varlen_attn (FlashAttention varlen)
    flash_paged                     varlen_attn over a paged KV cache (block_table, page 256)
    triton_paged                    the profiler's own Triton paged-decode kernel (page 16)
    flash_attn, flashinfer          those packages' varlen / paged kernels, when installed
    sdpa_loop                       one SDPA call per sequence (ragged batches, no varlen kernel)

Rows carry the batch statistics of `AttnPrefill` / `AttnDecode`; the label `case` says which
kind of batch it was (uniform, chunked, ragged, mixed; decode: uniform, ragged, mla).
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import random

from profiler import shapes
from profiler.bench import est_ms
from profiler.runner import Case, Context, Unsupported, is_fatal

PAGE_TRITON = 16
PAGE_FLASH = 256  # FlashAttention's paged KV needs pages of a multiple of 256 tokens
MAX_PREFILL_TOKENS = 65536

PREFILL_UNIFORM = {
    "full": (
        (1, 2, 4, 8, 16),
        (64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 32768),
    ),
    "quick": ((1, 4, 16), (128, 512, 1024, 2048, 4096, 8192, 16384)),
    "dry": ((1, 2), (8, 32)),
}
PREFILL_CHUNKED = {  # (batches, chunk lengths, context lengths)
    "full": ((1, 4), (128, 512, 2048, 8192), (512, 2048, 8192, 32768)),
    "quick": ((1,), (512, 2048), (2048, 16384)),
    "dry": ((2,), (8,), (16,)),
}
PREFILL_RAGGED = {  # (sequences per batch, total new tokens)
    "full": ((2, 4, 8, 16, 32), (512, 2048, 8192, 32768)),
    "quick": ((4, 16), (2048, 8192)),
    "dry": ((3,), (40,)),
}
DECODE_UNIFORM = {
    "full": ((1, 2, 4, 8, 16, 32, 64, 128, 256, 512), (128, 512, 1024, 2048, 4096, 8192, 16384, 32768)),
    "quick": ((1, 8, 32, 128, 512), (512, 2048, 8192, 32768)),
    "dry": ((1, 3), (20, 70)),
}
DECODE_RAGGED = {  # (batches, mean KV length)
    "full": ((4, 16, 64, 256), (512, 2048, 8192)),
    "quick": ((16, 128), (1024, 8192)),
    "dry": ((3,), (40,)),
}
KV_BYTES_CAP = {"full": 8 * 2**30, "quick": 4 * 2**30, "dry": 2**24}


def _mode(ctx: Context) -> str:
    return "dry" if ctx.dry_run else ("quick" if ctx.quick else "full")


def head_configs(ctx: Context, specs, use: str):
    tps = (1, 2) if ctx.dry_run else shapes.TP_DEGREES
    heads = [
        h
        for spec in specs
        for tp in tps
        if shapes.tp_ok(spec, tp)
        for h in shapes.head_configs(spec, tp)
        if h.use in ("both", use)
    ]
    out, seen = [], set()
    for h in heads:  # one config per distinct (hq, hkv, d, dv), named after its first model
        key = (h.hq, h.hkv, h.d, h.dv, h.mla)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


# --------------------------------------------------------------------------------- helpers


def _random_view(ctx: Context, numel: int, dtype, slot: str):
    """A view of `numel` random elements of a cached buffer (KV caches are large: fill once)."""
    import torch

    key = ("attn.buf", slot, dtype, ctx.device)
    buf = ctx.cache.get(key, lambda: torch.empty(0, device=ctx.device, dtype=dtype))
    if buf.numel() < numel:
        ctx.cache.clear()
        buf = torch.randn(int(numel * 1.25) + 1024, device=ctx.device, dtype=dtype)
        ctx.cache.get(key, lambda: buf)
    return buf[:numel]


def _probe(fn):
    """Call once; a kernel that refuses this shape becomes Unsupported (OOM passes through)."""
    try:
        fn()
    except (RuntimeError, ValueError, NotImplementedError, TypeError, AssertionError) as exc:
        text = str(exc)
        if "out of memory" in text.lower() or is_fatal(exc):
            raise
        raise Unsupported(f"{type(exc).__name__}: {text.splitlines()[0][:240] if text else ''}") from exc
    return fn


def _sdpa_backends(ctx: Context, d: int, dv: int) -> list[str]:
    if not ctx.cuda:
        return ["math"]
    names = ["flash", "cudnn"]
    if d != dv or d > 256:
        names.append("efficient")  # flash needs d == dv <= 256
    return names


def _sdpa_call(backend: str, q, k, v, mask=None, causal=True):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernel = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[backend]
    gqa = q.shape[1] != k.shape[1]
    is_causal = causal and mask is None

    def call():
        with sdpa_kernel([kernel]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=gqa)

    return call


def _varlen_fn():
    try:
        from torch.nn.attention.varlen import varlen_attn
    except Exception:
        return None
    return varlen_attn


def _varlen_call(q, k, v, cu_q, cu_k, max_q, max_k, causal=True, **paged):
    fn = _varlen_fn()
    if fn is None:
        raise Unsupported("torch.nn.attention.varlen.varlen_attn is not in this torch")
    params = inspect.signature(fn).parameters
    kwargs = {}
    if causal:
        if "window_size" in params:
            kwargs["window_size"] = (-1, 0)
        elif "is_causal" in params:
            kwargs["is_causal"] = True
        else:
            raise Unsupported("varlen_attn has no causal option in this torch")
    if "enable_gqa" in params and q.shape[1] != (k.shape[-2]):
        kwargs["enable_gqa"] = True
    for name, value in paged.items():
        if name not in params:
            raise Unsupported(f"varlen_attn has no '{name}' (paged KV) in this torch")
        kwargs[name] = value
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def call():  # some torch versions prefer cuDNN here; the row says flash, so force flash
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return fn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)

    return call


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _flash_attn_module():
    for name in ("flash_attn", "vllm.vllm_flash_attn"):
        if _has(name.split(".")[0]):
            try:
                return importlib.import_module(name)
            except Exception:
                continue
    return None


# ---------------------------------------------------------------------------------- prefill


def _prefill_batches(ctx: Context):
    """(case, [(q_i, c_i), ...]) for every prefill batch of the plan."""
    mode = _mode(ctx)
    rng = random.Random(ctx.seed * 7919 + 17)
    batches, seqs = PREFILL_UNIFORM[mode]
    for b in batches:
        for s in seqs:
            if b * s <= MAX_PREFILL_TOKENS:
                yield "uniform", [(s, 0)] * b
    batches, chunks, contexts = PREFILL_CHUNKED[mode]
    for b in batches:
        for q in chunks:
            for c in contexts:
                if b * (q + c) <= 2 * MAX_PREFILL_TOKENS:
                    yield "chunked", [(q, c)] * b
    counts, totals = PREFILL_RAGGED[mode]
    for n in counts:
        for total in totals:
            if total < n:
                continue
            weights = [math.exp(rng.gauss(0.0, 1.0)) for _ in range(n)]
            qs = [max(1, round(total * w / sum(weights))) for w in weights]
            yield "ragged", [(q, 0) for q in qs]
            mixed = []
            for i, q in enumerate(qs):  # a chunked-prefill step: prefills, chunks, decodes
                if i % 4 == 3:
                    mixed.append((1, rng.randint(16, 4 * max(16, total // n))))
                elif i % 2 == 1:
                    mixed.append((q, rng.randint(1, 4 * q)))
                else:
                    mixed.append((q, 0))
            yield "mixed", mixed


def _prefill_row(seqs, head, backend: str, case: str) -> dict:
    qs = [q for q, _ in seqs]
    kvs = [q + c for q, c in seqs]
    return {
        "num_seqs": len(seqs),
        "sum_q": sum(qs),
        "sum_q2": sum(q * q for q in qs),
        "sum_qc": sum(q * c for q, c in seqs),
        "sum_kv": sum(kvs),
        "max_q": max(qs),
        "max_kv": max(kvs),
        "hq": head.hq,
        "hkv": head.hkv,
        "d": head.d,
        "dv": head.dv,
        "backend": backend,
        "case": case,
        "model": head.name,
    }


def _prefill_backends(ctx: Context, head, case: str) -> list[str]:
    sdpa = _sdpa_backends(ctx, head.d, head.dv)
    varlen = []
    if ctx.cuda:
        varlen.append("flash_varlen")
        if _flash_attn_module() is not None:
            varlen.append("flash_attn")
        if _has("flashinfer"):
            varlen.append("flashinfer")
    if case == "uniform":
        return sdpa
    if case == "chunked":
        return sdpa + varlen
    return varlen + ["sdpa_loop"]


def plan_prefill(ctx: Context, specs) -> list[Case]:
    cases = []
    batches = list(_prefill_batches(ctx))
    for head in head_configs(ctx, specs, "prefill"):
        for case_kind, seqs in batches:
            for backend in _prefill_backends(ctx, head, case_kind):
                row = _prefill_row(seqs, head, backend, case_kind)
                flops = 2.0 * head.hq * (row["sum_qc"] + 0.5 * row["sum_q2"]) * (head.d + head.dv)
                moved = 2.0 * (
                    row["sum_q"] * head.hq * (head.d + head.dv) + row["sum_kv"] * head.hkv * (head.d + head.dv)
                )
                cases.append(
                    Case(
                        family="attn_prefill",
                        row=row,
                        group=f"attn_prefill/{backend}/{case_kind}/{head.hq}x{head.hkv}x{head.d}x{head.dv}",
                        setup=lambda h=head, s=seqs, b=backend, k=case_kind: _setup_prefill(ctx, h, s, b, k),
                        derive=lambda ms, m=moved: {"tbps": m / (ms * 1e9)},
                        cost_ms=est_ms(flops, moved) * (1.5 if backend == "sdpa_loop" else 1.0),
                    )
                )
    return cases


def _setup_prefill(ctx: Context, head, seqs, backend: str, case: str):
    import torch

    dev, dtype = ctx.device, torch.bfloat16
    hq, hkv, d, dv = head.hq, head.hkv, head.d, head.dv
    if backend in ("flash", "cudnn", "efficient", "math"):
        b, (q_len, ctx_len) = len(seqs), seqs[0]
        kv_len = q_len + ctx_len
        q = torch.randn(b, hq, q_len, d, device=dev, dtype=dtype)
        k = _random_view(ctx, b * hkv * kv_len * d, dtype, "k").view(b, hkv, kv_len, d)
        v = _random_view(ctx, b * hkv * kv_len * dv, dtype, "v").view(b, hkv, kv_len, dv)
        mask = None
        if ctx_len:
            from torch.nn.attention.bias import causal_lower_right

            mask = causal_lower_right(q_len, kv_len)
        return _probe(_sdpa_call(backend, q, k, v, mask))

    qs = [q for q, _ in seqs]
    kvs = [q + c for q, c in seqs]
    total_q, total_kv = sum(qs), sum(kvs)
    if backend == "sdpa_loop":
        kernel = "flash" if ctx.cuda and d == dv else ("efficient" if ctx.cuda else "math")
        calls = []
        from torch.nn.attention.bias import causal_lower_right

        offset = 0
        kbuf = _random_view(ctx, total_kv * hkv * d, dtype, "k")
        vbuf = _random_view(ctx, total_kv * hkv * dv, dtype, "v")
        for q_len, kv_len in zip(qs, kvs):
            q = torch.randn(1, hq, q_len, d, device=dev, dtype=dtype)
            k = kbuf[offset * hkv * d : (offset + kv_len) * hkv * d].view(1, hkv, kv_len, d)
            v = vbuf[offset * hkv * dv : (offset + kv_len) * hkv * dv].view(1, hkv, kv_len, dv)
            offset += kv_len
            mask = causal_lower_right(q_len, kv_len) if kv_len != q_len else None
            calls.append(_sdpa_call(kernel, q, k, v, mask))
        return _probe(lambda: [c() for c in calls])

    q = torch.randn(total_q, hq, d, device=dev, dtype=dtype)
    k = _random_view(ctx, total_kv * hkv * d, dtype, "k").view(total_kv, hkv, d)
    v = _random_view(ctx, total_kv * hkv * dv, dtype, "v").view(total_kv, hkv, dv)
    cu_q = torch.tensor([0] + _cumsum(qs), device=dev, dtype=torch.int32)
    cu_k = torch.tensor([0] + _cumsum(kvs), device=dev, dtype=torch.int32)
    if backend == "flash_varlen":
        return _probe(_varlen_call(q, k, v, cu_q, cu_k, max(qs), max(kvs)))
    if backend == "flash_attn":
        fa = _flash_attn_module()
        return _probe(lambda: fa.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(qs), max(kvs), causal=True))
    if backend == "flashinfer":
        import flashinfer

        workspace = torch.empty(128 * 2**20, dtype=torch.uint8, device=dev)
        wrapper = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(workspace, "NHD")
        wrapper.plan(cu_q, cu_k, hq, hkv, d, causal=True, q_data_type=dtype)
        return _probe(lambda: wrapper.run(q, k, v))
    raise Unsupported(f"unknown prefill backend {backend}")


def _cumsum(values):
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


# ----------------------------------------------------------------------------------- decode


def _decode_batches(ctx: Context):
    """(case, [kv_len per sequence]) for every decode batch of the plan."""
    mode = _mode(ctx)
    rng = random.Random(ctx.seed * 7919 + 29)
    batches, kvs = DECODE_UNIFORM[mode]
    for b in batches:
        for kv in kvs:
            yield "uniform", [kv] * b
    batches, means = DECODE_RAGGED[mode]
    for b in batches:
        for mean in means:
            yield "ragged", [rng.randint(1, 2 * mean - 1) for _ in range(b)]


def _decode_backends(ctx: Context, head, case: str) -> list[str]:
    names = ["triton_paged"] if ctx.triton else []
    if head.mla:
        return names + (_sdpa_backends(ctx, head.d, head.dv) if case == "uniform" else [])
    if case == "uniform":
        names += _sdpa_backends(ctx, head.d, head.dv)
    if ctx.cuda:
        names.append("flash_paged")
        if _flash_attn_module() is not None:
            names.append("flash_attn")
        if _has("flashinfer"):
            names.append("flashinfer")
    return names


def plan_decode(ctx: Context, specs) -> list[Case]:
    if not ctx.triton:
        ctx.notes.add("unsupported", "attn_decode/triton_paged", "triton is not importable here")
    cap = KV_BYTES_CAP[_mode(ctx)]
    cases = []
    batches = list(_decode_batches(ctx))
    for head in head_configs(ctx, specs, "decode"):
        per_token = 2 * head.hkv * (head.d if head.mla else head.d + head.dv)
        for case_kind, lens in batches:
            if sum(lens) * per_token > cap:
                continue
            label = ("mla" if case_kind == "uniform" else f"mla_{case_kind}") if head.mla else case_kind
            for backend in _decode_backends(ctx, head, case_kind):
                page = PAGE_FLASH if backend in ("flash_paged", "flash_attn") else PAGE_TRITON
                paged = backend in ("triton_paged", "flash_paged", "flash_attn", "flashinfer")
                row = {
                    "batch": len(lens),
                    "sum_kv": sum(lens),
                    "max_kv": max(lens),
                    "hq": head.hq,
                    "hkv": head.hkv,
                    "d": head.d,
                    "dv": head.dv,
                    "backend": backend,
                    "case": label,
                    "page_size": page if paged else 0,
                    "model": head.name,
                }
                moved = sum(lens) * per_token + 2.0 * len(lens) * head.hq * (head.d + head.dv)
                cases.append(
                    Case(
                        family="attn_decode",
                        row=row,
                        group=f"attn_decode/{backend}/{head.hq}x{head.hkv}x{head.d}x{head.dv}",
                        setup=lambda h=head, ls=lens, b=backend, p=page, k=case_kind: _setup_decode(
                            ctx, h, ls, b, p, k
                        ),
                        derive=lambda ms, m=moved: {"tbps": m / (ms * 1e9)},
                        cost_ms=est_ms(2.0 * head.hq * sum(lens) * (head.d + head.dv), moved),
                    )
                )
    return cases


def _paged_cache(ctx: Context, head, lens, page: int, dtype):
    """k/v page pools holding exactly these sequences, pages scattered, and the block table."""
    import torch

    pages_per = [-(-n // page) for n in lens]
    total = sum(pages_per)
    k_cache = _random_view(ctx, total * page * head.hkv * head.d, dtype, "k").view(total, page, head.hkv, head.d)
    if head.mla:  # V is the first dv channels of the latent KV
        v_cache = k_cache[..., : head.dv]
    else:
        v_cache = _random_view(ctx, total * page * head.hkv * head.dv, dtype, "v").view(total, page, head.hkv, head.dv)
    perm = torch.randperm(total, generator=ctx.generator(total)).to(torch.int32)
    table = torch.zeros(len(lens), max(pages_per), dtype=torch.int32)
    used = 0
    for b, count in enumerate(pages_per):
        table[b, :count] = perm[used : used + count]
        used += count
    return k_cache, v_cache, table.to(ctx.device), pages_per, perm


def _setup_decode(ctx: Context, head, lens, backend: str, page: int, case: str):
    import torch

    dev = ctx.device
    batch, max_kv = len(lens), max(lens)
    hq, hkv, d, dv = head.hq, head.hkv, head.d, head.dv
    if backend in ("flash", "cudnn", "efficient", "math"):
        if len(set(lens)) != 1:
            raise Unsupported("SDPA on a contiguous KV needs equal lengths")
        dtype = torch.bfloat16
        q = torch.randn(batch, hq, 1, d, device=dev, dtype=dtype)
        k = _random_view(ctx, batch * hkv * max_kv * d, dtype, "k").view(batch, hkv, max_kv, d)
        v = _random_view(ctx, batch * hkv * max_kv * dv, dtype, "v").view(batch, hkv, max_kv, dv)
        return _probe(_sdpa_call(backend, q, k, v, causal=False))

    dtype = torch.bfloat16 if ctx.cuda else torch.float16  # Triton's interpreter has no bf16
    k_cache, v_cache, table, _, _ = _paged_cache(ctx, head, lens, page, dtype)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=dev)
    q = torch.randn(batch, hq, d, device=dev, dtype=dtype)
    if backend == "triton_paged":
        from profiler.kernels.paged_decode import PagedDecode

        d_pe = d - dv if head.mla else 0
        return _probe(PagedDecode(q, k_cache, v_cache, table, seq_lens, max_kv, d_pe=d_pe, sm_count=ctx.sm_count or 1))
    if backend == "flash_paged":
        cu_q = torch.arange(batch + 1, device=dev, dtype=torch.int32)
        return _probe(
            _varlen_call(
                q, k_cache, v_cache, cu_q, None, 1, max_kv, causal=False, seqused_k=seq_lens, block_table=table
            )
        )
    if backend == "flash_attn":
        fa = _flash_attn_module()
        q4 = q.unsqueeze(1)
        return _probe(
            lambda: fa.flash_attn_with_kvcache(q4, k_cache, v_cache, cache_seqlens=seq_lens, block_table=table)
        )
    if backend == "flashinfer":
        import flashinfer

        pages_per = [-(-n // page) for n in lens]
        indptr = torch.tensor([0] + _cumsum(pages_per), dtype=torch.int32, device=dev)
        indices = torch.cat([table[b, :n] for b, n in enumerate(pages_per)])
        last = torch.tensor([n - (p - 1) * page for n, p in zip(lens, pages_per)], dtype=torch.int32, device=dev)
        workspace = torch.empty(128 * 2**20, dtype=torch.uint8, device=dev)
        wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(workspace, "NHD")
        wrapper.plan(indptr, indices, last, hq, hkv, d, page, q_data_type=dtype, kv_data_type=dtype)
        return _probe(lambda: wrapper.run(q, (k_cache, v_cache)))
    raise Unsupported(f"unknown decode backend {backend}")
