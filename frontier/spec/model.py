"""LLM architecture from a model card (`models/<name>.yaml`) or any Hugging Face config.json.

A card keeps the config.json keys verbatim under `config:`, so a card and a config.json go
through the same parser. Dense (Llama, Qwen), MoE (Mixtral, Qwen3-MoE, gpt-oss, MiniMax-M2) and
MLA + MoE with shared experts and dense first layers (DeepSeek-V2/V3/R1, Kimi-K2, GLM-5) are
understood, with DeepSeek Sparse Attention's lightning indexer where the config has index_topk
(DeepSeek-V3.2, GLM-5), and hybrids of full attention with gated-DeltaNet linear attention
(Qwen3.5, Qwen3-Next: `layer_types`); other linear attention (MiniMax lightning attention) is
refused with one line.

Precision comes in two parts, named in frontier.spec.quant's vocabulary: `linear_quant` for the
attention projections, dense MLPs and shared experts, `moe_quant` for the routed experts.
Embeddings, the LM head and the MoE router stay bf16 (vLLM builds DeepSeek's and gpt-oss's
router without a quant_config; MiniMax and gpt-oss checkpoints list it in
modules_to_not_convert).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from frontier.errors import SpecError
from frontier.numbers import integer, strict_json_loads
from frontier.paths import MODELS_DIR
from frontier.spec import quant

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention dimensions."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class DSA:
    """DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): a lightning indexer of `index_n_heads`
    heads of `index_head_dim` dims scores every cached token in fp8 and keeps the best
    `index_topk` per query; MLA attends only to those."""

    index_n_heads: int
    index_head_dim: int
    index_topk: int

    @property
    def key_cache_bytes(self) -> int:
        """Index-key cache bytes per token and layer: the fp8 key and its fp32 scale
        (sglang/srt/mem_cache/memory_pool.py NSATokenToKVPool: 128 + 4 bytes a token)."""
        return self.index_head_dim + 4


@dataclass(frozen=True)
class GatedDeltaNet:
    """The gated-DeltaNet (linear attention) layers of a hybrid model (Qwen3.5, Qwen3-Next:
    transformers' modeling_qwen3_next.py `Qwen3NextGatedDeltaNet`; vLLM and SGLang launch the
    same kernels, sglang/srt/models/qwen3_next.py). Each such layer projects q, k (`k_heads` of
    `head_k_dim`) and v, z (`v_heads` of `head_v_dim`) and the gates b, a (one per value head),
    runs a causal depthwise convolution of `conv_kernel` taps over q, k, v, then the delta rule
    on a recurrent state of head_k_dim x head_v_dim per value head, a gated RMSNorm and the
    output projection. It keeps no KV cache: each sequence holds a fixed state instead, the
    convolution's last conv_kernel - 1 inputs (model dtype) and the delta-rule state (fp32,
    `mamba_ssm_dtype`)."""

    layers: int  # how many of the model's layers are gated DeltaNet
    k_heads: int
    v_heads: int
    head_k_dim: int
    head_v_dim: int
    conv_kernel: int
    state_bytes: int = 4  # bytes per element of the delta-rule state (mamba_ssm_dtype float32)

    @property
    def conv_dim(self) -> int:
        """Channels of the causal convolution: q, k and v."""
        return 2 * self.k_heads * self.head_k_dim + self.v_heads * self.head_v_dim

    @property
    def projection_width(self) -> int:
        """Output width of the input projections: q, k, v, z and the gates b, a."""
        return self.conv_dim + self.v_heads * self.head_v_dim + 2 * self.v_heads

    def params(self, hidden: int) -> int:
        """One layer: input and output projections, convolution taps, per-head decay and bias
        (A_log, dt_bias) and the gated norm's weight."""
        return (
            hidden * self.projection_width
            + self.v_heads * self.head_v_dim * hidden
            + self.conv_dim * self.conv_kernel
            + 2 * self.v_heads
            + self.head_v_dim
        )

    def state_bytes_per_seq(self, dtype_bytes: int, tp: int = 1) -> float:
        """Recurrent state of one sequence on one of `tp` ranks, over all gated-DeltaNet layers."""
        conv = self.conv_dim * (self.conv_kernel - 1) * dtype_bytes
        rule = self.v_heads * self.head_k_dim * self.head_v_dim * self.state_bytes
        return self.layers * (conv + rule) / tp


