"""Collectives: the alpha-beta fit to published NCCL figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from frontier.ops.operators import Collective
from frontier.predict import load_predictor
from frontier.predict.collective import CollectiveFitModel, fit_alpha_beta, fit_points, wire_bytes

from .conftest import H100_DIR


def test_fit_recovers_a_known_alpha_beta():
    sizes = np.geomspace(1e3, 1e9, 12)
    ms = np.array([0.010 + wire_bytes("all_reduce", 8, s) / 300e9 * 1e3 for s in sizes])
    fit = fit_alpha_beta(sizes, ms, "all_reduce", 8)
    (proto,) = fit["protocols"]
    assert proto["alpha_us"] == pytest.approx(10.0, rel=1e-3)
    assert proto["busbw_gbps"] == pytest.approx(300.0, rel=1e-3)


def test_published_points_are_reproduced():
    points = pd.read_csv(H100_DIR / "published" / "nccl.csv")
    model = CollectiveFitModel(json.loads((H100_DIR / "meta.json").read_text())["collective_fit"]["fits"])
    ops = [Collective(r.kind, int(r.size_bytes), int(r.world), r.link) for r in points.itertuples()]
    ape = np.abs(model.predict_ms(ops) / points["ms"].to_numpy() - 1) * 100
    assert np.median(ape) < 3 and np.percentile(ape, 90) < 10
    assert fit_points(points) == json.loads((H100_DIR / "meta.json").read_text())["collective_fit"]["fits"]


def test_h100_collectives_use_the_fit():
    p = load_predictor("h100-sxm")
    assert p.sources()["collective"] == "alpha-beta fit"
    # 8-GPU NVLink all-reduce of 512 MiB: NVIDIA's sweep says 2.111 ms (busbw ~445 GB/s)
    ms = p.op_ms(Collective("all_reduce", 512 * 2**20, 8))
    assert ms == pytest.approx(2.111, rel=0.03)
    # across nodes the 400 Gb/s NIC bounds it: ~47 GB/s bus bandwidth
    net = p.op_ms(Collective("all_reduce", 256 * 2**20, 16, "network"))
    assert net == pytest.approx(0.0465 + 2 * 15 / 16 * 256 * 2**20 / 47e9 * 1e3, rel=0.02)
    assert p.op_ms(Collective("send_recv", 2**20, 2)) > 0
    assert p.op_ms(Collective("all_reduce", 2**20, 1)) == 0.0


def test_custom_all_reduce_one_and_two_shot_by_hand():
    """One-shot below 256 KiB on 8 GPUs: one barrier stage and 7 peers' buffers read over NVLink;
    two-shot above: two stages and 2 x 7/8 of the message."""
    from frontier.predict.roofline import (
        CUSTOM_ALLREDUCE_BASE_US,
        CUSTOM_ALLREDUCE_PER_PEER_US,
        LINK_EFFICIENCY,
        custom_all_reduce_ms,
    )
    from frontier.spec.hardware import get_gpu

    h100 = get_gpu("h100-sxm")
    bw = h100.intra_node_gbps * 1e9 * LINK_EFFICIENCY

    def stage_ms(world):
        return (CUSTOM_ALLREDUCE_BASE_US + CUSTOM_ALLREDUCE_PER_PEER_US * (world - 1)) * 1e-3

    small, large = 64 * 1024, 4 * 2**20
    assert custom_all_reduce_ms(small, 8, h100) == pytest.approx(stage_ms(8) + 7 * small / bw * 1e3)
    assert custom_all_reduce_ms(large, 8, h100) == pytest.approx(2 * stage_ms(8) + 2 * 7 / 8 * large / bw * 1e3)
    # Two GPUs always take the one-shot kernel.
    assert custom_all_reduce_ms(large, 2, h100) == pytest.approx(stage_ms(2) + large / bw * 1e3)


def test_multimem_all_reduce_matches_the_published_hopper_timings():
    """vLLM PR #42324's SM 9.0 benchmark of torch symmetric memory's multimem all-reduce
    (benchmark_device_communicators.py): 46 us at 8 MiB, 87 us at 16 MiB, 165 us at 32 MiB,
    against NCCL's 76, 121 and 195 us in the same table."""
    from frontier.predict import load_predictor
    from frontier.predict.roofline import multimem_all_reduce_ms
    from frontier.spec.hardware import get_gpu

    h100 = get_gpu("h100-sxm")
    for mib, us in ((8, 46), (16, 87), (32, 165)):
        assert multimem_all_reduce_ms(mib * 2**20, h100) * 1e3 == pytest.approx(us, rel=0.06)
    p = load_predictor("h100-sxm")
    for mib in (8, 16, 32):
        size = mib * 2**20
        assert p.op_ms(Collective("multimem_all_reduce", size, 8)) < p.op_ms(Collective("all_reduce", size, 8))
