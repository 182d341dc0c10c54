"""Kernels at the sustained clock: the compute-bound part of a kernel's time slows, the rest not."""

import numpy as np
import pytest

from frontier.ops.operators import Collective, Gemm
from frontier.predict.sustained import SustainedClock
from frontier.spec.hardware import get_gpu


class Fixed:
    """A predictor answering every operator with the same burst-measured time."""

    def __init__(self, ms):
        self.ms = ms

    def ops_ms(self, ops):
        return np.full(len(ops), self.ms)

    def sources(self, families=None):
        return {"gemm": "table", "collective": "alpha-beta"}


def test_the_compute_bound_part_slows_by_the_factor_the_memory_bound_one_not():
    h100 = get_gpu("h100-sxm")
    prefill = Gemm(8192, 8192, 8192, "bf16")  # 1.1 TFLOP: 1.11 ms at the 989 TFLOPS bf16 peak
    ideal = 2 * 8192**3 / (h100.bf16_tflops * 1e9)
    assert SustainedClock(Fixed(1.5), h100, 0.25).ops_ms([prefill])[0] == pytest.approx(1.5 + 0.25 * ideal)
    # A burst faster than the peak allows (a mis-measured row) slows by at most the factor.
    assert SustainedClock(Fixed(0.5), h100, 0.25).op_ms(prefill) == pytest.approx(0.5 * 1.25)
    decode = Gemm(8, 8192, 8192, "fp8")  # 1 GFLOP: 0.5 us of tensor work in a 25 us weight read
    assert SustainedClock(Fixed(0.025), h100, 0.25).op_ms(decode) == pytest.approx(
        0.025 + 0.25 * 2 * 8 * 8192**2 / (h100.fp8_tflops * 1e9)
    )
    link = Collective("all_reduce", 2**24, 8, "nvlink")
    assert SustainedClock(Fixed(0.1), h100, 0.25).op_ms(link) == 0.1  # no FLOPs: the links set it


def test_sources_name_the_sustained_clock_once_beside_the_families():
    sources = SustainedClock(Fixed(1.0), get_gpu("h200"), 0.25).sources()
    assert sources == {
        "gemm": "table",
        "collective": "alpha-beta",
        "sustained_clock": "compute-bound kernel time +25% (tables are boost-clock bursts)",
    }
    assert "sustained_clock" not in SustainedClock(Fixed(1.0), get_gpu("h200"), 0.0).sources()
