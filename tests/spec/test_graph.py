"""The operator graph (frontier/ops/graph.py): hand-written GEMM shapes and collectives of one
decode step of 4 sequences for dense, MoE and MLA models, under TP and PP."""

from __future__ import annotations

from collections import Counter

import pytest

from frontier.ops.graph import BatchStats, Parallel, decoder_layer, step_operators
from frontier.ops.operators import AttnDecode, AttnPrefill, Collective, Elementwise, Gemm, GroupedGemm
from frontier.spec.model import load_model

DECODE4 = BatchStats(num_decode=4, decode_sum_kv=4 * 1000, decode_max_kv=1000, num_sampled=4)


def ops_of(name: str, batch: BatchStats = DECODE4, **par) -> list:
    return step_operators(load_model(name), Parallel(**par), batch)


def count(ops, kind) -> Counter:
    """(shape, count) of the operators of one class; a shape listed twice adds up."""
    c: Counter = Counter()
    for op, n in ops:
        if isinstance(op, kind):
            c[op] += n
    return c


def gemms(ops) -> Counter:
    return Counter({(op.m, op.k, op.n): n for op, n in count(ops, Gemm).items()})


def test_llama_8b_tp1_decode_gemms():
    g = gemms(ops_of("llama-3.1-8b"))
    assert g == {
        (4, 4096, 6144): 32,  # qkv: (32 + 2 x 8) heads x 128
        (4, 4096, 4096): 32,  # o
        (4, 4096, 28672): 32,  # gate + up: 2 x 14336
        (4, 14336, 4096): 32,  # down
        (4, 4096, 128256): 1,  # LM head
    }
    assert not count(ops_of("llama-3.1-8b"), Collective)


def test_llama_8b_decode_attention():
    attn = count(ops_of("llama-3.1-8b"), AttnDecode)
    assert attn == {AttnDecode(4, 4000, 1000, 32, 8, 128, 128, "flash"): 32}
    assert not count(ops_of("llama-3.1-8b"), AttnPrefill)


def test_llama_8b_tp2_halves_the_sharded_dims_and_all_reduces_twice_per_layer():
    ops = ops_of("llama-3.1-8b", tp=2)
    g = gemms(ops)
    assert g == {
        (4, 4096, 3072): 32,  # qkv: n halved (16 + 2 x 4 heads)
        (4, 2048, 4096): 32,  # o: k halved
        (4, 4096, 14336): 32,  # gate + up: n halved
        (4, 7168, 4096): 32,  # down: k halved
        (4, 4096, 64128): 1,  # vocab-parallel LM head
    }
    coll = count(ops, Collective)
    # 32 KiB messages: the engines' custom all-reduce, not NCCL (below 8 MiB).
    assert coll[Collective("custom_all_reduce", 4 * 4096 * 2, 2)] == 2 * 32
    assert set(c.kind for c in coll) == {"custom_all_reduce", "all_gather"}
    assert count(ops, AttnDecode) == {AttnDecode(4, 4000, 1000, 16, 4, 128, 128, "flash"): 32}


def test_llama_8b_pp2_halves_the_layers_and_sends_activations():
    ops = ops_of("llama-3.1-8b", pp=2)
    g = gemms(ops)
    assert g == {
        (4, 4096, 6144): 16,
        (4, 4096, 4096): 16,
        (4, 4096, 28672): 16,
        (4, 14336, 4096): 16,
        (4, 4096, 128256): 1,
    }
    assert count(ops, Collective) == {Collective("send_recv", 4 * 4096 * 2, 2): 1}
    assert sum(count(ops, AttnDecode).values()) == 16


def test_prefill_tokens_set_m():
    # Two prompts of 100 and 300 tokens, no cache: GEMMs see 400 rows, the LM head 2.
    batch = BatchStats(
        num_prefill=2,
        prefill_tokens=400,
        prefill_sum_q2=100**2 + 300**2,
        prefill_sum_kv=400,
        prefill_max_q=300,
        prefill_max_kv=300,
        num_sampled=2,
    )
    ops = ops_of("llama-3.1-8b", batch)
    g = gemms(ops)
    assert g[(400, 4096, 6144)] == 32 and g[(400, 14336, 4096)] == 32
    assert g[(2, 4096, 128256)] == 1
    ((attn, n),) = count(ops, AttnPrefill).items()
    assert n == 32 and (attn.num_seqs, attn.sum_q, attn.max_q, attn.hq, attn.hkv) == (2, 400, 300, 32, 8)


