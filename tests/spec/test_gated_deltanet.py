"""Hybrid models with gated-DeltaNet linear attention (Qwen3.5, Qwen3-Next): the layer split,
the state that replaces a linear layer's KV cache, the kernels of a step, the engine's measured
kernels and SGLang's split of the memory pool, hand-computed for small configs and checked
against measured rows."""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from frontier.ops.graph import BatchStats, Parallel, step_operators
from frontier.ops.operators import AttnDecode, AttnPrefill, Collective, Elementwise, Gemm, LinearAttention
from frontier.paths import CALIBRATION_DIR
from frontier.predict.engine_kernels import GDNKernels, load_gdn
from frontier.spec.hardware import get_gpu
from frontier.spec.memory import STATE_TO_KV_RATIO, plan_memory
from frontier.spec.model import GatedDeltaNet, load_model, model_from_config

# A Qwen3.5-shaped hybrid, small: 8 layers, every 4th full attention.
HYBRID = {
    "model_type": "qwen3_5_moe_text",
    "hidden_size": 512,
    "num_hidden_layers": 8,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "attn_output_gate": True,
    "linear_num_key_heads": 4,
    "linear_num_value_heads": 8,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 32,
    "linear_conv_kernel_dim": 4,
    "intermediate_size": 1024,
    "vocab_size": 1000,
}


def tiny(**changes):
    return model_from_config({**HYBRID, **changes}, "tiny-hybrid", "test")


def test_layer_types_split_the_layers_and_only_softmax_layers_keep_kv():
    m = tiny()
    assert m.linear_attention == GatedDeltaNet(6, 4, 8, 32, 32, 4, 4)
    assert m.num_attention_layers == 2
    assert m.kv_bytes_per_token == 2 * (2 * 2 * 64) * 2  # 2 layers x K and V of 2 heads x 64, bf16
    # Per sequence: 6 layers x (conv: 3 taps x (q, k: 4 x 32 each; v: 8 x 32) bf16 + 8 x 32 x 32 fp32)
    assert m.state_bytes_per_seq() == 6 * (3 * 512 * 2 + 8 * 32 * 32 * 4)
    assert m.state_bytes_per_seq(tp=2) == m.state_bytes_per_seq() / 2


def test_full_attention_interval_marks_the_layers_without_layer_types():
    # Qwen3-Next writes the pattern as an interval (transformers' Qwen3NextConfig).
    cfg = {k: v for k, v in HYBRID.items() if k != "layer_types"} | {"full_attention_interval": 4}
    assert model_from_config(cfg, "m", "test").linear_attention.layers == 6


def test_parameters_count_both_mixers_and_the_output_gate():
    m = tiny()
    h = 512
    softmax = h * 8 * 64 * 2 + 2 * h * 2 * 64 + 8 * 64 * h  # q and its gate, k and v, o
    linear = h * (512 + 256 + 16) + 256 * h + 512 * 4 + 16 + 32  # in-proj, out-proj, conv, A/dt, norm
    assert m.mixer_params() == 2 * softmax + 6 * linear
    assert m.param_count() == 2 * 1000 * h + 2 * softmax + 6 * linear + 8 * 3 * h * 1024


def test_qwen3_5_card_is_the_published_size():
    m = load_model("Qwen/Qwen3.5-397B-A17B")
    assert m.name == "qwen3.5-397b-a17b"
    assert (m.num_attention_layers, m.linear_attention.layers) == (15, 45)
    assert m.param_count() / 1e9 == pytest.approx(396.3, abs=0.1)  # 397B less the MTP layer
    assert m.param_count(active=True) / 1e9 == pytest.approx(17.35, abs=0.01)
    assert m.rotary_dim == 64 and m.qk_norm and m.attn_output_gate  # rope_parameters' factor 0.25


