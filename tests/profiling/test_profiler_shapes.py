"""Shapes come from the model cards: every linear layer's (k, n) at every TP degree is planned."""

from __future__ import annotations

import textwrap

import pytest

from profiler import shapes

CARDS = {
    "llama-3.1-8b": """
        name: llama-3.1-8b
        config:
          hidden_size: 4096
          num_attention_heads: 32
          num_key_value_heads: 8
          num_hidden_layers: 32
          intermediate_size: 14336
          vocab_size: 128256
    """,
    "qwen3-30b-a3b": """
        name: qwen3-30b-a3b
        config:
          hidden_size: 2048
          num_attention_heads: 32
          num_key_value_heads: 4
          head_dim: 128
          num_hidden_layers: 48
          intermediate_size: 6144
          moe_intermediate_size: 768
          num_experts: 128
          num_experts_per_tok: 8
          vocab_size: 151936
    """,
    "deepseek-v3": """
        name: deepseek-v3
        config:
          hidden_size: 7168
          num_attention_heads: 128
          num_key_value_heads: 128
          num_hidden_layers: 61
          intermediate_size: 18432
          moe_intermediate_size: 2048
          n_routed_experts: 256
          n_shared_experts: 1
          num_experts_per_tok: 8
          first_k_dense_replace: 3
          q_lora_rank: 1536
          kv_lora_rank: 512
          qk_nope_head_dim: 128
          qk_rope_head_dim: 64
          v_head_dim: 128
          vocab_size: 129280
    """,
}


@pytest.fixture()
def cards(tmp_path):
    for name, text in CARDS.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text))
    (tmp_path / "half-written.yaml").write_text("name: x\nconfig: {hidden_size: 8}\n")
    return tmp_path


def by_layer(spec, tp):
    return {lin.name.split(".")[-1]: (lin.k, lin.n) for lin in shapes.linears(spec, tp)}


def test_cards_load_and_a_broken_card_is_skipped(cards):
    warnings = []
    specs = shapes.load_models(cards, warn=warnings.append)
    assert [s.name for s in specs] == ["deepseek-v3", "llama-3.1-8b", "qwen3-30b-a3b"]
    assert len(warnings) == 1 and "half-written.yaml" in warnings[0]


def test_dense_gqa_layers_per_tp(cards):
    llama = {s.name: s for s in shapes.load_models(cards, warn=lambda m: None)}["llama-3.1-8b"]
    assert by_layer(llama, 1) == {
        "qkv": (4096, 6144),
        "o": (4096, 4096),
        "gate_up": (4096, 28672),
        "down": (14336, 4096),
        "lm_head": (4096, 128256),
    }
    assert by_layer(llama, 4) == {
        "qkv": (4096, (8 + 2 * 2) * 128),
        "o": (1024, 4096),
        "gate_up": (4096, 7168),
        "down": (3584, 4096),
        "lm_head": (4096, 32064),
    }
    # TP 8 = kv heads: one kv head per GPU
    assert by_layer(llama, 8)["qkv"] == (4096, (4 + 2) * 128)
    heads = shapes.head_configs(llama, 8)
    assert [(h.hq, h.hkv, h.d, h.dv) for h in heads] == [(4, 1, 128, 128)]


def test_mla_moe_layers(cards):
    dsv3 = {s.name: s for s in shapes.load_models(cards, warn=lambda m: None)}["deepseek-v3"]
    layers = by_layer(dsv3, 8)
    assert layers["q_a"] == (7168, 1536) and layers["kv_a"] == (7168, 576)
    assert layers["q_b"] == (1536, 16 * 192) and layers["kv_b"] == (512, 16 * 256)
    assert layers["o"] == (16 * 128, 7168)
    assert layers["shared_gate_up"] == (7168, 2 * 2048 // 8) and layers["router"] == (7168, 256)
    assert layers["gate_up"] == (7168, 2 * 18432 // 8)  # the 3 dense layers
    prefill, decode = shapes.head_configs(dsv3, 1)
    assert (prefill.hq, prefill.hkv, prefill.d, prefill.dv, prefill.use) == (128, 128, 192, 128, "prefill")
    assert (decode.hq, decode.hkv, decode.d, decode.dv, decode.mla) == (128, 1, 576, 512, True)
    projs = {(p.model, p.proj): p for p in shapes.moe_projs(dsv3)}
    ep8 = projs[("deepseek-v3-ep8", "gate_up")]
    assert (ep8.experts, ep8.topk, ep8.k, ep8.n) == (32, 8, 7168, 4096)  # the reference's dsv3-ep8
    tp8 = projs[("deepseek-v3-tp8", "down")]
    assert (tp8.experts, tp8.k, tp8.n) == (256, 256, 7168)


def test_elementwise_ops_are_the_graphs_at_that_tp(cards):
    """Qwen3-30B-A3B at TP 2 (32 q / 4 kv heads of 128, hidden 2048, experts of 768, 128 experts):
    every elementwise operator the simulator asks for, by hand."""
    qwen = {s.name: s for s in shapes.load_models(cards, warn=lambda m: None)}["qwen3-30b-a3b"]
    ops = {(o.name, o.width) for o in shapes.elementwise_ops(qwen, 2)}
    assert ops == {
        ("add_rmsnorm", 2048),  # residual add + norm, before attention and before the MoE
        ("rmsnorm", 2048),  # the final norm (this card has no q/k norm)
        ("rotary", (16 + 2) * 128),  # q and k heads
        ("kv_cache_write", 2 * 2 * 128),  # k and v of 2 heads
        ("silu_mul", 768 // 2),  # the experts' output width at TP 2
        ("sampling", 151936),  # (top-k gating is not timed: see shapes.TIMED_ELEMENTWISE)
    }


def test_gemm_plan_covers_every_card_and_tp(cards):
    pytest.importorskip("torch")
    from profiler.bench import gemm
    from profiler.runner import Context

    specs = shapes.load_models(cards, warn=lambda m: None)
    ctx = Context(device="cpu", dry_run=False, quick=True)
    planned = {(c.row["k"], c.row["n"]) for c in gemm.plan(ctx, specs) if c.row["dtype"] == "bf16"}
    ms = {c.row["m"] for c in gemm.plan(ctx, specs)}
    assert min(ms) == 1 and max(ms) >= 16384
    for spec in specs:
        for tp in shapes.TP_DEGREES:
            if shapes.tp_ok(spec, tp):
                for lin in shapes.linears(spec, tp):
                    assert (lin.k, lin.n) in planned, (spec.name, tp, lin)


def test_real_model_cards_parse():
    from frontier.paths import MODELS_DIR

    cards = sorted(MODELS_DIR.glob("*.yaml"))
    if not cards:
        pytest.skip("no model cards in models/ yet")
    specs = shapes.load_models(MODELS_DIR, warn=lambda m: None)
    for spec in specs:
        assert shapes.linears(spec, 1) and shapes.head_configs(spec, 1)
