"""Model + parallelism + one batch -> the operators of one forward step.

The batch is described by its length statistics (`BatchStats`), which is all the operators
need: GEMMs see the token count, attention sees count/sum/max/sum-of-squares of the lengths.
Lists are for one GPU of one pipeline stage (the last one, which also runs the LM head), as
(operator, count) pairs where count is how many layers of the stage run that operator.

The kernels are the ones vLLM and SGLang launch, not a textbook layer: residual add fused into
RMSNorm (vllm/csrc/layernorm_kernels.cu `fused_add_rms_norm`; sglang `fused_add_rmsnorm`), QKV
and gate/up merged GEMMs, rotary on q/k then the paged KV-cache write (`reshape_and_cache_flash`),
SiLU-and-mul as one kernel, FP8 activations quantised inside the norm / SiLU kernels (vLLM's
torch.compile fusion passes) except before the output projection, or before every FP8 linear
layer in a kernel of its own where the engine does not fuse them (`fused_quant`), and the
tensor-parallel all-reduce as the engine picks it by message size (`all_reduce`).

A step is four blocks, apart because disaggregation and overlap schedule them apart:
`head_operators` (embedding, LM head, sampling), `attention_block` (norms, projections and TP
all-reduce: shaped by the token count), `attention_core` (attention proper: shaped by the
sequence lengths) and `ffn_block` (dense MLP or MoE with its all-to-all). `decoder_layer` lists
one decode layer's kernels in the order they run (what the profiler's whole-step timings build).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

from frontier.ops.experts import ExpertRouting, Fabric, busiest_rank, destinations, ep_traffic
from frontier.ops.operators import (
    AttnDecode,
    AttnPrefill,
    Collective,
    Elementwise,
    EPExchange,
    Gemm,
    GroupedGemm,
    IndexerScore,
    LinearAttention,
    Operator,
    SparseAttention,
)
from frontier.spec.model import ModelSpec


@dataclass(frozen=True)
class Parallel:
    """How one model instance is split over GPUs.

    tp: tensor parallel degree; pp: pipeline stages; ep: expert-parallel degree of the MoE layers
    (experts spread over ep ranks; 1 = experts sharded by TP instead); dp_attention: data-parallel
    attention ranks that share one EP group (DeepSeek style; each holds its own batch);
    ep_backend: how dispatch and combine move tokens (`frontier.spec.scenario.EP_BACKENDS`);
    fabric: the nodes and links the EP ranks sit on;
    symm_mem: the CUDA capability whose symmetric-memory all-reduce table the engine uses (vLLM
    with `VLLM_ALLREDUCE_USE_SYMM_MEM`), None where it does not (`all_reduce`);
    padded_deep_gemm: FP8 experts run DeepGEMM over every expert's padded rows (vLLM 0.12,
    `padded_deep_gemm_experts`).
    """

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp_attention: int = 1
    routing: ExpertRouting = ExpertRouting()
    ep_backend: str = "nccl"
    fabric: Fabric = Fabric()
    symm_mem: str | None = None
    padded_deep_gemm: bool = False

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp_attention

    def all_reduce(self, size_bytes: int) -> Collective:
        """The TP all-reduce of a `size_bytes` message over this layout (`all_reduce`)."""
        return all_reduce(size_bytes, self.tp, self.fabric.gpus_per_node, self.symm_mem)


class BatchStats(NamedTuple):
    """Length statistics of one step's batch (one attention-DP rank). A named tuple: the
    simulator makes one or more per step, and a tuple is made in a fifth of a frozen
    dataclass's time."""

    num_prefill: int = 0  # sequences bringing prefill tokens (whole prompts or chunks)
    prefill_tokens: int = 0  # sum of new prefill tokens (sum q)
    prefill_sum_q2: int = 0
    prefill_sum_qc: int = 0  # sum q * cached context
    prefill_sum_kv: int = 0
    prefill_max_q: int = 0
    prefill_max_kv: int = 0
    num_decode: int = 0  # sequences decoding one token
    decode_sum_kv: int = 0
    decode_max_kv: int = 0
    num_sampled: int = 0  # sequences that emit a token this step (LM head rows)

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.num_decode

    @classmethod
    def decode(cls, batch: int, kv: int) -> "BatchStats":
        """`batch` sequences decoding one token each, `kv` cached tokens apiece."""
        return cls(num_decode=batch, decode_sum_kv=batch * kv, decode_max_kv=kv, num_sampled=batch)


Ops = list[tuple[Operator, int]]

