"""Model + parallelism + one batch -> the operators of one forward step.

The batch is described by its length statistics (`BatchStats`), which is all the operators
need: GEMMs see the token count, attention sees count/sum/max/sum-of-squares of the lengths.
The list returned is for one pipeline stage (the last one, which also runs the LM head), as
(operator, count) pairs where count is how many layers of the stage run that operator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from frontier.ops.operators import (AttnDecode, AttnPrefill, Collective, Elementwise, Gemm,
                                    GroupedGemm, Operator)
from frontier.spec.model import ModelSpec


@dataclass(frozen=True)
class Parallel:
    """How one model instance is split over GPUs.

    tp: tensor parallel degree; pp: pipeline stages; ep: expert-parallel degree of the MoE layers
    (experts spread over ep ranks; 1 = experts sharded by TP instead); dp_attention: data-parallel
    attention ranks that share one EP group (DeepSeek style; each holds its own batch).
    """

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp_attention: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp_attention


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Length statistics of one step's batch (one attention-DP rank)."""

    num_prefill: int = 0       # sequences bringing prefill tokens (whole prompts or chunks)
    prefill_tokens: int = 0    # sum of new prefill tokens (sum q)
    prefill_sum_q2: int = 0
    prefill_sum_qc: int = 0    # sum q * cached context
    prefill_sum_kv: int = 0
    prefill_max_q: int = 0
    prefill_max_kv: int = 0
    num_decode: int = 0        # sequences decoding one token
    decode_sum_kv: int = 0
    decode_max_kv: int = 0
    num_sampled: int = 0       # sequences that emit a token this step (LM head rows)

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.num_decode


def snap(x: int, step: float = 1.02) -> int:
    """Round to the nearest point of a geometric grid (within ±1 % for step 1.02)."""
    if x <= 64:
        return int(x)
    return int(round(step ** round(math.log(x, step))))


def grid_neighbours(x: int, step: float) -> tuple[int, int]:
    """The points of a geometric grid just below and above x (x itself when small or on it)."""
    if x <= 64:
        return int(x), int(x)
    e = math.floor(math.log(x, step))
    lo, hi = int(round(step ** e)), int(round(step ** (e + 1)))
    return (x, x) if lo == x else (min(lo, x), max(hi, x))


def _moe_routing(tokens: int, experts: int, top_k: int, local_experts: int) -> tuple[int, int]:
    """Busiest local expert's tokens and active local experts under uniform routing.

    Expected active experts: E_local * (1 - (1 - k/E)^T); the busiest expert sits about three
    standard deviations of a binomial above the mean for many experts."""
    if tokens == 0:
        return 0, 0
    p = top_k / experts
    active = max(1, min(local_experts, round(local_experts * (1.0 - (1.0 - p) ** tokens))))
    mean = tokens * p
    sigma = math.sqrt(mean * (1.0 - p))
    z = math.sqrt(2.0 * math.log(max(local_experts, 2)))
    busiest = min(tokens, max(1, math.ceil(mean + z * sigma)))
    return busiest, active


def step_operators(model: ModelSpec, par: Parallel, batch: BatchStats, *,
                   attn_backend: str = "flash", dtype: str = "bf16",
                   moe_tokens: int | None = None) -> list[tuple[Operator, int]]:
    """Operators of one forward step of the batch on one GPU of the last pipeline stage.

    `moe_tokens`: tokens entering the MoE layers on this EP group (the sum over attention-DP
    ranks); defaults to this batch's tokens times `par.dp_attention`.
    """
    if batch.tokens == 0:
        return []
    return (token_operators(model, par, batch.tokens, batch.num_sampled, dtype=dtype, moe_tokens=moe_tokens)
            + attention_operators(model, par, batch, attn_backend=attn_backend, dtype=dtype))


def _stage_layers(model: ModelSpec, par: Parallel) -> int:
    return math.ceil(model.num_layers / par.pp)


