"""The engines' measured fused-MoE kernels: interpolation, the projections' split, the fallback."""

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from frontier.ops.graph import Parallel, ffn_block
from frontier.ops.operators import Elementwise, Gemm, GroupedGemm
from frontier.paths import CALIBRATION_DIR
from frontier.predict import load_predictor
from frontier.predict.engine_kernels import (
    FusedMoE,
    WithEngineKernels,
    convert,
    convert_cutlass_moe,
    load_fused_moe,
    with_engine_gemms,
    with_engine_kernels,
)
from frontier.spec.hardware import get_gpu
from frontier.spec.model import load_model


def table(points):
    return pd.DataFrame(
        [
            {"dtype": "bf16", "hidden": 1024, "inter": 512, "experts": 8, "topk": 2, "tokens": t, "ms": ms}
            for t, ms in points
        ]
    )


# An aiconfigurator moe_perf row's columns by default: MiniMax-M2.5's experts at TP4, 64 tokens.
AIC_MOE_ROW = {
    "moe_ep_size": 1,
    "distribution": "balanced",
    "hidden_size": 3072,
    "inter_size": 1536,
    "moe_tp_size": 4,
    "num_experts": 256,
    "topk": 8,
    "num_tokens": 64,
    "kernel_source": "k",
}


def aiconfigurator_moe_rows(**columns):
    """aiconfigurator moe_perf rows: the lists given, each other column (AIC_MOE_ROW's, or a value
    given) the same in every row."""
    n = max(len(v) for v in columns.values() if isinstance(v, list))
    return pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in {**AIC_MOE_ROW, **columns}.items()})


def moe_layer(experts, tokens, width, busiest, active, ep=1):
    """An MoE layer of hidden size 1024, top-2, as the graph emits it: gate/up (k = hidden,
    n = 2 x width), SiLU-and-mul, down (k = width, n = hidden)."""
    return [
        GroupedGemm(experts, 2, tokens, 1024, 2 * width, busiest, active, "bf16", ep=ep),
        Elementwise("silu_mul", 2 * tokens, width),
        GroupedGemm(experts, 2, tokens, width, 1024, busiest, active, "bf16", ep=ep),
    ]


def test_layer_time_interpolates_log_log_and_grows_linearly_past_the_largest_count():
    fused = FusedMoE(table([(16, 0.1), (256, 0.4), (4096, 3.2)]))
    assert fused.layer_ms("bf16", 1024, 512, 8, 2, 256) == pytest.approx(0.4)  # measured
    # 64 is halfway between 16 and 256 in log tokens: the geometric mean of 0.1 and 0.4.
    assert fused.layer_ms("bf16", 1024, 512, 8, 2, 64) == pytest.approx(math.sqrt(0.1 * 0.4))
    assert fused.layer_ms("bf16", 1024, 512, 8, 2, 8192) == pytest.approx(6.4)  # 2 x the rows
    assert fused.layer_ms("bf16", 1024, 512, 8, 2, 1) == pytest.approx(0.1)  # below: the smallest
    assert fused.layer_ms("bf16", 1024, 256, 8, 2, 64) is None  # another shape


def test_a_measured_layer_replaces_its_projections_and_activation():
    # gate/up (k = hidden, n = 2 x inter), SiLU-and-mul, down (k = inter, n = hidden), as the graph
    # emits them: 2/3 and 1/3 of the fused layer, nothing for the activation it fuses.
    fused = FusedMoE(table([(16, 0.3), (4096, 3.0)]))
    base = load_predictor(get_gpu("h100-sxm"))
    layer = moe_layer(8, 16, 512, 4, 8)
    assert WithEngineKernels(base, fused, "vllm").ops_ms(layer) == pytest.approx([0.2, 0.0, 0.1])


def test_convert_keeps_balanced_tensor_parallel_rows_per_rank():
    raw = aiconfigurator_moe_rows(
        moe_ep_size=[1, 1, 4, 1],
        distribution=["balanced", "power_law_1.01", "balanced", "balanced"],
        moe_dtype=["w4a16_mxfp4", "w4a16_mxfp4", "w4a16_mxfp4", "fp8"],
        hidden_size=2880,
        inter_size=2880,
        moe_tp_size=2,
        num_experts=128,
        topk=4,
        latency=[0.05, 0.07, 0.02, 0.5],
    )
    out = convert(raw)
    assert len(out) == 1  # skewed routing, EP with TP at once, and per-tensor FP8 left out
    row = out.iloc[0]
    assert (row["dtype"], row["inter"], row["ep"], row["ms"]) == ("w4a16", 1440, 1, 0.05)
    # Expert parallelism without tensor parallelism is kept, at the full width, as its layout.
    ep = convert(raw.assign(moe_tp_size=[1, 1, 1, 1]))
    assert sorted(zip(ep["ep"], ep["inter"], ep["ms"])) == [(1, 2880, 0.05), (4, 2880, 0.02)]


