"""DeepSeek Sparse Attention (GLM-5, DeepSeek-V3.2) as SGLang runs it: the lightning indexer's
kernels, the sparse MLA attention capped at index_topk, the index-key cache and the indexer's
replicated weights, hand-computed for a tiny config."""

from __future__ import annotations

from collections import Counter

import pytest

from frontier.errors import SpecError
from frontier.ops.graph import BatchStats, Parallel, attention_core, sparse_selected_pairs, step_operators
from frontier.ops.operators import (
    AttnDecode,
    AttnPrefill,
    Elementwise,
    Gemm,
    IndexerScore,
    SparseAttention,
)
from frontier.predict.base import Predictor
from frontier.predict.blocks import BlockCosts
from frontier.predict.roofline import RooflineModel
from frontier.spec.hardware import get_gpu
from frontier.spec.memory import weight_bytes_per_gpu
from frontier.spec.model import load_model, model_from_config

MLA_CONFIG = {
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "q_lora_rank": 96,
    "kv_lora_rank": 64,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "v_head_dim": 32,
    "intermediate_size": 512,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
}
DSA_CONFIG = {**MLA_CONFIG, "index_n_heads": 4, "index_head_dim": 32, "index_topk": 16}
LAYERS = 2


def tiny(dsa: bool = True):
    return model_from_config(DSA_CONFIG if dsa else MLA_CONFIG, "tiny-dsa" if dsa else "tiny-mla", "test")


def decode(batch: int, ctx: int) -> BatchStats:
    return BatchStats(num_decode=batch, decode_sum_kv=batch * ctx, decode_max_kv=ctx, num_sampled=batch)


def prefill(q: int, c: int = 0) -> BatchStats:
    return BatchStats(1, q, q * q, q * c, q + c, q, q + c, num_sampled=1)


def indexer_ops(tokens: int, scoring: int = 0, pairs: int = 0, keys: int = 0, decode: bool = False) -> Counter:
    """The tiny model's indexer, per step (x 2 layers): 4 index heads of 32 dims, rope 16."""
    ops = [
        Gemm(tokens, 256, 32),  # wk
        Elementwise("layernorm", tokens, 32),
        Elementwise("rotary", tokens, 16 + (4 * 16 if scoring else 0)),
        Elementwise("copy", tokens, 16),  # the key's rope dims written back
        Elementwise("hadamard", tokens, 32),
        Elementwise("quant_fp8", tokens, 32),
        Elementwise("index_cache_write", tokens, 32),
    ]
    if scoring:
        ops += [
            Gemm(scoring, 96, 4 * 32),  # wq_b on the q latent
            Elementwise("copy", scoring, 4 * 16),  # the query's rope dims written back
            Elementwise("hadamard", scoring, 4 * 32),
            Elementwise("quant_fp8", scoring, 4 * 32),
            IndexerScore("score", scoring, pairs, keys, 4, 32, 16),
            IndexerScore("topk", scoring, pairs, keys, 4, 32, 16),
        ]
        if not decode:  # decode hides weights_proj on the main stream behind the q/k stream
            ops += [Gemm(scoring, 256, 4), Elementwise("head_gate", scoring, 4)]
    out = Counter({op: LAYERS for op in ops})
    if scoring and decode:  # two eager multiplies by the query scales after the streams join
        out[Elementwise("head_gate_scale", scoring, 4)] = 2 * LAYERS
    return out


def counted(ops) -> Counter:
    c: Counter = Counter()
    for op, n in ops:
        c[op] += n
    return c


def test_the_indexer_exists_only_with_index_topk():
    assert tiny(dsa=False).dsa is None
    d = tiny().dsa
    assert (d.index_n_heads, d.index_head_dim, d.index_topk) == (4, 32, 16)
    assert load_model("glm-5").dsa.index_topk == 2048
    assert load_model("deepseek-r1").dsa is None


def test_short_decode_adds_the_indexer_and_nothing_else():
    # 2 sequences of 10 tokens (under index_topk 16): attention as dense MLA, plus the indexer
    # scoring each decode token against its 10 cached keys.
    batch = decode(2, 10)
    dense = counted(step_operators(tiny(dsa=False), Parallel(), batch))
    sparse = counted(step_operators(tiny(), Parallel(), batch))
    assert sparse - dense == indexer_ops(2, scoring=2, pairs=20, keys=20, decode=True)
    assert dense - sparse == Counter()


def test_long_decode_attends_index_topk_tokens_but_scores_the_whole_context():
    ops = counted(attention_core(tiny(), Parallel(), decode(2, 100)))
    attn = [op for op in ops if isinstance(op, AttnDecode)]
    assert attn == [AttnDecode(2, 2 * 16, 16, 8, 1, 64 + 16, 64, "flash")]
    assert ops[IndexerScore("score", 2, 200, 200, 4, 32, 16)] == LAYERS
    assert ops[IndexerScore("topk", 2, 200, 200, 4, 32, 16)] == LAYERS


def test_a_large_decode_batch_runs_the_indexer_on_one_stream():
    # Over 1,024 tokens SGLang does not split the indexer over two streams: weights_proj and
    # its fused scaling are launched in line, not hidden.
    ops = counted(attention_core(tiny(), Parallel(), decode(1100, 10)))
    assert ops[Gemm(1100, 256, 4)] == LAYERS and ops[Elementwise("head_gate", 1100, 4)] == LAYERS
    assert Elementwise("head_gate_scale", 1100, 4) not in ops


