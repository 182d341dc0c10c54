"""Model cards (models/*.yaml) against published parameter counts and hand-computed KV sizes,
and the same spec from a Hugging Face config.json."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from frontier.errors import SpecError
from frontier.paths import MODELS_DIR
from frontier.spec.model import available_models, load_model

# Published totals (model cards / papers), in billions. (total, active) for MoE.
PUBLISHED = {
    "llama-3.1-8b": (8.03, None),
    "llama-3.1-70b": (70.6, None),
    "llama-2-7b": (6.74, None),
    "qwen3-32b": (32.8, None),
    "qwen3-30b-a3b": (30.5, 3.3),
    "qwen3-235b-a22b": (235.0, 22.0),
    "mixtral-8x7b": (46.7, 12.9),
    "deepseek-v3": (671.0, 37.0),
}
# The active figures are published to two significant digits (3.3B, 22B, 37B), i.e. rounded by
# up to ~1.5 %; the exact active counts are checked by hand below.
ACTIVE_REL = 0.02

REQUIRED_CARDS = set(PUBLISHED)


def test_every_required_card_exists():
    assert REQUIRED_CARDS <= set(available_models())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    total, active = PUBLISHED[name]
    m = load_model(name)
    assert m.param_count() / 1e9 == pytest.approx(total, rel=0.01)
    if active is None:
        assert m.moe is None
        assert m.param_count(active=True) == m.param_count()
    else:
        assert m.moe is not None
        assert m.param_count(active=True) / 1e9 == pytest.approx(active, rel=ACTIVE_REL)


def test_llama_3_1_8b_exact_parameter_count():
    # embed + lm_head: 2 x 128256 x 4096; per layer: q 4096x4096, k,v 4096x1024, o 4096x4096,
    # gate, up, down 3 x 4096x14336 (norm weights are not counted by the model).
    per_layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336
    expected = 2 * 128256 * 4096 + 32 * per_layer
    assert expected == 8_029_995_008
    assert load_model("llama-3.1-8b").param_count() == expected


def test_deepseek_v3_exact_active_count():
    h = 7168
    attn = (h * 1536 + 1536 * 128 * (128 + 64)      # q down, q up (nope + rope per head)
            + h * (512 + 64)                        # kv down (latent + shared rope key)
            + 512 * 128 * (128 + 128)               # kv up (k nope + v per head)
            + 128 * 128 * h)                        # o
    dense_mlp = 3 * h * 18432
    expert = 3 * h * 2048
    moe_active = 8 * expert + 1 * expert + h * 256  # top-8 routed + 1 shared + router
    expected = 2 * 129280 * h + 61 * attn + 3 * dense_mlp + 58 * moe_active
    m = load_model("deepseek-v3")
    assert m.param_count(active=True) == expected
    assert m.param_count() == expected + 58 * (256 - 8) * expert


def test_qwen3_30b_a3b_exact_active_count():
    h = 2048
    attn = h * 32 * 128 + 2 * h * 4 * 128 + 32 * 128 * h
    moe_active = 8 * 3 * h * 768 + h * 128
    expected = 2 * 151936 * h + 48 * (attn + moe_active)
    assert load_model("qwen3-30b-a3b").param_count(active=True) == expected


def test_kv_bytes_per_token_llama_3_1_8b():
    # 32 layers x 8 KV heads x 128 dims x 2 (K and V) x 2 bytes (bf16)
    assert load_model("llama-3.1-8b").kv_bytes_per_token == 32 * 8 * 128 * 2 * 2 == 131072


def test_kv_bytes_per_token_llama_3_1_70b():
    assert load_model("llama-3.1-70b").kv_bytes_per_token == 80 * 8 * 128 * 2 * 2 == 327680


def test_kv_bytes_per_token_deepseek_v3_mla():
    # MLA caches the 512-dim latent plus the shared 64-dim rope key, per layer, in bf16.
    assert load_model("deepseek-v3").kv_bytes_per_token == 61 * (512 + 64) * 2 == 70272


def test_structure_of_the_moe_cards():
    mixtral = load_model("mixtral-8x7b")
    assert (mixtral.moe.num_experts, mixtral.moe.top_k) == (8, 2)
    assert mixtral.moe.shared_intermediate_size == 0 and mixtral.num_moe_layers == 32
    ds = load_model("deepseek-v3")
    assert ds.mla is not None and ds.mla.kv_lora_rank == 512 and ds.mla.qk_rope_head_dim == 64
    assert (ds.moe.num_experts, ds.moe.top_k, ds.moe.first_dense_layers) == (256, 8, 3)
    assert ds.moe.shared_intermediate_size == 2048
    assert (ds.num_dense_layers, ds.num_moe_layers) == (3, 58)
    assert not ds.is_moe_layer(2) and ds.is_moe_layer(3)
    q = load_model("qwen3-235b-a22b")
    assert (q.moe.num_experts, q.moe.top_k, q.num_layers) == (128, 8, 94)


def test_max_model_len():
    assert load_model("llama-3.1-8b").max_model_len == 131072
    assert load_model("llama-2-7b").max_model_len == 4096


@pytest.mark.parametrize("name", available_models())
def test_config_json_gives_the_same_spec_as_the_card(name, tmp_path):
    card = yaml.safe_load((MODELS_DIR / f"{name}.yaml").read_text())
    path = tmp_path / "downloaded" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(card["config"]))
    from_json = load_model(str(path))
    assert from_json.name == "downloaded"  # a config.json is named after its folder
    assert from_json == dataclasses.replace(load_model(name), name="downloaded", hf_id="")


def test_card_lookup_is_case_insensitive_and_by_path():
    assert load_model("Llama-3.1-8B") == load_model("llama-3.1-8b")
    assert load_model(str(MODELS_DIR / "llama-3.1-8b.yaml")) == load_model("llama-3.1-8b")


def test_unknown_model_names_the_known_ones():
    with pytest.raises(SpecError) as e:
        load_model("llama-9")
    msg = str(e.value)
    assert "unknown model 'llama-9'" in msg and "llama-3.1-8b" in msg and "config.json" in msg


def test_config_missing_a_required_field(tmp_path):
    card = yaml.safe_load((MODELS_DIR / "llama-3.1-8b.yaml").read_text())
    del card["config"]["vocab_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(card["config"]))
    with pytest.raises(SpecError, match="vocab_size"):
        load_model(str(path))