def test_a_measured_expert_shape_answers_from_the_engine_table_others_from_the_predictor():
    gpu = get_gpu("h200")
    base = load_predictor(gpu)
    pred = with_engine_kernels(base, gpu.name, "vllm")
    assert isinstance(pred, WithEngineKernels)
    rows = pd.read_csv(CALIBRATION_DIR / "h200" / "engine_kernels" / "fused_moe_vllm_0.24.0.csv")
    # gpt-oss-120b's experts at TP1: hidden 2880, intermediate 2880, 128 experts, top-4, MXFP4.
    row = rows[(rows.hidden == 2880) & (rows.inter == 2880) & (rows.experts == 128) & (rows.tokens == 1024)].iloc[0]
    ops = [
        GroupedGemm(128, 4, 1024, 2880, 5760, 32, 128, row["dtype"]),
        Elementwise("silu_mul", 4096, 2880),
        GroupedGemm(128, 4, 1024, 2880, 2880, 32, 128, row["dtype"]),
    ]
    assert pred.ops_ms(ops).sum() == pytest.approx(row.ms, rel=1e-4)
    other = [GroupedGemm(64, 6, 1024, 2048, 2816, 96, 64, "bf16"), Elementwise("add_rmsnorm", 1024, 4096)]
    assert np.allclose(pred.ops_ms(other), base.ops_ms(other))
    assert with_engine_kernels(base, "rtx-4090", "vllm") is base  # no table: the predictor itself


def test_mla_prefill_is_flash_attention_3_at_its_head_dims():
    # DeepSeek's prefill heads (192-dim queries and keys, 128-dim values, one K/V head each) on
    # the engine's measured 192-dim FlashAttention-3: the kernel's two GEMMs, q.k at 192 and p.v
    # at 128, are 320 / 384 of the measured kernel's work; other head counts in proportion.
    from frontier.ops.operators import AttnPrefill
    from frontier.predict.engine_kernels import DenseAttention

    rows = {"hq": ["16"] * 2, "hkv": ["1"] * 2, "d": ["192"] * 2, "seqs": ["1", "4"]}
    rows |= {"1024": ["0.05", "0.2"], "8192": ["0.6", "2.4"]}
    table = DenseAttention(rows, "prefill")
    assert table.op_ms(AttnPrefill.uniform(1, 8192, 16, 16, 192, 128)) == pytest.approx(0.6 * 320 / 384)
    assert table.op_ms(AttnPrefill.uniform(1, 8192, 32, 32, 192, 128)) == pytest.approx(2 * 0.6 * 320 / 384)
    assert table.op_ms(AttnPrefill.uniform(1, 8192, 16, 16, 128, 128)) is None  # not measured at 128
    both = DenseAttention(rows | {"hkv": ["16"] * 2, "d": ["128"] * 2}, "prefill")
    assert both.op_ms(AttnPrefill.uniform(1, 8192, 16, 16, 192, 128)) is None  # no 192-dim kernel


def test_mla_decode_comes_from_the_measured_kernel_on_its_batch_and_context_grid():
    from frontier.ops.operators import AttnDecode
    from frontier.predict.engine_kernels import MLADecode

    rows = pd.DataFrame(
        {
            "heads": [8] * 4,
            "batch": [1, 1, 64, 64],
            "kv": [1024, 4096, 1024, 4096],
            "ms": [0.016, 0.019, 0.037, 0.089],
        }
    )
    mla = MLADecode(rows)
    assert mla.attention_ms(8, 64, 64 * 4096) == pytest.approx(0.089)  # a measured point
    assert mla.attention_ms(8, 64, 64 * 2048) == pytest.approx(math.sqrt(0.037 * 0.089))  # log-log midway
    assert mla.attention_ms(8, 128, 128 * 8192) == pytest.approx(4 * 0.089)  # twice the batch and context
    assert mla.attention_ms(8, 1, 512) == pytest.approx(0.016)  # below the grid: its edge
    assert mla.attention_ms(16, 64, 64 * 4096) is None  # another head count
    base = load_predictor(get_gpu("h200"))
    pred = WithEngineKernels(base, None, "vllm", mla_decode=mla)
    latent = AttnDecode(64, 64 * 4096, 4096, 8, 1, 576, 512)
    ragged = AttnDecode(64, 64 * 4096, 8000, 8, 1, 576, 512)  # same cached tokens, uneven
    gqa = AttnDecode.uniform(64, 4096, 8, 1, 128)  # not the latent: the reference's answer
    ms = pred.ops_ms([latent, ragged, gqa])
    assert ms[0] == ms[1] == pytest.approx(0.089)
    assert ms[2] == pytest.approx(base.ops_ms([gqa])[0])


def test_both_engines_take_the_measured_mla_decode_kernel():
    # SGLang's FlashAttention-3 MLA kernel (aiconfigurator generation_mla_perf, H200, 8 heads per
    # rank: Kimi-K2.5 at TP8) answers vLLM too, which has no table of its own.
    from frontier.ops.operators import AttnDecode

    base = load_predictor(get_gpu("h200"))
    op = AttnDecode.uniform(64, 4096, 8, 1, 576, 512)
    for engine in ("sglang", "vllm"):
        got = with_engine_kernels(base, "h200", engine).ops_ms([op])[0]
        assert got == pytest.approx(0.089358, rel=1e-3)  # the measured row (batch 64, 4,096 tokens)
        assert got < 0.6 * base.ops_ms([op])[0]  # the latent read once, not as keys and values


def test_an_unmeasured_width_takes_the_engine_to_reference_ratio_of_the_nearest_measured_one():
    # Measured at TP1 (intermediate 512 per rank) only; at TP2 (256) the layer is the reference's
    # prediction times the engine/reference ratio found at 512.
    fused = FusedMoE(table([(16, 0.3), (4096, 3.0)]))
    base = load_predictor(get_gpu("h100-sxm"))
    ratio = 3.0 / base.ops_ms(moe_layer(8, 4096, 512, 1024, 8)).sum()
    got = WithEngineKernels(base, fused, "vllm").ops_ms(moe_layer(8, 4096, 256, 1024, 8))
    assert got.sum() == pytest.approx(ratio * base.ops_ms(moe_layer(8, 4096, 256, 1024, 8)).sum())
    assert got[1] == 0.0 and got[0] == pytest.approx(2 * got[2])