@dataclass(frozen=True)
class MoE:
    num_experts: int
    top_k: int
    intermediate_size: int  # per routed expert
    shared_intermediate_size: int  # total width of the shared expert(s); 0 if none
    first_dense_layers: int  # leading layers with a dense MLP (DeepSeek first_k_dense_replace)
    n_group: int = 1  # group-limited routing (DeepSeek): experts in n_group groups,
    topk_group: int = 1  # each token's top-k drawn from its topk_group best groups


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width (dense layers)
    vocab_size: int
    max_model_len: int
    tie_word_embeddings: bool = False
    dtype_bytes: int = 2  # activations (and the KV cache when kv_cache_dtype is auto)
    linear_quant: str = "none"  # attention projections, dense MLPs, shared experts
    moe_quant: str = "none"  # routed experts
    kv_cache_dtype: str = "auto"  # vLLM's --kv-cache-dtype: auto keeps the model dtype
    moe: MoE | None = None
    mla: MLA | None = None
    dsa: DSA | None = None  # DeepSeek Sparse Attention's indexer (MLA models only)
    linear_attention: GatedDeltaNet | None = None  # a hybrid's gated-DeltaNet layers
    attn_output_gate: bool = False  # Qwen3.5/Qwen3-Next: q_proj also yields a sigmoid output gate
    qk_norm: bool = False  # RMSNorm on each head's q and k before rotary (Qwen3, Qwen3-MoE)
    qk_norm_across_heads: bool = False  # MiniMax-M2: one RMSNorm over all heads' q (and k's)
    rotary_dim: int = 0  # dims of each head that rotary rotates; 0: all (MiniMax-M2: 64 of 128)
    # Softmax layers attending over the last `sliding_window` tokens only (gpt-oss's
    # `sliding_attention` layer_types). Their KV and work are counted as full attention's; only
    # vLLM's start-up memory check (frontier.spec.memory.sequence_kv_bytes) uses the window.
    sliding_window_layers: int = 0
    sliding_window: int = 0
    hf_id: str = ""
    architecture: str = ""  # config.json `architectures[0]`: the engines pick model code by it
    # What `load_model` was given (card, alias, path): a scenario written back names it so.
    source: str = field(default="", compare=False)

    @property
    def served_id(self) -> str:
        """The id an engine serves it under (`vllm serve ID`): the Hugging Face id it was asked
        for by, else the card's hf_id, else its name."""
        if (
            "/" in self.source
            and not self.source.endswith((".json", ".yaml", ".yml"))
            and not Path(self.source).expanduser().exists()
        ):
            return self.source
        return self.hf_id or self.name

    # --- precision -----------------------------------------------------------------------------
    @property
    def weight_dtype(self) -> str:
        """The GEMM family of the linear layers ("bf16", "fp8", "w4a16")."""
        return quant.GEMM_DTYPE[self.linear_quant]

    @property
    def moe_weight_dtype(self) -> str:
        """The GEMM family of the routed experts."""
        return quant.GEMM_DTYPE[self.moe_quant]

    @property
    def precision(self) -> str:
        """One label: `fp8_block`, or `bf16 + mxfp4 experts` when the parts differ."""
        linear = "bf16" if self.linear_quant == "none" else self.linear_quant
        if self.moe is None or self.moe_quant == self.linear_quant:
            return linear
        return f"{linear} + {'bf16' if self.moe_quant == 'none' else self.moe_quant} experts"

    def with_quantization(self, name: str, moe: str | None = None, where: str = "quantization") -> "ModelSpec":
        """This model served with `--quantization name`: what vLLM does to a bf16 checkpoint
        (online fp8 quantises every linear layer, routed experts included). `moe` sets the
        routed experts apart, for runs that record the two separately."""
        linear = quant.quantization_name(name, where)
        experts = linear if moe is None else quant.quantization_name(moe, where)
        return replace(self, linear_quant=linear, moe_quant=experts)

    def with_kv_cache_dtype(self, kv_cache_dtype: str, where: str = "kv_cache_dtype") -> "ModelSpec":
        """This model with vLLM's `--kv-cache-dtype` (auto, fp8, fp8_e4m3, fp8_e5m2, bf16)."""
        value = str(kv_cache_dtype).strip().lower()
        if value not in quant.KV_CACHE_DTYPES:
            raise SpecError(
                f"{where}: '{kv_cache_dtype}' is not a KV-cache dtype; use one of {', '.join(quant.KV_CACHE_DTYPES)}"
            )
        return replace(self, kv_cache_dtype=value)

    @property
    def kv_elem_bytes(self) -> int:
        return quant.kv_cache_bytes(self.kv_cache_dtype, self.dtype_bytes)

    # --- per-layer structure -------------------------------------------------------------
    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and layer >= self.moe.first_dense_layers

    @property
    def num_moe_layers(self) -> int:
        return 0 if self.moe is None else self.num_layers - self.moe.first_dense_layers

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def num_attention_layers(self) -> int:
        """Layers of softmax attention (all but a hybrid's gated-DeltaNet layers)."""
        return self.num_layers - (self.linear_attention.layers if self.linear_attention else 0)

    # --- attention dims --------------------------------------------------------------------
    @property
    def qk_head_dim(self) -> int:
        if self.mla:
            return self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim
        return self.head_dim

    @property
    def v_head_dim(self) -> int:
        return self.mla.v_head_dim if self.mla else self.head_dim

    # --- parameters --------------------------------------------------------------------------
    def attention_params(self) -> int:
        h = self.hidden_size
        if self.mla:
            m = self.mla
            q = (
                h * m.q_lora_rank + m.q_lora_rank * self.num_heads * self.qk_head_dim
                if m.q_lora_rank
                else h * self.num_heads * self.qk_head_dim
            )
            kv_down = h * (m.kv_lora_rank + m.qk_rope_head_dim)
            kv_up = m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
            out = self.num_heads * m.v_head_dim * h
            return q + kv_down + kv_up + out
        q = h * self.num_heads * self.head_dim * (2 if self.attn_output_gate else 1)
        kv = 2 * h * self.num_kv_heads * self.head_dim
        return q + kv + self.num_heads * self.head_dim * h

    def mixer_params(self) -> int:
        """Attention parameters of all layers: softmax attention, and a hybrid's gated DeltaNet."""
        linear = (
            self.linear_attention.layers * self.linear_attention.params(self.hidden_size)
            if self.linear_attention
            else 0
        )
        return self.num_attention_layers * self.attention_params() + linear

    def indexer_params(self) -> tuple[int, int]:
        """(quantised, bf16) parameters of one layer's DSA indexer: `wq_b` (q latent -> index
        heads) and `wk`, then `weights_proj`, which SGLang keeps in bf16. Left out of
        `param_count`, as the published totals leave it out (GLM-5: 744B, 40B active)."""
        if not self.dsa:
            return 0, 0
        d, h = self.dsa, self.hidden_size
        q_in = self.mla.q_lora_rank or h
        return q_in * d.index_n_heads * d.index_head_dim + h * d.index_head_dim, h * d.index_n_heads

    def dense_mlp_params(self) -> int:
        return 3 * self.hidden_size * self.intermediate_size

    def expert_params(self) -> int:
        """One routed expert (gate, up, down)."""
        return 3 * self.hidden_size * self.moe.intermediate_size if self.moe else 0

    def shared_expert_params(self) -> int:
        return 3 * self.hidden_size * self.moe.shared_intermediate_size if self.moe else 0

    def router_params(self) -> int:
        return self.hidden_size * self.moe.num_experts if self.moe else 0

    def embedding_params(self) -> int:
        emb = self.vocab_size * self.hidden_size
        return emb if self.tie_word_embeddings else 2 * emb

    def param_count(self, active: bool = False) -> int:
        """Total parameters, or those one token activates (`active`, MoE top-k experts)."""
        total = self.embedding_params() + self.mixer_params()
        total += self.num_dense_layers * self.dense_mlp_params()
        if self.moe:
            experts = self.moe.top_k if active else self.moe.num_experts
            total += self.num_moe_layers * (
                experts * self.expert_params() + self.shared_expert_params() + self.router_params()
            )
        return total

    def weight_bytes_by_part(self) -> dict[str, float]:
        """Bytes of the whole model's weights (no parallelism), by where they live:
        `embedding` (embeddings + LM head, bf16), `attention` (linear_quant), `ffn` (dense MLPs
        and shared experts in linear_quant, router in bf16), `experts` (moe_quant) and `indexer`
        (a DSA model's, replicated on every TP rank; 0 for others)."""
        bf16, linear = quant.BYTES_PER_PARAM["none"], quant.BYTES_PER_PARAM[self.linear_quant]
        ffn_linear = self.num_dense_layers * self.dense_mlp_params()
        experts = 0
        if self.moe:
            ffn_linear += self.num_moe_layers * self.shared_expert_params()
            experts = self.num_moe_layers * self.moe.num_experts * self.expert_params()
        return {
            "embedding": self.embedding_params() * bf16,
            "attention": self.mixer_params() * linear,
            "ffn": ffn_linear * linear + self.num_moe_layers * self.router_params() * bf16,
            "experts": experts * quant.BYTES_PER_PARAM[self.moe_quant],
            "indexer": self.num_layers * (self.indexer_params()[0] * linear + self.indexer_params()[1] * bf16),
        }

    def weight_bytes(self) -> float:
        return sum(self.weight_bytes_by_part().values())

    # --- KV cache ----------------------------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token over all softmax-attention layers (no parallelism)."""
        if self.mla:  # the compressed latent plus the shared rope key
            per_layer = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        else:
            per_layer = 2 * self.num_kv_heads * self.head_dim
        index_keys = self.dsa.key_cache_bytes if self.dsa else 0  # fp8 whatever the KV dtype
        return (per_layer * self.kv_elem_bytes + index_keys) * self.num_attention_layers

    def state_bytes_per_seq(self, tp: int = 1) -> float:
        """A hybrid's fixed recurrent state per sequence on one of `tp` ranks; 0 for others."""
        la = self.linear_attention
        return la.state_bytes_per_seq(self.dtype_bytes, tp) if la else 0.0


