"""Start-up checks of a deployment against its model, worked out by hand from vLLM's rules."""

import pytest

from frontier.errors import SpecError
from frontier.spec.checks import check_tp
from frontier.spec.hardware import get_gpu
from frontier.spec.model import load_model
from frontier.spec.scenario import scenario_from_dict


def scenario(model="llama-3.1-8b", gpu="h100-sxm", **deployment):
    return scenario_from_dict(
        {
            "model": model,
            "gpu": gpu,
            "deployment": deployment,
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )


def test_qwen2_5_7b_takes_tp_1_2_4_but_not_7_or_8():
    # 28 heads, 4 KV heads: tp 7 divides the heads but 7 KV-head replicas of 4 heads do not.
    model, h100 = load_model("qwen2.5-7b"), get_gpu("h100-sxm")
    for tp in (1, 2, 4):
        check_tp(model, h100, tp, "tp")
    for tp, what in ((7, "4 KV heads"), (8, "28 attention heads"), (3, "28 attention heads")):
        with pytest.raises(SpecError, match=f"tp: {tp} does not fit qwen2.5-7b's {what}.*Valid tp: 1, 2, 4$"):
            check_tp(model, h100, tp, "tp")


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    # Llama-3.1-405B: 128 heads, 8 KV heads; tp 16..64 replicate each KV head 2..8 times.
    model, gb200 = load_model("llama-3.1-405b"), get_gpu("gb200")
    for tp in (16, 32, 64):
        check_tp(model, gb200, tp, "tp")
    with pytest.raises(SpecError, match="Valid tp: 1, 2, 4, 8, 16, 32, 64$"):
        check_tp(model, gb200, 24, "tp")


def test_mla_heads_only_need_to_divide():
    scenario("deepseek-v2", tp=8)  # 128 heads; the latent KV is replicated, not split


def test_tp_beyond_a_node_takes_whole_nodes():
    assert scenario("llama-3.1-70b", tp=16).clusters[0].instance_gpus == 16  # two whole nodes
    assert scenario("llama-3.1-70b", tp=8, pp=2).clusters[0].instance_gpus == 16
    model, h100 = load_model("deepseek-v3"), get_gpu("h100-sxm")  # 128 heads: tp 32 divides them
    check_tp(model, h100, 32, "tp")
    from dataclasses import replace

    check_tp(model, replace(h100, gpus_per_node=4), 32, "tp")  # 8 whole nodes
    with pytest.raises(SpecError, match="tp: 32 spans 5.33333 nodes of 6 .* a multiple of 6"):
        check_tp(model, replace(h100, gpus_per_node=6), 32, "tp")


def test_pipeline_stages_need_a_layer_each():
    assert scenario(pp=32).clusters[0].pp == 32  # 32 layers, one per stage
    with pytest.raises(SpecError, match="deployment.pp: 33 .* pp <= 32"):
        scenario(pp=33)


@pytest.mark.parametrize(
    "block_size, ok",
    [(16, True), (32, True), (256, True), (8, False), (1, False), (7, False), (48, False), (512, False)],
)
def test_block_sizes_flash_attention_takes(block_size, ok):
    if ok:
        scenario(block_size=block_size)
    else:
        with pytest.raises(SpecError, match="deployment.block_size"):
            scenario(block_size=block_size)


def test_chunked_prefill_off_needs_a_budget_of_max_model_len():
    scenario(enable_chunked_prefill=False, max_num_batched_tokens=4096, max_model_len=4096)
    with pytest.raises(SpecError, match="max_num_batched_tokens: 4096 is below max_model_len 4097"):
        scenario(enable_chunked_prefill=False, max_num_batched_tokens=4096, max_model_len=4097)
    with pytest.raises(SpecError, match="below max_model_len 131072"):  # 0: the model's context
        scenario(enable_chunked_prefill=False, max_num_batched_tokens=4096)


def test_every_cluster_of_a_pd_deployment_is_checked():
    with pytest.raises(SpecError, match=r"deployment.clusters\[1\].tp: 3 does not fit"):
        scenario_from_dict(
            {
                "model": "llama-3.1-8b",
                "gpu": "h100-sxm",
                "deployment": {
                    "clusters": [{"name": "p", "role": "prefill"}, {"name": "d", "role": "decode", "tp": 3}]
                },
                "workload": {
                    "num_requests": 1,
                    "input_len": 8,
                    "output_len": 2,
                    "arrival": {"process": "poisson", "rate": 1.0},
                },
            }
        )


def test_fp8_weights_need_fp8_tensor_cores():
    scenario("deepseek-v3", "h200", tp=8)
    with pytest.raises(SpecError, match="deepseek-v3 has fp8 weights but a100-80gb has no fp8"):
        scenario("deepseek-v3", "a100-80gb", tp=8)


def test_sglang_refuses_drafts_and_mixed_chunks_where_its_server_args_assert():
    """sglang/srt/server_args.py `check_server_args`: no draft with pp > 1 (every release), no
    mixed chunks with pp > 1 up to 0.5.10, no mixed chunks with a draft once the engine stops
    turning them off itself (after 0.5.10)."""
    mtp = {"method": "mtp"}
    with pytest.raises(SpecError, match=r"^deployment.speculative: SGLang 0.5.14 refuses speculative .* \(pp 2\)"):
        scenario(tp=1, pp=2, engine="sglang", engine_version="0.5.14", speculative=mtp)
    with pytest.raises(SpecError, match=r"^deployment.enable_mixed_chunk: SGLang 0.5.6 refuses mixed chunks with pipe"):
        scenario(tp=1, pp=2, engine="sglang", engine_version="0.5.6", enable_mixed_chunk=True)
    scenario(tp=1, pp=2, engine="sglang", engine_version="0.5.14", enable_mixed_chunk=True)
    with pytest.raises(
        SpecError, match=r"^deployment.enable_mixed_chunk: SGLang \(newest\) refuses mixed chunks with spec"
    ):
        scenario(engine="sglang", speculative=mtp, enable_mixed_chunk=True)
    older = scenario(engine="sglang", engine_version="0.5.10", speculative=mtp, enable_mixed_chunk=True)
    assert not older.clusters[0].enable_mixed_chunk  # turned off by the engine itself