def attention_operators(model: ModelSpec, par: Parallel, batch: BatchStats, *,
                        attn_backend: str = "flash", dtype: str = "bf16") -> list[tuple[Operator, int]]:
    """The operators whose cost depends on the sequences' lengths, not only the token count."""
    layers = _stage_layers(model, par)
    hq = max(1, model.num_heads // par.tp)
    ops: list[tuple[Operator, int]] = []
    if model.mla:
        m = model.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if batch.num_prefill:
            # Prefill expands the latent into per-head keys and values for the whole context.
            ops.append((Gemm(batch.prefill_sum_kv, m.kv_lora_rank,
                             hq * (m.qk_nope_head_dim + m.v_head_dim), dtype), layers))
            ops.append((AttnPrefill(batch.num_prefill, batch.prefill_tokens, batch.prefill_sum_q2,
                                    batch.prefill_sum_qc, batch.prefill_sum_kv, batch.prefill_max_q,
                                    batch.prefill_max_kv, hq, hq, qk, m.v_head_dim, attn_backend), layers))
        if batch.num_decode:
            # Decode absorbs the up-projections: attention runs on the latent (MQA over 576 dims).
            B = batch.num_decode
            ops.append((Gemm(B, hq * m.qk_nope_head_dim, m.kv_lora_rank, dtype), layers))
            ops.append((AttnDecode(B, batch.decode_sum_kv, batch.decode_max_kv, hq, 1,
                                   m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank, attn_backend), layers))
            ops.append((Gemm(B, hq * m.kv_lora_rank, m.v_head_dim, dtype), layers))
        return ops
    d = model.head_dim
    hkv = max(1, model.num_kv_heads // par.tp)
    if batch.num_prefill:
        ops.append((AttnPrefill(batch.num_prefill, batch.prefill_tokens, batch.prefill_sum_q2,
                                batch.prefill_sum_qc, batch.prefill_sum_kv, batch.prefill_max_q,
                                batch.prefill_max_kv, hq, hkv, d, d, attn_backend), layers))
    if batch.num_decode:
        ops.append((AttnDecode(batch.num_decode, batch.decode_sum_kv, batch.decode_max_kv, hq, hkv, d, d,
                               attn_backend), layers))
    return ops


def token_operators(model: ModelSpec, par: Parallel, tokens: int, num_sampled: int, *,
                    dtype: str = "bf16", moe_tokens: int | None = None) -> list[tuple[Operator, int]]:
    """The operators whose cost depends only on the token count (and the sampled rows)."""
    tp, elem = par.tp, model.dtype_bytes
    T = tokens
    if T == 0:
        return []
    h = model.hidden_size
    layers = _stage_layers(model, par)
    moe_layers = min(layers, model.num_moe_layers) if model.moe else 0
    dense_layers = layers - moe_layers
    hq = max(1, model.num_heads // tp)
    ops: list[tuple[Operator, int]] = []

    def add(op: Operator, count: int) -> None:
        if count > 0:
            ops.append((op, count))

    add(Elementwise("embedding", T, h), 1)
    add(Elementwise("rmsnorm", T, h), 2 * layers)
    add(Elementwise("residual_add", T, h), 2 * layers)

    # --- attention projections --------------------------------------------------------------
    if model.mla:
        m = model.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            add(Gemm(T, h, m.q_lora_rank, dtype), layers)
            add(Gemm(T, m.q_lora_rank, hq * qk, dtype), layers)
        else:
            add(Gemm(T, h, hq * qk, dtype), layers)
        add(Gemm(T, h, m.kv_lora_rank + m.qk_rope_head_dim, dtype), layers)
        add(Elementwise("rotary", T, (hq + 1) * m.qk_rope_head_dim), layers)
        add(Gemm(T, hq * m.v_head_dim, h, dtype), layers)
    else:
        d = model.head_dim
        hkv = max(1, model.num_kv_heads // tp)
        add(Gemm(T, h, (hq + 2 * hkv) * d, dtype), layers)
        add(Elementwise("rotary", T, (hq + hkv) * d), layers)
        add(Gemm(T, hq * d, h, dtype), layers)
    if tp > 1:
        add(Collective("all_reduce", T * h * elem, tp), layers)

    # --- dense MLP layers -------------------------------------------------------------------
    if dense_layers and model.intermediate_size:
        inter = model.intermediate_size // tp
        add(Gemm(T, h, 2 * inter, dtype), dense_layers)
        add(Elementwise("silu_mul", T, inter), dense_layers)
        add(Gemm(T, inter, h, dtype), dense_layers)
        if tp > 1:
            add(Collective("all_reduce", T * h * elem, tp), dense_layers)

    # --- MoE layers -------------------------------------------------------------------------
    if moe_layers:
        moe = model.moe
        group_tokens = moe_tokens if moe_tokens is not None else T * par.dp_attention
        add(Gemm(T, h, moe.num_experts, "bf16"), moe_layers)  # router logits stay in bf16
        add(Elementwise("topk_gating", T, moe.num_experts), moe_layers)
        if par.ep > 1:
            local = max(1, moe.num_experts // par.ep)
            width = moe.intermediate_size
            # Rows this rank's experts receive: the group's tokens x top-k spread over ep ranks.
            rank_tokens = math.ceil(group_tokens / par.ep)
            busiest, active = _moe_routing(group_tokens, moe.num_experts, moe.top_k, local)
            sent = T * moe.top_k * h * elem
            add(Collective("all_to_all", sent, par.ep), moe_layers)       # dispatch
            add(GroupedGemm(local, moe.top_k, rank_tokens, h, 2 * width, busiest, active, dtype), moe_layers)
            add(Elementwise("silu_mul", rank_tokens * moe.top_k, width), moe_layers)
            add(GroupedGemm(local, moe.top_k, rank_tokens, width, h, busiest, active, dtype), moe_layers)
            add(Collective("all_to_all", sent, par.ep), moe_layers)       # combine
        else:
            width = moe.intermediate_size // tp
            busiest, active = _moe_routing(T, moe.num_experts, moe.top_k, moe.num_experts)
            add(GroupedGemm(moe.num_experts, moe.top_k, T, h, 2 * width, busiest, active, dtype), moe_layers)
            add(Elementwise("silu_mul", T * moe.top_k, width), moe_layers)
            add(GroupedGemm(moe.num_experts, moe.top_k, T, width, h, busiest, active, dtype), moe_layers)
        if moe.shared_intermediate_size:
            shared = moe.shared_intermediate_size // (tp if par.ep == 1 else 1)
            add(Gemm(T, h, 2 * shared, dtype), moe_layers)
            add(Elementwise("silu_mul", T, shared), moe_layers)
            add(Gemm(T, shared, h, dtype), moe_layers)
        if tp > 1 and par.ep == 1:
            add(Collective("all_reduce", T * h * elem, tp), moe_layers)

    # --- pipeline hand-off, final norm, LM head, sampling ------------------------------------
    if par.pp > 1:
        add(Collective("send_recv", T * h * elem, 2), 1)
    rows = num_sampled
    if rows:
        add(Elementwise("rmsnorm", rows, h), 1)
        add(Gemm(rows, h, math.ceil(model.vocab_size / tp), dtype), 1)
        if tp > 1:
            add(Collective("all_gather", rows * model.vocab_size * 4, tp), 1)
        add(Elementwise("sampling", rows, model.vocab_size), 1)
    return ops