CUSTOM_ALLREDUCE_MAX_BYTES = 8 * 2**20  # custom_all_reduce.py max_size; NCCL above
MiB = 2**20
# vLLM's all-reduce with PyTorch symmetric memory (vllm/distributed/device_communicators/
# all_reduce_utils.py SYMM_MEM_ALL_REDUCE_MAX_SIZES, per CUDA capability and world size;
# cuda_communicator.py `all_reduce` tries the custom kernel, then symmetric memory, then NCCL):
# messages up to SYMM_MEM_MAX go through NVLink-SHARP multimem for the world sizes of symm_mem.py
# `_WORLD_SIZES_MULTIMEM` (its two-shot kernel for the others: priced as NCCL). With it vLLM also
# lowers the custom kernel's limit (to 256 KiB on 8 Hopper GPUs), so decode-sized messages take
# multimem too; those stay priced by the custom-kernel model, fitted to whole decode steps: the
# microbenchmark's multimem makes the development set's TP8 decode steps of 16-64 sequences 7 %
# faster than measured (Llama-3.1-70B TPOT bias +2 -> -6 %). Only the prefill-sized messages
# above 8 MiB, which NCCL would carry otherwise, are priced as multimem.
SYMM_MEM_MAX = {
    "9.0": {2: 64 * MiB, 4: 32 * MiB, 6: 64 * MiB, 8: 64 * MiB},
    "10.0": {2: 8 * MiB, 4: 32 * MiB, 6: 128 * MiB, 8: 128 * MiB},
}
SYMM_MEM_MULTIMEM_WORLDS = {"9.0": (4, 6, 8), "10.0": (6, 8)}


def all_reduce(size_bytes: int, tp: int, gpus_per_node: int = 0, symm_mem: str | None = None) -> Collective:
    """The tensor-parallel all-reduce the engines launch for a message of `size_bytes`: their
    custom one-/two-shot kernel up to 8 MiB (vllm/distributed/device_communicators/
    custom_all_reduce.py, SGLang's copy of it), NCCL above, except where vLLM's symmetric memory
    (`symm_mem`: the GPUs' CUDA capability) runs multimem up to SYMM_MEM_MAX.

    Across nodes (tp > gpus_per_node, e.g. TP16 on two 8-GPU nodes) the custom kernel cannot
    run (it needs every rank's buffer over NVLink: custom_all_reduce.py refuses more than one
    node) and NCCL's hierarchical all-reduce crosses the NICs: priced as a network collective."""
    if gpus_per_node and tp > gpus_per_node:
        return Collective("all_reduce", size_bytes, tp, "network")
    if size_bytes <= CUSTOM_ALLREDUCE_MAX_BYTES:
        return Collective("custom_all_reduce", size_bytes, tp)
    if tp in SYMM_MEM_MULTIMEM_WORLDS.get(symm_mem, ()) and size_bytes < SYMM_MEM_MAX[symm_mem][tp]:
        return Collective("multimem_all_reduce", size_bytes, tp)
    return Collective("all_reduce", size_bytes, tp)


def _dense_routing(tokens: int, experts: int, top_k: int, skew: float) -> tuple[int, int]:
    from frontier.ops.routing import expected_routing

    return expected_routing(tokens, experts, top_k, skew)


def stage_layers(model: ModelSpec, par: Parallel) -> tuple[int, int]:
    """(layers, MoE layers) of the last pipeline stage (MoE layers are the trailing ones)."""
    layers = math.ceil(model.num_layers / par.pp)
    return layers, (min(layers, model.num_moe_layers) if model.moe else 0)


def step_operators(
    model: ModelSpec,
    par: Parallel,
    batch: BatchStats,
    *,
    attn_backend: str = "flash",
    dtype: str | None = None,
    moe_tokens: int | None = None,
    fused_quant: bool = True,
) -> Ops:
    """All operators of one forward step of the batch on one GPU of the last pipeline stage.

    `moe_tokens`: tokens entering the MoE layers of this EP group (the sum over the
    attention-DP ranks); defaults to this batch's tokens times `par.dp_attention`.
    `fused_quant`: see `unfused_quant`.
    """
    dtype = dtype or model.weight_dtype  # the linear layers' GEMM family
    T = batch.tokens
    if T == 0:
        return []
    return (
        head_operators(model, par, T, batch.num_sampled, dtype)
        + attention_block(model, par, T, dtype, fused_quant)
        + attention_core(model, par, batch, attn_backend, dtype)
        + ffn_block(model, par, T, dtype, moe_tokens, fused_quant)
    )


def decoder_layer(model: ModelSpec, batch: int, kv: int, dtype: str | None = None) -> list[Operator]:
    """The kernels of one decoder layer (an MoE one where the model has MoE layers) of a decode
    batch of `batch` sequences with `kv` cached tokens each, at TP 1, in the order they run, each
    as often as the layer launches it: input norm, projections, attention, the output projection
    after what prepares its input (output gate, FP8 quantisation), post-attention norm, MLP or
    router and experts. The step's embedding, LM head and sampling are not in it."""
    moe = model.moe and dataclasses.replace(model.moe, first_dense_layers=0)
    layer, par = dataclasses.replace(model, num_layers=1, moe=moe), Parallel()
    stats = BatchStats.decode(batch, kv)
    attn = attention_block(layer, par, batch, dtype)
    norm, count = next((op, n) for op, n in attn if isinstance(op, Elementwise) and op.name == "add_rmsnorm")
    rest = [(op, n) for op, n in attn if op != norm]
    out = max(i for i, (op, _) in enumerate(rest) if isinstance(op, Gemm))  # the output projection
    core = attention_core(layer, par, stats, dtype=dtype)
    ordered = [(norm, 1), *rest[:out], *core, *rest[out + 1 :], rest[out], (norm, count - 1)]
    return [op for op, n in ordered + ffn_block(layer, par, batch, dtype) for _ in range(n)]