def test_a_decode_step_runs_the_deltanet_kernels_on_the_linear_layers_only():
    m, par = tiny(), Parallel(tp=2)
    batch = BatchStats(num_decode=3, decode_sum_kv=300, decode_max_kv=100, num_sampled=3)
    ops = Counter()
    for op, n in step_operators(m, par, batch):
        ops[op] += n
    heads = (2, 4, 32, 32, 4)  # per TP rank: 4 / 2 key heads, 8 / 2 value heads
    assert ops[LinearAttention("conv", "decode", 3, 3, *heads)] == 6
    assert ops[LinearAttention("rule", "decode", 3, 3, *heads)] == 6
    assert ops[Gemm(3, 512, 2 * 64 + 2 * 128)] == 6  # q, k (2 x 32 each), v, z (4 x 32 each)
    assert ops[Gemm(3, 512, 8)] == 6  # b and a, one per value head
    assert ops[Elementwise("rmsnorm_gated", 3, 128)] == 6
    assert ops[Gemm(3, 128, 512)] == 6  # out_proj: 4 value heads x 32
    assert ops[Gemm(3, 256, 512)] == 2  # o_proj: 4 query heads x 64
    assert ops[AttnDecode(3, 300, 100, 4, 1, 64, 64, "flash")] == 2
    assert ops[Gemm(3, 512, (4 + 2) * 64 + 4 * 64)] == 2  # q, k, v and the output gate
    assert ops[Elementwise("sigmoid_mul", 3, 256)] == 2
    assert ops[Elementwise("add_rmsnorm", 3, 512)] == 16
    # One all-reduce after every mixer (softmax or linear) and one after every MLP.
    assert sum(n for op, n in ops.items() if isinstance(op, Collective) and op.size_bytes == 3 * 512 * 2) == 16


def test_a_prefill_is_one_kernel_over_its_sequences():
    m = tiny()
    batch = BatchStats(2, 96, 64**2 + 32**2, 0, 96, 64, 64, num_sampled=2)
    ops = dict(step_operators(m, Parallel(), batch))
    assert ops[LinearAttention("rule", "prefill", 2, 96, 4, 8, 32, 32, 4)] == 6
    assert ops[AttnPrefill(2, 96, 64**2 + 32**2, 0, 96, 64, 64, 8, 2, 64, 64, "flash")] == 2


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("engine, release", [("sglang", "0.5.14"), ("vllm", "0.24.0")])
def test_measured_rows_answer_their_own_shapes(engine, release):
    path = CALIBRATION_DIR / "h200" / "engine_kernels" / f"gdn_{engine}_{release}.csv"
    kernels = load_gdn(str(path.parent.parent), engine)
    rows = [r for r in _rows(path) if r["k_heads"] == "2" and r["v_heads"] == "8"]
    checked = 0
    for r in rows:
        seqs, length = int(r["seqs"]), int(r["seq_len"])
        op = LinearAttention(r["kernel"], r["phase"], seqs, seqs * length, 2, 8, 128, 128, 4)
        if r["phase"] == "prefill" and length > 8192:
            continue  # columns missing a row at some batch are left out of the grid
        assert kernels.kernel_ms(op) == pytest.approx(float(r["ms"]), rel=1e-9), r
        checked += 1
    assert checked > 100


def test_a_long_prompt_takes_longer_than_as_many_tokens_in_several_sequences():
    kernels = load_gdn(str(CALIBRATION_DIR / "h200"), "sglang")
    one = kernels.kernel_ms(LinearAttention("rule", "prefill", 1, 8192, 2, 8, 128, 128, 4))
    eight = kernels.kernel_ms(LinearAttention("rule", "prefill", 8, 8192, 2, 8, 128, 128, 4))
    # The rows of 1 x 8,192 and 8 x 1,024 (median over the Qwen3.5 sizes with these heads per rank).
    assert (one, eight) == pytest.approx((0.31681, 0.13707), rel=1e-9)