def _require(cfg: dict, key: str, where: str):
    if key not in cfg:
        raise SpecError(f"{where}: config has no '{key}' (needed for the model architecture)")
    return cfg[key]


# Attention kinds Frontier models: full softmax attention, and sliding-window softmax attention
# (gpt-oss), which it counts as full attention.
SOFTMAX_LAYER_TYPES = {"full_attention", "sliding_attention", "attention"}


# Linear attention Frontier models: Qwen3.5's / Qwen3-Next's gated DeltaNet.
GATED_DELTANET = "linear_attention"


def _layer_kinds(cfg: dict, where: str) -> list[str]:
    """Each layer's mixer: `layer_types`, else MiniMax's `attn_type_list` (1 softmax, 0
    lightning), else Qwen3-Next's `full_attention_interval` (every n-th layer full attention)."""
    if cfg.get("layer_types"):
        return [str(k) for k in cfg["layer_types"]]
    if cfg.get("attn_type_list"):
        return ["full_attention" if t else "lightning_attention" for t in cfg["attn_type_list"]]
    interval = cfg.get("full_attention_interval")
    if interval and cfg.get("linear_num_value_heads"):
        n = integer(interval, f"{where}: full_attention_interval", minimum=1, what="a layer interval")
        layers = _count(cfg, "num_hidden_layers", where)
        return ["full_attention" if (i + 1) % n == 0 else GATED_DELTANET for i in range(layers)]
    return []


