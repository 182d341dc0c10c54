"""PyTorch-only pieces of the kernels: the correctness oracles and the MoE routing alignment.

No triton here, so the tests can check these on any machine.
"""

from __future__ import annotations

import math

import torch


def align_by_expert(topk_ids: torch.Tensor, num_experts: int, block_m: int):
    """Sort routed rows by expert, padding each expert's run to a multiple of block_m.

    Returns (sorted_rows [P] int32 with padding = number of routed rows, tile_expert [P/block_m]
    int32). Computed with PyTorch ops (the serving engines' `moe_align_block_size` is a kernel).
    """
    flat = topk_ids.reshape(-1).to(torch.int64)
    num_rows = flat.numel()
    counts = torch.bincount(flat, minlength=num_experts)
    padded = (counts + block_m - 1) // block_m * block_m
    pad_start = torch.cumsum(padded, 0) - padded
    start = torch.cumsum(counts, 0) - counts
    order = torch.argsort(flat, stable=True)
    experts_sorted = flat[order]
    position = torch.arange(num_rows, device=flat.device) - start[experts_sorted]
    total = int(padded.sum())
    sorted_rows = torch.full((total,), num_rows, dtype=torch.int32, device=flat.device)
    sorted_rows[pad_start[experts_sorted] + position] = order.to(torch.int32)
    tile_expert = torch.repeat_interleave(
        torch.arange(num_experts, device=flat.device, dtype=torch.int32), padded // block_m
    )
    return sorted_rows, tile_expert


def paged_decode_reference(q, k_cache, v_cache, block_table, seq_lens, scale: float | None = None):
    """The same attention in plain PyTorch (float32), sequence by sequence: the correctness oracle."""
    batch, hq, d = q.shape
    page, hkv = k_cache.shape[1], k_cache.shape[2]
    scale = scale if scale is not None else 1.0 / math.sqrt(d)
    outs = []
    for b in range(batch):
        n = int(seq_lens[b])
        pages = block_table[b, : -(-n // page)].long()
        k = k_cache[pages].reshape(-1, hkv, k_cache.shape[-1])[:n].float()
        v = v_cache[pages].reshape(-1, hkv, v_cache.shape[-1])[:n].float()
        k = k.repeat_interleave(hq // hkv, dim=1)  # [n, hq, d]
        v = v.repeat_interleave(hq // hkv, dim=1)
        scores = torch.einsum("hd,nhd->hn", q[b].float(), k) * scale
        outs.append(torch.einsum("hn,nhd->hd", scores.softmax(-1), v))
    return torch.stack(outs).to(q.dtype)


def grouped_gemm_reference(x, w, topk_ids, a_div: int):
    """out[r] = x[r // a_div] @ w[topk_ids.flat[r]]^T, in float32 one expert at a time: the oracle."""
    flat = topk_ids.reshape(-1).long()
    out = torch.empty(flat.numel(), w.shape[1], device=x.device, dtype=torch.float32)
    for e in torch.unique(flat).tolist():
        rows = torch.nonzero(flat == e).squeeze(1)
        out[rows] = x[rows // a_div].float() @ w[e].float().t()
    return out.to(x.dtype)
