"""GPUs without tables fall back to the roofline; partial calibrations say what fell back."""

from __future__ import annotations

import numpy as np

from frontier.ops.operators import AttnDecode, Collective, Gemm
from frontier.predict import load_predictor
from frontier.predict import calibration as cal
from frontier.predict.roofline import RooflineModel
from frontier.predict.train import train_gpu
from frontier.spec.hardware import get_gpu

from .conftest import H100


def test_gpu_without_tables_uses_the_roofline(tmp_path):
    gpu = get_gpu("h100-pcie")
    p = load_predictor(gpu, calibration_dir=tmp_path)
    assert p.sources() == {
        "gemm": "roofline",
        "attn_prefill": "roofline",
        "attn_decode": "roofline",
        "grouped_gemm": "roofline",
        "elementwise": "roofline",
        "collective": "alpha-beta",
    }
    assert {"gemm", "attn_decode", "grouped_gemm"} <= set(p.fallback_families())
    op = Gemm(512, 4096, 4096)
    assert p.op_ms(op) == RooflineModel(gpu).predict_ms([op])[0]


def test_partial_calibration_uses_what_it_has(gemm_only_root, h100):
    report = train_gpu(H100, calibration_dir=gemm_only_root, progress=False, validate=False)
    assert list(report["families"]) == ["gemm"]
    assert (gemm_only_root / H100 / "predictors" / "gemm.json").exists()
    p = load_predictor(h100, calibration_dir=gemm_only_root)
    sources = p.sources()
    assert sources["gemm"] == "xgboost"
    assert sources["attn_decode"] == sources["attn_prefill"] == sources["grouped_gemm"] == "roofline"
    assert set(p.fallback_families()) >= {"attn_prefill", "attn_decode", "grouped_gemm"}
    # the trained family predicts its own measured rows closely, the others come from the spec
    table = cal.read_table(gemm_only_root / H100, "gemm")
    ape = np.abs(p.ops_ms(cal.ops_from_frame(table, "gemm")) / table["ms"].to_numpy() - 1)
    assert np.median(ape) < 0.05
    op = AttnDecode.uniform(8, 1024, 32, 8, 128)
    assert p.op_ms(op) == RooflineModel(h100).predict_ms([op])[0]
    assert p.op_ms(Collective("all_reduce", 2**20, 8)) > 0


def test_loading_never_trains(tmp_path, h100):
    root = tmp_path / "calibration"
    table = cal.read_table(cal.calibration_dir(H100), "gemm").head(30)
    cal.write_table(table, root / H100, "gemm")  # a table, but no predictors yet
    p = load_predictor(h100, calibration_dir=root)
    assert p.sources()["gemm"] == "roofline"
    assert not (root / H100 / "predictors").exists()
