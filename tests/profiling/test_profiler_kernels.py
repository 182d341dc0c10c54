"""The Triton kernels against PyTorch: compiled on a GPU (bf16, serving shapes), else in Triton's
CPU interpreter (fp16, small shapes) when triton is installed; the PyTorch oracles always."""

from __future__ import annotations

import importlib.util

import pytest

from profiler_helpers import run_profiler

torch = pytest.importorskip("torch")

HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not (HAS_GPU and HAS_TRITON), reason="needs a CUDA GPU and triton")


@needs_gpu
def test_paged_decode_matches_pytorch_on_gpu():
    from profiler.check import check_paged_decode

    results = check_paged_decode("cuda")
    assert all(r.ok for r in results), "\n".join(r.line() for r in results)


@needs_gpu
def test_grouped_gemm_matches_pytorch_on_gpu():
    from profiler.check import check_grouped_gemm

    results = check_grouped_gemm("cuda")
    assert all(r.ok for r in results), "\n".join(r.line() for r in results)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_kernels_in_the_triton_interpreter():
    result = run_profiler("--dry-run", "--check", env_extra={"TRITON_INTERPRET": "1"}, timeout=600)
    if "only 0-dimensional arrays" in result.stderr + result.stdout:
        pytest.skip("this triton's interpreter does not run with this numpy (>= 2.4)")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "FAIL" not in result.stdout


def test_align_by_expert_tiles_hold_one_expert():
    from profiler.bench.moe import route
    from profiler.kernels.reference import align_by_expert

    ids = route(37, 6, 2, 1.2, torch.Generator().manual_seed(0))
    rows, tiles = align_by_expert(ids, 6, block_m=4)
    flat = ids.reshape(-1)
    valid = rows[rows < flat.numel()].long()
    assert sorted(valid.tolist()) == list(range(flat.numel()))  # every routed row once
    assert rows.numel() == 4 * tiles.numel()
    for t, expert in enumerate(tiles.tolist()):
        tile = rows[4 * t : 4 * t + 4]
        assert all(flat[r].item() == expert for r in tile.tolist() if r < flat.numel())
    counts = torch.bincount(flat, minlength=6)
    assert tiles.numel() == int(((counts + 3) // 4).sum())


def test_paged_decode_oracle_equals_sdpa_on_contiguous_kv():
    from profiler.kernels.reference import paged_decode_reference

    gen = torch.Generator().manual_seed(3)
    batch, hq, hkv, d, page, n = 2, 8, 2, 16, 4, 10
    k = torch.randn(batch, n, hkv, d, generator=gen)
    v = torch.randn(batch, n, hkv, d, generator=gen)
    pad = page * 3 - n  # lay each sequence out in 3 pages, reversed order
    kp = torch.cat([k, torch.zeros(batch, pad, hkv, d)], 1).view(batch * 3, page, hkv, d)
    vp = torch.cat([v, torch.zeros(batch, pad, hkv, d)], 1).view(batch * 3, page, hkv, d)
    table = torch.tensor([[2, 1, 0], [5, 4, 3]], dtype=torch.int32)
    kp, vp = kp[[2, 1, 0, 5, 4, 3]], vp[[2, 1, 0, 5, 4, 3]]
    q = torch.randn(batch, hq, d, generator=gen)
    out = paged_decode_reference(q, kp, vp, table, torch.tensor([n, n]))
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, None], k.transpose(1, 2), v.transpose(1, 2), enable_gqa=True
    )[:, :, 0]
    assert torch.allclose(out, ref, atol=1e-5)
