"""--model as a Hugging Face id: card aliases, a model folder, the local Hugging Face cache."""

from __future__ import annotations

import json

import pytest
import yaml

from frontier.errors import SpecError
from frontier.paths import MODELS_DIR
from frontier.spec.model import available_models, card_for_checkpoint, load_model


def test_aliases_resolve_to_their_card():
    m = load_model("meta-llama/Llama-3.1-8B-Instruct")
    assert m == load_model("llama-3.1-8b") and m.served_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert load_model("META-LLAMA/LLAMA-3.1-70B-INSTRUCT") == load_model("llama-3.1-70b")
    assert load_model("deepseek-ai/DeepSeek-R1-0528") == load_model("deepseek-r1")
    assert load_model("llama-3.1-8b").served_id == "meta-llama/Llama-3.1-8B"  # the card's hf_id


def test_every_alias_is_unique_and_names_one_card():
    seen = {}
    for card in available_models():
        raw = yaml.safe_load((MODELS_DIR / f"{card}.yaml").read_text())
        for alias in [raw["hf_id"]] + list(raw.get("aliases") or []):
            assert alias.lower() not in seen, (alias, seen.get(alias.lower()), card)
            seen[alias.lower()] = card
            assert load_model(alias).name == card


@pytest.mark.parametrize(
    "checkpoint, card",
    [
        ("Qwen/Qwen3-32B-FP8-Static-PerTensor", "qwen3-32b"),
        ("Qwen/Qwen3-235B-A22B-FP8", "qwen3-235b-a22b"),
        ("nvidia/Llama-3.1-8B-Instruct-FP8", "llama-3.1-8b"),
        ("nvidia/GLM-5-NVFP4", "glm-5"),
        ("zai-org/GLM-5.1-FP8", "glm-5"),
        ("nvidia/DeepSeek-V3.1-NVFP4", "deepseek-v3"),
        ("Qwen/Qwen3-VL-8B-Instruct", None),  # a vision model: another context and an encoder
    ],
)
def test_a_quantised_or_chat_checkpoint_names_its_architectures_card(checkpoint, card):
    found = card_for_checkpoint(checkpoint, quantised=True)
    assert (found and found.stem) == card


def test_a_quantised_checkpoint_is_pointed_to_its_card_and_a_quantization():
    with pytest.raises(SpecError) as e:
        load_model("Qwen/Qwen3-32B-FP8")
    msg = str(e.value)
    assert "a checkpoint of qwen3-32b's architecture" in msg and "--quantization" in msg
    assert "\n" not in msg


def _cache_entry(root, model_id: str, config: dict, rev: str = "abc123") -> None:
    repo = root / ("models--" + model_id.replace("/", "--"))
    (repo / "snapshots" / rev).mkdir(parents=True)
    (repo / "snapshots" / rev / "config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)


def test_config_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    card = yaml.safe_load((MODELS_DIR / "qwen2.5-7b.yaml").read_text())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    _cache_entry(tmp_path, "someorg/My-Finetune-7B", card["config"])
    m = load_model("someorg/My-Finetune-7B")
    assert m.name == "My-Finetune-7B" and m.hf_id == "someorg/My-Finetune-7B"
    assert m.param_count() == load_model("qwen2.5-7b").param_count()
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    _cache_entry(tmp_path / "home" / "hub", "other/Model", card["config"])
    assert load_model("other/Model").num_layers == card["config"]["num_hidden_layers"]


def test_model_folder(tmp_path):
    card = yaml.safe_load((MODELS_DIR / "llama-3.1-8b.yaml").read_text())
    (tmp_path / "Llama-local").mkdir()
    (tmp_path / "Llama-local" / "config.json").write_text(json.dumps(card["config"]))
    assert load_model(str(tmp_path / "Llama-local")).num_heads == 32


def test_unknown_id_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SpecError, match="unknown model 'nobody/Nothing-1B'.*local Hugging Face cache"):
        load_model("nobody/Nothing-1B")