def test_short_prefill_caches_index_keys_without_scoring():
    # 10 new tokens, the longest sequence under index_topk: SGLang's k-only path and dense MHA.
    model = tiny()
    ops = counted(attention_core(model, Parallel(), prefill(10)))
    dense = counted(attention_core(tiny(dsa=False), Parallel(), prefill(10)))
    assert ops - dense == indexer_ops(10)
    assert any(isinstance(op, AttnPrefill) for op in ops)
    assert not any(isinstance(op, (IndexerScore, SparseAttention)) for op in ops)


def test_long_prefill_scores_causally_and_attends_sparsely_with_64_padded_heads():
    # 40 new tokens, no cache: token j scores its j keys (820 pairs) and attends min(j, 16) of
    # them: 1 + ... + 16 + 24 x 16 = 520. 8 heads padded to FlashMLA's 64.
    ops = counted(attention_core(tiny(), Parallel(), prefill(40)))
    assert ops - indexer_ops(40, scoring=40, pairs=820, keys=40) == Counter(
        {
            Gemm(40, 8 * 32, 64): LAYERS,  # q_nope absorbed into the latent
            SparseAttention(40, 520, 40, 64, 64 + 16, 64): LAYERS,
            Gemm(40, 8 * 64, 32): LAYERS,  # latent out -> v heads
        }
    )
    assert not any(isinstance(op, AttnPrefill) for op in ops)


def test_a_chunk_after_a_long_cache_attends_topk_per_token():
    # 10 new tokens after 30 cached: each scores 31..40 keys (355 pairs), attends 16 (160).
    ops = counted(attention_core(tiny(), Parallel(), prefill(10, 30)))
    assert ops[IndexerScore("score", 10, 355, 40, 4, 32, 16)] == LAYERS
    assert ops[SparseAttention(10, 160, 40, 64, 80, 64)] == LAYERS


@pytest.mark.parametrize("q", [1, 5, 16, 17, 40])
@pytest.mark.parametrize("c", [0, 3, 15, 16, 50])
def test_selected_pairs_are_sum_of_min_position_topk(q, c):
    brute = sum(min(c + j, 16) for j in range(1, q + 1))
    assert sparse_selected_pairs(prefill(q, c), 16) == brute
    two = BatchStats(2, 2 * q, 2 * q * q, 2 * q * c, 2 * (q + c), q, q + c)
    assert sparse_selected_pairs(two, 16) == 2 * brute


def test_indexer_kernels_flops_and_bytes():
    score = IndexerScore("score", 2, 200, 200, 4, 32, 16)
    assert score.flops == 2 * 4 * 32 * 200
    # fp8 queries (2 x 4 x 32) + fp8 keys with fp32 scales (200 x 36) + fp32 logits (200 x 4)
    assert score.bytes_moved(2.0) == 256 + 7200 + 800
    topk = IndexerScore("topk", 2, 200, 200, 4, 32, 16)
    assert topk.flops == 0 and topk.bytes_moved(2.0) == 800 + 2 * 16 * 4
    sparse = SparseAttention(40, 520, 40, 64, 80, 64)
    assert sparse.flops == 2 * 64 * 520 * 144
    assert sparse.bytes_moved(2.0) == 2 * (40 * 80 + 40 * 64 * 144)


def test_kv_bytes_per_token_hold_the_index_keys():
    # Per layer: the bf16 latent (64 + 16) x 2 bytes + the fp8 index key 32 + its fp32 scale 4.
    assert tiny().kv_bytes_per_token == LAYERS * ((64 + 16) * 2 + 32 + 4)
    assert tiny(dsa=False).kv_bytes_per_token == LAYERS * (64 + 16) * 2
    # The index keys stay fp8 under an fp8 KV cache.
    assert tiny().with_kv_cache_dtype("fp8").kv_bytes_per_token == LAYERS * ((64 + 16) + 36)
    glm = load_model("glm-5")
    assert glm.kv_bytes_per_token == 78 * ((512 + 64) * 2 + 128 + 4) == 100_152


def test_the_indexer_weights_are_replicated_on_every_tp_rank():
    model = tiny()
    # wq_b 96 x 128 + wk 256 x 32 in bf16 (no quantisation), weights_proj 256 x 4 in bf16.
    indexer = LAYERS * ((96 * 128 + 256 * 32) + 256 * 4) * 2
    assert model.weight_bytes_by_part()["indexer"] == indexer
    sharded = weight_bytes_per_gpu(model, 1, 1) - indexer
    assert weight_bytes_per_gpu(model, 2, 1) == pytest.approx(sharded / 2 + indexer)
    assert weight_bytes_per_gpu(model, 1, 2) == pytest.approx((sharded + indexer) / 2)
    assert model.param_count() == tiny(dsa=False).param_count()  # as published counts do


def test_index_topk_without_mla_is_refused():
    cfg = {k: v for k, v in DSA_CONFIG.items() if k != "kv_lora_rank"}
    with pytest.raises(SpecError, match="index_topk .* needs MLA"):
        model_from_config(cfg, "bad", "bad.json")


def test_one_prefill_table_spans_the_switch_to_sparse_attention():
    # The attention core has more kernels once a sequence passes index_topk; the one-sequence
    # table holds both, and the indexer's causal scoring makes a longer context cost more.
    gpu = get_gpu("h200")
    costs = BlockCosts(tiny(), Parallel(), Predictor(gpu.name, {}, RooflineModel(gpu)))
    short, long = costs.one_prefill_ms(8, 0), costs.one_prefill_ms(8, 4000)
    assert short is not None and long is not None and long > short