def test_an_expert_parallel_rank_takes_the_engine_to_reference_ratio_of_its_tensor_parallel_twin():
    # EP2 over tokens both ranks hold: a rank runs 4 of the 8 experts at the full width 1024 on
    # the rows routed to them. Its TP twin (8 experts at 1024 / 2 = 512, twice the rank's tokens:
    # the same rows per expert, FLOPs and weight bytes) was measured: the engine's 3.0 ms over
    # the reference's prediction of the twin scales the reference's prediction of the rank.
    fused = FusedMoE(table([(16, 0.3), (4096, 3.0)]))
    base = load_predictor(get_gpu("h100-sxm"))
    twin = moe_layer(8, 4096, 512, 1024, 8)

    def rank(ep):
        return moe_layer(4, 2048, 1024, 1100, 4, ep=ep)  # its busiest share of the 8192 rows

    got = WithEngineKernels(base, fused, "vllm").ops_ms(rank(2))
    expected = 3.0 / base.ops_ms(twin).sum() * base.ops_ms(rank(2)).sum()
    assert got.sum() == pytest.approx(expected)
    assert got[1] == 0.0 and got[0] == pytest.approx(2 * got[2])  # the fused layer's split
    # Dispatched by an all-to-all (ep left at 1 on the op: DeepEP's kernels, not the fused MoE
    # over an expert map), or without a measured twin, the rank keeps the reference's time.
    assert np.allclose(WithEngineKernels(base, fused, "vllm").ops_ms(rank(1)), base.ops_ms(rank(1)))
    other = FusedMoE(table([(16, 0.3)]).assign(experts=16))
    assert np.allclose(WithEngineKernels(base, other, "vllm").ops_ms(rank(2)), base.ops_ms(rank(2)))


def test_an_expert_parallel_rank_measured_at_its_layout_takes_the_measurement():
    # The table also holds the EP2 layout of the same 8 experts (one rank's 4 experts at the full
    # width 1024): 0.5 ms at 2,048 tokens every rank holds, 2.0 at 8,192. A rank whose busiest
    # share is 1,100 of 4,096 tokens (2,200 as if every rank had it) takes the log-log value at
    # 2,200, split 2/3 gate/up, 1/3 down; every one of its 4 experts touched, no scaling. Not the
    # TP twin's ratio, which answers without the EP rows (above).
    ep_rows = table([(2048, 0.5), (8192, 2.0)]).assign(inter=1024, ep=2)
    fused = FusedMoE(pd.concat([table([(16, 0.3), (4096, 3.0)]).assign(ep=1), ep_rows]))
    base = load_predictor(get_gpu("h100-sxm"))
    got = WithEngineKernels(base, fused, "vllm").ops_ms(moe_layer(4, 1100, 1024, 1100, 4, ep=2))
    assert got.sum() == pytest.approx(0.5 * 2200 / 2048)  # log-log between the two: slope 1
    assert got[1] == 0.0 and got[0] == pytest.approx(2 * got[2])
    # A rank of 1 token (2 as if every rank had it, below the measured counts: the first one's
    # 0.5 ms) routes its 2 rows to 2 of its 4 experts, where the balanced measurement touched 2
    # too: 0.5 ms. With 1 expert touched (both rows on it), half the weights read: 0.25 ms.
    assert WithEngineKernels(base, fused, "vllm").ops_ms(moe_layer(4, 1, 1024, 1, 2, ep=2)).sum() == pytest.approx(0.5)
    assert WithEngineKernels(base, fused, "vllm").ops_ms(moe_layer(4, 1, 1024, 2, 1, ep=2)).sum() == pytest.approx(0.25)
    # The EP rows are not a tensor-parallel width: the TP layer of width 1024 is not "measured".
    assert fused.nearest_width("bf16", 1024, 1024, 8, 2) == 512
    assert fused.layer_ms("bf16", 1024, 1024, 8, 2, 2048) is None
    assert fused.layer_ms("bf16", 1024, 1024, 8, 2, 2048, ep=2) == pytest.approx(0.5)


