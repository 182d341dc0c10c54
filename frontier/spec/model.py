"""LLM architecture from a model card (`models/<name>.yaml`) or any Hugging Face config.json.

A card keeps the config.json keys verbatim under `config:`, so a card and a config.json go
through the same parser. Dense (Llama, Qwen), MoE (Mixtral, Qwen3-MoE) and MLA + MoE with
shared experts and dense first layers (DeepSeek-V2/V3) are understood.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from frontier.errors import SpecError
from frontier.paths import MODELS_DIR

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
class MoE:
    num_experts: int
    top_k: int
    intermediate_size: int           # per routed expert
    shared_intermediate_size: int    # total width of the shared expert(s); 0 if none
    first_dense_layers: int          # leading layers with a dense MLP (DeepSeek first_k_dense_replace)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int           # dense MLP width (dense layers)
    vocab_size: int
    max_model_len: int
    tie_word_embeddings: bool = False
    dtype_bytes: int = 2             # activations and KV cache
    weight_dtype: str = "bf16"       # linear layers: "fp8" for block-quantised checkpoints
    moe: MoE | None = None
    mla: MLA | None = None
    hf_id: str = ""
    # What `load_model` was given (card, alias, path): a scenario written back names it so.
    source: str = field(default="", compare=False)

    @property
    def served_id(self) -> str:
        """The id an engine serves it under (`vllm serve ID`): the Hugging Face id it was asked
        for by, else the card's hf_id, else its name."""
        if "/" in self.source and not self.source.endswith((".json", ".yaml", ".yml")) \
                and not Path(self.source).expanduser().exists():
            return self.source
        return self.hf_id or self.name

    # --- per-layer structure -------------------------------------------------------------
    def is_moe_layer(self, layer: int) -> bool:
        return self.moe is not None and layer >= self.moe.first_dense_layers

    @property
    def num_moe_layers(self) -> int:
        return 0 if self.moe is None else self.num_layers - self.moe.first_dense_layers

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

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
            q = (h * m.q_lora_rank + m.q_lora_rank * self.num_heads * self.qk_head_dim
                 if m.q_lora_rank else h * self.num_heads * self.qk_head_dim)
            kv_down = h * (m.kv_lora_rank + m.qk_rope_head_dim)
            kv_up = m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
            out = self.num_heads * m.v_head_dim * h
            return q + kv_down + kv_up + out
        q = h * self.num_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        return q + kv + self.num_heads * self.head_dim * h

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
        per_layer_attn = self.attention_params()
        total = self.embedding_params() + self.num_layers * per_layer_attn
        total += self.num_dense_layers * self.dense_mlp_params()
        if self.moe:
            experts = self.moe.top_k if active else self.moe.num_experts
            total += self.num_moe_layers * (experts * self.expert_params()
                                            + self.shared_expert_params() + self.router_params())
        return total

    @property
    def weight_bytes_per_param(self) -> float:
        return 1.0 if self.weight_dtype == "fp8" else float(self.dtype_bytes)

    def weight_bytes(self) -> float:
        """Linear layers in the weight dtype; embeddings and LM head stay in bf16."""
        emb = self.embedding_params()
        return (self.param_count() - emb) * self.weight_bytes_per_param + emb * self.dtype_bytes

    # --- KV cache ----------------------------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token over all layers (no parallelism)."""
        if self.mla:  # the compressed latent plus the shared rope key
            per_layer = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        else:
            per_layer = 2 * self.num_kv_heads * self.head_dim
        return per_layer * self.num_layers * self.dtype_bytes


def _require(cfg: dict, key: str, where: str):
    if key not in cfg:
        raise SpecError(f"{where}: config has no '{key}' (needed for the model architecture)")
    return cfg[key]


def model_from_config(cfg: dict, name: str, where: str, hf_id: str = "") -> ModelSpec:
    """Parse Hugging Face config.json fields."""
    if "text_config" in cfg:  # multimodal wrappers keep the LM under text_config
        cfg = {**cfg["text_config"], **{k: v for k, v in cfg.items() if k != "text_config"}}
    hidden = _require(cfg, "hidden_size", where)
    heads = _require(cfg, "num_attention_heads", where)
    layers = _require(cfg, "num_hidden_layers", where)
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    mla = None
    if cfg.get("kv_lora_rank"):
        mla = MLA(cfg.get("q_lora_rank"), cfg["kv_lora_rank"], cfg["qk_nope_head_dim"],
                  cfg["qk_rope_head_dim"], cfg["v_head_dim"])
        kv_heads = heads
    moe = None
    num_experts = cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts")
    if num_experts:
        moe_width = cfg.get("moe_intermediate_size") or _require(cfg, "intermediate_size", where)
        shared = cfg.get("n_shared_experts") or 0
        shared_width = shared * moe_width + (cfg.get("shared_expert_intermediate_size") or 0)
        first_dense = cfg.get("first_k_dense_replace") or 0
        if cfg.get("mlp_only_layers"):
            first_dense = max(first_dense, len(cfg["mlp_only_layers"]))
        moe = MoE(int(num_experts), int(_require(cfg, "num_experts_per_tok", where)),
                  int(moe_width), int(shared_width), int(first_dense))
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    quant = cfg.get("quantization_config") or {}
    weight_dtype = "fp8" if str(quant.get("quant_method", "")).lower() == "fp8" else "bf16"
    return ModelSpec(
        name=name, hidden_size=int(hidden), num_layers=int(layers), num_heads=int(heads),
        num_kv_heads=int(kv_heads), head_dim=int(head_dim),
        intermediate_size=int(cfg.get("intermediate_size") or 0),
        vocab_size=int(_require(cfg, "vocab_size", where)),
        max_model_len=int(cfg.get("max_position_embeddings") or 4096),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        dtype_bytes=DTYPE_BYTES.get(dtype, 2), weight_dtype=weight_dtype, moe=moe, mla=mla, hf_id=hf_id)


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
    raise SpecError(f"unknown model '{name_or_path}'; known models: {', '.join(available_models())} "
                    "(or a Hugging Face id listed in a card's aliases, a config.json path, a model "
                    "folder, or an id whose config.json is in the local Hugging Face cache)")


def card_for_id(model_id: str) -> Path | None:
    """The card whose hf_id or `aliases:` list names this Hugging Face id (case-insensitive)."""
    low = model_id.strip().lower()
    for card in sorted(MODELS_DIR.glob("*.yaml")):
        try:
            raw = yaml.safe_load(card.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        ids = [raw.get("hf_id") or ""] + list(raw.get("aliases") or [])
        if low in (str(i).lower() for i in ids):
            return card
    return None


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
        raw = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid {path.suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of config fields")
    if "config" in raw:  # a model card
        return model_from_config(raw["config"], raw.get("name", path.stem), str(path), raw.get("hf_id", ""))
    name = path.parent.name if path.name == "config.json" else path.stem
    return model_from_config(raw, name, str(path))