def _linear_attention(cfg: dict, where: str) -> GatedDeltaNet | None:
    """A hybrid's gated-DeltaNet layers; other linear attention cannot be expressed."""
    kinds = _layer_kinds(cfg, where)
    other = sorted({k for k in kinds if k not in SOFTMAX_LAYER_TYPES | {GATED_DELTANET}})
    if other:
        count = sum(k not in SOFTMAX_LAYER_TYPES for k in kinds)
        label = "linear-attention" if all("linear" in k or "lightning" in k for k in other) else other[0]
        raise SpecError(
            f"{where}: {count} of {len(kinds)} layers are {', '.join(other)}; {label} "
            "layers are not modelled (full and sliding-window softmax attention and gated "
            "DeltaNet linear attention are)"
        )
    layers = kinds.count(GATED_DELTANET)
    if not layers:
        return None
    if not cfg.get("linear_num_value_heads"):
        raise SpecError(
            f"{where}: {layers} of {len(kinds)} layers are linear_attention but the config has no "
            "linear_num_value_heads (gated DeltaNet: linear_num_key_heads, linear_num_value_heads, "
            "linear_key_head_dim, linear_value_head_dim, linear_conv_kernel_dim)"
        )
    ssm = str(cfg.get("mamba_ssm_dtype") or "float32")
    return GatedDeltaNet(
        layers,
        _count(cfg, "linear_num_key_heads", where),
        _count(cfg, "linear_num_value_heads", where),
        _count(cfg, "linear_key_head_dim", where),
        _count(cfg, "linear_value_head_dim", where),
        _count(cfg, "linear_conv_kernel_dim", where),
        DTYPE_BYTES.get(ssm, 4),
    )