def test_the_graph_marks_expert_parallel_layers_the_fused_kernel_runs_over_an_expert_map():
    model = load_model("qwen3-30b-a3b")
    marks = {
        (ep, dp): {
            op.ep
            for op, _ in ffn_block(model, Parallel(tp=4 // dp, ep=ep, dp_attention=dp), 64, "bf16", 64 * dp)
            if isinstance(op, GroupedGemm)
        }
        for ep, dp in [(4, 1), (4, 4), (1, 1)]
    }
    assert marks == {(4, 1): {4}, (4, 4): {1}, (1, 1): {1}}  # replicated tokens only


def test_engine_tables_are_read_when_a_step_first_needs_them():
    """The tables are read (with pandas) when an MoE layer is first priced, then answer as if
    read up front; a dense model's operators never read them."""
    from frontier.predict.engine_kernels import load_fused_moe

    gpu = get_gpu("h200")
    base = load_predictor(gpu)
    pred = with_engine_kernels(base, gpu.name, "vllm")
    dense = [Elementwise("silu_mul", 1024, 14336), Elementwise("add_rmsnorm", 1024, 4096)]
    assert np.array_equal(pred.ops_ms(dense), base.ops_ms(dense))
    assert callable(pred._fused)  # not read yet
    assert "fused MoE" in pred.sources()["grouped_gemm"]  # known to exist without reading it
    layer = [
        GroupedGemm(128, 4, 1024, 2880, 5760, 32, 128, "w4a16"),
        Elementwise("silu_mul", 4096, 2880),
        GroupedGemm(128, 4, 1024, 2880, 2880, 32, 128, "w4a16"),
    ]
    eager = WithEngineKernels(base, load_fused_moe(str(CALIBRATION_DIR / gpu.name), "vllm"), "vllm")
    assert np.array_equal(pred.ops_ms(layer), eager.ops_ms(layer))
    assert isinstance(pred._fused, FusedMoE)


def test_a_dense_model_run_does_not_import_pandas():
    """Simulating a dense model (Llama-2-7B on an H100, whose GPU has engine MoE tables) never
    reads them, and reads the dense-GEMM table without pandas, so the run does not pay pandas'
    import (~0.2 s of start-up)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from frontier.sim.run import run_scenario\n"
        "from frontier.spec.scenario import scenario_from_dict\n"
        "sc = scenario_from_dict({'name': 'dense', 'model': 'llama-2-7b', 'gpu': 'h100-sxm',\n"
        "    'deployment': {'tp': 1}, 'workload': {'num_requests': 20, 'input_len': 300, 'output_len': 20,\n"
        "    'arrival': {'process': 'poisson', 'rate': 4.0}}, 'seed': 1})\n"
        "assert run_scenario(sc, timeline=False).summary['completed'] == 20\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def marlin_rows(points, hidden=3584, inter=768, experts=896, topk=16):
    return pd.DataFrame(
        [
            {
                "dtype": "w4a16",
                "hidden": hidden,
                "inter": inter,
                "experts": experts,
                "topk": topk,
                "tokens": t,
                "ms": ms,
                "moe_dtype": "w4a16_mxfp4",
                "kernel_source": "vllm_compressedtensorsw4a4mxfp4moe_marlin_marlinexperts",
            }
            for t, ms in points
        ]
    )


def test_marlin_carries_a_measured_layer_over_at_equal_rows_per_expert_scaled_by_the_work():
    from frontier.predict.engine_kernels import MarlinMoE

    # Measured: 896 experts, top-16, hidden 3584, width 768; 5,600 tokens = 100 rows per expert.
    marlin = MarlinMoE(marlin_rows([(560, 1.0), (5600, 4.0)]))
    # gpt-oss at TP4: 128 experts, top-4, hidden 2880 (padded to 3072), width 720 (padded to
    # 768). 3,200 tokens x 4 / 128 = 100 rows per expert too; the work is E x hidden x width.
    work = (128 * 3072 * 768) / (896 * 3584 * 768)
    assert marlin.layer_ms(2880, 720, 128, 4, 3200) == pytest.approx(4.0 * work)
    assert marlin.layer_ms(2880, 720, 128, 4, 320) == pytest.approx(1.0 * work)  # 10 rows per expert
    # Triton rows (or int4 Marlin rows) are not Marlin MXFP4 measurements.
    other = marlin_rows([(560, 1.0)]).assign(kernel_source="vllm_gptossmxfp4moe_triton")
    assert not MarlinMoE(other) and MarlinMoE(other).layer_ms(2880, 720, 128, 4, 3200) is None


def test_gpt_oss_experts_on_marlin_take_the_measured_marlin_speed_at_prefill_and_their_own_table_at_decode():
    """InferenceMAX serves gpt-oss on H100/H200 with VLLM_MXFP4_USE_MARLIN=1. Marlin's measured
    MXFP4 layers reach 190-230 TFLOPS at 8k+ tokens on H200, triton_kernels 450-560 on gpt-oss's
    experts: a prefill MoE layer takes more than twice as long; a decode-sized one (fewer rows than
    experts) keeps the measured layer of its own shape."""
    gpu = get_gpu("h200")
    base = load_predictor(gpu)
    triton = with_engine_kernels(base, gpu.name, "vllm")
    marlin = with_engine_kernels(base, gpu.name, "vllm", mxfp4_marlin=True)

    def layer(tokens, width=2880):
        return [
            GroupedGemm(128, 4, tokens, 2880, 2 * width, max(1, tokens // 32), min(128, 4 * tokens), "w4a16"),
            Elementwise("silu_mul", 4 * tokens, width),
            GroupedGemm(128, 4, tokens, width, 2880, max(1, tokens // 32), min(128, 4 * tokens), "w4a16"),
        ]

    for width in (2880, 360):  # TP1 and TP8
        prefill, decode = layer(8192, width), layer(8, width)
        assert marlin.ops_ms(prefill).sum() > 2.0 * triton.ops_ms(prefill).sum()
        assert np.array_equal(marlin.ops_ms(decode), triton.ops_ms(decode))
    # Not an MXFP4 layer: unchanged.
    fp8 = [
        GroupedGemm(256, 8, 8192, 3072, 768, 256, 256, "fp8"),
        Elementwise("silu_mul", 65536, 384),
        GroupedGemm(256, 8, 8192, 384, 3072, 256, 256, "fp8"),
    ]
    assert np.array_equal(marlin.ops_ms(fp8), triton.ops_ms(fp8))
    assert "Marlin" in marlin.sources()["grouped_gemm"]


# ----------------------------------------------------------------------------- dense GEMMs
def dense_table(times):
    """The wide dense-GEMM table (`convert_dense_gemm`'s layout) of {(dtype, m, k, n): ms}."""
    from frontier.predict.engine_kernels import DenseGemm

    long = pd.DataFrame([{"dtype": d, "m": m, "k": k, "n": n, "ms": ms} for (d, m, k, n), ms in times.items()])
    wide = long.pivot_table(index=["dtype", "m", "k"], columns="n", values="ms")
    wide.columns = [str(n) for n in wide.columns]
    return DenseGemm(wide.reset_index())


def power_law(m, k, n):
    """A time that is a power law of each of m, k and n: trilinear in logs reproduces it exactly."""
    return 1e-6 * m**0.25 * k * n**0.5


def test_dense_gemm_interpolates_log_linearly_and_is_exact_at_measured_shapes():
    grid = {("bf16", m, k, n): power_law(m, k, n) for m in (1, 16, 256) for k in (1024, 4096) for n in (512, 8192)}
    table = dense_table(grid)
    assert table.gemm_ms("bf16", 16, 4096, 512) == pytest.approx(power_law(16, 4096, 512))  # measured
    assert table.gemm_ms("bf16", 5, 2000, 3000) == pytest.approx(power_law(5, 2000, 3000))  # between
    assert table.gemm_ms("bf16", 1024, 4096, 512) == pytest.approx(4 * power_law(256, 4096, 512))  # m past
    assert table.gemm_ms("fp8", 16, 4096, 512) is None  # dtype not measured
    assert table.gemm_ms("bf16", 16, 8192, 512) is None  # k outside the measured range
    del grid[("bf16", 16, 4096, 8192)]
    assert dense_table(grid).gemm_ms("bf16", 20, 3000, 4000) is None  # a corner of its cell missing


def test_convert_dense_gemm_takes_the_usual_kernel_and_subtracts_fp8_quantisation():
    from frontier.predict.engine_kernels import DenseGemm, convert_dense_gemm

    raw = pd.DataFrame(
        {
            "gemm_dtype": ["bfloat16", "bfloat16", "fp8", "fp8", "bfloat16"],
            "kernel_source": ["torch_linear", "torch_linear", "cutlass", "cutlass", "other"],
            "m": [8, 8, 8, 8, 8],
            "k": [1024, 1024, 1024, 1024, 1024],
            "n": [1024, 2048, 1024, 2048, 4096],
            "latency": [0.010, 0.018, 0.008, 0.012, 0.5],
        }
    )
    raw = pd.concat([raw, raw.assign(m=16, k=2048)])  # a grid of two points on each axis
    quant = pd.DataFrame(
        {"m": [8, 16], "k": [1024, 2048], "scale_matrix_ms": [0.002, 0.002], "compute_scale_ms": [0.001, 0.001]}
    )
    wide = convert_dense_gemm(raw, quant)
    assert list(wide.columns) == ["dtype", "m", "k", "1024", "2048"]  # the `other` kernel's shape left out
    table = DenseGemm(wide)
    assert table.gemm_ms("bf16", 8, 1024, 2048) == pytest.approx(0.018)
    assert table.gemm_ms("fp8", 8, 1024, 1024) == pytest.approx(0.008 - 0.003)


def test_both_engines_price_gemms_from_the_measured_table_and_other_ops_as_before(tmp_path):
    """A GPU folder with a dense-GEMM table: its shapes answer from it for either engine (SGLang
    from vLLM's table: the same cuBLAS bf16 GEMM), other shapes and operators from the predictor."""
    folder = tmp_path / "h100-sxm" / "engine_kernels"
    folder.mkdir(parents=True)
    grid = {("bf16", m, k, n): power_law(m, k, n) for m in (1, 64) for k in (1024, 4096) for n in (1024, 4096)}
    table = dense_table(grid)
    wide = pd.DataFrame(
        [
            {"dtype": "bf16", "m": m, "k": k, **{str(n): grid["bf16", m, k, n] for n in (1024, 4096)}}
            for m in (1, 64)
            for k in (1024, 4096)
        ]
    )
    wide.to_csv(folder / "gemm_vllm_0.24.0.csv", index=False)
    base = load_predictor(get_gpu("h100-sxm"))
    inside, outside, norm = (
        Gemm(8, 2048, 2048, "bf16"),
        Gemm(8, 8192, 2048, "bf16"),
        Elementwise("add_rmsnorm", 8, 4096),
    )
    for engine in ("vllm", "sglang"):
        pred = with_engine_gemms(base, "h100-sxm", engine, calibration_dir=tmp_path)
        assert pred.ops_ms([inside])[0] == pytest.approx(table.gemm_ms("bf16", 8, 2048, 2048))
        assert pred.ops_ms([outside, norm]) == pytest.approx(base.ops_ms([outside, norm]))
        assert "measured GEMMs" in pred.sources()["gemm"]


def test_the_committed_h100_gemm_table_holds_the_measured_decode_gemm_of_qwen3_32b():
    """aiconfigurator's vLLM 0.24 measurement of Qwen3-32B's gate/up projection (k 5,120, n 51,200,
    524 MB of bf16 weights) at 8 tokens on H100: 0.2078 ms, 2.5 TB/s; its FP8 GEMM (less the
    activation quantisation) about half of it."""
    from frontier.predict.engine_kernels import load_dense_gemm

    table = load_dense_gemm(str(CALIBRATION_DIR / "h100-sxm"), "vllm")
    bf16 = table.gemm_ms("bf16", 8, 5120, 51200)
    assert bf16 == pytest.approx(0.2078, rel=1e-3)
    assert 0.45 < table.gemm_ms("fp8", 8, 5120, 51200) / bf16 < 0.55


def _attention_rows(phase):
    import csv

    path = CALIBRATION_DIR / "h100-sxm" / "engine_kernels" / f"attn_{phase}_vllm_0.24.0.csv"
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_measured_flash_attention_3_answers_its_own_rows(phase):
    from frontier.ops.operators import AttnDecode, AttnPrefill
    from frontier.predict.engine_kernels import load_dense_attention

    table = load_dense_attention(str(CALIBRATION_DIR / "h100-sxm"), "vllm", phase)
    checked = Counter()
    for r in _attention_rows(phase):
        hq, hkv, d, w, b = (int(r[c]) for c in ("hq", "hkv", "d", "window", "seqs"))
        # Qwen3-32B / Llama-3.1-70B at TP8; gpt-oss's sliding-window layers at TP8 (128 keys).
        if (hq, hkv, d, w) not in ((8, 1, 128, 0), (8, 1, 64, 128)):
            continue
        for length, ms in r.items():
            if length in ("hq", "hkv", "d", "window", "seqs") or ms == "":
                continue
            L = int(length)
            if phase == "prefill":
                op = AttnPrefill(b, b * L, b * L * L, 0, b * L, L, L, hq, hkv, d, d, "flash", w)
            else:
                op = AttnDecode(b, b * L, L, hq, hkv, d, d, "flash", w)
            assert table.op_ms(op) == pytest.approx(float(ms), rel=1e-9), (b, L, w)
            checked[w] += 1
    assert checked[0] > 100 and checked[128] > 100


def test_a_sliding_window_layer_takes_its_measured_kernel_else_its_window_cut():
    from dataclasses import replace

    from frontier.ops.operators import AttnDecode, AttnPrefill
    from frontier.predict.base import Predictor
    from frontier.predict.engine_kernels import EngineFamily, load_dense_attention
    from frontier.predict.roofline import RooflineModel
    from frontier.spec.hardware import get_gpu

    gpu_dir = str(CALIBRATION_DIR / "h100-sxm")
    decode = load_dense_attention(gpu_dir, "vllm", "decode")
    row = next(
        r
        for r in _attention_rows("decode")
        if (r["hq"], r["hkv"], r["d"], r["window"], r["seqs"]) == ("8", "1", "64", "128", "64")
    )
    op = AttnDecode(64, 64 * 8192, 8192, 8, 1, 64, 64, "flash", 128)
    assert decode.op_ms(op) == pytest.approx(float(row["8192"]))
    longest = max(int(c) for c, ms in row.items() if c.isdigit() and ms)
    # Past the measured lengths a windowed decode reads no more: flat (a windowless one grows).
    far = replace(op, sum_kv=64 * 4 * longest, max_kv=4 * longest)
    assert decode.op_ms(far) == pytest.approx(float(row[str(longest)]))
    odd = replace(op, window=100)  # a window not measured: the windowless kernel on what it sees
    assert (
        decode.op_ms(odd) == decode.op_ms(odd.within_window()) == decode.op_ms(AttnDecode(64, 6400, 100, 8, 1, 64, 64))
    )
    # A model that knows no windows is asked the window's windowless twin; the engine's table the op itself.
    roof = RooflineModel(get_gpu("h100-sxm"))
    plain = Predictor("h100-sxm", {}, roof)
    prefill = AttnPrefill.uniform(1, 8192, 8, 1, 64, window=128)
    assert plain.op_ms(prefill) == pytest.approx(roof.predict_ms([prefill.within_window()])[0])
    engine = Predictor("h100-sxm", {"attn_decode": EngineFamily(roof, decode, "vllm")}, roof)
    assert engine.op_ms(op) == pytest.approx(float(row["8192"]))


def test_a_prefill_batch_is_priced_at_the_equal_length_doing_its_causal_work():
    from frontier.ops.operators import AttnPrefill
    from frontier.predict.engine_kernels import DenseAttention

    rows = {"hq": ["8", "8"], "hkv": ["1", "1"], "d": ["128", "128"], "seqs": ["1", "4"]}
    rows |= {"1024": ["0.02", "0.05"], "4096": ["0.08", "0.32"]}
    table = DenseAttention(rows, "prefill")
    # Two sequences: 1,024 new tokens on 1,024 cached, and 2,048 new: work per head
    # (1024^2/2 + 1024*1024) + 2048^2/2 = 3.67M, the work of two sequences of 1,916 tokens.
    op = AttnPrefill(2, 3072, 1024**2 + 2048**2, 1024 * 1024, 4096, 2048, 2048, 8, 1, 128, 128, "flash")
    length = math.sqrt(2 * (1024**2 / 2 + 1024 * 1024 + 2048**2 / 2) / 2)
    w_seqs, w_len = math.log(2) / math.log(4), math.log(length / 1024) / math.log(4)
    expected = math.exp(
        (1 - w_seqs) * ((1 - w_len) * math.log(0.02) + w_len * math.log(0.08))
        + w_seqs * ((1 - w_len) * math.log(0.05) + w_len * math.log(0.32))
    )
    assert table.op_ms(op) == pytest.approx(expected)
    # Past the longest measured prompt the work grows with the square of the length.
    long = AttnPrefill(1, 8192, 8192**2, 0, 8192, 8192, 8192, 8, 1, 128, 128, "flash")
    assert table.op_ms(long) == pytest.approx(0.08 * 4)
    # Unmeasured heads, and MLA's unequal head dims, are left to the reference predictor.
    assert table.op_ms(AttnPrefill(1, 64, 64**2, 0, 64, 64, 64, 16, 2, 128, 128, "flash")) is None
    assert table.op_ms(AttnPrefill(1, 64, 64**2, 0, 64, 64, 64, 8, 8, 192, 128, "flash")) is None
    # A deployment on the cuDNN backend keeps the reference's cuDNN timings.
    assert table.op_ms(AttnPrefill(1, 1024, 1024**2, 0, 1024, 1024, 1024, 8, 1, 128, 128, "cudnn")) is None


def test_a_decode_past_the_measured_edge_goes_on_from_the_edge_of_its_batch():
    # aiconfigurator's tables stop where batch x length fills the GPU: 64 sequences are measured
    # to 8k tokens, 128 only to 4k. 128 x 6k reads past its row's edge: the 4k time grown with the
    # length (memory-bound decode), not a cell with an unmeasured corner.
    from frontier.ops.operators import AttnDecode
    from frontier.predict.engine_kernels import DenseAttention

    rows = {"hq": ["32"] * 2, "hkv": ["8"] * 2, "d": ["128"] * 2, "seqs": ["64", "128"]}
    rows |= {"4096": ["0.3", "0.55"], "8192": ["0.58", ""]}
    table = DenseAttention(rows, "decode")
    assert table.op_ms(AttnDecode.uniform(128, 6144, 32, 8, 128)) == pytest.approx(0.55 * 1.5)
    assert table.op_ms(AttnDecode.uniform(64, 8192, 32, 8, 128)) == pytest.approx(0.58)
    # Between the two batches the cell reads both rows: both go on from the 4k column they share.
    w = math.log(91 / 64) / math.log(2)
    between = math.exp((1 - w) * math.log(0.3) + w * math.log(0.55)) * 1.5
    assert table.op_ms(AttnDecode.uniform(91, 6144, 32, 8, 128)) == pytest.approx(between)


def test_flash_attention_3_is_faster_than_the_reference_flash_attention_2_on_long_prompts():
    """vLLM's FA3 on H100 against the reference tables' PyTorch FA2: one 8k prompt on 8 query heads
    (Qwen3-32B at TP8) 2.5x faster; a decode of 32 x 4k within 20 %."""
    from frontier.ops.operators import AttnDecode, AttnPrefill
    from frontier.predict.engine_kernels import with_engine_attention

    base = load_predictor(get_gpu("h100-sxm"))
    pred = with_engine_attention(base, "h100-sxm", "vllm")
    prefill = AttnPrefill(1, 8192, 8192**2, 0, 8192, 8192, 8192, 8, 1, 128, 128, "flash")
    decode = AttnDecode(32, 32 * 4096, 4096, 8, 1, 128, 128, "flash")
    ratio = base.ops_ms([prefill, decode]) / pred.ops_ms([prefill, decode])
    assert ratio[0] == pytest.approx(2.51, abs=0.05) and 1.0 < ratio[1] < 1.2
    assert "FlashAttention-3" in pred.sources()["attn_prefill"]


def test_qwen35_expert_parallel_ranks_take_sglangs_measured_ep8_layer():
    # Qwen3.5-397B's experts (hidden 4096, intermediate 1024, 512 experts, top-10, FP8 blocks)
    # over 8 expert-parallel ranks, as SGLang 0.5.14 was measured on an H200 (a table row): a rank
    # of 8 busiest tokens (64 as if every rank had them) touching all 64 of its experts takes it.
    ms = measured_layer("fused_moe_sglang_0.5.14.csv", hidden=4096, inter=1024, experts=512, topk=10, ep=8, tokens=64)
    gpu = get_gpu("h200")
    pred = with_engine_kernels(load_predictor(gpu), gpu.name, "sglang")
    rank = [
        GroupedGemm(64, 10, 8, 4096, 2048, 2, 64, "fp8", ep=8),
        Elementwise("silu_mul", 80, 1024),
        GroupedGemm(64, 10, 8, 1024, 4096, 2, 64, "fp8", ep=8),
    ]
    assert pred.ops_ms(rank).sum() == pytest.approx(ms, rel=1e-6)


def measured_layer(table_name: str, **shape) -> float:
    """The one FP8 layer of a committed H200 fused-MoE table with this shape, layout and count."""
    rows = pd.read_csv(CALIBRATION_DIR / "h200" / "engine_kernels" / table_name)
    hit = rows[(rows.dtype == "fp8") & np.logical_and.reduce([rows[k] == v for k, v in shape.items()])]
    assert len(hit) == 1
    return float(hit.ms.iloc[0])


def test_minimax_experts_on_flashinfer_cutlass_take_tensorrt_llms_measured_cutlass_layer():
    # MiniMax-M2.5's experts (hidden 3072, intermediate 1536 / 4 = 384 per TP4 rank, 256 experts,
    # top-8, FP8 blocks) at 1,024 tokens, every expert touched: FlashInfer's CUTLASS MoE answers
    # with TensorRT-LLM's measured CUTLASS layer on H200 (a table row), vLLM's Triton fused MoE
    # with its own row, faster at this tensor-parallel layout.
    def row(name):
        return measured_layer(name, hidden=3072, inter=384, experts=256, topk=8, ep=1, tokens=1024)

    gpu = get_gpu("h200")
    layer = [
        GroupedGemm(256, 8, 1024, 3072, 768, 32, 256, "fp8"),
        Elementwise("silu_mul", 8192, 384),
        GroupedGemm(256, 8, 1024, 384, 3072, 32, 256, "fp8"),
    ]
    cutlass = with_engine_kernels(load_predictor(gpu), gpu.name, "vllm", cutlass_moe=True)
    triton = with_engine_kernels(load_predictor(gpu), gpu.name, "vllm")
    assert cutlass.ops_ms(layer).sum() == pytest.approx(row("fused_moe_flashinfer-cutlass_1.3.0rc20.csv"), rel=1e-6)
    assert triton.ops_ms(layer).sum() == pytest.approx(row("fused_moe_vllm_0.24.0.csv"), rel=1e-6)
    assert row("fused_moe_flashinfer-cutlass_1.3.0rc20.csv") > 1.4 * row("fused_moe_vllm_0.24.0.csv")
    assert "FlashInfer's CUTLASS MoE" in cutlass.sources()["grouped_gemm"]


def test_flashinfer_cutlass_experts_it_did_not_measure_keep_the_engines_table(tmp_path):
    # Hand-made tables: the CUTLASS table measured the 8-expert shape only (0.6 ms at 16 tokens),
    # the engine's both (0.3 ms) and a 16-expert one (0.2 ms). With `cutlass` the 8 experts take
    # the CUTLASS row, the 16 the engine's; without it, the engine's throughout.
    folder = tmp_path / "gpu" / "engine_kernels"
    folder.mkdir(parents=True)
    table([(16, 0.6)]).assign(ep=1).to_csv(folder / "fused_moe_flashinfer-cutlass_1.3.0rc20.csv", index=False)
    pd.concat([table([(16, 0.3)]), table([(16, 0.2)]).assign(experts=16)]).assign(ep=1).to_csv(
        folder / "fused_moe_vllm_0.24.0.csv", index=False
    )
    gpu_dir = str(tmp_path / "gpu")
    with_cutlass, engine = load_fused_moe(gpu_dir, "vllm", cutlass=True), load_fused_moe(gpu_dir, "vllm")
    assert with_cutlass.layer_ms("bf16", 1024, 512, 8, 2, 16) == pytest.approx(0.6)
    assert with_cutlass.layer_ms("bf16", 1024, 512, 16, 2, 16) == pytest.approx(0.2)
    assert engine.layer_ms("bf16", 1024, 512, 8, 2, 16) == pytest.approx(0.3)


def test_convert_cutlass_moe_keeps_tensorrt_llms_gated_cutlass_rows_of_bf16_and_block_fp8():
    raw = aiconfigurator_moe_rows(
        moe_dtype=["fp8_block", "bfloat16", "bfloat16", "w4a16_mxfp4"],
        latency=[0.3, 0.4, 0.9, 0.2],
        kernel_source=["moe_torch_flow_cutlass", "moe_torch_flow_cutlass", "moe_torch_flow_nongated", "moe_torch_flow"],
    )
    out = convert_cutlass_moe(raw)
    assert sorted(zip(out["dtype"], out["inter"], out["ms"])) == [("bf16", 384, 0.4), ("fp8", 384, 0.3)]


def test_cutlass_layouts_slower_with_less_work_per_rank_are_left_out():
    # Hand-made rows of one expert shape at 16 and 64 tokens: widths 1024 / 512 / 256 / 128 per rank
    # and EP2 / EP4 / EP8. Width 256 takes longer than 512 (1.5 against 0.6 ms): a collection fault,
    # left out; 128 is then held to 512's, and kept. EP4 takes longer than EP2: out; EP8 kept.
    from frontier.predict.engine_kernels import _slower_with_less_work

    layouts = [
        (1024, 1, 1.0),
        (512, 1, 0.6),
        (256, 1, 1.5),
        (128, 1, 0.4),
        (1024, 2, 0.5),
        (1024, 4, 0.8),
        (1024, 8, 0.3),
    ]
    rows = pd.concat(table([(16, ms), (64, 2 * ms)]).assign(inter=inter, ep=ep) for inter, ep, ms in layouts)
    rows = rows.reset_index(drop=True)
    faulty = _slower_with_less_work(rows)
    assert sorted(set(zip(rows[faulty]["inter"], rows[faulty]["ep"]))) == [(256, 1), (1024, 4)]


def test_the_import_takes_the_newest_tensorrt_llm_release_with_cutlass_moe_rows(tmp_path, monkeypatch):
    # aiconfigurator's TensorRT-LLM 1.3.0rc23 table has no CUTLASS MoE rows (as on H200), rc20 has:
    # the FlashInfer CUTLASS table comes from rc20; "rc20" sorts after "rc10", not by its text.
    from frontier.predict import cli

    def release(name, kernel, ms):
        folder = tmp_path / "moe" / "trtllm" / name
        folder.mkdir(parents=True)
        rows = aiconfigurator_moe_rows(moe_dtype=["fp8_block"], latency=[ms], kernel_source=[kernel])
        rows.to_csv(folder / "moe_perf.parquet", index=False)

    release("1.3.0rc10", "moe_torch_flow_cutlass", 0.5)
    release("1.3.0rc20", "moe_torch_flow_cutlass", 0.3)
    release("1.3.0rc23", "moe_torch_flow", 0.2)
    monkeypatch.setattr(pd, "read_parquet", pd.read_csv)
    name, rows = cli._cutlass_moe_rows(tmp_path)
    assert name == "1.3.0rc20" and list(rows["ms"]) == [0.3]
