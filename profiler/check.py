"""Correctness of the profiler's Triton kernels against PyTorch (`python -m profiler --check`).

On a GPU the kernels run compiled, in bf16, on serving-sized shapes. On the CPU (`--dry-run
--check`, or the tests) they run in Triton's interpreter on small shapes in fp16 (the
interpreter has no bf16).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CheckResult:
    name: str
    max_err: float
    tol: float

    @property
    def ok(self) -> bool:
        return self.max_err <= self.tol

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: max |err| {self.max_err:.3g} (tol {self.tol:.3g})"


def _paged_inputs(torch, gen, device, dtype, lens, hq, hkv, d, dv, page, mla):
    pages_per = [-(-n // page) for n in lens]
    total = sum(pages_per) + 2
    k_cache = torch.randn(total, page, hkv, d, generator=gen, dtype=torch.float32).to(device, dtype)
    if mla:
        v_cache = k_cache[..., :dv]  # V is the first dv channels of the latent
    else:
        v_cache = torch.randn(total, page, hkv, dv, generator=gen, dtype=torch.float32).to(device, dtype)
    perm = torch.randperm(total, generator=gen)
    table = torch.zeros(len(lens), max(pages_per), dtype=torch.int32)
    used = 0
    for b, count in enumerate(pages_per):
        table[b, :count] = perm[used : used + count].to(torch.int32)
        used += count
    q = torch.randn(len(lens), hq, d, generator=gen, dtype=torch.float32).to(device, dtype)
    seq_lens = torch.tensor(lens, dtype=torch.int32)
    return q, k_cache, v_cache, table.to(device), seq_lens.to(device)


def check_paged_decode(device: str = "cuda", small: bool = False) -> list[CheckResult]:
    import torch

    from profiler.kernels.paged_decode import PagedDecode
    from profiler.kernels.reference import paged_decode_reference

    dtype = torch.float16 if small else torch.bfloat16
    gen = torch.Generator().manual_seed(1)
    if small:
        cases = [  # (name, lens, hq, hkv, d, dv, page, mla, d_pe, splits)
            ("gqa 8/2 d64 one split", [5, 40, 100], 8, 2, 64, 64, 16, False, 0, 1),
            ("gqa 8/2 d64 3 splits", [5, 40, 100], 8, 2, 64, 64, 16, False, 0, 3),
            ("mha 4/4 d48 page 8", [17, 33], 4, 4, 48, 48, 8, False, 0, 2),
            ("mla-like 16/1 d96+32 dv64", [20, 70], 16, 1, 96, 64, 16, True, 32, 2),
        ]
    else:
        cases = [
            ("llama gqa 32/8 d128 ragged", [1, 17, 300, 1000, 4097, 8191], 32, 8, 128, 128, 16, False, 0, None),
            ("gqa 8/1 d128 one split", [33, 2000], 8, 1, 128, 128, 16, False, 0, 1),
            ("mha 16/16 d128 page 32", [128, 512, 77], 16, 16, 128, 128, 32, False, 0, None),
            ("qwen3 gqa 64/4 d128 long", [16384, 3], 64, 4, 128, 128, 16, False, 0, None),
            ("mla absorbed 128/1 d576 dv512", [1, 100, 2049, 6000], 128, 1, 576, 512, 16, True, 64, None),
            ("mla absorbed 16/1 d576 dv512 tp8", [4000, 64], 16, 1, 576, 512, 64, True, 64, None),
        ]
    results = []
    for name, lens, hq, hkv, d, dv, page, mla, d_pe, splits in cases:
        q, kc, vc, table, seq_lens = _paged_inputs(torch, gen, device, dtype, lens, hq, hkv, d, dv, page, mla)
        out = PagedDecode(
            q,
            kc,
            vc,
            table,
            seq_lens,
            max(lens),
            d_pe=d_pe,
            num_splits=splits,
            sm_count=None if device.startswith("cuda") else 4,
        )()
        ref = paged_decode_reference(q, kc, vc, table, seq_lens)
        err = (out.float() - ref.float()).abs().max().item()
        results.append(CheckResult(f"paged_decode {name}", err, 2e-2 if dtype == torch.bfloat16 else 5e-3))
    return results


def check_grouped_gemm(device: str = "cuda", small: bool = False) -> list[CheckResult]:
    import torch

    from profiler.bench.moe import route
    from profiler.kernels.grouped_gemm import GroupedGemm
    from profiler.kernels.reference import grouped_gemm_reference

    dtype = torch.float16 if small else torch.bfloat16
    gen = torch.Generator().manual_seed(2)
    if small:
        cases = [  # (name, tokens, topk, experts, k, n, skew, config)
            ("gate_up 10 tok top2 of 4", 10, 2, 4, 48, 40, 0.0, None),
            (
                "down skewed, tiny tiles",
                24,
                2,
                6,
                40,
                48,
                1.2,
                dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2, num_warps=4, num_stages=2),
            ),
        ]
    else:
        cases = [
            ("qwen3 gate_up 1 token", 1, 8, 128, 2048, 1536, 0.0, None),
            ("qwen3 down 64 tokens skewed", 64, 8, 128, 768, 2048, 1.2, None),
            ("mixtral gate_up 512 tokens", 512, 2, 8, 4096, 2 * 14336 // 8, 0.0, None),
            ("dsv3-ep8 gate_up 4096 tokens skewed", 4096, 8, 32, 7168, 4096, 1.2, None),
            ("odd sizes k=1000 n=300", 77, 3, 5, 1000, 300, 0.0, None),
        ]
    results = []
    for name, tokens, topk, experts, k, n, skew, cfg in cases:
        ids = route(tokens, experts, topk, skew, gen)
        scale = k**-0.5
        for proj, a_div in (("first", topk), ("second", 1)):
            x = torch.randn(tokens * topk // a_div, k, generator=gen).to(device, dtype)
            w = (torch.randn(experts, n, k, generator=gen) * scale).to(device, dtype)
            out = GroupedGemm(x, w, ids.to(device), a_div, cfg)()
            ref = grouped_gemm_reference(x, w, ids.to(device), a_div)
            err = ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6)).item()
            results.append(CheckResult(f"grouped_gemm {name} ({proj} projection, relative)", err, 2e-2))
    return results


def run_checks(device: str, small: bool) -> list[CheckResult]:
    return check_paged_decode(device, small) + check_grouped_gemm(device, small)
