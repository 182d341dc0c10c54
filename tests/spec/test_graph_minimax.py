"""MiniMax-M2's attention as vLLM runs it (vllm/model_executor/models/minimax_m2.py): q and k
each normalised over all heads, the sums of squares all-reduced across TP ranks; rotary on 64
of each head's 128 dims. Hand-counted operators of one decode step of 4 sequences."""

from __future__ import annotations

from collections import Counter

from frontier.ops.graph import BatchStats, Parallel, step_operators
from frontier.ops.operators import Collective, Elementwise
from frontier.spec.model import load_model, model_from_config

DECODE4 = BatchStats(num_decode=4, decode_sum_kv=4 * 1000, decode_max_kv=1000, num_sampled=4)


def ops(name: str, tp: int) -> Counter:
    c: Counter = Counter()
    for op, n in step_operators(load_model(name), Parallel(tp=tp), DECODE4):
        c[op] += n
    return c


def test_the_card_says_per_layer_qk_norm_and_partial_rotary():
    m = load_model("minimax-m2.5")
    assert (m.qk_norm, m.qk_norm_across_heads, m.rotary_dim) == (True, True, 64)
    qwen = load_model("qwen3-32b")
    assert (qwen.qk_norm, qwen.qk_norm_across_heads, qwen.rotary_dim) == (True, False, 0)


def test_tp4_all_reduces_the_q_and_k_sums_of_squares_in_every_layer():
    c = ops("minimax-m2.5", 4)
    # 48 query and 8 KV heads of 128 over 4 ranks: 12 and 2 per rank.
    assert c[Elementwise("rmsnorm", 4, 12 * 128)] == 62  # normalise q
    assert c[Elementwise("rmsnorm", 4, 2 * 128)] == 62  # normalise k
    assert c[Elementwise("rmsnorm", 4, 14 * 128)] == 62  # their sums of squares, a pass of its own
    assert c[Collective("custom_all_reduce", 4 * 2 * 4, 4)] == 62  # 2 fp32 sums per token
    hidden = Collective("custom_all_reduce", 4 * 3072 * 2, 4)
    assert c[hidden] == 2 * 62  # after attention and after the MoE, as before
    assert c[Elementwise("rotary", 4, 14 * 64)] == 62  # 64 of 128 dims rotated


def test_tp1_normalises_without_a_collective():
    c = ops("minimax-m2.5", 1)
    assert not [op for op in c if isinstance(op, Collective)]
    assert c[Elementwise("rmsnorm", 4, 48 * 128)] == 62 and c[Elementwise("rmsnorm", 4, 8 * 128)] == 62
    assert c[Elementwise("rmsnorm", 4, 56 * 128)] == 0


def test_partial_rotary_from_a_config_factor():
    cfg = {
        "hidden_size": 2048,
        "num_hidden_layers": 2,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "intermediate_size": 4096,
        "vocab_size": 1000,
        "partial_rotary_factor": 0.5,
    }
    assert model_from_config(cfg, "m", "config").rotary_dim == 64
    assert model_from_config({**cfg, "partial_rotary_factor": 1.0}, "m", "config").rotary_dim == 0


def test_expert_parallel_over_the_tp_ranks_dispatches_nothing_and_all_reduces():
    """vLLM `--tensor-parallel-size 4 --enable-expert-parallel` (data-parallel size 1): every rank
    holds all tokens, runs its 64 of the 256 experts at full width (1536) and the TP all-reduce
    sums the ranks' outputs; no all-to-all."""
    from frontier.ops.operators import EPExchange, GroupedGemm

    c: Counter = Counter()
    for op, n in step_operators(load_model("minimax-m2.5"), Parallel(tp=4, ep=4), DECODE4):
        c[op] += n
    assert not [op for op in c if isinstance(op, EPExchange)]
    experts = [op for op in c if isinstance(op, GroupedGemm)]
    assert {(op.experts, op.k, op.n) for op in experts} == {(64, 3072, 2 * 1536), (64, 1536, 3072)}
    assert c[Collective("custom_all_reduce", 4 * 3072 * 2, 4)] == 2 * 62  # attention and MoE outputs
    # With attention data parallelism the tokens are spread over the ranks: dispatched and combined.
    spread = step_operators(load_model("minimax-m2.5"), Parallel(tp=1, ep=4, dp_attention=4), DECODE4)
    assert {op.phase for op, _ in spread if isinstance(op, EPExchange)} == {"dispatch", "combine"}
