"""The memory plan (frontier/spec/memory.py) with the numbers written out by hand."""

from __future__ import annotations

import pytest

from frontier.errors import SpecError
from frontier.spec.hardware import get_gpu
from frontier.spec.memory import (
    RUNTIME_RESERVE_BYTES,
    KVCacheTooSmall,
    check_vllm_starts,
    kv_bytes_per_token_per_gpu,
    plan_memory,
    sequence_kv_bytes,
    weight_bytes_per_gpu,
)
from frontier.spec.model import load_model

GIB = 2**30


def test_llama_3_1_8b_on_one_h100_kv_blocks_by_hand():
    model, gpu = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
    plan = plan_memory(
        model, gpu, tp=1, pp=1, gpu_memory_utilization=0.9, block_size=16, max_num_batched_tokens=8192, max_num_seqs=256
    )
    usable = 79.18 * GIB * 0.9  # 76,516,989,861.9 bytes
    weights = 8_029_995_008 * 2  # bf16
    # Activations: the forward pass peaks in the MLP, gate/up output and activation 3 x 14336
    # wide (> q, k, v and output 2 x (32 + 8) x 128 = 10,240) beside the residual stream and a
    # hidden state: (2 x 4096 + 3 x 14336) x 2 bytes = 102,400 per token, x 8192 tokens; that is
    # more than the fp32 logits of 256 sequences x 128256 vocab (131 MB); plus the 1 GiB reserve.
    act = 8192 * (2 * 4096 + 3 * 14336) * 2 + 1 * GIB
    assert act == 838_860_800 + 1_073_741_824 == 1_912_602_624
    kv = usable - weights - act  # 58,544,397,221.9 bytes
    block_bytes = 16 * 131072  # 16 tokens x 128 KiB per token
    assert plan.usable_bytes == pytest.approx(usable)
    assert plan.weight_bytes == weights
    assert plan.activation_bytes == act
    assert plan.kv_bytes == pytest.approx(kv)
    assert plan.kv_bytes_per_token == 131072
    assert plan.num_blocks == int(kv // block_bytes) == 27916
    assert plan.kv_tokens == 27916 * 16 == 446_656


def test_gpu_memory_utilization_shrinks_the_kv_cache_only():
    model, gpu = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
    full = plan_memory(model, gpu, tp=1, pp=1, gpu_memory_utilization=0.9)
    less = plan_memory(model, gpu, tp=1, pp=1, gpu_memory_utilization=0.5)
    assert less.weight_bytes == full.weight_bytes and less.activation_bytes == full.activation_bytes
    assert full.kv_bytes - less.kv_bytes == pytest.approx(0.4 * 79.18 * GIB)


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-3.1-70b", "qwen3-32b"])
@pytest.mark.parametrize("tp", [2, 4, 8])
def test_tp_splits_dense_weights_proportionally(name, tp):
    model = load_model(name)
    one = weight_bytes_per_gpu(model, 1, 1)
    assert one == model.param_count() * 2
    assert weight_bytes_per_gpu(model, tp, 1) == pytest.approx(one / tp)
    assert weight_bytes_per_gpu(model, 1, tp) == pytest.approx(one / tp)  # PP splits layers too


def test_tp_and_pp_split_the_weights_of_one_plan():
    model, gpu = load_model("llama-3.1-70b"), get_gpu("h100-sxm")
    p4 = plan_memory(model, gpu, tp=4, pp=1)
    p8 = plan_memory(model, gpu, tp=8, pp=1)
    p42 = plan_memory(model, gpu, tp=4, pp=2)
    assert p4.weight_bytes == pytest.approx(70_552_387_584 * 2 / 4)
    assert p8.weight_bytes == pytest.approx(p4.weight_bytes / 2)
    assert p42.weight_bytes == pytest.approx(p4.weight_bytes / 2)


def test_gqa_kv_splits_over_tp_until_one_head_per_gpu():
    model = load_model("llama-3.1-8b")  # 8 KV heads
    assert kv_bytes_per_token_per_gpu(model, 1, 1) == 131072
    assert kv_bytes_per_token_per_gpu(model, 2, 1) == 65536
    assert kv_bytes_per_token_per_gpu(model, 8, 1) == 16384
    # Beyond 8 ranks each GPU still holds (a replica of) one KV head.
    assert kv_bytes_per_token_per_gpu(model, 16, 1) == 16384
    assert kv_bytes_per_token_per_gpu(model, 1, 2) == 65536  # PP: half the layers


def test_mla_kv_is_replicated_across_tp():
    model = load_model("deepseek-v3")
    per_token = 61 * (512 + 64) * 2
    for tp in (1, 2, 8, 16):
        assert kv_bytes_per_token_per_gpu(model, tp, 1) == per_token
    assert kv_bytes_per_token_per_gpu(model, 8, 2) == per_token / 2


def test_moe_experts_split_over_ep():
    model = load_model("mixtral-8x7b")
    experts = 32 * 8 * 3 * 4096 * 14336
    dense = model.param_count() - experts
    assert weight_bytes_per_gpu(model, 2, 1) == pytest.approx((dense / 2 + experts / 2) * 2)
    assert weight_bytes_per_gpu(model, 1, 1, ep=8) == pytest.approx((dense + experts / 8) * 2)


def test_does_not_fit_says_how_much_and_which_tp_fits():
    model, gpu = load_model("llama-3.1-70b"), get_gpu("h100-sxm")
    with pytest.raises(SpecError) as e:
        plan_memory(model, gpu, tp=1, pp=1)
    msg = str(e.value)
    assert "llama-3.1-70b does not fit on h100-sxm with tp=1" in msg
    assert f"weights {70_552_387_584 * 2 / GIB:.1f} GiB" in msg  # 131.4 GiB
    assert "71.3 GiB usable" in msg
    assert "tp=4 would fit" in msg
    plan_memory(model, gpu, tp=4, pp=1)  # and it does


def test_profiled_activations_are_the_larger_of_the_forward_pass_and_the_logits():
    """vLLM's profile run peaks in the forward pass (residual + hidden beside the MLP's gate/up
    output and activation: 2 x 4096 + 3 x 14336 wide for Llama-3.1-8B, bf16) or in the sampler's
    fp32 logits, whichever is larger, with the runtime reserve on top."""
    model, gpu = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
    forward = 8192 * (2 * 4096 + 3 * 14336) * 2
    a = plan_memory(model, gpu, tp=1, pp=1, max_num_batched_tokens=8192, max_num_seqs=256)
    assert a.activation_bytes == pytest.approx(forward + RUNTIME_RESERVE_BYTES)
    logits = 4096 * 128256 * 4  # 4,096 sequences' logits outweigh 512 tokens' forward pass
    b = plan_memory(model, gpu, tp=1, pp=1, max_num_batched_tokens=512, max_num_seqs=4096)
    assert b.activation_bytes == pytest.approx(logits + RUNTIME_RESERVE_BYTES)


def test_experts_and_dense_weights_split_in_their_own_precision():
    model = load_model("gpt-oss-120b")  # bf16 attention, mxfp4 experts
    h = 2880
    dense = (2 * 201088 * h + 36 * (h * 64 * 64 + 2 * h * 8 * 64 + 64 * 64 * h + h * 128)) * 2
    experts = 36 * 128 * 3 * h * 2880 * (4 + 8 / 32) / 8
    assert weight_bytes_per_gpu(model, 1, 1) == pytest.approx(dense + experts, rel=1e-12)
    assert weight_bytes_per_gpu(model, 2, 1) == pytest.approx(dense / 2 + experts / 2, rel=1e-12)
    assert weight_bytes_per_gpu(model, 2, 1, ep=4) == pytest.approx(dense / 2 + experts / 4, rel=1e-12)


def test_attention_and_ffn_parts_of_an_int4_expert_model_add_up():
    model = load_model("kimi-k2.5")  # bf16 attention + dense, int4 experts
    h = 7168
    attention = 61 * (h * 1536 + 1536 * 64 * 192 + h * 576 + 512 * 64 * 256 + 64 * 128 * h) * 2
    emb = 2 * 163840 * h * 2
    ffn_bf16 = (3 * h * 18432 + 60 * 3 * h * 2048 + 60 * h * 384) * 2  # dense, shared, router
    experts = 60 * 384 * 3 * h * 2048 * (4 + 16 / 128) / 8
    att = weight_bytes_per_gpu(model, 8, 1, part="attention")
    ffn = weight_bytes_per_gpu(model, 8, 1, part="ffn")
    assert att == pytest.approx((attention + emb) / 8, rel=1e-12)
    assert ffn == pytest.approx((ffn_bf16 + experts) / 8, rel=1e-12)
    assert att + ffn == pytest.approx(weight_bytes_per_gpu(model, 8, 1), rel=1e-12)


@pytest.mark.parametrize(
    "name, quant, gpu, tp",
    [
        # Deployments measured in validation/real-runs/aic-closed-loop-runs.csv (they ran, so they fit),
        # at the checkpoint's precision or the row's --quantization.
        ("gpt-oss-120b", None, "h200", 1),
        ("gpt-oss-120b", None, "h100-sxm", 2),
        ("deepseek-r1", None, "h200", 8),
        ("kimi-k2.5", None, "h200", 8),
        ("minimax-m2.5", None, "h100-sxm", 4),
        ("glm-5", "fp8", "h200", 8),
    ],
)
def test_measured_deployments_fit(name, quant, gpu, tp):
    model = load_model(name)
    model = model.with_quantization(quant) if quant else model
    plan = plan_memory(model, get_gpu(gpu), tp=tp, pp=1)
    assert plan.num_blocks > 0 and plan.weight_bytes < plan.usable_bytes


def test_bf16_glm_5_does_not_fit_eight_h200():
    # 743B parameters x 2 bytes = 173 GiB per GPU over 8: only its fp8 form fits (as measured).
    with pytest.raises(SpecError, match="glm-5 does not fit on h200 with tp=8"):
        plan_memory(load_model("glm-5"), get_gpu("h200"), tp=8, pp=1)


def test_eplb_replicas_take_memory():
    # DeepSeek-V3 at EP32 with 32 redundant experts: one more expert (of 256) on every GPU,
    # 1/256 of the routed experts' bytes: 2.55 GB.
    model = load_model("deepseek-v3")
    experts = model.weight_bytes_by_part()["experts"]
    extra = weight_bytes_per_gpu(model, 1, 1, 32, redundant_experts=32) - weight_bytes_per_gpu(model, 1, 1, 32)
    assert extra == pytest.approx(experts / 256)
    assert extra == pytest.approx(2.555e9, rel=1e-3)


def test_a_one_layer_draft_model_takes_a_layer_of_weights_and_kv():
    model, gpu = load_model("llama-3.1-8b"), get_gpu("h100-sxm")
    base = plan_memory(model, gpu, tp=1, pp=1)
    mtp = plan_memory(model, gpu, tp=1, pp=1, draft_layers=1)
    layers = base.weight_bytes - model.weight_bytes_by_part()["embedding"]
    assert mtp.weight_bytes - base.weight_bytes == pytest.approx(layers / 32)  # 32 decoder layers
    assert mtp.kv_bytes_per_token == pytest.approx(base.kv_bytes_per_token * 33 / 32)
    assert mtp.num_blocks < base.num_blocks


def test_vllm_will_not_start_where_one_whole_context_does_not_fit():
    """Qwen3-32B on one H100 (vLLM 0.12's 0.9): 64 layers x 8 KV heads x 128 x (K, V) x 2 bytes
    = 256 KiB a token, so its 40,960-token context needs 10 GiB, and the pool holds less."""
    model, gpu = load_model("qwen3-32b"), get_gpu("h100-sxm")
    assert kv_bytes_per_token_per_gpu(model, 1, 1) == 64 * 8 * 128 * 2 * 2 == 262_144
    assert sequence_kv_bytes(model, 1, 1, 40960, 16, 8192) == 40960 * 262_144 == 10 * GIB
    plan = plan_memory(model, gpu, tp=1, pp=1, gpu_memory_utilization=0.9, max_num_seqs=1024)
    assert plan.kv_bytes < 10 * GIB
    with pytest.raises(KVCacheTooSmall, match="max_model_len 40960 tokens needs 10.00 GiB") as err:
        check_vllm_starts(
            plan, model, tp=1, pp=1, max_model_len=40960, max_num_batched_tokens=8192, gpu_memory_utilization=0.9
        )
    # The longest that fits is what the pool holds: whole blocks of a full-attention model.
    assert err.value.fits == plan.kv_tokens and f"max_model_len <= {plan.kv_tokens}" in str(err.value)
    check_vllm_starts(
        plan, model, tp=1, pp=1, max_model_len=plan.kv_tokens, max_num_batched_tokens=8192, gpu_memory_utilization=0.9
    )
    # `auto` (-1) serves what fits instead, vLLM's auto-fit; the whole context where it fits.
    auto = {"max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.9}
    assert check_vllm_starts(plan, model, tp=1, pp=1, max_model_len=-1, **auto) == plan.kv_tokens
    two = plan_memory(model, gpu, tp=2, pp=1, gpu_memory_utilization=0.9, max_num_seqs=1024)
    assert check_vllm_starts(two, model, tp=2, pp=1, max_model_len=-1, **auto) == 40960


def test_a_sliding_window_layer_holds_its_window_and_one_step():
    """gpt-oss-120b: 18 full layers keep every token, 18 sliding ones (128-token window) keep
    cdiv(127 + 8192, 16) + 1 = 521 blocks; 2 x 8 x 64 x 2 bytes = 2 KiB a token a layer."""
    model = load_model("gpt-oss-120b")
    assert (model.sliding_window_layers, model.sliding_window, model.num_attention_layers) == (18, 128, 36)
    layer_token = 2 * 8 * 64 * 2
    full = 18 * 131072 * layer_token
    sliding = 18 * 521 * 16 * layer_token
    assert sequence_kv_bytes(model, 1, 1, 131072, 16, 8192) == full + sliding
    # Shorter than the window and a step: every layer holds the sequence, a sliding one a block more.
    assert sequence_kv_bytes(model, 1, 1, 100, 16, 8192) == (18 * 7 + 18 * (7 + 1)) * 16 * layer_token


def test_a_pool_set_outright_that_holds_the_context_starts():
    """A replayed run's own pool (num_gpu_blocks_override) proves vLLM started where the plan's
    estimate is short: 2,600 blocks hold Qwen3-32B's 40,960 tokens on one H100."""
    from frontier.sim.run import memory_for
    from frontier.spec.scenario import scenario_from_dict

    def plan(**deployment):
        sc = scenario_from_dict(
            {
                "model": "qwen3-32b",
                "gpu": "h100-sxm",
                "deployment": {"engine": "vllm", **deployment},
                "workload": {"num_requests": 1, "arrival": {"rate": 1}, "input_len": 8, "output_len": 2},
            }
        )
        return memory_for(sc, sc.clusters[0], "deployment")

    with pytest.raises(KVCacheTooSmall):
        plan()
    own = plan(num_gpu_blocks_override=2600)
    assert (own.num_blocks, own.kv_tokens, own.max_model_len) == (2600, 41600, 40960)
    # A small pool set for a test does not refuse a context the GPU holds (vLLM <= 0.12's check).
    small = plan(tp=2, num_gpu_blocks_override=8)
    assert (small.kv_tokens, small.max_model_len) == (128, 40960)


def test_vllm_keeps_a_sliding_window_layer_to_its_window():
    """gpt-oss: 18 full-attention and 18 sliding-window layers (128 tokens), one vLLM KV-cache group
    each: a block id takes a 16-token page (8 KV heads of 64: 32 KiB) in 18 tensors, and a running
    sequence holds its tokens' blocks in the full group and cdiv(128, 16) + 1 in the window's."""
    from frontier.spec.memory import kv_groups

    model, gpu = load_model("gpt-oss-120b"), get_gpu("h200")
    groups = kv_groups(model, tp=1, pp=1)
    assert (groups.block_size, groups.page_bytes, groups.group_size) == (16, 16 * 8 * 64 * 2 * 2, 18)
    assert (groups.full_groups, groups.window_groups, groups.seq_blocks) == (1, 1, 9)
    assert groups.sequence_blocks(1000) == 63 + 9
    vllm = plan_memory(model, gpu, tp=1, pp=1, paged=True)
    rest = vllm.usable_bytes - vllm.weight_bytes - vllm.activation_bytes
    assert vllm.num_blocks == int(rest // (18 * 32768)) and vllm.seq_blocks == 9
    # Counted as every layer keeping every token (SGLang's pool here) it holds half the blocks.
    whole = plan_memory(model, gpu, tp=1, pp=1)
    assert whole.num_blocks == int(rest // (36 * 32768)) and whole.seq_blocks == 0


def test_sglang_gives_a_sliding_window_layer_a_share_of_the_pool():
    """SGLang's hybrid SWA pool (0.5.6 on for gpt-oss): full tokens = memory / (18 full + 0.8 x 18
    window layers' bytes a token), so 36 / 32.4 times the tokens of every layer keeping every one."""
    model, gpu = load_model("gpt-oss-120b"), get_gpu("h200")
    whole = plan_memory(model, gpu, tp=1, pp=1, activations_inside=False)
    shared = plan_memory(model, gpu, tp=1, pp=1, activations_inside=False, window_share=0.8)
    rest = whole.usable_bytes - whole.weight_bytes - whole.activation_bytes
    assert shared.num_blocks == int(rest // (32768 * (18 + 0.8 * 18)))  # a 16-token page a layer: 32 KiB
    assert shared.num_blocks / whole.num_blocks == pytest.approx(36 / 32.4, rel=1e-3)
