"""MoE grouped GEMM in Triton: one launch computes every expert's rows of one projection.

Routed rows r = t * topk + j (token t, its j-th expert) are sorted by expert and each expert's
run is padded to a multiple of BLOCK_M (`align_by_expert`), so that every BLOCK_M tile of the
sorted list belongs to one expert. A program loads that tile's expert id, gathers its input
rows (row r reads x[r // a_div]: a_div = topk for the first projection, which reads the
unexpanded tokens, 1 for the second, which reads the expanded activations), multiplies by the
expert's weight w[e] (nn.Linear layout [n, k]) and scatters the result to out[r]. This is the
structure of the fused-MoE kernels of vLLM and SGLang.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from profiler.kernels.reference import align_by_expert


@triton.jit
def _grouped_gemm_kernel(
    X,
    W,
    OUT,
    SORTED_ROWS,
    TILE_EXPERT,
    num_rows,
    n,
    k,
    num_tiles_m,
    stride_xm,
    stride_xk,
    stride_we,
    stride_wn,
    stride_wk,
    stride_om,
    stride_on,
    A_DIV: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    tiles_n = tl.cdiv(n, BLOCK_N)
    # Walk GROUP_M row tiles before moving along n, so a weight tile is reused from L2.
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(num_tiles_m - first_m, GROUP_M)
    tile_m = first_m + (pid % per_group) % group_rows
    tile_n = (pid % per_group) // group_rows

    expert = tl.load(TILE_EXPERT + tile_m).to(tl.int64)
    offs_m = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rows = tl.load(SORTED_ROWS + offs_m)
    row_ok = rows < num_rows
    a_rows = (rows // A_DIV).to(tl.int64)
    offs_n = tile_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < n
    offs_k = tl.arange(0, BLOCK_K)

    a_ptr = X + a_rows[:, None] * stride_xm + offs_k[None, :] * stride_xk
    b_ptr = W + expert * stride_we + offs_n[None, :] * stride_wn + offs_k[:, None] * stride_wk
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for kk in range(0, tl.cdiv(k, BLOCK_K)):
        k_ok = offs_k < k - kk * BLOCK_K
        a = tl.load(a_ptr, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(b_ptr, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptr += BLOCK_K * stride_xk
        b_ptr += BLOCK_K * stride_wk

    o_ptr = OUT + rows.to(tl.int64)[:, None] * stride_om + offs_n[None, :] * stride_on
    tl.store(o_ptr, acc.to(OUT.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])


def pick_config(num_rows: int, active_experts: int, n: int, k: int) -> dict:
    """Tile sizes by rows per active expert (few rows: thin tiles, decode; many: square tiles)."""
    per_expert = num_rows / max(active_experts, 1)
    if per_expert <= 16:
        cfg = dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=4)
    elif per_expert <= 32:
        cfg = dict(BLOCK_M=32, BLOCK_N=64, BLOCK_K=128, num_warps=4, num_stages=4)
    elif per_expert <= 96:
        cfg = dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=4)
    else:
        cfg = dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, num_warps=8, num_stages=3)
    cfg["GROUP_M"] = 8
    return cfg


class GroupedGemm:
    """A prepared grouped GEMM: routing aligned and output allocated once; `__call__` launches.

    x: [tokens, k] (a_div = topk) or [tokens * topk, k] (a_div = 1); w: [experts, n, k];
    topk_ids: [tokens, topk]. Output: [tokens * topk, n], row r for routed row r.
    """

    def __init__(self, x, w, topk_ids, a_div: int, config: dict | None = None, out=None):
        experts, n, k = w.shape
        num_rows = topk_ids.numel()
        if x.shape[1] != k:
            raise ValueError(f"x has k={x.shape[1]}, w has k={k}")
        if x.shape[0] * a_div != num_rows:
            raise ValueError(f"x rows {x.shape[0]} x a_div {a_div} != routed rows {num_rows}")
        active = int(torch.unique(topk_ids).numel())
        self.cfg = dict(config or pick_config(num_rows, active, n, k))
        self.sorted_rows, self.tile_expert = align_by_expert(topk_ids, experts, self.cfg["BLOCK_M"])
        self.x, self.w, self.a_div, self.n, self.k, self.num_rows = x, w, a_div, n, k, num_rows
        self.out = out if out is not None else torch.empty(num_rows, n, device=x.device, dtype=x.dtype)
        self.tiles_m = self.tile_expert.numel()
        self.grid = (self.tiles_m * triton.cdiv(n, self.cfg["BLOCK_N"]),)

    def __call__(self):
        x, w, out, cfg = self.x, self.w, self.out, self.cfg
        if self.tiles_m == 0:
            return out
        _grouped_gemm_kernel[self.grid](
            x,
            w,
            out,
            self.sorted_rows,
            self.tile_expert,
            self.num_rows,
            self.n,
            self.k,
            self.tiles_m,
            x.stride(0),
            x.stride(1),
            w.stride(0),
            w.stride(1),
            w.stride(2),
            out.stride(0),
            out.stride(1),
            A_DIV=self.a_div,
            BLOCK_M=cfg["BLOCK_M"],
            BLOCK_N=cfg["BLOCK_N"],
            BLOCK_K=cfg["BLOCK_K"],
            GROUP_M=cfg["GROUP_M"],
            num_warps=cfg["num_warps"],
            num_stages=cfg["num_stages"],
        )
        return out


def grouped_gemm(x, w, topk_ids, a_div: int, config: dict | None = None):
    return GroupedGemm(x, w, topk_ids, a_div, config)()