def _skips_attention(cfg: dict) -> bool:
    """Whether a quantization config leaves the whole attention block unquantised: an ignore
    entry that ends in `self_attn` (gpt-oss `model.layers.*.self_attn`, compressed-tensors
    `re:.*self_attn.*`), not one that names a part of it (GLM-5-FP8 `self_attn.q_a_layernorm`)."""
    names = [
        *(cfg.get("modules_to_not_convert") or []),
        *(cfg.get("ignore") or []),
        *(cfg.get("exclude_modules") or []),
    ]
    return any(re.search(r"self_attn(\.\*|\*)?$", str(n)) for n in names)


def _compressed_tensors_precision(cfg: dict, where: str) -> str:
    """The weight scheme of a compressed-tensors config's groups (vLLM compressed_tensors.py)."""
    schemes = set()
    for group in (cfg.get("config_groups") or {}).values():
        w = (group or {}).get("weights") or {}
        bits, kind = w.get("num_bits"), str(w.get("type", "int"))
        if bits == 4 and kind == "int":
            schemes.add("int4")
        elif bits == 4 and kind == "float":
            schemes.add("nvfp4")
        elif bits == 8 and kind == "float":
            schemes.add("fp8_block" if w.get("strategy") == "block" else "fp8")
        else:
            raise SpecError(
                f"{where}: compressed-tensors weights of {bits} bits ({kind}) are not "
                "modelled; 4-bit int (W4A16), 4-bit float (NVFP4) and 8-bit float "
                "(FP8) are"
            )
    if len(schemes) != 1:
        raise SpecError(
            f"{where}: compressed-tensors config_groups must hold one weight scheme, found {sorted(schemes) or 'none'}"
        )
    return schemes.pop()


def precision_from_config(cfg: dict | None, where: str) -> tuple[str, str]:
    """(linear_quant, moe_quant) from a config.json `quantization_config`.

    fp8 with weight_block_size is DeepSeek's 128x128 block format (fp8_block), without it
    per-tensor fp8; mxfp4 quantises only the routed experts (vllm/model_executor/layers/
    quantization/mxfp4.py: "MXFP4 linear layer is not implemented - falling back to
    UnquantizedLinearMethod"); compressed-tensors and modelopt quantise what their ignore /
    exclude lists leave, experts always; awq and gptq are int4 for every linear layer."""
    if not cfg:
        return "none", "none"
    method = str(cfg.get("quant_method", "")).strip().lower()
    if method == "fp8":
        p = "fp8_block" if cfg.get("weight_block_size") else "fp8"
        return ("none" if _skips_attention(cfg) else p), p
    if method == "mxfp4":
        return "none", "mxfp4"
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        bits = cfg.get("bits", cfg.get("w_bit", 4))
        if bits != 4:
            raise SpecError(f"{where}: {method} with {bits}-bit weights is not modelled (4-bit is)")
        return "int4", "int4"
    if method == "compressed-tensors":
        p = _compressed_tensors_precision(cfg, where)
    elif method in ("modelopt", "modelopt_fp4"):
        algo = str(cfg.get("quant_algo", "NVFP4" if method == "modelopt_fp4" else "")).upper()
        p = {"FP8": "fp8", "NVFP4": "nvfp4"}.get(algo)
        if p is None:
            raise SpecError(f"{where}: modelopt quant_algo '{algo}' is not modelled (FP8 and NVFP4 are)")
    else:
        raise SpecError(
            f"{where}: quantization_config quant_method '{method}' is not modelled; "
            "use fp8, mxfp4, compressed-tensors, awq, gptq or modelopt"
        )
    return ("none" if _skips_attention(cfg) else p), p


