"""Which shapes to measure: derived from the model cards and the tensor-parallel degrees.

Every model card in `models/*.yaml` (a `config:` dict of Hugging Face config.json keys) yields
the (k, n) of its linear layers, its attention head configuration, its MoE projections and its
elementwise widths, once per TP degree (1, 2, 4, 8; layouts as vLLM and SGLang shard them:
column-parallel QKV / gate_up, row-parallel O / down, KV heads replicated when TP exceeds them).
The token counts m run from 1 to 16k (decode batches up to long prefills).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

TP_DEGREES = (1, 2, 4, 8)

# Token counts (GEMM m, MoE tokens, elementwise tokens): the reference's spread, 1 .. 16384.
M_FULL = (
    1,
    2,
    4,
    8,
    16,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    1536,
    2048,
    3072,
    4096,
    6144,
    8192,
    12288,
    16384,
)
M_QUICK = (1, 4, 16, 64, 256, 1024, 4096, 16384)
M_DRY = (1, 8, 32)

# Used only when models/ holds no card yet (configs of public checkpoints, config.json keys).
FALLBACK_CONFIGS = {
    "llama-3.1-8b": {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
    },
    "qwen3-30b-a3b": {
        "hidden_size": 2048,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "num_hidden_layers": 48,
        "intermediate_size": 6144,
        "moe_intermediate_size": 768,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
    },
    "deepseek-v3": {
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "num_hidden_layers": 61,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "vocab_size": 129280,
        "max_position_embeddings": 163840,
    },
}

# Tiny models for `--dry-run` (CPU): every code path (dense GQA, MoE, MLA) with small shapes.
TINY_CONFIGS = {
    "tiny-dense": {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "vocab_size": 512,
    },
    "tiny-moe": {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 16,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "moe_intermediate_size": 32,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 512,
    },
    "tiny-mla": {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "moe_intermediate_size": 32,
        "n_routed_experts": 4,
        "n_shared_experts": 1,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "q_lora_rank": 32,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 16,
        "v_head_dim": 16,
        "vocab_size": 512,
    },
}


def tiny_models():
    from frontier.spec.model import model_from_config

    return [model_from_config(cfg, name, "built-in") for name, cfg in TINY_CONFIGS.items()]


@dataclass(frozen=True)
class Linear:
    name: str
    k: int
    n: int


@dataclass(frozen=True)
class HeadConfig:
    """Attention heads on one GPU: `d` query/key dim, `dv` value dim; `mla` = absorbed MLA.

    `use`: which phase runs this form: "both", "prefill" (MLA expanded to per-head K/V) or
    "decode" (MLA absorbed: all query heads against one latent KV head).
    """

    name: str
    hq: int
    hkv: int
    d: int
    dv: int
    mla: bool = False
    use: str = "both"


@dataclass(frozen=True)
class MoeProj:
    model: str
    proj: str  # gate_up | down
    experts: int  # experts on one GPU
    topk: int
    k: int
    n: int


def load_models(models_dir: Path | None = None, names: list[str] | None = None, warn=print):
    """ModelSpecs of the cards in models_dir (all, or `names`); the fallbacks if there are none."""
    from frontier.errors import FrontierError
    from frontier.paths import MODELS_DIR
    from frontier.spec.model import load_model, model_from_config

    directory = Path(models_dir) if models_dir else MODELS_DIR
    cards = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if names:
        cards = [c for c in cards if c.stem in names]
    specs = []
    for card in cards:
        try:
            specs.append(load_model(str(card)))
        except FrontierError as exc:  # a card being written right now: skip it, say so
            warn(f"profiler: skipping model card {card.name}: {exc}")
    if not specs:
        warn(f"profiler: no usable model cards in {directory}; using built-in shapes of {', '.join(FALLBACK_CONFIGS)}")
        specs = [model_from_config(cfg, name, "built-in") for name, cfg in FALLBACK_CONFIGS.items()]
    return specs


def _tp_name(model: str, tp: int) -> str:
    return model if tp == 1 else f"{model}-tp{tp}"


def tp_ok(spec, tp: int) -> bool:
    return spec.num_heads % tp == 0


def linears(spec, tp: int) -> list[Linear]:
    """The GEMMs of one layer (and the LM head) on one GPU of a TP group."""
    h = spec.hidden_size
    hq = spec.num_heads // tp
    base = _tp_name(spec.name, tp)
    out: list[Linear] = []
    if spec.mla:
        m = spec.mla
        if m.q_lora_rank:
            out.append(Linear(f"{base}.q_a", h, m.q_lora_rank))  # replicated
            out.append(Linear(f"{base}.q_b", m.q_lora_rank, hq * spec.qk_head_dim))
        else:
            out.append(Linear(f"{base}.q", h, hq * spec.qk_head_dim))
        out.append(Linear(f"{base}.kv_a", h, m.kv_lora_rank + m.qk_rope_head_dim))  # replicated
        out.append(Linear(f"{base}.kv_b", m.kv_lora_rank, hq * (m.qk_nope_head_dim + m.v_head_dim)))
        out.append(Linear(f"{base}.o", hq * m.v_head_dim, h))
    else:
        hkv = max(1, spec.num_kv_heads // tp)
        out.append(Linear(f"{base}.qkv", h, (hq + 2 * hkv) * spec.head_dim))
        out.append(Linear(f"{base}.o", hq * spec.head_dim, h))
    if spec.num_dense_layers and spec.intermediate_size:
        inter = spec.intermediate_size // tp
        out.append(Linear(f"{base}.gate_up", h, 2 * inter))
        out.append(Linear(f"{base}.down", inter, h))
    if spec.moe:
        out.append(Linear(f"{base}.router", h, spec.moe.num_experts))  # replicated
        if spec.moe.shared_intermediate_size:
            shared = spec.moe.shared_intermediate_size // tp
            out.append(Linear(f"{base}.shared_gate_up", h, 2 * shared))
            out.append(Linear(f"{base}.shared_down", shared, h))
    out.append(Linear(f"{base}.lm_head", h, -(-spec.vocab_size // tp)))
    return [lin for lin in out if lin.k > 0 and lin.n > 0]


def head_configs(spec, tp: int) -> list[HeadConfig]:
    """Attention on one GPU: the prefill form, and for MLA also the absorbed decode form."""
    hq = spec.num_heads // tp
    base = _tp_name(spec.name, tp)
    if spec.mla:
        m = spec.mla
        return [
            # prefill / chunked prefill: K and V expanded per head (MHA), d = nope + rope
            HeadConfig(base, hq, hq, m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim, use="prefill"),
            # decode, absorbed: every head attends to one latent KV head of kv_lora + rope
            HeadConfig(
                base + ".mla", hq, 1, m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank, mla=True, use="decode"
            ),
        ]
    return [HeadConfig(base, hq, max(1, spec.num_kv_heads // tp), spec.head_dim, spec.head_dim)]


def moe_projs(spec, ep_degrees=(1, 2, 4, 8), tp_degrees=(2, 4, 8)) -> list[MoeProj]:
    """Expert parallel (experts split, full width) and tensor parallel (all experts, split width)."""
    if not spec.moe:
        return []
    moe, h = spec.moe, spec.hidden_size
    out = []
    for ep in ep_degrees:
        if moe.num_experts % ep == 0 and moe.num_experts // ep >= 1:
            local = moe.num_experts // ep
            topk = min(moe.top_k, local)
            out.append(
                MoeProj(
                    f"{spec.name}-ep{ep}" if ep > 1 else spec.name, "gate_up", local, topk, h, 2 * moe.intermediate_size
                )
            )
            out.append(
                MoeProj(f"{spec.name}-ep{ep}" if ep > 1 else spec.name, "down", local, topk, moe.intermediate_size, h)
            )
    for tp in tp_degrees:
        if moe.intermediate_size % tp == 0:
            inter = moe.intermediate_size // tp
            out.append(MoeProj(f"{spec.name}-tp{tp}", "gate_up", moe.num_experts, moe.top_k, h, 2 * inter))
            out.append(MoeProj(f"{spec.name}-tp{tp}", "down", moe.num_experts, moe.top_k, inter, h))
    return out


@dataclass(frozen=True)
class ElementwiseOp:
    name: str
    width: int
    model: str = field(default="", compare=False)  # a label only


# The elementwise kernels of a decode step as the profiler builds them: each compiled into one
# kernel on a GPU, as the engines fuse them (profiler/bench/step.py), except top-k gating, where
# PyTorch's top-k stays beside the fused softmax.
FUSED_ELEMENTWISE = ("add_rmsnorm", "rmsnorm", "rotary", "kv_cache_write", "silu_mul", "topk_gating", "quant_fp8")
# What the elementwise family times: those that are one kernel as the engines' are, and the
# sampler. Not top-k gating: vLLM and SGLang launch one `topk_softmax` kernel
# (vllm/model_executor/layers/fused_moe/fused_moe.py `fused_topk`; sglang/srt/layers/moe/topk.py),
# where torch.compile leaves two or three (17-40 us for 1-1024 tokens on an H200); the roofline
# prices it.
TIMED_ELEMENTWISE = (*(n for n in FUSED_ELEMENTWISE if n != "topk_gating"), "sampling")


def elementwise_ops(spec, tp: int) -> list[ElementwiseOp]:
    """The elementwise operators of one GPU at TP `tp`, as Frontier's operator graph emits them
    (`frontier.ops.graph`: attention and FFN blocks, the attention core, the step's head), so
    every row measured is one the simulator asks for; `tokens` is swept separately. Only the
    names in `TIMED_ELEMENTWISE`: the others (embedding lookups, the hybrid layers' gates, top-k
    gating) are left to the roofline.
    """
    from frontier.ops import graph
    from frontier.ops.operators import Elementwise

    par = graph.Parallel(tp=tp)
    one = graph.BatchStats.decode(1, 1024)
    ops = (
        graph.attention_block(spec, par, 1)
        + graph.attention_core(spec, par, one)
        + graph.ffn_block(spec, par, 1)
        + graph.head_operators(spec, par, 1, 1)
    )
    label = _tp_name(spec.name, tp)
    named = unique((op.name, op.width) for op, _ in ops if isinstance(op, Elementwise) and op.name in TIMED_ELEMENTWISE)
    return [ElementwiseOp(name, width, label) for name, width in named]


def unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def log(msg: str) -> None:
    print(msg, file=sys.stderr)
