"""Operators: the contract between the model graph and the predictors.

One operator is a shaped unit of GPU work. Operators are frozen and hashable so a predictor
can memoise on the operator itself: the simulator asks for the same shapes millions of times.
Every operator has a `family` (the calibration table / predictor it belongs to).

Calibration tables share this contract: the table of family F has one column per field of F's
operator class (e.g. gemm.csv: m, k, n, dtype), then `ms` (median) and `ms_min`; extra columns
(labels such as `name` or `model`) are allowed and ignored by the predictors.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields

# Bytes per weight and per activation element of each GEMM dtype (frontier.spec.quant names the
# precisions): fp8 GEMMs read fp8 activations; 4-bit-weight GEMMs (w4a16) read bf16 activations
# and dequantise the weights in the main loop (scales included in the weight bytes).
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "w4a16": (4 + 16 / 128) / 8}
ACTIVATION_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "w4a16": 2.0}
# Field metadata of an operator field that describes where the operator runs, not a measured
# dimension: calibration tables neither hold nor need it (`table_fields`).
TABLE_EXEMPT = {"table": False}


def table_fields(cls: type) -> tuple[Field, ...]:
    """The fields of an operator class that its calibration table holds, in dataclass order."""
    return tuple(f for f in fields(cls) if f.metadata.get("table", True))


@dataclass(frozen=True, slots=True)
class Gemm:
    """y[m, n] = x[m, k] @ w[n, k]^T."""

    m: int
    k: int
    n: int
    dtype: str = "bf16"
    family = "gemm"

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n

    def bytes_moved(self, elem_bytes: float) -> float:
        w, a = WEIGHT_BYTES.get(self.dtype, elem_bytes), ACTIVATION_BYTES.get(self.dtype, elem_bytes)
        return a * self.m * self.k + w * self.k * self.n + 2.0 * self.m * self.n


@dataclass(frozen=True, slots=True)
class AttnPrefill:
    """Causal attention over a batch of (possibly chunked) prefills.

    Sequence i brings q_i new tokens on top of c_i cached tokens. The batch is described by
    length statistics so that a real, ragged batch and an equal-length table row share features:
    `sum_q` = sum q_i, `sum_q2` = sum q_i^2, `sum_qc` = sum q_i * c_i, `sum_kv` = sum (c_i + q_i),
    `max_q`, `max_kv`. The causal score work is proportional to sum(q_i * c_i + q_i^2 / 2).
    `d` is the query/key head dim, `dv` the value head dim (they differ for MLA).
    """

    num_seqs: int
    sum_q: int
    sum_q2: int
    sum_qc: int
    sum_kv: int
    max_q: int
    max_kv: int
    hq: int
    hkv: int
    d: int
    dv: int
    backend: str = "flash"
    # A sliding window: each query attends to at most this many keys (its own included); 0 none.
    window: int = field(default=0, metadata=TABLE_EXEMPT)
    family = "attn_prefill"

    @classmethod
    def uniform(
        cls,
        batch: int,
        seq: int,
        hq: int,
        hkv: int,
        d: int,
        dv: int | None = None,
        backend: str = "flash",
        context: int = 0,
        window: int = 0,
    ) -> "AttnPrefill":
        """`batch` sequences of `seq` new tokens each on top of `context` cached tokens."""
        return cls(
            batch,
            batch * seq,
            batch * seq * seq,
            batch * seq * context,
            batch * (seq + context),
            seq,
            seq + context,
            hq,
            hkv,
            d,
            d if dv is None else dv,
            backend,
            window,
        )

    @property
    def pairs(self) -> float:
        """Query-key pairs the batch scores: sum(q c + q^2 / 2), each query at most `window` W
        keys. Fresh prompts (no cached tokens) score q^2 / 2 - (q - W)^2 / 2 past the window,
        taken at their equal length sqrt(sum q^2 / sequences); with cached tokens at most
        sum q W. Exact for equal sequences, within half a window a sequence otherwise."""
        causal = self.sum_qc + 0.5 * self.sum_q2
        w = self.window
        if not w:
            return causal
        if self.sum_qc:
            return min(causal, self.sum_q * w)
        q = math.sqrt(self.sum_q2 / self.num_seqs) if self.num_seqs else 0.0
        return causal - self.num_seqs * max(q - w, 0.0) ** 2 / 2

    def within_window(self) -> AttnPrefill:
        """The windowless batch doing this one's work (for predictors measured without windows):
        each sequence's keys cut to its new tokens and one window, its pairs as if causal."""
        if not self.window:
            return self
        return AttnPrefill(
            self.num_seqs,
            self.sum_q,
            round(2 * self.pairs),
            0,
            min(self.sum_kv, self.sum_q + self.num_seqs * self.window),
            self.max_q,
            min(self.max_kv, self.max_q + self.window),
            self.hq,
            self.hkv,
            self.d,
            self.dv,
            self.backend,
        )

    @property
    def flops(self) -> float:
        return 2.0 * self.hq * self.pairs * (self.d + self.dv)

    def bytes_moved(self, elem_bytes: float) -> float:
        q_and_o = self.sum_q * self.hq * (self.d + self.dv)
        kv = self.within_window().sum_kv * self.hkv * (self.d + self.dv)
        return elem_bytes * (q_and_o + kv)


