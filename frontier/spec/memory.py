"""GPU memory of one instance: weights, activations, and what is left for the KV cache.

vLLM's accounting (vllm/v1/worker/gpu_worker.py `determine_available_memory`): the usable memory
is capacity x gpu_memory_utilization; weights and the peak activation of a profiled
`max_num_batched_tokens` forward pass come off the top; the rest holds KV blocks.
SGLang's (sglang/srt/model_executor/model_runner.py `profile_max_num_token`): capacity x
mem_fraction_static holds the weights and the KV pool; activations and CUDA graphs live in the
rest (`activations_inside=False`), but what was allocated before the pool was sized comes off it
(`unseen_bytes`, frontier.engine.SGLANG_UNSEEN_GIB).

A hybrid model's gated-DeltaNet layers keep a fixed recurrent state per sequence instead of KV,
one per running sequence. SGLang gives the states `mamba_full_memory_ratio` (0.9) parts of the
pool's memory to 1 part for the KV cache (sglang/srt/model_executor/model_runner.py: the state
budget is rest x r / (1 + r), `max_mamba_cache_size` = budget / bytes per request) and runs no
more requests than it holds states for. vLLM pages the states in the same block pool as the KV,
without a split (`KVGroups`).
"""

from __future__ import annotations

from dataclasses import dataclass

from frontier.errors import SpecError
from frontier.spec.hardware import GPUSpec
from frontier.spec.model import ModelSpec

GIB = 2**30
RUNTIME_RESERVE_BYTES = 1.0 * GIB  # CUDA context, NCCL buffers, CUDA-graph pool
# SGLang's default mamba_full_memory_ratio (sglang/srt/server_args.py): states : KV memory.
STATE_TO_KV_RATIO = 0.9
# SGLang's default swa_full_tokens_ratio (sglang/srt/server_args.py, 0.5.1-0.5.9): its hybrid SWA
# pool gives a sliding-window layer this share of a full-attention layer's tokens
# (model_executor/model_runner_kv_cache_mixin.py: full tokens = memory / (F n_full + r S n_swa)).
# For gpt-oss it is on from 0.5.6 (0.5.1-0.5.5 turn it off with their triton_kernels MoE).
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8
SGLANG_SWA_POOL_RELEASE = (0, 5, 6)


@dataclass(frozen=True)
class MemoryPlan:
    usable_bytes: float
    weight_bytes: float  # per GPU
    activation_bytes: float  # per GPU, peak
    kv_bytes: float  # per GPU, for the KV cache
    kv_bytes_per_token: float  # per GPU
    block_size: int
    num_blocks: int  # KV blocks of one instance
    state_bytes: float = 0.0  # per GPU: a hybrid's recurrent states, one per running sequence
    state_seqs: int = 0  # sequences those states hold: the most that can run (0: no limit)
    max_model_len: int = 0  # the longest request served (frontier.sim.run.memory_for sets it)
    kv_groups: KVGroups | None = None  # vLLM: the groups of a model mixing layer kinds

    @property
    def seq_blocks(self) -> int:
        """Blocks a running sequence holds besides its tokens' (vLLM: states, a window)."""
        return self.kv_groups.seq_blocks if self.kv_groups else 0

    @property
    def kv_tokens(self) -> int:
        return self.num_blocks * self.block_size


# vLLM's attention block sizes are multiples of this on Hopper (FlashAttention's kernel block
# alignment, vllm/model_executor/models/config.py `HybridAttentionMambaModelConfig`).
VLLM_KERNEL_BLOCK_ALIGNMENT = 16


