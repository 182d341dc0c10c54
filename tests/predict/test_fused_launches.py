"""Kernel launches (frontier.predict.blocks.launched_ms): outside CUDA graphs the host's launches
hide behind the GPU's work until they fall behind it; a kernel the engine fuses away launches
nothing."""

import pandas as pd
import pytest

from frontier.ops.graph import Parallel
from frontier.ops.operators import Elementwise, GroupedGemm
from frontier.predict import load_predictor
from frontier.ops.operators import Gemm
from frontier.predict.blocks import GRAPH_KERNEL_FLOOR_US, GRAPH_OVERLAP_US, BlockCosts, StepOverheads, launched_ms
from frontier.predict.engine_kernels import FusedMoE, WithEngineKernels
from frontier.spec.hardware import get_gpu
from frontier.spec.model import load_model


def test_the_activation_inside_a_measured_fused_moe_layer_adds_no_launch():
    rows = pd.DataFrame(
        [
            {"dtype": "bf16", "hidden": 1024, "inter": 512, "experts": 8, "topk": 2, "tokens": t, "ms": ms}
            for t, ms in ((16, 0.3), (4096, 3.0))
        ]
    )
    pred = WithEngineKernels(load_predictor(get_gpu("h100-sxm")), FusedMoE(rows), "vllm")
    layer = [
        (GroupedGemm(8, 2, 16, 1024, 1024, 4, 8, "bf16"), 10),
        (Elementwise("silu_mul", 32, 512), 10),
        (GroupedGemm(8, 2, 16, 512, 1024, 4, 8, "bf16"), 10),
    ]
    ms = pred.ops_ms([op for op, _ in layer])
    assert list(ms) == pytest.approx([0.2, 0.0, 0.1])
    o = StepOverheads()
    blocks = BlockCosts(load_model("llama-3.1-8b"), Parallel(), pred, o)
    gap, launch = o.graph_launch_us * 1e-3, o.eager_launch_us * 1e-3
    in_graph = [max(t - GRAPH_OVERLAP_US * 1e-3, GRAPH_KERNEL_FLOOR_US * 1e-3) + gap for t in (0.2, 0.1)]
    assert blocks._launched(layer, ms, graph=True)[0] == pytest.approx(10 * sum(in_graph))
    assert blocks._launched(layer, ms, graph=False)[0] == pytest.approx(10 * (0.2 + 0.1))
    assert launch < 0.1  # each projection outlasts its launch: only the activation's launch is gone


def test_eager_launches_hide_behind_a_long_kernel_until_the_host_falls_behind():
    o = StepOverheads(eager_launch_us=10.0)
    gemm, norm = Gemm(4096, 4096, 4096), Elementwise("rmsnorm", 4096, 4096)
    # A 1 ms GEMM then nine 2-us norms: the host launches all ten in 0.1 ms, the GPU needs 1.018.
    assert launched_ms([(gemm, 1), (norm, 9)], [1.0, 0.002], o, graph=False) == pytest.approx((1.018, 0.0))
    # Ten 2-us norms alone: the GPU waits for every launch (10 x 10 us), not for the kernels (20 us).
    assert launched_ms([(norm, 10)], [0.002], o, graph=False) == pytest.approx((0.1, 0.0))
    # From a graph each runs its time less the overlap (at least the floor) after a 1-us gap.
    assert launched_ms([(norm, 10)], [0.002], o, graph=True)[0] == pytest.approx(10 * (0.002 + 0.001))