def mixer_layers(model: ModelSpec, layers: int) -> tuple[int, int]:
    """(softmax-attention, gated-DeltaNet) layers among `layers` of a stage, in the model's
    proportion (Qwen3.5: 1 in 4 softmax)."""
    if model.linear_attention is None:
        return layers, 0
    softmax = round(layers * model.num_attention_layers / model.num_layers)
    return softmax, layers - softmax


def head_operators(model: ModelSpec, par: Parallel, tokens: int, rows: int, dtype: str | None = None) -> Ops:
    """Embedding, pipeline hand-off, final norm, LM head on the sampled rows, sampling."""
    dtype = dtype or model.weight_dtype  # the linear layers' GEMM family
    tp, h, elem = par.tp, model.hidden_size, model.dtype_bytes
    ops: Ops = []
    if tokens:  # the last stage receives its input from the previous one; the first embeds
        ops.append(
            (Collective("send_recv", tokens * h * elem, 2), 1)
            if par.pp > 1
            else (Elementwise("embedding", tokens, h), 1)
        )
    if rows:
        ops.append((Elementwise("rmsnorm", rows, h), 1))
        ops.append((Gemm(rows, h, math.ceil(model.vocab_size / tp), "bf16"), 1))  # LM head stays bf16
        if tp > 1:
            link = "network" if tp > par.fabric.gpus_per_node else "nvlink"
            ops.append((Collective("all_gather", rows * model.vocab_size * 4, tp, link), 1))
        ops.append((Elementwise("sampling", rows, model.vocab_size), 1))
    return ops


def unfused_quant(tokens: int, widths: tuple[int, ...], layers: int, dtype: str, fused_quant: bool) -> Ops:
    """The input quantisation of FP8 linear layers whose inputs (of `widths`) come out of a norm
    or an activation, where the engine does not fuse it into that kernel: SGLang quantises each
    FP8 layer's input in a kernel of its own (sglang/srt/layers/quantization/fp8_utils.py: every
    block-FP8 path calls `sglang_per_token_group_quant_fp8` / `per_token_group_quant_fp8` before
    its GEMM, `apply_fp8_linear` `scaled_fp8_quant` for per-tensor scales; its fused RMSNorm +
    quantisation is AMD's aiter only), where vLLM's torch.compile passes fold it into the RMSNorm
    / SiLU-and-mul before (`fused_quant`)."""
    if dtype != "fp8" or fused_quant or not layers:
        return []
    return [(Elementwise("quant_fp8", tokens, w), layers) for w in widths]


