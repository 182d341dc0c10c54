"""Which operator families a run predicted without a calibration of its GPU, and how the summary
says so: the analytic roofline apart from another GPU's calibration scaled to this one."""

from frontier.metrics.report import predictor_notes
from frontier.sim.run import predictor_coverage

H200 = {
    "gemm": "vllm's measured GEMMs, else xgboost h100-sxm, roofline-scaled",
    "attn_decode": "sglang's measured FlashAttention-3, else xgboost h100-sxm, roofline-scaled",
    "collective": "alpha-beta fit h100-sxm, roofline-scaled",
    "elementwise": "roofline",
    "grouped_gemm": "sglang's fused MoE where measured, else roofline",
}
H100 = {"gemm": "vllm's measured GEMMs, else xgboost", "elementwise": "roofline"}


def test_scaled_families_are_not_called_analytic():
    coverage = predictor_coverage([H200, H100])
    assert coverage == {
        "predictor_fallback": ["elementwise", "grouped_gemm"],
        "predictor_scaled": ["attn_decode", "collective", "gemm"],
    }
    scaled, fallback = predictor_notes({"gpu": "h200", "predictor": H200, **coverage})
    assert scaled.startswith("attn_decode, collective, gemm on h200: from h100-sxm's calibration scaled")
    assert fallback.startswith("no calibration for elementwise, grouped_gemm on h200: ")


def test_a_calibrated_gpu_has_only_its_analytic_families_noted():
    coverage = predictor_coverage([H100])
    assert coverage == {"predictor_fallback": ["elementwise"], "predictor_scaled": []}
    assert predictor_notes({"gpu": "h100-sxm", "predictor": H100, **coverage}) == [
        "no calibration for elementwise on h100-sxm: those operators use the analytic roofline (less accurate)"
    ]