def test_mixtral_grouped_gemms_8_experts_top_2():
    ops = ops_of("mixtral-8x7b")
    grouped = count(ops, GroupedGemm)
    shapes = {(op.experts, op.topk, op.tokens, op.k, op.n): n for op, n in grouped.items()}
    assert shapes == {(8, 2, 4, 4096, 2 * 14336): 32, (8, 2, 4, 14336, 4096): 32}
    for op in grouped:
        assert 1 <= op.max_per_expert <= 4 and 1 <= op.active_experts <= 8
    g = gemms(ops)
    assert g[(4, 4096, 8)] == 32  # router
    assert (4, 4096, 28672) not in g  # no dense MLP
    assert g[(4, 4096, 32000)] == 1


def test_deepseek_v3_dense_and_moe_layers_with_shared_experts():
    ops = ops_of("deepseek-v3")
    g = gemms(ops)
    assert g[(4, 7168, 2 * 18432)] == 3 and g[(4, 18432, 7168)] == 3  # 3 dense layers
    assert g[(4, 7168, 256)] == 58  # router of 58 MoE layers
    assert g[(4, 7168, 2 * 2048)] == 58 and g[(4, 2048, 7168)] == 58  # 1 shared expert
    grouped = count(ops, GroupedGemm)
    shapes = {(op.experts, op.topk, op.k, op.n): n for op, n in grouped.items()}
    assert shapes == {(256, 8, 7168, 4096): 58, (256, 8, 2048, 7168): 58}
    # MLA projections on every layer, the q and kv latents normalised between them
    assert g[(4, 7168, 1536)] == 61 and g[(4, 1536, 128 * 192)] == 61 and g[(4, 7168, 576)] == 61
    norms = {(op.tokens, op.width): n for op, n in count(ops, Elementwise).items() if op.name == "rmsnorm"}
    assert norms[(4, 1536)] == 61 and norms[(4, 512)] == 61
    assert g[(4, 128 * 128, 7168)] == 61
    assert g[(4, 7168, 129280)] == 1


def test_deepseek_v3_mla_decode_attends_the_latent():
    ops = ops_of("deepseek-v3")
    attn = count(ops, AttnDecode)
    assert attn == {AttnDecode(4, 4000, 1000, 128, 1, 512 + 64, 512, "flash"): 61}
    g = gemms(ops)
    assert g[(4, 128 * 128, 512)] == 61  # absorbed W_UK: q_nope into latent space
    assert g[(4, 128 * 512, 128)] == 61  # absorbed W_UV: latent out to v


def test_deepseek_v3_tp8_splits_heads_not_the_latent():
    attn = count(ops_of("deepseek-v3", tp=8), AttnDecode)
    assert attn == {AttnDecode(4, 4000, 1000, 16, 1, 576, 512, "flash"): 61}


