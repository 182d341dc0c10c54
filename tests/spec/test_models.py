"""Model cards (models/*.yaml) against published parameter counts and hand-computed KV sizes,
and the same spec from a Hugging Face config.json."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from frontier.errors import SpecError
from frontier.paths import MODELS_DIR
from frontier.spec.model import available_models, load_model, model_from_config, precision_from_config

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
    "qwen3-8b": (8.2, None),
    "qwen3.5-27b": (27.0, None),  # the language model of the published 27B
    "mixtral-8x22b": (141.0, 39.0),
    "qwen3-coder-480b-a35b": (480.0, 35.0),
    "deepseek-v3.2": (671.0, 37.0),  # V3 and the DSA indexer (not counted, as for GLM-5)
    "qwen3-0.6b": (0.6, None),  # tied embeddings: 0.44B without them (Qwen/Qwen3-0.6B card)
    "qwen3-1.7b": (1.72, None),  # 1.4B without the tied embeddings (Qwen/Qwen3-1.7B card)
}
# The active figures are published to two significant digits (3.3B, 22B, 37B), i.e. rounded by
# up to ~1.5 %; the exact active counts are checked by hand below.
ACTIVE_REL = 0.02

# Cards of the development set's models. (total B, active B, total rel, active rel, source).
# "Active" here leaves out the input embedding table, a lookup that no GEMM reads: OpenAI's
# definition (the gpt-oss model card, arXiv 2508.10925 Table 1, counts the unembedding, not the
# embedding), and the one the others' rounded figures sit closest to.
PUBLISHED_FRONTIER = {
    # arXiv 2508.10925 Table 1: 116.83B total, 5.13B active. The 0.04B gap is the attention and
    # expert biases and the sinks, which the card does not count.
    "gpt-oss-120b": (116.83, 5.13, 0.001, 0.002),
    # The same table: 20.91B total, 3.61B active.
    "gpt-oss-20b": (20.91, 3.61, 0.001, 0.002),
    # deepseek-ai/DeepSeek-R1 model card: 671B total, 37B activated (two significant digits).
    "deepseek-r1": (671.0, 37.0, 0.001, 0.02),
    # Kimi K2 technical report (arXiv 2507.20534): 1.04T total, 32B activated; K2.5 is the same
    # language model. The card counts 1.026T, 1.3 % under the report's figure.
    "kimi-k2.5": (1040.0, 32.0, 0.015, 0.02),
    # MiniMax-M2 (transformers docs/source/en/model_doc/minimax_m2.md): 230B total, 10B active,
    # M2.5 shares its config; 10B is one significant digit.
    "minimax-m2.5": (230.0, 10.0, 0.01, 0.05),
    # zai-org/GLM-5 model card: 744B total, 40B active (the DSA indexer's 0.73B is not counted).
    "glm-5": (744.0, 40.0, 0.002, 0.01),
    # Kimi-K2-Instruct: the Kimi K2 report's 1.04T / 32B, as for K2.5.
    "kimi-k2": (1040.0, 32.0, 0.015, 0.02),
    # Qwen3.5-397B-A17B and -35B-A3B (their names: one or two significant digits; the vision
    # encoder and the MTP layer are not in the cards).
    "qwen3.5-397b-a17b": (397.0, 17.0, 0.005, 0.05),
    "qwen3.5-35b-a3b": (35.0, 3.0, 0.01, 0.03),
}

REQUIRED_CARDS = set(PUBLISHED) | set(PUBLISHED_FRONTIER)


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


@pytest.mark.parametrize("name", sorted(PUBLISHED_FRONTIER))
def test_frontier_model_parameter_counts_match_published(name):
    total, active, total_rel, active_rel = PUBLISHED_FRONTIER[name]
    m = load_model(name)
    assert m.moe is not None
    assert m.param_count() / 1e9 == pytest.approx(total, rel=total_rel)
    lookup = m.vocab_size * m.hidden_size
    assert (m.param_count(active=True) - lookup) / 1e9 == pytest.approx(active, rel=active_rel)


def test_gpt_oss_120b_exact_parameter_count():
    h, layers = 2880, 36
    attn = h * 64 * 64 + 2 * h * 8 * 64 + 64 * 64 * h  # q, k, v (8 KV heads), o; head_dim 64
    expert = 3 * h * 2880  # gate, up, down of width 2880
    router = h * 128
    emb = 2 * 201088 * h  # embedding + untied LM head
    m = load_model("gpt-oss-120b")
    assert m.param_count() == emb + layers * (attn + 128 * expert + router) == 116_788_838_400
    assert m.param_count(active=True) == emb + layers * (attn + 4 * expert + router)
    assert (m.num_heads, m.num_kv_heads, m.head_dim, m.moe.num_experts, m.moe.top_k) == (64, 8, 64, 128, 4)
    assert m.num_dense_layers == 0 and m.moe.shared_intermediate_size == 0


def test_kimi_k2_5_is_deepseek_v3_with_384_experts_and_one_dense_layer():
    h = 7168
    attn = (
        h * 1536 + 1536 * 64 * (128 + 64) + h * (512 + 64) + 512 * 64 * (128 + 128) + 64 * 128 * h
    )  # MLA with 64 heads
    expert = 3 * h * 2048
    expected = (
        2 * 163840 * h
        + 61 * attn
        + 3 * h * 18432  # one dense layer
        + 60 * ((384 + 1) * expert + h * 384)
    )  # 384 routed + 1 shared, router
    m = load_model("kimi-k2.5")  # read from text_config
    assert m.param_count() == expected
    assert (m.moe.first_dense_layers, m.moe.num_experts, m.moe.top_k, m.num_heads) == (1, 384, 8, 64)


def test_glm_5_mla_dims_and_moe_layers():
    m = load_model("glm-5")
    assert (m.mla.q_lora_rank, m.mla.kv_lora_rank, m.qk_head_dim, m.v_head_dim) == (2048, 512, 256, 256)
    assert (m.num_dense_layers, m.num_moe_layers, m.moe.num_experts) == (3, 75, 256)
    assert m.kv_bytes_per_token == 78 * ((512 + 64) * 2 + 128 + 4)  # + the indexer's fp8 key cache


def test_deepseek_r1_has_deepseek_v3_architecture():
    import dataclasses as dc

    r1, v3 = load_model("deepseek-r1"), load_model("deepseek-v3")
    assert dc.replace(r1, name=v3.name, hf_id=v3.hf_id) == v3


def test_llama_3_1_8b_exact_parameter_count():
    # embed + lm_head: 2 x 128256 x 4096; per layer: q 4096x4096, k,v 4096x1024, o 4096x4096,
    # gate, up, down 3 x 4096x14336 (norm weights are not counted by the model).
    per_layer = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336
    expected = 2 * 128256 * 4096 + 32 * per_layer
    assert expected == 8_029_995_008
    assert load_model("llama-3.1-8b").param_count() == expected


def test_deepseek_v3_exact_active_count():
    h = 7168
    attn = (
        h * 1536
        + 1536 * 128 * (128 + 64)  # q down, q up (nope + rope per head)
        + h * (512 + 64)  # kv down (latent + shared rope key)
        + 512 * 128 * (128 + 128)  # kv up (k nope + v per head)
        + 128 * 128 * h
    )  # o
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


# --- precision ---------------------------------------------------------------------------------


def test_card_precisions_follow_their_quantization_config():
    # (linear_quant, moe_quant, GEMM family of the linear layers, of the experts)
    expected = {
        "deepseek-r1": ("fp8_block", "fp8_block", "fp8", "fp8"),  # fp8 + weight_block_size
        "minimax-m2.5": ("fp8_block", "fp8_block", "fp8", "fp8"),  # only gate / lm_head skipped
        "gpt-oss-120b": ("none", "mxfp4", "bf16", "w4a16"),  # mxfp4: experts only
        "kimi-k2.5": ("none", "int4", "bf16", "w4a16"),  # ignore self_attn, shared, MLP
        "glm-5": ("none", "none", "bf16", "bf16"),  # bf16 checkpoint
        "llama-3.1-8b": ("none", "none", "bf16", "bf16"),
    }
    for name, (linear, moe, gemm, moe_gemm) in expected.items():
        m = load_model(name)
        assert (m.linear_quant, m.moe_quant, m.weight_dtype, m.moe_weight_dtype) == (linear, moe, gemm, moe_gemm), name
    assert load_model("gpt-oss-120b").precision == "bf16 + mxfp4 experts"
    assert load_model("deepseek-r1").precision == "fp8_block"


@pytest.mark.parametrize(
    "qcfg, expected",
    [
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, ("fp8", "fp8")),
        ({"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}, ("fp8_block", "fp8_block")),
        # GLM-5-FP8 skips norms and the indexer's small projections inside self_attn, not attention
        (
            {
                "quant_method": "fp8",
                "weight_block_size": [128, 128],
                "modules_to_not_convert": [
                    "lm_head",
                    "model.layers.0.self_attn.q_a_layernorm",
                    "model.layers.0.self_attn.indexers_proj",
                ],
            },
            ("fp8_block", "fp8_block"),
        ),
        ({"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}, ("none", "mxfp4")),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, ("int4", "int4")),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}, ("int4", "int4")),
        (
            {
                "quant_method": "compressed-tensors",
                "ignore": ["lm_head"],
                "config_groups": {
                    "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "group_size": 128}}
                },
            },
            ("int4", "int4"),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "ignore": ["lm_head"],
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"},
                    }
                },
            },
            ("fp8", "fp8"),
        ),
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, ("fp8", "fp8")),
        (
            {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": ["lm_head", "re:.*self_attn.*"]},
            ("none", "nvfp4"),
        ),
        ({"quant_method": "modelopt_fp4"}, ("nvfp4", "nvfp4")),
        (None, ("none", "none")),
    ],
)
def test_quantization_config_parsing(qcfg, expected):
    assert precision_from_config(qcfg, "config.json") == expected


@pytest.mark.parametrize(
    "qcfg, words",
    [
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "quant_method 'bitsandbytes' is not modelled"),
        ({"quant_method": "gptq", "bits": 8}, "gptq with 8-bit weights is not modelled"),
        ({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}, "quant_algo 'W4A8_AWQ' is not modelled"),
        (
            {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 2, "type": "int"}}}},
            "2 bits (int) are not modelled",
        ),
    ],
)
def test_unknown_quantization_is_one_clear_line(qcfg, words):
    with pytest.raises(SpecError) as e:
        precision_from_config(qcfg, "config.json")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_quantized_config_json_sets_both_parts(tmp_path):
    card = yaml.safe_load((MODELS_DIR / "qwen3-30b-a3b.yaml").read_text())
    card["config"]["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    path = tmp_path / "Qwen3-30B-A3B-FP8" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(card["config"]))
    m = load_model(str(path))
    assert (m.linear_quant, m.moe_quant) == ("fp8_block", "fp8_block")


def test_with_quantization_is_vllm_online_quantization():
    bf16 = load_model("qwen3-30b-a3b")
    fp8 = bf16.with_quantization("fp8")
    assert (fp8.linear_quant, fp8.moe_quant, fp8.weight_dtype) == ("fp8", "fp8", "fp8")
    assert bf16.linear_quant == "none"  # a copy; the card is unchanged
    split = bf16.with_quantization("fp8", moe="fp8_block")
    assert (split.linear_quant, split.moe_quant) == ("fp8", "fp8_block")
    assert bf16.with_quantization("awq").moe_quant == "int4"  # vLLM alias
    with pytest.raises(SpecError, match="'int3' is not a known quantization"):
        bf16.with_quantization("int3")


def test_kv_cache_dtype_sets_kv_bytes():
    m = load_model("llama-3.1-8b")
    assert m.with_kv_cache_dtype("fp8").kv_bytes_per_token == 32 * 8 * 128 * 2 * 1 == 65536
    assert m.with_kv_cache_dtype("auto").kv_bytes_per_token == 131072
    assert load_model("deepseek-r1").with_kv_cache_dtype("fp8_e4m3").kv_bytes_per_token == 61 * 576
    with pytest.raises(SpecError, match="'int8' is not a KV-cache dtype"):
        m.with_kv_cache_dtype("int8")


# --- weight bytes, by hand ---------------------------------------------------------------------


def test_weight_bytes_fp8_online_llama_3_1_8b():
    emb = 2 * 128256 * 4096
    rest = 8_029_995_008 - emb
    assert load_model("llama-3.1-8b").with_quantization("fp8").weight_bytes() == emb * 2 + rest * 1.0
    assert load_model("llama-3.1-8b").with_quantization("gptq").weight_bytes() == emb * 2 + rest * (4 + 16 / 128) / 8


def test_weight_bytes_fp8_block_minimax_m2_5():
    h, layers = 3072, 62
    attn = h * 48 * 128 + 2 * h * 8 * 128 + 48 * 128 * h
    experts = 256 * 3 * h * 1536
    bf16 = 2 * 200064 * h + layers * h * 256  # embeddings, LM head, router
    block = 1 + 4 / 128**2  # fp8 + one fp32 scale per 128x128 block
    assert load_model("minimax-m2.5").weight_bytes() == pytest.approx(
        bf16 * 2 + layers * (attn + experts) * block, rel=1e-12
    )


def test_weight_bytes_mxfp4_gpt_oss_120b():
    h, layers = 2880, 36
    attn = h * 64 * 64 + 2 * h * 8 * 64 + 64 * 64 * h
    experts = 128 * 3 * h * 2880
    bf16 = 2 * 201088 * h + layers * (attn + h * 128)  # embeddings, LM head, attention, router
    mxfp4 = (4 + 8 / 32) / 8  # e2m1 + one e8m0 scale per 32
    expected = bf16 * 2 + layers * experts * mxfp4
    assert load_model("gpt-oss-120b").weight_bytes() == pytest.approx(expected, rel=1e-12)
    assert expected / 2**30 == pytest.approx(60.69, abs=0.01)  # the 60.8 GiB checkpoint


def test_weight_bytes_int4_kimi_k2_5():
    h = 7168
    attn = 61 * (h * 1536 + 1536 * 64 * 192 + h * 576 + 512 * 64 * 256 + 64 * 128 * h)
    dense_and_shared = 3 * h * 18432 + 60 * 3 * h * 2048
    router = 60 * h * 384
    experts = 60 * 384 * 3 * h * 2048
    expected = (2 * 163840 * h + attn + dense_and_shared + router) * 2 + experts * (4 + 16 / 128) / 8
    assert load_model("kimi-k2.5").weight_bytes() == pytest.approx(expected, rel=1e-12)


def test_lightning_attention_is_refused_with_one_line():
    # MiniMax-M1's attn_type_list: 0 marks a lightning (linear) attention layer.
    cfg = {
        "hidden_size": 6144,
        "num_attention_heads": 64,
        "num_hidden_layers": 8,
        "vocab_size": 200064,
        "attn_type_list": [0, 0, 0, 0, 0, 0, 0, 1],
    }
    with pytest.raises(SpecError) as e:
        model_from_config(cfg, "m", "config.json")
    assert str(e.value) == (
        "config.json: 7 of 8 layers are lightning_attention; linear-attention layers are not "
        "modelled (full and sliding-window softmax attention and gated DeltaNet linear attention are)"
    )


@pytest.mark.parametrize("name, non_embedding", [("qwen3-0.6b", 0.44), ("qwen3-1.7b", 1.4)])
def test_small_qwen3_cards_tie_their_embeddings(name, non_embedding):
    # Qwen's model cards give the count without embeddings; tied, the table is counted once.
    m = load_model(name)
    assert m.tie_word_embeddings
    assert (m.param_count() - m.vocab_size * m.hidden_size) / 1e9 == pytest.approx(non_embedding, abs=0.01)
