"""The size of the chains of decoder layers `decode_step` builds (it leaves out those too big)."""

from __future__ import annotations

from frontier.ops.operators import AttnDecode, Gemm, GroupedGemm
from profiler.bench.step import chain_bytes


def test_chain_bytes_count_weights_kv_and_activations():
    ops = [Gemm(2, 64, 32), Gemm(2, 64, 32, "fp8"), AttnDecode(2, 100, 50, 4, 2, 16, 16)]
    weights = 64 * 32 * 2 + 64 * 32 * 1
    activations = 2 * (4 * 2 * (64 + 32))
    kv = 2 * 2 * 32 * (100 + 256 * 2)
    experts = GroupedGemm(8, 2, 4, 16, 32, 2, 5)
    assert chain_bytes(ops) == weights + activations + kv
    assert chain_bytes([experts]) == 2 * 8 * 16 * 32 + 4 * 8 * (16 + 32)