def test_between_and_beyond_measured_points():
    import pandas as pd

    rows = pd.DataFrame(
        [
            ("rule", "prefill", 1, 1, 1, 1024, 0.1),
            ("rule", "prefill", 1, 1, 1, 4096, 0.4),
            ("rule", "prefill", 1, 1, 4, 1024, 0.2),
            ("rule", "prefill", 1, 1, 4, 4096, 0.8),
            ("rule", "decode", 1, 1, 1, 1, 0.01),
            ("rule", "decode", 1, 1, 16, 1, 0.04),
        ],
        columns=["kernel", "phase", "k_heads", "v_heads", "seqs", "seq_len", "ms"],
    )
    k = GDNKernels(rows)

    def op(phase, seqs, tokens, dims=(128, 128, 4)):
        return LinearAttention("rule", phase, seqs, tokens, 1, 1, *dims)

    # 2 sequences of 2,048: halfway in log along both axes, between all four corners.
    assert k.kernel_ms(op("prefill", 2, 4096)) == pytest.approx(math.exp(np.mean(np.log([0.1, 0.4, 0.2, 0.8]))))
    assert k.kernel_ms(op("prefill", 8, 8 * 8192)) == pytest.approx(0.8 * 2 * 2)  # past both ends: linear
    assert k.kernel_ms(op("decode", 4, 4)) == pytest.approx(0.02)  # log-log
    assert k.kernel_ms(op("decode", 4, 4, (64, 64, 4))) is None  # other head dims were not measured