@pytest.mark.parametrize("name", ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3"])
def test_pp2_halves_every_layer_count(name):
    one, two = ops_of(name), ops_of(name, pp=2)
    model = load_model(name)
    layers = model.num_layers
    half = -(-layers // 2)
    per_layer_one = sum(n for op, n in one if isinstance(op, AttnDecode))
    per_layer_two = sum(n for op, n in two if isinstance(op, AttnDecode))
    assert (per_layer_one, per_layer_two) == (layers, half)
    assert count(two, Collective) == {Collective("send_recv", 4 * model.hidden_size * 2, 2): 1}


def test_empty_batch_has_no_operators():
    assert ops_of("llama-3.1-8b", BatchStats()) == []


def test_all_reduce_switches_to_nccl_above_8_mib():
    # 1,024 prefill tokens x 4096 x 2 bytes = 8 MiB: still custom; 1,025 tokens: NCCL.
    def kinds(tokens):
        batch = BatchStats(
            num_prefill=1,
            prefill_tokens=tokens,
            prefill_sum_q2=tokens**2,
            prefill_sum_kv=tokens,
            prefill_max_q=tokens,
            prefill_max_kv=tokens,
            num_sampled=1,
        )
        return {c.kind for c in count(ops_of("llama-3.1-8b", batch, tp=2), Collective)} - {"all_gather"}

    assert kinds(1024) == {"custom_all_reduce"}
    assert kinds(1025) == {"all_reduce"}


def test_vllm_symmetric_memory_takes_the_prefill_sizes_on_hopper():
    """vLLM's all_reduce_utils.py table for SM 9.0: with symmetric memory, messages above the
    custom kernel's 8 MiB go through multimem up to 64 MiB on 8 GPUs (32 MiB on 4), NCCL beyond;
    on 2 GPUs its two-shot kernel is priced as NCCL."""
    from frontier.ops.graph import all_reduce

    MiB = 2**20

    def kind(size, tp, symm_mem="9.0"):
        return all_reduce(size, tp, 8, symm_mem).kind

    assert kind(MiB, 8) == "custom_all_reduce"
    assert kind(8 * MiB, 8) == "custom_all_reduce"
    assert kind(10 * MiB, 8) == "multimem_all_reduce"
    assert kind(64 * MiB, 8) == "all_reduce"
    assert kind(16 * MiB, 4) == "multimem_all_reduce"
    assert kind(32 * MiB, 4) == "all_reduce"
    assert kind(10 * MiB, 2) == "all_reduce"
    # Without it (SGLang; vLLM 0.11.1-0.11.2): NCCL above 8 MiB.
    assert kind(10 * MiB, 8, None) == "all_reduce"


def test_engine_kernels_per_layer():
    """Per layer: 2 fused add+RMSNorm, rotary, KV-cache write, SiLU-and-mul; FP8 adds one
    activation quantisation before the output projection."""
    from frontier.ops.operators import Elementwise

    def names(model):
        c = Counter()
        for op, n in step_operators(model, Parallel(), DECODE4):
            if isinstance(op, Elementwise):
                c[op.name] += n
        return c

    bf16 = load_model("llama-3.1-8b")
    assert names(bf16) == {
        "add_rmsnorm": 64,
        "rotary": 32,
        "kv_cache_write": 32,
        "silu_mul": 32,
        "embedding": 1,
        "rmsnorm": 1,
        "sampling": 1,
    }
    fp8 = names(bf16.with_quantization("fp8"))
    assert fp8 - names(bf16) == {"quant_fp8": 32}


def test_tensor_parallel_across_nodes_all_reduces_over_the_network():
    from frontier.ops.graph import all_reduce
    from frontier.ops.operators import Collective
    from frontier.predict import load_predictor

    assert all_reduce(1 << 20, 8, 8) == Collective("custom_all_reduce", 1 << 20, 8)
    assert all_reduce(1 << 20, 16, 8) == Collective("all_reduce", 1 << 20, 16, "network")
    # The published 16-GPU network all-reduce is slower than NVLink's, message for message.
    p = load_predictor("h100-sxm")
    assert p.op_ms(all_reduce(64 << 20, 16, 8)) > p.op_ms(Collective("all_reduce", 64 << 20, 16))


def test_qwen3_normalises_q_and_k_per_head():
    """Qwen3 adds an RMSNorm over q (64 heads x 128) and one over k (8 heads x 128) per layer."""
    from frontier.ops.operators import Elementwise

    ops = ops_of("qwen3-32b")
    norms = count(ops, Elementwise)
    assert norms[Elementwise("rmsnorm", 4, 64 * 128)] == 64
    assert norms[Elementwise("rmsnorm", 4, 8 * 128)] == 64
    assert not load_model("llama-3.1-8b").qk_norm


def test_attention_dp_without_ep_runs_the_experts_tensor_parallel_over_every_gpu():
    # Mixtral, attention TP2 x DP2 on 4 GPUs, no EP: each DP rank's 4 tokens are gathered (16
    # tokens x 4096 x 2 bytes), the experts split 4 ways over all 4 GPUs (14336 / 4), and the
    # sums scattered back; no attention-TP all-reduce after the MoE (Mixtral has no shared expert).
    ops = ops_of("mixtral-8x7b", tp=2, dp_attention=2)
    grouped = count(ops, GroupedGemm)
    shapes = {(op.experts, op.tokens, op.k, op.n): n for op, n in grouped.items()}
    assert shapes == {(8, 8, 4096, 2 * 3584): 32, (8, 8, 3584, 4096): 32}
    collectives = count(ops, Collective)
    assert collectives[Collective("all_gather", 8 * 4096 * 2, 4)] == 32
    assert collectives[Collective("reduce_scatter", 8 * 4096 * 2, 4)] == 32
    # the attention block's all-reduce stays (32 layers); none after the experts
    assert sum(n for op, n in collectives.items() if op.kind in ("custom_all_reduce", "all_reduce")) == 32


def test_attention_dp_without_ep_holds_a_share_of_the_experts_per_gpu():
    from frontier.spec.memory import weight_bytes_per_gpu

    model = load_model("qwen3-235b-a22b")
    b = model.weight_bytes_by_part()
    dense = b["embedding"] + b["attention"] + b["ffn"]
    tp2 = weight_bytes_per_gpu(model, 2, 1)
    tp1_dp2 = weight_bytes_per_gpu(model, 1, 1, dp_attention=2)
    # Both hold half the experts (not all of them); TP1 x DP2 holds all the dense weights on each GPU.
    assert tp2 == pytest.approx(dense / 2 + b["experts"] / 2)
    assert tp1_dp2 == pytest.approx(dense + b["experts"] / 2)
    assert weight_bytes_per_gpu(model, 1, 1, ep=2, dp_attention=2) == pytest.approx(tp1_dp2)


# One decode layer in the order its kernels run (frontier.ops.graph.decoder_layer).


def test_a_dense_layer_runs_norm_attention_norm_mlp():
    ops = decoder_layer(load_model("llama-3.1-8b"), batch=8, kv=1024)
    assert ops == [
        Elementwise("add_rmsnorm", 8, 4096),
        Gemm(8, 4096, 6144),  # QKV: (32 + 2 x 8) heads of 128
        Elementwise("rotary", 8, 5120),
        Elementwise("kv_cache_write", 8, 2048),
        AttnDecode(8, 8192, 1024, 32, 8, 128, 128),
        Gemm(8, 4096, 4096),  # output projection
        Elementwise("add_rmsnorm", 8, 4096),
        Gemm(8, 4096, 28672),  # gate_up
        Elementwise("silu_mul", 8, 14336),
        Gemm(8, 14336, 4096),  # down
    ]


def test_a_moe_layer_routes_after_its_attention():
    ops = decoder_layer(load_model("qwen3-30b-a3b"), batch=4, kv=512)
    kinds = [op.name if isinstance(op, Elementwise) else type(op).__name__ for op in ops]
    assert kinds == [
        "add_rmsnorm", "Gemm", "rmsnorm", "rmsnorm", "rotary", "kv_cache_write", "AttnDecode", "Gemm",
        "add_rmsnorm", "Gemm", "topk_gating", "GroupedGemm", "silu_mul", "GroupedGemm",
    ]  # fmt: skip
    router, gate_up, down = ops[9], ops[11], ops[13]
    assert (router.k, router.n) == (2048, 128)
    assert (gate_up.experts, gate_up.topk, gate_up.tokens, gate_up.k, gate_up.n) == (128, 8, 4, 2048, 1536)
    assert (down.k, down.n) == (768, 2048)


def test_fp8_output_projection_is_quantised_after_the_attention():
    layer = decoder_layer(load_model("qwen3-32b"), batch=2, kv=128, dtype="fp8")
    at = next(i for i, op in enumerate(layer) if isinstance(op, AttnDecode))
    assert layer[at + 1 : at + 3] == [Elementwise("quant_fp8", 2, 64 * 128), Gemm(2, 64 * 128, 5120, "fp8")]


def test_sglang_quantises_every_fp8_linear_input_in_a_kernel_of_its_own():
    """SGLang (fused_quant=False) quantises the input of each FP8 linear layer before its GEMM
    (sglang fp8_utils.py `sglang_per_token_group_quant_fp8`): besides the output projection's,
    the QKV projection's (hidden wide), gate/up's (hidden) and down's (intermediate / TP) per
    layer; vLLM folds those three into the RMSNorm / SiLU-and-mul kernels. A bf16 model has none."""

    def quants(model, fused, **par):
        ops = step_operators(model, Parallel(**par), DECODE4, fused_quant=fused)
        return Counter({op.width: n for op, n in count(ops, Elementwise).items() if op.name == "quant_fp8"})

    llama = load_model("llama-3.1-8b")
    fp8 = llama.with_quantization("fp8")
    assert quants(fp8, True) == {4096: 32}  # the output projection's input: 32 heads x 128
    assert quants(fp8, False) == {4096: 32 * 3, 14336: 32}
    assert quants(fp8, False, tp=2) == {4096: 32 * 2, 2048: 32, 7168: 32}  # o and down inputs halve
    assert quants(llama, False) == {}
    # An MoE model: the routed experts quantise inside the fused MoE kernel; only the attention's
    # QKV input is added (Qwen3-235B has no shared experts).
    moe = load_model("qwen3-235b-a22b").with_quantization("fp8")
    assert quants(moe, False) - quants(moe, True) == {4096: 94}


def test_sglang_quantisations_of_mla_models_and_their_shared_experts():
    """What SGLang adds to vLLM's kernels for FP8 MLA models at TP8 (per width: how many): the
    attention's input (hidden, every layer) and q_b's (q_lora_rank), the 3 dense layers' gate/up
    (hidden) and down (intermediate / 8), and the shared expert's gate/up and down on each MoE
    layer, except DeepSeek-V3/R1's without EP, which SGLang runs inside the routed experts'
    fused kernel (deepseek_v2.py `determine_num_fused_shared_experts`)."""

    def added(name, **par):
        model = load_model(name).with_quantization("fp8")

        def quants(fused):
            ops = step_operators(model, Parallel(**par), DECODE4, fused_quant=fused)
            return Counter({op.width: n for op, n in count(ops, Elementwise).items() if op.name == "quant_fp8"})

        return dict(quants(False) - quants(True))

    # DeepSeek-R1: 61 layers (3 dense, 58 MoE), hidden 7168, q_lora 1536, dense MLP 18432.
    assert added("deepseek-r1", tp=8) == {7168: 61 + 3, 1536: 61, 18432 // 8: 3}
    # With EP the shared expert runs apart, unsharded (2048 wide).
    assert added("deepseek-r1", tp=8, ep=8) == {7168: 61 + 3 + 58, 1536: 61, 18432 // 8: 3, 2048: 58}
    # GLM-5: 78 layers (3 dense, 75 MoE), hidden 6144, q_lora 2048, dense 12288, shared 2048.
    assert added("glm-5", tp=8) == {6144: 78 + 3 + 75, 2048: 78, 12288 // 8: 3, 2048 // 8: 75}


def test_gpt_oss_sliding_window_layers_attend_to_their_window():
    # gpt-oss-120b: 18 of its 36 layers see the last 128 tokens only, at TP8 one KV head of 64 a rank.
    batch = BatchStats(1, 8192, 8192**2, 0, 8192, 8192, 8192, 4, 4 * 5000, 5000, 5)
    ops = ops_of("gpt-oss-120b", batch, tp=8)
    assert count(ops, AttnDecode) == {
        AttnDecode(4, 20000, 5000, 8, 1, 64, 64): 18,
        AttnDecode(4, 20000, 5000, 8, 1, 64, 64, window=128): 18,
    }
    assert {op.window: n for op, n in count(ops, AttnPrefill).items()} == {0: 18, 128: 18}


def test_a_window_bounds_the_pairs_a_prefill_scores():
    fresh = AttnPrefill.uniform(2, 8192, 8, 1, 64)
    windowed = AttnPrefill.uniform(2, 8192, 8, 1, 64, window=128)
    # A fresh prompt's query i scores min(i, 128) keys: 8192^2/2 - (8192 - 128)^2/2 = 8192 x 128 - 128^2/2.
    assert windowed.pairs == 2 * (8192 * 128 - 128**2 / 2) and fresh.pairs == 2 * 8192**2 / 2
    assert windowed.flops == fresh.flops * windowed.pairs / fresh.pairs
    short = AttnPrefill.uniform(2, 100, 8, 1, 64, window=128)  # inside the window: causal
    assert short.pairs == 2 * 100**2 / 2
    # On 5,000 cached tokens every query sees 128 keys; the windowless twin reads 512 + 128 a sequence.
    chunk = AttnPrefill.uniform(2, 512, 8, 1, 64, context=5000, window=128)
    assert chunk.pairs == 2 * 512 * 128
    twin = chunk.within_window()
    assert (twin.window, twin.pairs, twin.sum_kv, twin.max_kv) == (0, chunk.pairs, 2 * (512 + 128), 512 + 128)
    decode = AttnDecode(4, 20000, 5000, 8, 1, 64, 64, window=128).within_window()
    assert decode == AttnDecode(4, 4 * 128, 128, 8, 1, 64, 64)