@dataclass(frozen=True, slots=True)
class AttnDecode:
    """One new query token per sequence against a (paged) KV cache of different lengths."""

    batch: int
    sum_kv: int
    max_kv: int
    hq: int
    hkv: int
    d: int
    dv: int
    backend: str = "flash"
    window: int = field(default=0, metadata=TABLE_EXEMPT)  # a sliding window (keys a query sees); 0 none
    family = "attn_decode"

    @classmethod
    def uniform(
        cls, batch: int, kv_len: int, hq: int, hkv: int, d: int, dv: int | None = None, backend: str = "flash"
    ) -> "AttnDecode":
        return cls(batch, batch * kv_len, kv_len, hq, hkv, d, d if dv is None else dv, backend)

    def within_window(self) -> AttnDecode:
        """The windowless batch reading what this one reads: each context cut to the window."""
        if not self.window:
            return self
        w = self.window
        return AttnDecode(
            self.batch,
            min(self.sum_kv, self.batch * w),
            min(self.max_kv, w),
            self.hq,
            self.hkv,
            self.d,
            self.dv,
            self.backend,
        )

    @property
    def flops(self) -> float:
        return 2.0 * self.hq * self.within_window().sum_kv * (self.d + self.dv)

    def bytes_moved(self, elem_bytes: float) -> float:
        kv = self.within_window().sum_kv * self.hkv * (self.d + self.dv)
        return elem_bytes * (kv + self.batch * self.hq * (self.d + self.dv))


def windowless(op):
    """The operator as a predictor measured without sliding windows must see it."""
    return op.within_window() if getattr(op, "window", 0) else op


@dataclass(frozen=True, slots=True)
class GroupedGemm:
    """One MoE projection: `tokens` tokens routed top-`topk` over `experts` local experts.

    `max_per_expert` (tokens at the busiest expert) and `active_experts` describe the realised
    routing; the busiest expert bounds the kernel time, the active ones set the weight bytes read.
    `ep` > 1: the experts are one rank's 1/ep of the layer's, run by the engine's fused MoE kernel
    over an expert map on tokens every rank holds (expert parallelism without an all-to-all,
    `frontier.ops.graph.replicated_tokens_ep`). It tells the engine-kernel tables which measured
    layer does the same work; the calibration tables do not carry it (`TABLE_EXEMPT`).
    """

    experts: int
    topk: int
    tokens: int
    k: int
    n: int
    max_per_expert: int
    active_experts: int
    dtype: str = "bf16"
    backend: str = "grouped_mm"
    ep: int = field(default=1, metadata=TABLE_EXEMPT)
    family = "grouped_gemm"

    @property
    def flops(self) -> float:
        return 2.0 * self.tokens * self.topk * self.k * self.n

    def bytes_moved(self, elem_bytes: float) -> float:
        rows = self.tokens * self.topk
        w, a = WEIGHT_BYTES.get(self.dtype, elem_bytes), ACTIVATION_BYTES.get(self.dtype, elem_bytes)
        return w * self.active_experts * self.k * self.n + a * rows * self.k + 2.0 * rows * self.n