@dataclass(frozen=True)
class KVGroups:
    """How vLLM lays out the KV cache of a model mixing layer kinds (vllm/v1/core/kv_cache_utils.py
    `_get_kv_cache_groups_uniform_page_size`, `get_kv_cache_config_from_groups`, read for 0.11-0.12
    and unchanged in the later releases read): the layers are grouped `group_size` to a group (the
    fewer kind's count, or the larger where they are within 1.5x), each group's layers share one
    block table, and a block id takes one page in each of `group_size` tensors, so the pool holds
    usable // (page x group_size) blocks (`get_num_blocks`). A running sequence holds
    cdiv(tokens, block_size) blocks in each full-attention group, one in each state group of a
    hybrid's gated-DeltaNet layers (`MambaManager`, prefix caching off) and its window's in each
    sliding-window group (`SlidingWindowManager` frees what leaves it: cdiv(window, block_size) + 1).

    A hybrid's states are paged in the same blocks (vllm/model_executor/models/config.py
    `HybridAttentionMambaModelConfig.verify_and_update_config`): the attention block is enlarged
    until one layer's block (its page) holds one layer's state, `block_size` = 16 x cdiv(state
    page, 16 x one token's KV), and the state is padded to that page. The states' dtypes are the
    model's for the convolution and `mamba_ssm_dtype` (float32 for Qwen3.5) for the delta rule, as
    every release that serves Qwen3.5 keeps them (vLLM PR #34489). Public start-up logs agree: a
    Qwen3.5-9B-class model (8 full-attention of 32 layers, 4 KV heads of 256) gets 528-token blocks
    and 108 of them from 1.74 GiB. For Qwen3.5 every full-attention layer is one group, the
    gated-DeltaNet layers three; for gpt-oss the full and the sliding-window layers one each."""

    block_size: int
    page_bytes: int  # one layer's share of a block, per GPU
    group_size: int
    full_groups: int
    state_groups: int = 0
    window_groups: int = 0
    window: int = 0  # the sliding window's tokens

    @property
    def block_bytes(self) -> int:
        return self.page_bytes * self.group_size

    @property
    def seq_blocks(self) -> int:
        """Blocks a running sequence holds besides its tokens': its states' and its window's."""
        return self.state_groups + self.window_groups * (-(-self.window // self.block_size) + 1)

    @property
    def seq_blocks_hold(self) -> str:
        """What those blocks keep."""
        kinds = ((self.state_groups, "recurrent states"), (self.window_groups, "sliding window"))
        return " and ".join(what for n, what in kinds if n)

    def sequence_blocks(self, tokens: int) -> int:
        """The blocks one running sequence of `tokens` tokens holds (at a decode step)."""
        return self.full_groups * -(-tokens // self.block_size) + self.seq_blocks


def kv_groups(model: ModelSpec, tp: int, pp: int, block_size: int = 16) -> KVGroups | None:
    """vLLM's KV-cache groups of a hybrid or sliding-window model (None for a model of one layer
    kind); `block_size`: the user's, kept where it is larger than the one a state needs."""
    la = model.linear_attention
    windowed = model.sliding_window_layers
    layers = (model.num_attention_layers - windowed, la.layers if la else 0, windowed)  # full, states, windows
    if not any(layers[1:]) or not model.num_attention_layers:
        return None
    token = round(kv_bytes_per_token_per_gpu(model, tp, 1) / model.num_attention_layers)  # one layer's
    block = block_size
    if la and la.layers:
        state = round(la.state_bytes_per_seq(model.dtype_bytes, tp) / la.layers)
        align = VLLM_KERNEL_BLOCK_ALIGNMENT
        block = max(block_size, align * -(-state // (align * token)))
    stage = [-(-n // pp) for n in layers]  # each kind's layers in the largest stage
    group = min(n for n in stage if n)
    if max(stage) < 1.5 * group:  # nearly even: one size, no padding groups
        group = max(stage)
    groups = (-(-n // group) for n in stage)
    return KVGroups(block, int(block * token), group, *groups, model.sliding_window if windowed else 0)


def weight_bytes_per_gpu(
    model: ModelSpec,
    tp: int,
    pp: int,
    ep: int = 1,
    part: str = "all",
    redundant_experts: int = 0,
    dp_attention: int = 1,
) -> float:
    """Dense weights split over tp x pp; routed experts over ep x pp, or without EP over every
    GPU of the instance, tp x dp_attention x pp (with attention-DP and no EP both engines run
    the MoE layers tensor-parallel over all the DP ranks: frontier.ops.graph.ffn_block). Each
    part in its own precision (ModelSpec.weight_bytes_by_part). A DSA indexer is replicated on
    every TP rank (SGLang's `ReplicatedLinear`), split over pp only. EPLB's `redundant_experts`
    replicas are whole extra experts, spread over the ep ranks like the others.

    `part`: "all", or "attention" / "ffn" for attention/FFN-disaggregated clusters, which hold
    only the attention (+ embeddings) or only the MLP/MoE weights."""
    b = model.weight_bytes_by_part()
    dense = {
        "all": b["embedding"] + b["attention"] + b["ffn"],
        "attention": b["embedding"] + b["attention"],
        "ffn": b["ffn"],
    }[part]
    experts = 0.0 if part == "attention" else b["experts"]
    expert_split = ep if ep > 1 else tp * dp_attention
    if ep > 1 and model.moe and redundant_experts:
        experts *= 1 + redundant_experts / model.moe.num_experts
    replicated = 0.0 if part == "ffn" else b["indexer"]
    return dense / (tp * pp) + experts / (expert_split * pp) + replicated / pp


def kv_bytes_per_token_per_gpu(model: ModelSpec, tp: int, pp: int) -> float:
    if model.mla:  # the latent (and a DSA model's index keys) is replicated on every TP rank
        return model.kv_bytes_per_token / pp
    kv_heads_per_gpu = max(1, model.num_kv_heads // tp)
    return model.kv_bytes_per_token * kv_heads_per_gpu / model.num_kv_heads / pp


def sequence_kv_bytes(
    model: ModelSpec, tp: int, pp: int, tokens: int, block_size: int, max_num_batched_tokens: int, draft_layers: int = 0
) -> float:
    """KV bytes per GPU that vLLM sets aside for one sequence of `tokens` tokens: each layer
    spec's `max_memory_usage_bytes` (vllm/v1/kv_cache_interface.py), cdiv(tokens, block_size)
    blocks for a full-attention layer, and for a sliding-window one its window plus one step's
    tokens, cdiv(min(window - 1 + max_num_batched_tokens, tokens), block_size) + 1."""
    layers = model.num_attention_layers
    per_token = kv_bytes_per_token_per_gpu(model, tp, pp) * (1 + draft_layers / max(model.num_layers, 1))
    blocks = (layers - model.sliding_window_layers) * -(-tokens // block_size)
    if model.sliding_window_layers:
        window = min(model.sliding_window - 1 + max_num_batched_tokens, tokens)
        blocks += model.sliding_window_layers * (-(-window // block_size) + 1)
    return blocks * block_size * per_token / layers


class KVCacheTooSmall(SpecError):
    """vLLM would not start: its KV cache cannot hold one request of max_model_len tokens.
    `fits`: the longest request it can hold."""

    def __init__(self, message: str, fits: int):
        super().__init__(message)
        self.fits = fits


def check_vllm_starts(
    plan: MemoryPlan,
    model: ModelSpec,
    *,
    tp: int,
    pp: int,
    max_model_len: int,
    max_num_batched_tokens: int,
    gpu_memory_utilization: float,
    draft_layers: int = 0,
    where: str = "deployment",
) -> int:
    """The longest request vLLM serves with this memory: `max_model_len`, or under `auto` (-1)
    the model's context or, where one such request does not fit, the longest that does
    (vllm/v1/core/kv_cache_utils.py `_auto_fit_max_model_len`, vLLM PR #29431). vLLM refuses to
    start when its KV cache cannot hold one request of a set `max_model_len`, and says the
    longest that would fit (`check_enough_kv_cache_memory`, `estimate_max_model_len`: a binary
    search of that length). Models whose context outgrows the memory left beside their weights
    meet it: Qwen3-32B (40,960 tokens) on one H100, Llama-3.1-70B (131,072) on two."""

    def need(tokens: int) -> float:
        if plan.kv_groups and plan.kv_groups.state_groups:  # a hybrid's: its blocks, its states' included
            return plan.kv_groups.sequence_blocks(tokens) * plan.block_size * plan.kv_bytes_per_token
        return sequence_kv_bytes(model, tp, pp, tokens, plan.block_size, max_num_batched_tokens, draft_layers)

    context = model.max_model_len if max_model_len == -1 else max_model_len
    if need(context) <= plan.kv_bytes:
        return context
    fits, short = 0, context
    while short - fits > 1:
        mid = (fits + short) // 2
        fits, short = (mid, short) if need(mid) <= plan.kv_bytes else (fits, mid)
    if max_model_len == -1 and fits:
        return fits
    raise KVCacheTooSmall(
        f"{where}: vLLM would not start: one request of max_model_len {context} tokens needs "
        f"{need(context) / GIB:.2f} GiB of KV cache per GPU, more than the "
        f"{plan.kv_bytes / GIB:.2f} GiB left beside {plan.weight_bytes / GIB:.1f} GiB of weights and "
        f"{plan.activation_bytes / GIB:.1f} GiB of activations at gpu_memory_utilization "
        f"{gpu_memory_utilization}; set max_model_len <= {fits} (the longest that fits) or auto, raise "
        f"gpu_memory_utilization or use more GPUs per instance",
        fits,
    )


# The first vLLM release that refuses to start where a hybrid's running sequences could outnumber
# its KV blocks (PR #38270, merged 2026-03-26: absent from 0.17.1, present in 0.20.0).
VLLM_STATE_BLOCKS_CHECK = (0, 19)


class TooFewStateBlocks(SpecError):
    """vLLM would not start: a hybrid's running sequences could outnumber its KV blocks.
    `blocks`: the most sequences it starts with."""

    def __init__(self, message: str, blocks: int):
        super().__init__(message)
        self.blocks = blocks


def check_vllm_state_blocks(plan: MemoryPlan, max_num_seqs: int, version: tuple, where: str = "deployment") -> None:
    """vLLM (from VLLM_STATE_BLOCKS_CHECK; `version` () = the newest) refuses to capture its full
    CUDA graphs when max_num_seqs exceeds the blocks of a hybrid's pool, each decoding sequence
    needing a state block (vllm/config/compilation.py `resolve_cudagraph_mode_and_sizes`). With
    its defaults (1,024 sequences) a Qwen3.5 model on one or two GPUs meets it."""
    if not (plan.kv_groups and plan.kv_groups.state_groups) or (version and version < VLLM_STATE_BLOCKS_CHECK):
        return
    if max_num_seqs > plan.num_blocks:
        raise TooFewStateBlocks(
            f"{where}: vLLM would not start: max_num_seqs {max_num_seqs} exceeds the {plan.num_blocks} "
            f"blocks of its KV cache (its Mamba cache blocks: each decoding sequence holds "
            f"{plan.kv_groups.state_groups} of them for its recurrent states); set max_num_seqs <= {plan.num_blocks} "
            f"or raise gpu_memory_utilization",
            plan.num_blocks,
        )


def activation_bytes(model: ModelSpec, tp: int, max_num_batched_tokens: int, max_num_seqs: int) -> float:
    """What vLLM's memory profile takes beyond the weights (vllm/v1/worker/gpu_model_runner.py
    `profile_run`: a dummy forward pass of `max_num_batched_tokens` tokens, then the sampler on
    `max_num_seqs` rows of logits; the profiler keeps the peak of the whole run, so the larger of
    the two), plus the runtime reserve. The forward pass peaks in its widest layer: the residual
    stream and one hidden state beside a dense MLP's gate/up output and activation (3 x the
    intermediate size), the fused MoE's three caches (top-k x (3 x intermediate + hidden):
    fused_moe.py `intermediate_cache1..3`) or the attention's q, k, v and output; the sampler holds
    fp32 logits. A public vLLM 0.19 start-up log (gpt-oss-20b on an A100 80 GB at 0.65, defaults
    8,192 tokens and 1,024 sequences) left 1.17 GiB beside the weights and the KV cache: this gives
    1.8 GiB, the sum of the two with three hidden states and three times the widest width, used
    before, 3.8 GiB."""
    dense = 3 * (model.intermediate_size or 0) / tp
    moe = model.moe.top_k * (3 * model.moe.intermediate_size / tp + model.hidden_size) if model.moe else 0
    attn = 2 * (model.num_heads + model.num_kv_heads) * model.head_dim / tp
    forward = max_num_batched_tokens * (2 * model.hidden_size + max(dense, moe, attn)) * model.dtype_bytes
    logits = max_num_seqs * model.vocab_size * 4
    return max(forward, logits) + RUNTIME_RESERVE_BYTES


def plan_memory(
    model: ModelSpec,
    gpu: GPUSpec,
    *,
    tp: int,
    pp: int,
    ep: int = 1,
    dp_attention: int = 1,
    gpu_memory_utilization: float = 0.9,
    block_size: int = 16,
    max_num_batched_tokens: int = 8192,
    max_num_seqs: int = 256,
    where: str = "deployment",
    part: str = "all",
    activations_inside: bool = True,
    redundant_experts: int = 0,
    unseen_bytes: float = 0.0,
    draft_layers: int = 0,
    paged: bool = False,
    window_share: float = 1.0,
) -> MemoryPlan:
    """`draft_layers`: a speculative draft model of that many decoder layers (DeepSeek's MTP
    module, an EAGLE head) sharing the embeddings and LM head: its weights and its KV cache
    come on top, a layer's worth each. `paged`: the pool is laid out as vLLM's (`KVGroups`): a
    hybrid's states live in the KV blocks rather than in a pool of their own, as SGLang's, and a
    sliding-window layer holds a sequence's window only. `window_share`: otherwise, the share of
    the pool's tokens a sliding-window layer keeps (SGLang's swa_full_tokens_ratio); the pool's
    tokens are then the full-attention layers'."""
    usable = gpu.memory_bytes * gpu_memory_utilization
    weights = weight_bytes_per_gpu(model, tp, pp, ep, part, redundant_experts, dp_attention)
    if draft_layers and model.num_layers:
        embedding = model.weight_bytes_by_part()["embedding"] / (tp * pp)
        weights += (weights - embedding) * draft_layers / max(1, -(-model.num_layers // pp))
    act = activation_bytes(model, tp, max_num_batched_tokens, max_num_seqs) if activations_inside else unseen_bytes
    kv = usable - weights - act
    layout = kv_groups(model, tp, pp, block_size) if paged and part != "ffn" else None
    per_seq_state = 0.0 if part == "ffn" or layout else model.state_bytes_per_seq(tp) / pp
    state_seqs = 0
    if per_seq_state and kv > 0:
        budget = kv * STATE_TO_KV_RATIO / (1 + STATE_TO_KV_RATIO)
        state_seqs = min(max_num_seqs, int(budget // per_seq_state))
    states = state_seqs * per_seq_state
    kv -= states
    if model.num_layers < 1 or (model.num_kv_heads < 1 and not model.mla) or block_size < 1:
        # a spec built in Python, without the config.json checks
        raise SpecError(
            f"{where}: {model.name} stores no KV cache per token (num_hidden_layers "
            f"{model.num_layers}, KV heads {model.num_kv_heads}, block_size {block_size}); "
            f"each must be >= 1"
        )
    draft = 1 + draft_layers / max(model.num_layers, 1)
    block_bytes = kv_bytes_per_token_per_gpu(model, tp, pp) * block_size * draft
    if model.sliding_window_layers and window_share < 1:
        windowed, layers = model.sliding_window_layers, model.num_attention_layers
        block_bytes *= (layers - windowed + window_share * windowed) / layers
    if layout:
        block_size, block_bytes = layout.block_size, layout.block_bytes * draft
    per_token = block_bytes / block_size  # grouped: a block's share of the pool, a state's padding included
    num_blocks = int(kv // block_bytes) if kv > 0 else 0
    if part == "ffn" and kv > 0:  # FFN GPUs hold no KV cache; they only need to fit
        return MemoryPlan(usable, weights, act, 0.0, per_token, block_size, 0)
    if num_blocks < 1:
        fit = next(
            (
                t
                for t in (2, 4, 8, 16, 32, 64)
                if t > tp
                and weight_bytes_per_gpu(model, t, pp, ep, part, dp_attention=dp_attention)
                + activation_bytes(model, t, max_num_batched_tokens, max_num_seqs)
                < usable * 0.8
            ),
            None,
        )
        hint = f"; tp={fit} would fit" if fit else "; use more GPUs per instance (tp x pp)"
        raise SpecError(
            f"{where}: {model.name} does not fit on {gpu.name} with tp={tp} pp={pp}: weights "
            f"{weights / GIB:.1f} GiB + activations {act / GIB:.1f} GiB per GPU, but only "
            f"{usable / GIB:.1f} GiB usable ({gpu.memory_gib:.1f} GiB x gpu_memory_utilization "
            f"{gpu_memory_utilization}){hint}"
        )
    if per_seq_state and state_seqs < 1:
        raise SpecError(
            f"{where}: {model.name} on {gpu.name} with tp={tp} pp={pp} has no room for one "
            f"sequence's recurrent state ({per_seq_state / GIB:.2f} GiB per GPU); use more GPUs per instance"
        )
    return MemoryPlan(usable, weights, act, kv, per_token, block_size, num_blocks, states, state_seqs, kv_groups=layout)