def attention_block(
    model: ModelSpec, par: Parallel, tokens: int, dtype: str | None = None, fused_quant: bool = True
) -> Ops:
    """Per-layer norms, residual adds, Q/K/V and output projections, rotary, TP all-reduce; a
    hybrid's gated-DeltaNet layers' projections and gated norm (`gated_deltanet_block`).
    `fused_quant`: see `unfused_quant`."""
    dtype = dtype or model.weight_dtype  # the linear layers' GEMM family
    tp, T, h, elem = par.tp, tokens, model.hidden_size, model.dtype_bytes
    all_layers, _ = stage_layers(model, par)
    layers, linear_layers = mixer_layers(model, all_layers)
    hq = max(1, model.num_heads // tp)
    # Input and post-attention norms, each fused with the residual add.
    ops: Ops = [(Elementwise("add_rmsnorm", T, h), 2 * all_layers)]
    ops += gated_deltanet_block(model, par, T, linear_layers, dtype, fused_quant)
    if model.mla:
        m = model.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        # The q and kv latents are RMS-normalised before their up-projections (q_a_layernorm,
        # kv_a_layernorm: vllm/model_executor/models/deepseek_v2.py, sglang/srt/models/deepseek_v2.py).
        # Unfused, two inputs are quantised: the one the q and kv down-projections share (SGLang
        # merges them into `fused_qkv_a_proj_with_mqa`) and the normalised q latent.
        ops += unfused_quant(T, (h, m.q_lora_rank) if m.q_lora_rank else (h,), layers, dtype, fused_quant)
        if m.q_lora_rank:
            ops += [
                (Gemm(T, h, m.q_lora_rank, dtype), layers),
                (Elementwise("rmsnorm", T, m.q_lora_rank), layers),
                (Gemm(T, m.q_lora_rank, hq * qk, dtype), layers),
            ]
        else:
            ops.append((Gemm(T, h, hq * qk, dtype), layers))
        ops += [
            (Gemm(T, h, m.kv_lora_rank + m.qk_rope_head_dim, dtype), layers),
            (Elementwise("rmsnorm", T, m.kv_lora_rank), layers),
            (Elementwise("rotary", T, (hq + 1) * m.qk_rope_head_dim), layers),
            (Elementwise("kv_cache_write", T, m.kv_lora_rank + m.qk_rope_head_dim), layers),
            (Gemm(T, hq * m.v_head_dim, h, dtype), layers),
        ]
        out_width = hq * m.v_head_dim
    else:
        d = model.head_dim
        hkv = max(1, model.num_kv_heads // tp)
        gate = hq * d if model.attn_output_gate else 0  # q_proj's second half: the output gate
        ops += unfused_quant(T, (h,), layers, dtype, fused_quant)
        ops.append((Gemm(T, h, (hq + 2 * hkv) * d + gate, dtype), layers))
        if model.qk_norm:  # Qwen3: per-head RMSNorm of q and of k before rotary
            ops += [(Elementwise("rmsnorm", T, hq * d), layers), (Elementwise("rmsnorm", T, hkv * d), layers)]
        if model.qk_norm_across_heads and tp > 1:
            ops += qk_norm_across_ranks(par, T, (hq + hkv) * d, layers)
        rotated = model.rotary_dim or d  # partial rotary (MiniMax-M2: 64 of 128 dims)
        ops += [
            (Elementwise("rotary", T, (hq + hkv) * rotated), layers),
            (Elementwise("kv_cache_write", T, 2 * hkv * d), layers),
            (Gemm(T, hq * d, h, dtype), layers),
        ]
        if gate:  # attention output x sigmoid(gate), before the output projection
            ops.append((Elementwise("sigmoid_mul", T, gate), layers))
        out_width = hq * d
    if dtype == "fp8":  # the attention output is quantised for the FP8 output projection
        ops.append((Elementwise("quant_fp8", T, out_width), layers))
    if tp > 1:
        ops.append((par.all_reduce(T * h * elem), all_layers))
    return [(op, n) for op, n in ops if n]


def gated_deltanet_block(
    model: ModelSpec, par: Parallel, tokens: int, layers: int, dtype: str, fused_quant: bool = True
) -> Ops:
    """A gated-DeltaNet layer's token-shaped work on one TP rank, as SGLang launches it
    (sglang/srt/models/qwen3_next.py `Qwen3GatedDeltaNet.forward`; vLLM's qwen3_next.py alike):
    the q/k/v/z input projection and the b/a gate projection (two GEMMs), one kernel splitting
    their outputs into the convolution's input, z and the gates
    (`fused_qkvzba_split_reshape_cat`), the gated RMSNorm of the output by z (`RMSNormGated`:
    reads both, writes one) and the output projection. The convolution and the delta rule depend
    on the sequences: `gated_deltanet_core`."""
    la = model.linear_attention
    if la is None or not layers:
        return []
    tp, T, h = par.tp, tokens, model.hidden_size
    gates = 2 * la.v_heads // tp
    qkvz = la.projection_width // tp - gates
    out_width = la.v_heads * la.head_v_dim // tp
    ops: Ops = unfused_quant(T, (h, h), layers, dtype, fused_quant) + [  # two layers, two quantisations
        (Gemm(T, h, qkvz, dtype), layers),
        (Gemm(T, h, gates, dtype), layers),
        (Elementwise("split_reshape", T, qkvz + gates), layers),
        (Elementwise("rmsnorm_gated", T, out_width), layers),
        (Gemm(T, out_width, h, dtype), layers),
    ]
    if dtype == "fp8":
        ops.append((Elementwise("quant_fp8", T, out_width), layers))
    return ops


def qk_norm_across_ranks(par: Parallel, tokens: int, width: int, layers: int) -> Ops:
    """What MiniMax-M2's q/k RMSNorm over all heads adds under tensor parallelism.

    Each rank holds some heads, so vLLM (vllm/model_executor/models/minimax_m2.py, its
    `MiniMaxText01RMSNormTP.forward_qk` in vllm/model_executor/layers/mamba/linear_attn.py) sums
    the squares of its part of q and of k per token, all-reduces the two fp32 sums (8 bytes a
    token) and only then normalises: the sum of squares becomes a pass over q and k of its own
    (priced as an RMSNorm of their width) before the all-reduce, which the normalisation waits
    for. Without TP the sum and the normalisation are one kernel, as for Qwen3's per-head norm."""
    return [
        (Elementwise("rmsnorm", tokens, width), layers),
        (par.all_reduce(tokens * 2 * 4), layers),
    ]


def _prefill_attention(
    batch: BatchStats, hq: int, hkv: int, d: int, dv: int, backend: str, window: int = 0
) -> AttnPrefill:
    """The batch's prefill attention, described by its length statistics."""
    return AttnPrefill(
        batch.num_prefill,
        batch.prefill_tokens,
        batch.prefill_sum_q2,
        batch.prefill_sum_qc,
        batch.prefill_sum_kv,
        batch.prefill_max_q,
        batch.prefill_max_kv,
        hq,
        hkv,
        d,
        dv,
        backend,
        window,
    )


def attention_core(
    model: ModelSpec, par: Parallel, batch: BatchStats, attn_backend: str = "flash", dtype: str | None = None
) -> Ops:
    """The operators whose cost depends on the sequences' lengths, not only the token count."""
    dtype = dtype or model.weight_dtype  # the linear layers' GEMM family
    layers, linear_layers = mixer_layers(model, stage_layers(model, par)[0])
    hq = max(1, model.num_heads // par.tp)
    ops: Ops = gated_deltanet_core(model, par, batch, linear_layers)
    if model.mla:
        m = model.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if model.dsa:
            ops += [(op, n * layers) for op, n in dsa_indexer(model, batch, dtype)]
        if batch.num_prefill and model.dsa and batch.prefill_max_kv > model.dsa.index_topk:
            ops += [(op, n * layers) for op, n in sparse_prefill_attention(model, par, batch, dtype)]
        elif batch.num_prefill:
            # Prefill expands the latent into per-head keys and values for the whole context.
            ops.append(
                (Gemm(batch.prefill_sum_kv, m.kv_lora_rank, hq * (m.qk_nope_head_dim + m.v_head_dim), dtype), layers)
            )
            ops.append((_prefill_attention(batch, hq, hq, qk, m.v_head_dim, attn_backend), layers))
        if batch.num_decode:
            # Decode absorbs the up-projections: attention runs on the latent (MQA over 576 dims).
            B = batch.num_decode
            sum_kv, max_kv = batch.decode_sum_kv, batch.decode_max_kv
            if model.dsa:  # each sequence attends to its index_topk selected tokens at most
                topk = model.dsa.index_topk
                sum_kv, max_kv = min(sum_kv, B * topk), min(max_kv, topk)
            ops.append((Gemm(B, hq * m.qk_nope_head_dim, m.kv_lora_rank, dtype), layers))
            ops.append(
                (
                    AttnDecode(
                        B,
                        sum_kv,
                        max_kv,
                        hq,
                        1,
                        m.kv_lora_rank + m.qk_rope_head_dim,
                        m.kv_lora_rank,
                        attn_backend,
                    ),
                    layers,
                )
            )
            ops.append((Gemm(B, hq * m.kv_lora_rank, m.v_head_dim, dtype), layers))
        return ops
    d = model.head_dim
    hkv = max(1, model.num_kv_heads // par.tp)
    # Sliding-window layers (gpt-oss: every other one) attend to their window only.
    sliding = round(layers * model.sliding_window_layers / model.num_attention_layers)
    for n, window in ((layers - sliding, 0), (sliding, model.sliding_window)):
        if batch.num_prefill:
            ops.append((_prefill_attention(batch, hq, hkv, d, d, attn_backend, window), n))
        if batch.num_decode:
            decode = AttnDecode(
                batch.num_decode, batch.decode_sum_kv, batch.decode_max_kv, hq, hkv, d, d, attn_backend, window
            )
            ops.append((decode, n))
    return [(op, n) for op, n in ops if n]


def gated_deltanet_core(model: ModelSpec, par: Parallel, batch: BatchStats, layers: int) -> Ops:
    """A gated-DeltaNet layer's sequence-shaped kernels on one TP rank: the causal convolution
    and the delta rule, for the batch's prefill sequences and for its decoding ones."""
    la = model.linear_attention
    if la is None or not layers:
        return []
    heads = (max(1, la.k_heads // par.tp), max(1, la.v_heads // par.tp), la.head_k_dim, la.head_v_dim, la.conv_kernel)
    ops: Ops = []
    for phase, seqs, tokens in (
        ("prefill", batch.num_prefill, batch.prefill_tokens),
        ("decode", batch.num_decode, batch.num_decode),
    ):
        if seqs:
            ops += [(LinearAttention(kernel, phase, seqs, tokens, *heads), layers) for kernel in ("conv", "rule")]
    return ops


# FlashMLA's sparse kernels run the query heads in tiles of 64 on Hopper (nsa_backend.py
# `_forward_flashmla_sparse` pads a TP rank's heads up to it).
SPARSE_MLA_HEAD_TILE = 64
DSA_DUAL_STREAM_TOKENS = 1024  # nsa_indexer.py DUAL_STREAM_TOKEN_THRESHOLD


def dsa_indexer(model: ModelSpec, batch: BatchStats, dtype: str | None = None) -> Ops:
    """DeepSeek Sparse Attention's lightning indexer of one layer, as SGLang runs it
    (sglang/srt/layers/attention/nsa/nsa_indexer.py `Indexer.forward_cuda`; the reference is
    deepseek-ai/DeepSeek-V3.2-Exp inference/model.py `Indexer`); counts are per layer.

    Its weights are replicated on every TP rank (`ReplicatedLinear`), so each GPU runs all
    index heads. Every new token's index key is made and cached: `wk` (quantised like the other
    projections), LayerNorm, rotary on its 64 rope dims (written back into the key: a copy), a
    Hadamard rotation, fp8 quantisation and the index-key cache write. Queries are scored where
    the engine scores them: every decode token, and prefill tokens only when a sequence of the
    batch is longer than index_topk (shorter batches take `_forward_cuda_k_only` and dense
    attention): `wq_b` on the q latent, rotary (one kernel with the key's) and its write-back,
    Hadamard, fp8 quantisation, `weights_proj` (bf16) with its head-gate scaling, the score
    kernel over each query's context and the top-k (both `IndexerScore`, roofline-priced).

    A decode batch of up to 1,024 tokens (replayed from a CUDA graph) runs the query and key
    path on a second stream while `weights_proj` and its scaling run on the main one, hidden
    behind the longer path; two eager multiplies by the query scales follow the join."""
    dsa, m = model.dsa, model.mla
    dtype = dtype or model.weight_dtype
    H, D, rope, h = dsa.index_n_heads, dsa.index_head_dim, m.qk_rope_head_dim, model.hidden_size
    T = batch.prefill_tokens + batch.num_decode
    scoring = batch.num_decode + (batch.prefill_tokens if batch.prefill_max_kv > dsa.index_topk else 0)
    dual_stream = not batch.num_prefill and T <= DSA_DUAL_STREAM_TOKENS
    ops: Ops = [(Gemm(T, h, D, dtype), 1), (Elementwise("layernorm", T, D), 1)]
    if scoring:
        ops.append((Gemm(scoring, m.q_lora_rank or h, H * D, dtype), 1))
        if dual_stream:
            ops.append((Elementwise("head_gate_scale", scoring, H), 2))
        else:
            ops += [(Gemm(scoring, h, H, "bf16"), 1), (Elementwise("head_gate", scoring, H), 1)]  # bf16 weights_proj
        ops.append((Elementwise("copy", scoring, H * rope), 1))  # the query's rope dims written back
    ops += [
        (Elementwise("rotary", T, rope + (H * rope if scoring else 0)), 1),  # q and k in one kernel
        (Elementwise("copy", T, rope), 1),  # the key's rope dims written back
        (Elementwise("hadamard", T, D), 1),
        (Elementwise("quant_fp8", T, D), 1),
        (Elementwise("index_cache_write", T, D), 1),
    ]
    if scoring:
        ops += [(Elementwise("hadamard", scoring, H * D), 1), (Elementwise("quant_fp8", scoring, H * D), 1)]
        queries, pairs, keys = 0, 0, 0
        if batch.num_decode:  # each decode token against its whole context
            queries, pairs, keys = batch.num_decode, batch.decode_sum_kv, batch.decode_sum_kv
        if scoring > batch.num_decode:  # each prefill token against its causal context
            queries += batch.prefill_tokens
            pairs += batch.prefill_sum_qc + (batch.prefill_sum_q2 + batch.prefill_tokens) // 2
            keys += batch.prefill_sum_kv
        ops += [
            (IndexerScore("score", queries, pairs, keys, H, D, dsa.index_topk), 1),
            (IndexerScore("topk", queries, pairs, keys, H, D, dsa.index_topk), 1),
        ]
    return ops


def sparse_selected_pairs(batch: BatchStats, topk: int) -> int:
    """(query, key) pairs of the batch's prefill tokens once each keeps at most `topk` keys:
    sum over tokens of min(position, topk). Exact for one sequence and for equal sequences (the
    batch is taken as num_prefill sequences of its mean new and cached lengths)."""
    n, q_sum = batch.num_prefill, batch.prefill_tokens
    if not n or not q_sum:
        return 0
    q, c = q_sum / n, batch.prefill_sum_qc / q_sum  # a sequence's new and cached tokens
    below = max(0.0, min(q, topk - c))  # new tokens whose whole context fits in topk
    per_seq = below * c + below * (below + 1) / 2 + (q - below) * topk
    return round(n * per_seq)


def sparse_prefill_attention(model: ModelSpec, par: Parallel, batch: BatchStats, dtype: str | None = None) -> Ops:
    """A DSA model's prefill attention once a sequence is longer than index_topk: SGLang keeps
    the absorbed (latent) form, as in decode (nsa_backend.py `forward_extend`, Hopper's default
    `flashmla_sparse` for a bf16 KV cache): the q absorption GEMM, FlashMLA's sparse kernel over
    each token's selected keys with the heads padded to 64, and the value up-projection."""
    dtype = dtype or model.weight_dtype
    m, T = model.mla, batch.prefill_tokens
    hq = max(1, model.num_heads // par.tp)
    padded = -(-hq // SPARSE_MLA_HEAD_TILE) * SPARSE_MLA_HEAD_TILE
    pairs = sparse_selected_pairs(batch, model.dsa.index_topk)
    latent = m.kv_lora_rank + m.qk_rope_head_dim
    return [
        (Gemm(T, hq * m.qk_nope_head_dim, m.kv_lora_rank, dtype), 1),
        (SparseAttention(T, pairs, batch.prefill_sum_kv, padded, latent, m.kv_lora_rank), 1),
        (Gemm(T, hq * m.kv_lora_rank, m.v_head_dim, dtype), 1),
    ]


def dense_mlp(model: ModelSpec, par: Parallel, tokens: int, dtype: str | None = None, fused_quant: bool = True) -> Ops:
    """The dense MLP of the stage's leading dense layers (DeepSeek's first_k_dense_replace)."""
    dtype = dtype or model.weight_dtype
    tp, T, h, elem = par.tp, tokens, model.hidden_size, model.dtype_bytes
    layers, moe_layers = stage_layers(model, par)
    dense_layers = layers - moe_layers
    ops: Ops = []
    if dense_layers and model.intermediate_size:
        inter = model.intermediate_size // tp
        ops += unfused_quant(T, (h, inter), dense_layers, dtype, fused_quant)
        ops += [
            (Gemm(T, h, 2 * inter, dtype), dense_layers),
            (Elementwise("silu_mul", T, inter), dense_layers),
            (Gemm(T, inter, h, dtype), dense_layers),
        ]
        if tp > 1:
            ops.append((par.all_reduce(T * h * elem), dense_layers))
    return ops


def ep_exchange(model: ModelSpec, par: Parallel, tokens: int, phase: str, imbalance: float = 1.0) -> EPExchange:
    """One rank's dispatch or combine of `tokens` tokens in one MoE layer: bytes per link from
    the routing model (`frontier.ops.experts.ep_traffic`). `imbalance`: the busiest rank's load
    over the mean; it receives (dispatch) and sends back (combine) that much more than a mean
    rank, and every rank waits for it."""
    moe, fabric = model.moe, par.fabric
    dest = destinations(moe.num_experts, moe.top_k, moe.n_group, moe.topk_group, par.ep, fabric.gpus_per_node)
    nvl, net = ep_traffic(par.ep_backend, dest, tokens, model.hidden_size, moe.top_k, fabric.gpus_per_node, phase)
    k = max(imbalance, 1.0)
    return EPExchange(par.ep_backend, phase, round(nvl * k), round(net * k), fabric.nvlink_gbps, fabric.network_gbps)


# DeepGEMM's M alignment of the contiguous grouped layout (deep_gemm
# `get_mk_alignment_for_contiguous_layout` on SM90 and SM100).
DEEP_GEMM_BLOCK_M = 128


def padded_deep_gemm_experts(
    model: ModelSpec, par: Parallel, tokens: int, experts: int, width: int, layers: int
) -> Ops:
    """The routed experts as vLLM 0.12's DeepGEMM MoE runs them (`par.padded_deep_gemm`, FP8
    experts; frontier.engine VLLM_PADDED_DEEP_GEMM_MOE), or [] where it does not: the `tokens` the
    rank's fused layer gets (all of them under expert parallelism over an expert map) are
    permuted into M_sum = tokens x top-k + `experts` (the rank's) x 127 rows rounded up to 128
    (layers/fused_moe/deep_gemm_utils.py `compute_aligned_M`), and every row is computed, those no
    token fills as expert 0's (`deepgemm_moe_permute`: `expert_ids_init = torch.zeros`), through
    both grouped GEMMs of the experts' `width` per rank, the SiLU-and-mul and the FP8 quantisation
    between them (deep_gemm_moe.py `DeepGemmExperts.apply`). The grouped GEMMs are emitted as dense
    FP8 GEMMs of M_sum rows (their FLOPs); the weights each 128-row block of a routed expert reads
    are not counted."""
    moe = model.moe
    if not par.padded_deep_gemm or model.moe_weight_dtype != "fp8":
        return []
    block = DEEP_GEMM_BLOCK_M
    rows = -(-(tokens * moe.top_k + experts * (block - 1)) // block) * block
    h = model.hidden_size
    return [
        (Gemm(rows, h, 2 * width, "fp8"), layers),
        (Elementwise("silu_mul", rows, width), layers),
        (Elementwise("quant_fp8", rows, width), layers),
        (Gemm(rows, width, h, "fp8"), layers),
    ]


def ffn_block(
    model: ModelSpec,
    par: Parallel,
    tokens: int,
    dtype: str | None = None,
    moe_tokens: int | None = None,
    fused_quant: bool = True,
) -> Ops:
    """Dense MLP layers and MoE layers (router, experts, shared experts, all-to-all or all-reduce).

    `tokens`: this rank's tokens; `moe_tokens`: the EP group's tokens (all attention-DP ranks).
    With ep > 1 the grouped GEMM is the busiest EP rank's: every rank waits for it.
    `fused_quant`: see `unfused_quant` (the routed experts' own quantisation is the fused MoE
    kernel's).
    """
    dtype = dtype or model.weight_dtype  # the linear layers' GEMM family
    tp, T, h, elem = par.tp, tokens, model.hidden_size, model.dtype_bytes
    layers, moe_layers = stage_layers(model, par)
    ops = dense_mlp(model, par, T, dtype, fused_quant)
    if not moe_layers:
        return ops
    moe = model.moe
    xdtype = model.moe_weight_dtype  # routed experts keep their own precision (e.g. MXFP4, int4)
    group = moe_tokens if moe_tokens is not None else T * par.dp_attention
    ops += [
        (Gemm(T, h, moe.num_experts, "bf16"), moe_layers),  # router logits stay in bf16
        (Elementwise("topk_gating", T, moe.num_experts), moe_layers),
    ]
    replicated = replicated_tokens_ep(par, T, group)
    if par.ep > 1:
        load = busiest_rank(moe.num_experts, moe.top_k, par.ep, par.routing)
        rows, busiest, active = load.rows(group, moe.top_k)
        width, experts = moe.intermediate_size, load.local_experts
        rank_tokens = max(1, math.ceil(rows / moe.top_k))
        imbalance = load.rank_share * par.ep
        shards = par.ep if replicated else 1  # the fused kernel over an expert map (GroupedGemm.ep)
        padded = padded_deep_gemm_experts(model, par, group, experts, width, moe_layers) if replicated else []
        experts_ops = padded or [
            (
                GroupedGemm(experts, moe.top_k, rank_tokens, h, 2 * width, busiest, active, xdtype, ep=shards),
                moe_layers,
            ),
            (Elementwise("silu_mul", rows, width), moe_layers),
            (GroupedGemm(experts, moe.top_k, rank_tokens, width, h, busiest, active, xdtype, ep=shards), moe_layers),
        ]
        if replicated:
            ops += experts_ops
        else:
            ops += [
                (ep_exchange(model, par, T, "dispatch", imbalance), moe_layers),
                *experts_ops,
                (ep_exchange(model, par, T, "combine", imbalance), moe_layers),
            ]
    else:
        # Tensor-parallel experts over every GPU of the instance: with attention-DP the DP ranks'
        # tokens are gathered first and each rank's sums scattered back after (SGLang's
        # dp_gather / dp_scatter around the MoE, srt/layers/communicator.py; vLLM flattens
        # tp x dp into the MoE's TP group without EP, fused_moe/config.py FusedMoEParallelConfig,
        # and all-gathers the DP ranks' tokens in its naive dispatch).
        moe_tp, rows = tp * par.dp_attention, group if par.dp_attention > 1 else T
        width = moe.intermediate_size // moe_tp
        busiest, active = _dense_routing(rows, moe.num_experts, moe.top_k, par.routing.skew)
        if par.dp_attention > 1:
            ops.append((_moe_group_collective("all_gather", group * h * elem, moe_tp, par), moe_layers))
        ops += padded_deep_gemm_experts(model, par, rows, moe.num_experts, width, moe_layers) or [
            (GroupedGemm(moe.num_experts, moe.top_k, rows, h, 2 * width, busiest, active, xdtype), moe_layers),
            (Elementwise("silu_mul", rows * moe.top_k, width), moe_layers),
            (GroupedGemm(moe.num_experts, moe.top_k, rows, width, h, busiest, active, xdtype), moe_layers),
        ]
        if par.dp_attention > 1:
            ops.append((_moe_group_collective("reduce_scatter", group * h * elem, moe_tp, par), moe_layers))
    if moe.shared_intermediate_size:
        shared = moe.shared_intermediate_size // (tp if par.ep == 1 else 1)
        # SGLang runs DeepSeek-V3/R1's one shared expert inside the routed experts' fused kernel,
        # which quantises its input (sglang/srt/models/deepseek_v2.py
        # `determine_num_fused_shared_experts`: that architecture, 256 routed experts, no EP).
        in_moe_kernel = (
            model.architecture == "DeepseekV3ForCausalLM"
            and (moe.num_experts, moe.shared_intermediate_size) == (256, moe.intermediate_size)
            and par.ep == 1
        )
        ops += unfused_quant(T, (h, shared), moe_layers, dtype, fused_quant or in_moe_kernel)
        ops += [
            (Gemm(T, h, 2 * shared, dtype), moe_layers),
            (Elementwise("silu_mul", T, shared), moe_layers),
            (Gemm(T, shared, h, dtype), moe_layers),
        ]
    if tp > 1 and ((par.ep == 1 and par.dp_attention == 1) or replicated):
        ops.append((par.all_reduce(T * h * elem), moe_layers))
    elif tp > 1 and par.ep == 1 and moe.shared_intermediate_size:  # the shared experts' TP sums
        ops.append((par.all_reduce(T * h * elem), moe_layers))
    return ops


def _moe_group_collective(kind: str, size_bytes: int, world: int, par: Parallel) -> Collective:
    """An all-gather or reduce-scatter over the MoE's tensor-parallel group, over the network
    once it spans nodes."""
    gpn = par.fabric.gpus_per_node
    return Collective(kind, size_bytes, world, "network" if gpn and world > gpn else "nvlink")


def replicated_tokens_ep(par: Parallel, tokens: int, group: int) -> bool:
    """Expert parallelism over the tensor-parallel ranks without attention data parallelism
    (vLLM `--enable-expert-parallel` at data-parallel size 1; SGLang `--ep-size` without DP
    attention and without DeepEP): every rank already holds all the group's tokens after the
    attention block's all-reduce, so nothing is dispatched; each rank runs its own experts on the
    tokens routed to them and the TP all-reduce sums the ranks' outputs, as for tensor-parallel
    experts (vllm/model_executor/layers/fused_moe/layer.py: the all-to-all kernels only when
    dp_size > 1, else `maybe_all_reduce_tensor_model_parallel`). Not so for an AF FFN instance,
    whose GPUs each receive a share of the tokens (`tokens` < `group`)."""
    return (
        par.ep > 1
        and par.dp_attention == 1
        and par.ep == par.tp
        and tokens == group
        and not par.ep_backend.startswith("deepep")
    )