# Reads + writes of `tokens x width` elements per elementwise kernel: most read and write once;
# SiLU-and-mul reads the gate and up halves; fused add+RMSNorm reads the input and the residual
# and writes both (vllm/csrc/layernorm_kernels.cu `fused_add_rms_norm`); the KV-cache write
# reads K and V and writes them into the paged cache. The gated RMSNorm of a gated-DeltaNet
# output and the sigmoid output gate of gated attention read two inputs and write one.
ELEMENTWISE_PASSES = {"silu_mul": 3, "add_rmsnorm": 4, "rmsnorm_gated": 3, "sigmoid_mul": 3}


@dataclass(frozen=True, slots=True)
class Elementwise:
    """A memory-bound op over `tokens` x `width` elements (norm, rotary, act, residual, ...)."""

    name: str
    tokens: int
    width: int
    family = "elementwise"

    def bytes_moved(self, elem_bytes: float) -> float:
        return elem_bytes * self.tokens * self.width * ELEMENTWISE_PASSES.get(self.name, 2)


@dataclass(frozen=True, slots=True)
class Collective:
    """A collective among `world` GPUs over one link class.

    `kind`: all_reduce | custom_all_reduce | multimem_all_reduce | all_gather | reduce_scatter |
    all_to_all | send_recv.
    `size_bytes` follows nccl-tests: the full tensor for all_reduce, the gathered output for
    all_gather, the unreduced input for reduce_scatter, what one rank sends in total for
    all_to_all and send_recv.
    `link`: nvlink (within a node) | network (across nodes).
    """

    kind: str
    size_bytes: int
    world: int
    link: str = "nvlink"
    family = "collective"


@dataclass(frozen=True, slots=True)
class EPExchange:
    """One MoE dispatch or combine of expert parallelism, as bytes per link out of one GPU
    (`frontier.ops.experts.ep_traffic`): priced by link physics (`frontier.predict.links`),
    not calibrated, so it is no calibration family."""

    backend: str  # frontier.spec.scenario.EP_BACKENDS
    phase: str  # dispatch | combine
    nvlink_bytes: int
    network_bytes: int
    nvlink_gbps: float  # the GPU's links, one direction
    network_gbps: float
    family = "ep_exchange"


@dataclass(frozen=True, slots=True)
class IndexerScore:
    """One kernel of DeepSeek Sparse Attention's lightning indexer over `pairs` (query, cached
    key) pairs of `queries` query tokens, `keys` distinct cached keys read.

    `kind` "score": DeepGEMM's fp8 MQA logits (`deep_gemm.fp8_paged_mqa_logits` in decode,
    `fp8_mqa_logits` in prefill, launched by sglang/srt/layers/attention/nsa/nsa_indexer.py):
    each query's `heads` fp8 index heads dotted with every key of its context (one fp8 key of
    `head_dim` dims and an fp32 scale per token), ReLU, weighted sum over heads, one fp32 logit
    per pair. `kind` "topk": SGLang's top-k kernel (sgl_kernel `fast_topk_transform_fused`)
    reads those logits and writes `topk` indices per query.

    Neither kernel was measured, so the family has no calibration table: the predictor's
    roofline prices them by these FLOPs and bytes (fp8 tensor-core peak for the score)."""

    kind: str  # score | topk
    queries: int
    pairs: int
    keys: int
    heads: int
    head_dim: int
    topk: int
    dtype = "fp8"
    family = "dsa"

    @property
    def flops(self) -> float:
        return 2.0 * self.heads * self.head_dim * self.pairs if self.kind == "score" else 0.0

    def bytes_moved(self, elem_bytes: float) -> float:
        if self.kind == "score":  # fp8 queries and keys (+ fp32 key scales) in, fp32 logits out
            return self.queries * self.heads * self.head_dim + self.keys * (self.head_dim + 4) + 4.0 * self.pairs
        return 4.0 * self.pairs + 4.0 * self.queries * self.topk  # logits in, int32 indices out


