"""The profiler's first run on a real GPU (one H200, calibration/profiled/h200): its tables load
with their provenance, its predictors reproduce measured rows, the elementwise kinds it did not
time fall to the roofline, its kernel tables add up to the whole decode steps it timed, and it is
not what h200 uses by default (calibration/README.md says why)."""

from __future__ import annotations

import pytest

from frontier.ops.operators import Elementwise
from frontier.paths import CALIBRATION_DIR
from frontier.predict import calibrated_gpus, load_predictor
from frontier.predict import calibration as cal
from frontier.predict import whole_step
from frontier.predict.roofline import RooflineModel
from frontier.spec.hardware import get_gpu

from .conftest import assert_predicts_measured_row

ROOT = CALIBRATION_DIR / "profiled"
GPU_DIR = ROOT / "h200"
TRAINED = ("gemm", "attn_prefill", "attn_decode", "grouped_gemm", "elementwise")


def test_tables_load_with_their_provenance():
    meta = cal.read_meta(GPU_DIR)
    assert meta["device_name"] == "NVIDIA H200" and meta["sm_count"] == 132
    assert meta["torch"].startswith("2.11") and meta["method"]["timer"] == "cuda_events"
    for family in TRAINED:
        table = cal.read_table(GPU_DIR, family)
        assert len(table) == meta["sources"][family]["rows"] > 500
        assert (table["ms"] > 0).all() and meta["sources"][family]["provenance"] == "frontier profiler"
    assert cal.calibration_kind(GPU_DIR) == "measured"


def test_not_the_default_for_h200():
    assert "h200" not in calibrated_gpus() and "profiled" not in calibrated_gpus()
    assert "roofline-scaled" in load_predictor("h200").sources()["gemm"]


# Measured rows (Llama-3.1-70B at TP1: the QKV projection, 64 / 8 heads of 128, its norms).
@pytest.mark.parametrize(
    "family, shape",
    [
        ("gemm", {"m": 16, "k": 8192, "n": 10240, "dtype": "bf16"}),  # 0.057 ms
        ("gemm", {"m": 1024, "k": 8192, "n": 10240, "dtype": "fp8"}),  # 0.152 ms
        ("attn_decode", {"batch": 32, "max_kv": 2048, "hq": 64, "hkv": 8, "d": 128, "backend": "cudnn"}),  # 0.075 ms
        ("elementwise", {"name": "add_rmsnorm", "tokens": 64, "width": 8192}),  # 0.0083 ms, one kernel
    ],
)
def test_predictors_reproduce_measured_rows(family, shape):
    assert_predicts_measured_row(ROOT, "h200", family, shape)


def test_elementwise_kinds_it_did_not_time_take_the_roofline():
    table = cal.read_table(GPU_DIR, "elementwise")
    assert "topk_gating" not in set(table["name"]) and "embedding" not in set(table["name"])
    untimed = [Elementwise("topk_gating", 64, 128), Elementwise("embedding", 64, 8192)]
    predictor = load_predictor("h200", ROOT)
    roofline = RooflineModel(get_gpu("h200")).predict_ms(untimed)
    assert predictor.ops_ms(untimed).tolist() == roofline.tolist()
    timed = Elementwise("add_rmsnorm", 64, 8192)
    assert predictor.op_ms(timed) != RooflineModel(get_gpu("h200")).predict_ms([timed])[0]


def test_kernel_tables_add_up_to_the_whole_steps_timed_kernel_by_kernel():
    """49 chains of 4 decoder layers (6 models, 1-256 sequences, 1k and 8k tokens), each kernel
    timed alone and summed: the predictors trained on the per-kernel tables reproduce the sums
    (4.6 % median)."""
    chains = whole_step.predicted(whole_step.per_kernel(whole_step.load("h200", ROOT)), "h200", ROOT)
    assert len(chains) >= 45
    ape = (chains["pred_alone"] / chains["alone"] - 1).abs()
    assert ape.median() <= 0.08
    # A CUDA graph saves each kernel a few microseconds against its time alone (the step rule's
    # GRAPH_OVERLAP_US, fitted to served runs, is 3).
    fitted = whole_step.fit(chains, graph_launch_us=1.0)["graph_overlap_us"]
    assert 3.0 <= fitted <= 6.5