def _count(cfg: dict, key: str, where: str, default=None, minimum: int = 1) -> int:
    """A config.json size field: a whole number >= minimum (0 / null / absent: `default`)."""
    value = cfg.get(key)
    if default is not None and value in (None, 0):  # HF configs write null or 0 for "derive it"
        return default
    if value is None:
        _require(cfg, key, where)
    return integer(value, f"{where}: {key}", minimum=minimum, what="a size")


def model_from_config(cfg: dict, name: str, where: str, hf_id: str = "") -> ModelSpec:
    """Parse Hugging Face config.json fields."""
    if not isinstance(cfg, dict):
        raise SpecError(f"{where}: config: expected a mapping of config.json fields")
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers keep the LM under text_config
        cfg = {**cfg["text_config"], **{k: v for k, v in cfg.items() if k != "text_config"}}
    linear_attention = _linear_attention(cfg, where)
    hidden = _count(cfg, "hidden_size", where)
    heads = _count(cfg, "num_attention_heads", where)
    layers = _count(cfg, "num_hidden_layers", where)
    kv_heads = _count(cfg, "num_key_value_heads", where, default=heads)
    if heads % kv_heads:
        raise SpecError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    head_dim = _count(cfg, "head_dim", where, default=max(hidden // heads, 1))
    mla = None
    if cfg.get("kv_lora_rank"):
        q_lora = _count(cfg, "q_lora_rank", where, default=0, minimum=0) or None
        mla = MLA(
            q_lora,
            _count(cfg, "kv_lora_rank", where),
            _count(cfg, "qk_nope_head_dim", where),
            _count(cfg, "qk_rope_head_dim", where),
            _count(cfg, "v_head_dim", where),
        )
        kv_heads = heads
    dsa = None
    if cfg.get("index_topk"):
        if mla is None:
            raise SpecError(
                f"{where}: index_topk (DeepSeek Sparse Attention) needs MLA; the config has no kv_lora_rank"
            )
        dsa = DSA(
            _count(cfg, "index_n_heads", where),
            _count(cfg, "index_head_dim", where),
            _count(cfg, "index_topk", where),
        )
    moe = None
    num_experts = cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts")
    if num_experts:
        experts_key = next(k for k in ("n_routed_experts", "num_local_experts", "num_experts") if cfg.get(k))
        num_experts = _count(cfg, experts_key, where)
        moe_width = (
            _count(cfg, "moe_intermediate_size", where)
            if cfg.get("moe_intermediate_size")
            else _count(cfg, "intermediate_size", where)
        )
        shared = _count(cfg, "n_shared_experts", where, default=0, minimum=0)
        shared_width = shared * moe_width + _count(cfg, "shared_expert_intermediate_size", where, default=0, minimum=0)
        first_dense = _count(cfg, "first_k_dense_replace", where, default=0, minimum=0)
        if isinstance(cfg.get("mlp_only_layers"), list):
            first_dense = max(first_dense, len(cfg["mlp_only_layers"]))
        top_k = _count(cfg, "num_experts_per_tok", where)
        if top_k > num_experts:
            raise SpecError(f"{where}: num_experts_per_tok {top_k} exceeds the {num_experts} experts")
        if first_dense > layers:
            raise SpecError(f"{where}: first_k_dense_replace {first_dense} exceeds num_hidden_layers {layers}")
        n_group = _count(cfg, "n_group", where, default=1)
        topk_group = _count(cfg, "topk_group", where, default=n_group)
        if num_experts % n_group or topk_group > n_group:
            raise SpecError(
                f"{where}: n_group {n_group} must divide the {num_experts} experts and "
                f"topk_group {topk_group} must not exceed it"
            )
        moe = MoE(num_experts, top_k, moe_width, shared_width, first_dense, n_group, topk_group)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    if not isinstance(cfg.get("quantization_config") or {}, dict):
        raise SpecError(f"{where}: quantization_config: expected a mapping")
    linear_quant, moe_quant = precision_from_config(cfg.get("quantization_config"), where)
    return ModelSpec(
        name=name,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_count(cfg, "intermediate_size", where, default=0, minimum=0),
        vocab_size=_count(cfg, "vocab_size", where),
        max_model_len=_count(cfg, "max_position_embeddings", where, default=4096),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        dtype_bytes=DTYPE_BYTES.get(dtype, 2),
        linear_quant=linear_quant,
        moe_quant=moe_quant if moe else linear_quant,
        moe=moe,
        mla=mla,
        dsa=dsa,
        linear_attention=linear_attention,
        attn_output_gate=bool(cfg.get("attn_output_gate", str(cfg.get("model_type")) == "qwen3_next")),
        qk_norm=str(cfg.get("model_type", "")) in QK_NORM_MODEL_TYPES or bool(cfg.get("use_qk_norm")),
        qk_norm_across_heads=bool(cfg.get("use_qk_norm")) and cfg.get("qk_norm_type") == "per_layer",
        rotary_dim=_rotary_dim(cfg, head_dim, where),
        **_sliding_window(cfg, where),
        hf_id=hf_id,
        architecture=str((cfg.get("architectures") or [""])[0]),
    )


def _sliding_window(cfg: dict, where: str) -> dict:
    """The layers `layer_types` names `sliding_attention` and their window (`sliding_window`);
    none when the config gives no window."""
    layers = _layer_kinds(cfg, where).count("sliding_attention")
    window = _count(cfg, "sliding_window", where, default=0, minimum=0) if layers else 0
    return {"sliding_window_layers": layers if window else 0, "sliding_window": window}


def _rotary_dim(cfg: dict, head_dim: int, where: str) -> int:
    """Dims of each head that rotary rotates (config `rotary_dim`, or `partial_rotary_factor` x
    head_dim, top level or in Qwen3.5's `rope_parameters`); 0 when it rotates all of them."""
    rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
    factor = cfg.get("partial_rotary_factor") or rope.get("partial_rotary_factor")
    if cfg.get("rotary_dim"):
        dim = _count(cfg, "rotary_dim", where)
    elif factor:
        dim = round(float(factor) * head_dim)
    else:
        return 0
    if not 0 < dim <= head_dim:
        raise SpecError(f"{where}: rotary_dim {dim} must be between 1 and head_dim {head_dim}")
    return 0 if dim == head_dim else dim


# Architectures whose attention normalises q and k per head (transformers' modeling_qwen3*.py
# `q_norm` / `k_norm`; vLLM's qwen3.py launches one RMSNorm over each).
QK_NORM_MODEL_TYPES = ("qwen3", "qwen3_moe", "qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text")


def available_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model(name_or_path: str) -> ModelSpec:
    """A card name (`llama-3.1-8b`), a card alias or Hugging Face id (`meta-llama/Llama-3.1-8B-
    Instruct`), a card or config.json path, a model folder holding a config.json, or a Hugging
    Face id whose config.json is in the local Hugging Face cache. Never the network."""
    spec = _find_model(name_or_path)
    return dataclasses.replace(spec, source=name_or_path)


def _find_model(name_or_path: str) -> ModelSpec:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".json", ".yaml", ".yml") and path.exists():
        return _load_file(path)
    if path.is_dir() and (path / "config.json").is_file():
        return _load_file(path / "config.json")
    card = MODELS_DIR / f"{name_or_path.lower()}.yaml"
    if card.exists():
        return _load_file(card)
    if path.suffix in (".json", ".yaml", ".yml"):
        raise SpecError(f"model file not found: {name_or_path}")
    card = card_for_id(name_or_path)
    if card is not None:
        return _load_file(card)
    cached = cached_config(name_or_path)
    if cached is not None:
        spec = _load_file(cached)
        return dataclasses.replace(spec, name=name_or_path.split("/")[-1], hf_id=name_or_path)
    card = card_for_checkpoint(name_or_path, quantised=True)
    if card is not None:  # the weights' format is the deployment's to say, not the name's
        raise SpecError(
            f"unknown model '{name_or_path}': a checkpoint of {card.stem}'s architecture; use the "
            f"card {card.stem}, and a quantised checkpoint's weight format as the deployment's "
            "quantization (fp8, fp8_block, nvfp4, mxfp4, awq, gptq; --quantization on the command line)"
        )
    raise SpecError(
        f"unknown model '{name_or_path}'; known models: {', '.join(available_models())} "
        "(or a Hugging Face id listed in a card's aliases, a config.json path, a model "
        "folder, or an id whose config.json is in the local Hugging Face cache)"
    )


def card_ids() -> dict[str, Path]:
    """Every Hugging Face id a card names (its hf_id and `aliases:`), lower case -> the card."""
    out: dict[str, Path] = {}
    for card in sorted(MODELS_DIR.glob("*.yaml")):
        try:
            raw = yaml.safe_load(card.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for i in [raw.get("hf_id") or ""] + list(raw.get("aliases") or []):
            if i:
                out.setdefault(str(i).lower(), card)
    return out


# What a checkpoint's name adds to its architecture's: a chat or packaging variant, with the same
# weights (replay.py's served ids: meta-llama/Llama-3.1-8B-Instruct), and a quantised checkpoint,
# whose weights' format the name does not settle (the checkpoints aiconfigurator keeps configs
# for, aic-core/src/aiconfigurator_core/model_configs: Qwen3-32B-FP8-Static-PerTensor, field for
# field Qwen3-32B's but for its quantization block; GLM-5-NVFP4, Qwen3-235B-A22B-NVFP4, ...).
# A name stacks them variant first (Llama-3.1-8B-Instruct-FP8), so they come off in the other order.
VARIANT_SUFFIXES = ("-instruct", "-chat", "-it", "-hf", "-base")
QUANTISED_SUFFIXES = ("-fp8-static-pertensor", "-fp8", "-nvfp4")


def card_for_checkpoint(model_id: str, quantised: bool = False, ids: dict[str, Path] | None = None) -> Path | None:
    """The card of the architecture a checkpoint's name says: a card's name, hf_id or alias, or
    the repository name of one, once the suffixes of a chat or packaging variant are off (and,
    with `quantised`, those of a quantised checkpoint: nvidia/Llama-3.1-8B-Instruct-FP8 ->
    llama-3.1-8b, whose precision is then the caller's to set). `ids`: `card_ids()`, if at hand."""
    ids = card_ids() if ids is None else ids
    named: dict[str, Path] = {}
    for hf, card in ids.items():
        for name in (hf, hf.split("/")[-1], card.stem):
            named.setdefault(name, card)
    key = model_id.strip().lower()
    names = [key, key.split("/")[-1]]
    for suffix in (QUANTISED_SUFFIXES if quantised else ()) + VARIANT_SUFFIXES:
        names += [n.removesuffix(suffix) for n in list(names)]
    return next((named[n] for n in names if n in named), None)


def card_for_id(model_id: str) -> Path | None:
    """The card whose hf_id or `aliases:` list names this Hugging Face id (case-insensitive)."""
    return card_ids().get(model_id.strip().lower())


def hf_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_config(model_id: str) -> Path | None:
    """config.json of `org/name` in the Hugging Face cache (models--org--name/snapshots/<rev>/),
    the revision refs/main points at, else the newest snapshot."""
    if "/" not in model_id:
        return None
    repo = hf_cache_dir() / ("models--" + model_id.strip("/").replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        config = repo / "snapshots" / ref.read_text().strip() / "config.json"
        if config.is_file():
            return config
    configs = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return configs[-1] if configs else None


def _load_file(path: Path) -> ModelSpec:
    try:
        raw = strict_json_loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of config fields")
    if "config" in raw:  # a model card
        return model_from_config(raw["config"], raw.get("name", path.stem), str(path), raw.get("hf_id", ""))
    name = path.parent.name if path.name == "config.json" else path.stem
    return model_from_config(raw, name, str(path))