@dataclass(frozen=True, slots=True)
class SparseAttention:
    """Sparse MLA prefill: each of `queries` query tokens attends, in the absorbed (latent)
    form, to its own selected keys, `pairs` (query, key) pairs in all, over `keys` distinct
    cached latents of `d` dims (`dv` of them the value). FlashMLA's `flash_mla_sparse_fwd`
    (sglang/srt/layers/attention/nsa_backend.py `_forward_flashmla_sparse`) pads the heads to a
    multiple of 64 on Hopper, so `heads` is the padded count: the padded rows cost as much.

    Not measured: priced on the roofline (bf16 tensor cores; a query's selected latents shared by
    its heads, counted once per distinct key as the L2 serves neighbouring queries' overlap)."""

    queries: int
    pairs: int
    keys: int
    heads: int
    d: int
    dv: int
    dtype = "bf16"
    family = "dsa"

    @property
    def flops(self) -> float:
        return 2.0 * self.heads * self.pairs * (self.d + self.dv)

    def bytes_moved(self, elem_bytes: float) -> float:
        return elem_bytes * (self.keys * self.d + self.queries * self.heads * (self.d + self.dv))


@dataclass(frozen=True, slots=True)
class LinearAttention:
    """One kernel of a gated-DeltaNet layer (Qwen3.5, Qwen3-Next) over the batch's `num_seqs`
    sequences bringing `tokens` new tokens, with the `k_heads` / `v_heads` of one TP rank.

    `kernel` "conv": the causal depthwise convolution over q, k, v (`conv_kernel` taps;
    causal_conv1d_fn in prefill, causal_conv1d_update in decode); "rule": the gated delta rule
    (FLA's chunk_gated_delta_rule in prefill, fused_recurrent_gated_delta_rule in decode), which
    reads and writes each sequence's fp32 state of head_k_dim x head_v_dim per value head.
    The kernels vLLM and SGLang launch (vllm/model_executor/layers/mamba/, sglang/srt/layers/
    attention/fla/ and hybrid_linear_attn_backend.py). Measured where the engine's
    `gdn_<engine>_<release>.csv` has the shape (frontier.predict.engine_kernels.GDNKernels), else
    on the roofline by the FLOPs and bytes below."""

    kernel: str  # conv | rule
    phase: str  # prefill | decode
    num_seqs: int
    tokens: int
    k_heads: int
    v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int
    dtype = "bf16"
    family = "linear_attention"

    @property
    def conv_dim(self) -> int:
        return 2 * self.k_heads * self.head_k_dim + self.v_heads * self.head_v_dim

    @property
    def flops(self) -> float:
        if self.kernel == "conv":
            return 2.0 * self.tokens * self.conv_dim * self.conv_kernel
        # Per token and value head: decay and update of the k x v state, and the output read.
        return 6.0 * self.tokens * self.v_heads * self.head_k_dim * self.head_v_dim

    def bytes_moved(self, elem_bytes: float) -> float:
        if self.kernel == "conv":  # inputs in, outputs out, each sequence's conv state
            return elem_bytes * (2 * self.tokens + self.num_seqs * self.conv_kernel) * self.conv_dim
        state = 2.0 * 4 * self.num_seqs * self.v_heads * self.head_k_dim * self.head_v_dim  # fp32, read + write
        return state + elem_bytes * self.tokens * (self.conv_dim + self.v_heads * self.head_v_dim)


Operator = (
    Gemm
    | AttnPrefill
    | AttnDecode
    | GroupedGemm
    | Elementwise
    | Collective
    | EPExchange
    | IndexerScore
    | SparseAttention
    | LinearAttention
)

# Family -> operator class: a calibration table's columns are the class's fields + TIME_COLUMNS.
OPERATOR_CLASSES: dict[str, type] = {
    cls.family: cls for cls in (Gemm, AttnPrefill, AttnDecode, GroupedGemm, Elementwise, Collective)
}
FAMILIES = tuple(OPERATOR_CLASSES)
TIME_COLUMNS = ("ms", "ms_min")
