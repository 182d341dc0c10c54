"""Physics features: vectorised, equal for a uniform batch and its ragged description."""

from __future__ import annotations

import numpy as np
import pytest

from frontier.ops.operators import AttnDecode, AttnPrefill, Gemm, GroupedGemm
from frontier.predict import features as F


def test_gemm_features_carry_the_physics(h100):
    ops = [Gemm(128, 4096, 4096), Gemm(8192, 4096, 4096, "fp8")]
    x, roof = F.features("gemm", ops, h100)
    names = F.FEATURES["gemm"]
    assert x.shape == (2, len(names)) and x.dtype == np.float32
    col = dict(zip(names, x[0]))
    assert col["log_flops"] == pytest.approx(np.log(2 * 128 * 4096 * 4096), rel=1e-6)
    assert col["waves_128"] == pytest.approx(1 * 32 / 132, rel=1e-6)  # ceil(128/128)*32 tiles
    # 8192 rows: compute bound at the fp8 peak
    assert roof[1] == pytest.approx(2 * 8192 * 4096 * 4096 / (h100.fp8_tflops * 1e12) * 1e3)


def test_ragged_and_uniform_statistics(h100):
    uniform = AttnDecode.uniform(8, 1000, 32, 8, 128)
    ragged = AttnDecode(8, 8000, 4000, 32, 8, 128, 128)
    cols = F.columns("attn_decode", [uniform, ragged], h100)
    assert F.is_ragged("attn_decode", cols).tolist() == [False, True]
    axes = F.axis_values("attn_decode", cols)
    assert axes["length"].tolist() == [1000, 1000] and axes["batch"].tolist() == [8, 8]
    pre = AttnPrefill.uniform(2, 512, 32, 8, 128, context=1024)
    cols = F.columns("attn_prefill", [pre, AttnPrefill.uniform(2, 512, 32, 8, 128)], h100)
    seqs, length = F.prefill_equivalent(cols)
    # same causal work: 2 * (512 * 1024 + 512^2 / 2) = seqs * length^2 / 2
    assert seqs[0] == 2 and length[0] ** 2 / 2 == pytest.approx(512 * 1024 + 512**2 / 2)
    assert F.is_ragged("attn_prefill", cols).tolist() == [True, False]
    # features at explicit axis values equal the features of the uniform batch there
    x_axes, _ = F.matrix("attn_prefill", cols, h100, {"seqs": np.array([2.0, 2.0]), "length": np.array([512.0, 512.0])})
    x_same, _ = F.features("attn_prefill", [AttnPrefill.uniform(2, 512, 32, 8, 128)] * 2, h100)
    assert np.allclose(x_axes, x_same)


def test_grid_corners_interpolate_in_log_space():
    grid = {"m": [64.0, 256.0]}
    (lo, w_lo), (hi, w_hi) = F.corners({"m": np.array([64.0, 128.0, 1000.0])}, grid)
    assert lo["m"].tolist() == [64, 64, 64] and hi["m"].tolist() == [256, 256, 256]
    assert np.allclose(w_hi, [0.0, 0.5, 1.0]) and np.allclose(w_lo + w_hi, 1.0)


def test_moe_features_see_the_busiest_expert(h100):
    even = GroupedGemm(128, 8, 1024, 2048, 1536, 64, 128)
    hot = GroupedGemm(128, 8, 1024, 2048, 1536, 1009, 91)
    x, _ = F.features("grouped_gemm", [even, hot], h100)
    col = {n: x[:, i] for i, n in enumerate(F.FEATURES["grouped_gemm"])}
    assert col["imbalance"][1] > 10 * col["imbalance"][0]
    assert col["log_weight_bytes"][1] < col["log_weight_bytes"][0]  # fewer active experts