def test_sglang_splits_the_pool_between_states_and_kv():
    m = load_model("qwen3.5-397b-a17b").with_quantization("fp8_block")
    plan = plan_memory(m, get_gpu("h200"), tp=8, pp=1, max_num_seqs=4096, activations_inside=False)
    rest = plan.usable_bytes - plan.weight_bytes - plan.activation_bytes
    per_seq = m.state_bytes_per_seq(8)
    assert plan.state_seqs == int(rest * STATE_TO_KV_RATIO / (1 + STATE_TO_KV_RATIO) // per_seq)
    assert plan.state_bytes == plan.state_seqs * per_seq
    assert plan.kv_bytes == pytest.approx(rest - plan.state_bytes)
    # Fewer sequences allowed than the states would hold: states for those only.
    small = plan_memory(m, get_gpu("h200"), tp=8, pp=1, max_num_seqs=64, activations_inside=False)
    assert small.state_seqs == 64 and small.kv_bytes == pytest.approx(rest - 64 * per_seq)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_a_hybrid_model_serves_end_to_end(engine):
    from frontier.sim.run import simulate
    from frontier.spec.scenario import scenario_from_dict
    from frontier.workload import build_requests

    sc = scenario_from_dict(
        {
            "model": "qwen3.5-397b-a17b",
            "gpu": "h200",
            "deployment": {"engine": engine, "tp": 8, "quantization": "fp8_block", "max_num_seqs": 16},
            "workload": {
                "num_requests": 40,
                "concurrency": 16,
                "arrival": {"process": "poisson", "rate": "inf"},
                "input_len": 1024,
                "output_len": 64,
            },
        }
    )
    res = simulate(sc, build_requests(sc.workload, np.random.default_rng(0)), timeline=False)
    assert res.summary["completed"] == 40
    assert "gated-DeltaNet" in res.summary["frontier"]["predictor"]["linear_attention"]
    # vLLM's pool: blocks of 528 tokens at TP8, 3 of them each sequence's states.
    cluster = res.summary["frontier"]["clusters"][0]
    assert (cluster["kv_block_tokens"], cluster["kv_seq_blocks"], cluster["kv_seq_blocks_hold"]) == (
        (528, 3, "recurrent states") if engine == "vllm" else (16, 0, "")
    )


def _step_ms(radix_cache: bool, engine: str = "sglang", version: str = "0.5.9") -> float:
    from frontier.sim.run import step_model_for
    from frontier.spec.scenario import scenario_from_dict

    sc = scenario_from_dict(
        {
            "model": "qwen3.5-397b-a17b",
            "gpu": "h200",
            "deployment": {
                "engine": engine,
                "engine_version": version,
                "tp": 8,
                "quantization": "fp8_block",
                "enable_prefix_caching": radix_cache,
            },
            "workload": {
                "num_requests": 1,
                "arrival": {"process": "poisson", "rate": 1},
                "input_len": 8,
                "output_len": 8,
            },
        }
    )
    model, _ = step_model_for(sc, sc.clusters[0])
    batch = BatchStats(num_decode=4, decode_sum_kv=4 * 2000, decode_max_kv=2000, num_sampled=4)
    return model.step(batch).total_s * 1e3


def test_sglang_serves_a_hybrid_without_overlap_while_its_radix_cache_is_on():
    # server_args.py `_handle_mamba_radix_cache`: the no_buffer mamba strategy (default) with the
    # radix cache on turns the overlap scheduler off, so a step waits for its host work: 1 ms of
    # scheduling and 45 us per sequence (frontier.engine.HOST_TIME) instead of 0.1 ms exposed.
    exposed = _step_ms(radix_cache=True) - _step_ms(radix_cache=False)
    assert exposed == pytest.approx(1.0 + 4 * 0.045 - 0.1, abs=1e-9)
    # Before SGLang's MambaRadixCache (0.5.4) the radix cache was off for hybrids: overlap stayed.
    assert _step_ms(True, version="0.5.3") == pytest.approx(_step_ms(False, version="0.5.3"), rel=1e-12)


def test_linear_attention_layers_without_their_dimensions_get_one_line():
    from frontier.errors import SpecError

    cfg = {k: v for k, v in HYBRID.items() if not k.startswith("linear_")}
    with pytest.raises(SpecError) as e:
        model_from_config(cfg, "m", "config.json")
    assert str(e.value) == (
        "config.json: 6 of 8 layers are linear_attention but the config has no linear_num_value_heads "
        "(gated DeltaNet: linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, "
        "linear_value_head_dim, linear_conv_kernel_dim)"
    )


# --- vLLM: the states in the KV blocks ------------------------------------------------------

# A Qwen3.5-9B-class hybrid (Qwen/Qwen3.5-9B config.json's language model): 8 of 32 layers full
# attention (4 KV heads of 256), 24 gated DeltaNet (16 key, 32 value heads of 128), fp32 state.
NINE_B = {
    **HYBRID,
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 8,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "mamba_ssm_dtype": "float32",
}


def test_vllm_pages_a_hybrids_states_like_its_start_up_log():
    from frontier.spec.memory import kv_groups

    layout = kv_groups(model_from_config(NINE_B, "nine-b", "test"), tp=1, pp=1)
    # A state: conv 3 x (2 x 16 x 128 + 32 x 128) x 2 B + delta rule 32 x 128 x 128 x 4 B = 2,146,304 B;
    # a token of one attention layer 4 x 256 x 2 x 2 = 4,096 B: blocks of 16 x cdiv(2,146,304, 16 x
    # 4,096) = 528 tokens, a page of 2,162,688 B, the 8 attention layers one group, the 24 others 3.
    assert (layout.block_size, layout.page_bytes, layout.group_size) == (528, 2_162_688, 8)
    assert (layout.full_groups, layout.state_groups, layout.window_groups) == (1, 3, 0)
    # A public vLLM 0.27.1 start-up of such a model: "1.74 GiB of KV (53,084 tokens) at a
    # 24576-token max length" and "max_num_seqs (256) exceeds available Mamba cache blocks (108)".
    assert round(108 * layout.block_bytes / 2**30, 2) == 1.74
    assert layout.sequence_blocks(24576) == 47 + 3
    assert int(108 / layout.sequence_blocks(24576) * 24576) == 53_084  # its max concurrency x length


def test_vllm_plans_one_pool_for_kv_and_states_and_checks_its_blocks():
    from frontier.errors import SpecError
    from frontier.spec.memory import check_vllm_starts, check_vllm_state_blocks

    m, gpu = load_model("qwen3.5-27b"), get_gpu("h100-sxm")
    plan = plan_memory(m, gpu, tp=1, pp=1, gpu_memory_utilization=0.9, max_num_seqs=64, paged=True)
    layout = plan.kv_groups
    rest = plan.usable_bytes - plan.weight_bytes - plan.activation_bytes
    assert plan.block_size == layout.block_size == 784 and plan.seq_blocks == 3
    assert plan.num_blocks == int(rest // layout.block_bytes) and plan.state_seqs == 0
    assert plan.kv_tokens * plan.kv_bytes_per_token == pytest.approx(plan.num_blocks * layout.block_bytes)
    # One request of 40,000 tokens: 52 blocks of 784 tokens and its 3 state blocks.
    need = 55 * layout.block_bytes
    small = replace(plan, kv_bytes=need - 1)
    with pytest.raises(SpecError, match="needs 2.63 GiB"):
        check_vllm_starts(
            small, m, tp=1, pp=1, max_model_len=40_000, max_num_batched_tokens=8192, gpu_memory_utilization=0.9
        )
    assert (
        check_vllm_starts(
            replace(plan, kv_bytes=need),
            m,
            tp=1,
            pp=1,
            max_model_len=40_000,
            max_num_batched_tokens=8192,
            gpu_memory_utilization=0.9,
        )
        == 40_000
    )
    # More sequences than blocks: 0.19 on refuse to capture the CUDA graphs, earlier releases start.
    with pytest.raises(SpecError) as e:
        check_vllm_state_blocks(plan, plan.num_blocks + 1, ())
    assert str(e.value) == (
        f"deployment: vLLM would not start: max_num_seqs {plan.num_blocks + 1} exceeds the {plan.num_blocks} "
        "blocks of its KV cache (its Mamba cache blocks: each decoding sequence holds 3 of them for its "
        f"recurrent states); set max_num_seqs <= {plan.num_blocks} or raise gpu_memory_utilization"
    )
    check_vllm_state_blocks(plan, plan.num_blocks + 1, (0, 18, 0))
    check_vllm_state_blocks(plan, plan.num_blocks, (0, 19, 0))


def test_each_running_sequence_holds_its_state_blocks():
    from frontier.sim.kv_cache import BlockManager
    from frontier.sim.request import Request
    from frontier.sim.scheduler import Scheduler

    # 10 blocks of 16 tokens, 3 of them a sequence's states: a 20-token prompt takes 2 + 3.
    kv = BlockManager(10, 16, seq_blocks=3)
    sched = Scheduler(kv, max_num_seqs=8, max_num_batched_tokens=1000)
    reqs = [Request(i, 0.0, 20, 20) for i in range(3)]
    for r in reqs:
        sched.add(r)
    plan = sched.schedule()
    assert [(r.id, n) for r, n in plan.scheduled] == [(0, 20), (1, 20)]  # the third waits
    assert kv.free_blocks == 0 and [r.num_blocks for r in reqs] == [5, 5, 0]
    # Decodes fill their two token blocks (32 tokens) without a block more; the 33rd token needs one:
    # the last admitted is preempted and frees its 5, states included.
    for step in range(12):
        for r, n in plan.scheduled:
            r.num_computed += n
            r.num_output += 1
        plan = sched.schedule()
        assert not plan.preempted, step
    assert reqs[0].num_computed == 31  # its 32nd token computes in the block it holds
    for r, n in plan.scheduled:
        r.num_computed += n
        r.num_output += 1
    plan = sched.schedule()
    assert plan.preempted == [reqs[1]] and reqs[0].num_blocks == 6 and kv.free_blocks == 4
    sched.finish(reqs[0])
    assert kv.free_blocks == 10  # every block back: the states' too


def test_vllm_serves_qwen35_from_017_without_prefix_caching():
    from frontier.errors import SpecError
    from frontier.spec.scenario import scenario_from_dict

    def scenario(**deployment):
        return scenario_from_dict(
            {
                "model": "qwen3.5-27b",
                "gpu": "h200",
                "deployment": {"tp": 2, "max_num_seqs": 64, **deployment},
                "workload": {
                    "num_requests": 1,
                    "arrival": {"process": "poisson", "rate": 1},
                    "input_len": 8,
                    "output_len": 8,
                },
            }
        )

    c = scenario(engine_version="0.18.0").clusters[0]
    assert c.enable_prefix_caching is False
    assert ("enable_prefix_caching", False, "vllm/engine/arg_utils.py: off for hybrid models") in c.defaults_from
    assert scenario(engine="sglang").clusters[0].enable_prefix_caching  # SGLang's radix cache stays on
    with pytest.raises(SpecError) as e:
        scenario(engine_version="0.16.0")
    assert str(e.value) == (
        "deployment.engine_version: vLLM 0.16.0 does not serve qwen3.5-27b (Qwen3_5ForConditionalGeneration, "
        "from vLLM 0.17.0); use a later release or SGLang"
    )
    with pytest.raises(SpecError, match=r"deployment.enable_prefix_caching: vLLM's prefix caching of hybrid models"):
        scenario(enable_prefix_caching=True)
