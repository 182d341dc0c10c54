"""Paged decode attention in Triton: one query token per sequence, KV in fixed-size pages.

Layout (vLLM-style, "NHD" pages):
    q            [batch, hq, d]
    k_cache      [num_pages, page_size, hkv, d]
    v_cache      [num_pages, page_size, hkv, dv]   (may be a strided view of k_cache: MLA)
    block_table  [batch, max_pages_per_seq] int32, page ids of each sequence in order
    seq_lens     [batch] int32, tokens of each sequence (>= 1)
    out          [batch, hq, dv]

Query heads are grouped by the KV head they share (GQA: group = hq / hkv), and one program
handles BLOCK_H heads of one group, so each KV page is read once per group rather than once per
query head. For MLA (absorbed), hkv = 1, group = hq, d = kv_lora + rope and V is the first dv
channels of the latent; the rope part is handled as a second, smaller dot product (`d_pe`).

Long sequences are split along the KV axis (flash-decoding): stage 1 writes a partial output
and its log-sum-exp per split; stage 2 merges the splits. With one split, stage 1 writes the
final output directly.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _paged_decode_stage1(
    Q,
    K,
    V,
    BLOCK_TABLE,
    SEQ_LENS,
    P_OUT,
    P_LSE,
    stride_qb,
    stride_qh,
    stride_kpage,
    stride_kslot,
    stride_kh,
    stride_vpage,
    stride_vslot,
    stride_vh,
    stride_bt,
    stride_ob,
    stride_oh,
    stride_os,
    stride_lb,
    stride_lh,
    qk_scale_log2,
    group,
    num_splits,
    D_MAIN: tl.constexpr,
    D_PE: tl.constexpr,
    DV: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_PE: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PAGE: tl.constexpr,
    WRITE_LSE: tl.constexpr,
):
    b = tl.program_id(0)
    head_block = tl.program_id(1)
    split = tl.program_id(2)

    blocks_per_group = tl.cdiv(group, BLOCK_H)
    kv_head = head_block // blocks_per_group
    first = (head_block % blocks_per_group) * BLOCK_H
    in_group = first + tl.arange(0, BLOCK_H)
    head_ok = in_group < group
    heads = kv_head * group + in_group

    seq_len = tl.load(SEQ_LENS + b)
    # Splits are whole multiples of BLOCK_N so that only a sequence's last block is ragged.
    split_len = tl.cdiv(tl.cdiv(seq_len, num_splits), BLOCK_N) * BLOCK_N
    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)

    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D_MAIN
    offs_dv = tl.arange(0, BLOCK_DV)
    dv_ok = offs_dv < DV
    q_rows = Q + b * stride_qb + heads[:, None] * stride_qh
    q = tl.load(q_rows + offs_d[None, :], mask=head_ok[:, None] & d_ok[None, :], other=0.0)
    if D_PE > 0:
        offs_pe = D_MAIN + tl.arange(0, BLOCK_PE)
        pe_ok = offs_pe < D_MAIN + D_PE
        q_pe = tl.load(q_rows + offs_pe[None, :], mask=head_ok[:, None] & pe_ok[None, :], other=0.0)

    m_i = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_DV], dtype=tl.float32)

    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end
        page = tl.load(BLOCK_TABLE + b * stride_bt + offs_n // PAGE, mask=n_ok, other=0).to(tl.int64)
        slot = offs_n % PAGE
        k_tok = K + page * stride_kpage + slot * stride_kslot + kv_head * stride_kh
        k = tl.load(k_tok[None, :] + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        scores = tl.dot(q, k)
        if D_PE > 0:
            k_pe = tl.load(k_tok[None, :] + offs_pe[:, None], mask=n_ok[None, :] & pe_ok[:, None], other=0.0)
            scores += tl.dot(q_pe, k_pe)
        scores = tl.where(n_ok[None, :], scores * qk_scale_log2, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(scores, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_tok = V + page * stride_vpage + slot * stride_vslot + kv_head * stride_vh
        v = tl.load(v_tok[:, None] + offs_dv[None, :], mask=n_ok[:, None] & dv_ok[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new

    has = l_i > 0.0
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    o_ptr = P_OUT + b * stride_ob + heads[:, None] * stride_oh + split * stride_os + offs_dv[None, :]
    tl.store(o_ptr, out.to(P_OUT.dtype.element_ty), mask=head_ok[:, None] & dv_ok[None, :])
    if WRITE_LSE:
        lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
        tl.store(P_LSE + b * stride_lb + heads * stride_lh + split, lse, mask=head_ok)


@triton.jit
def _paged_decode_stage2(
    P_OUT,
    P_LSE,
    OUT,
    stride_ob,
    stride_oh,
    stride_os,
    stride_lb,
    stride_lh,
    stride_fb,
    stride_fh,
    num_splits,
    DV: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    s_ok = offs_s < num_splits
    offs_dv = tl.arange(0, BLOCK_DV)
    dv_ok = offs_dv < DV
    lse = tl.load(P_LSE + b * stride_lb + h * stride_lh + offs_s, mask=s_ok, other=float("-inf"))
    m = tl.max(lse, 0)
    w = tl.where(s_ok & (lse > float("-inf")), tl.exp2(lse - m), 0.0)
    part = tl.load(
        P_OUT + b * stride_ob + h * stride_oh + offs_s[:, None] * stride_os + offs_dv[None, :],
        mask=s_ok[:, None] & dv_ok[None, :],
        other=0.0,
    )
    out = tl.sum(part * w[:, None], 0) / tl.sum(w, 0)
    tl.store(OUT + b * stride_fb + h * stride_fh + offs_dv, out.to(OUT.dtype.element_ty), mask=dv_ok)


def _pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def choose_splits(batch: int, hkv: int, head_blocks: int, max_kv: int, sm_count: int, block_n: int = 32) -> int:
    """KV splits so that about two programs per SM run, never splits shorter than 256 tokens."""
    programs = batch * hkv * head_blocks
    want = -(-2 * max(sm_count, 1) // max(programs, 1))
    most = max(1, min(64, max_kv // max(256, block_n)))
    return max(1, min(want, most))


class PagedDecode:
    """A prepared paged-decode call: workspace allocated once, `__call__` launches the kernels.

    `d_pe` > 0 splits the query/key dim into d - d_pe channels and d_pe rope channels (MLA).
    """

    def __init__(
        self,
        q,
        k_cache,
        v_cache,
        block_table,
        seq_lens,
        max_kv: int,
        *,
        scale: float | None = None,
        d_pe: int = 0,
        num_splits: int | None = None,
        sm_count: int | None = None,
        out=None,
    ):
        batch, hq, d = q.shape
        _, page, hkv, dk = k_cache.shape
        dv = v_cache.shape[-1]
        if dk != d:
            raise ValueError(f"q head dim {d} != k_cache head dim {dk}")
        if hq % hkv:
            raise ValueError(f"hq={hq} is not a multiple of hkv={hkv}")
        for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache)):
            if t.stride(-1) != 1:
                raise ValueError(f"{name} must be contiguous in its last dim")
        self.q, self.k, self.v = q, k_cache, v_cache
        self.block_table, self.seq_lens = block_table, seq_lens
        self.group = hq // hkv
        self.d_main, self.d_pe, self.dv = d - d_pe, d_pe, dv
        self.page = page
        big = d > 256
        self.block_h = 16 if big else min(64, max(16, _pow2(self.group)))
        self.block_n = 32 if big else 64
        self.num_warps = 8 if big else 4
        self.head_blocks = hkv * triton.cdiv(self.group, self.block_h)
        if num_splits is None:
            if sm_count is None:
                sm_count = torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 1
            num_splits = choose_splits(
                batch, hkv, triton.cdiv(self.group, self.block_h), max_kv, sm_count, self.block_n
            )
        self.num_splits = max(1, int(num_splits))
        self.scale_log2 = (scale if scale is not None else 1.0 / math.sqrt(d)) * LOG2E
        self.out = out if out is not None else torch.empty(batch, hq, dv, device=q.device, dtype=q.dtype)
        if self.num_splits > 1:
            self.p_out = torch.empty(batch, hq, self.num_splits, dv, device=q.device, dtype=torch.float32)
            self.p_lse = torch.empty(batch, hq, self.num_splits, device=q.device, dtype=torch.float32)
        else:  # stage 1 writes the result itself
            self.p_out = self.out.unsqueeze(2)
            self.p_lse = torch.empty(1, 1, 1, device=q.device, dtype=torch.float32)
        self.grid1 = (batch, self.head_blocks, self.num_splits)
        self.grid2 = (batch, hq)

    def __call__(self):
        q, k, v, po, pl = self.q, self.k, self.v, self.p_out, self.p_lse
        split = self.num_splits > 1
        _paged_decode_stage1[self.grid1](
            q,
            k,
            v,
            self.block_table,
            self.seq_lens,
            po,
            pl,
            q.stride(0),
            q.stride(1),
            k.stride(0),
            k.stride(1),
            k.stride(2),
            v.stride(0),
            v.stride(1),
            v.stride(2),
            self.block_table.stride(0),
            po.stride(0),
            po.stride(1),
            po.stride(2),
            pl.stride(0),
            pl.stride(1),
            self.scale_log2,
            self.group,
            self.num_splits,
            D_MAIN=self.d_main,
            D_PE=self.d_pe,
            DV=self.dv,
            BLOCK_D=max(16, _pow2(self.d_main)),
            BLOCK_PE=max(16, _pow2(self.d_pe)) if self.d_pe else 16,
            BLOCK_DV=max(16, _pow2(self.dv)),
            BLOCK_H=self.block_h,
            BLOCK_N=self.block_n,
            PAGE=self.page,
            WRITE_LSE=split,
            num_warps=self.num_warps,
            num_stages=2,
        )
        if split:
            out = self.out
            _paged_decode_stage2[self.grid2](
                po,
                pl,
                out,
                po.stride(0),
                po.stride(1),
                po.stride(2),
                pl.stride(0),
                pl.stride(1),
                out.stride(0),
                out.stride(1),
                self.num_splits,
                DV=self.dv,
                BLOCK_DV=max(16, _pow2(self.dv)),
                BLOCK_S=max(2, _pow2(self.num_splits)),
                num_warps=4,
            )
        return self.out


def paged_decode(q, k_cache, v_cache, block_table, seq_lens, max_kv: int | None = None, **kwargs):
    """One-shot convenience wrapper (allocates its workspace; time `PagedDecode` instead)."""
    if max_kv is None:
        max_kv = int(seq_lens.max())
    return PagedDecode(q, k_cache, v_cache, block_table, seq_lens, max_kv, **kwargs)()
