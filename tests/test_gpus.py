"""GPU spec table (frontier/spec/gpus.yaml) through its loader (frontier/spec/hardware.py)."""

from __future__ import annotations

import pytest

from frontier.errors import SpecError
from frontier.spec.hardware import GPUSpec, _key, all_gpus, get_gpu

EXPECTED = {
    "h100-sxm",
    "h100-pcie",
    "h200",
    "h800",
    "h20",
    "a100-80gb",
    "a100-40gb",
    "l40s",
    "b200",
    "gb200",
    "rtx-4090",
    "rtx-pro-6000",
    "mi300x",
}


def test_every_expected_gpu_loads():
    gpus = all_gpus()
    assert EXPECTED <= set(gpus)
    for name, gpu in gpus.items():
        assert isinstance(gpu, GPUSpec)
        assert gpu.name == name == _key(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fields_are_sane(name):
    gpu = get_gpu(name)
    assert gpu.display_name
    assert 16 < gpu.memory_gib < 300
    assert 500 < gpu.mem_bw_gbps < 10_000
    assert 100 < gpu.bf16_tflops < 3_000
    assert 50 < gpu.sm_count < 400
    assert 0 < gpu.l2_mib <= 256
    assert gpu.nvlink_gbps >= 0
    assert gpu.pcie_gbps in (32, 64)
    assert gpu.gpus_per_node in (8, 72)
    assert 0 < gpu.network_gbps <= 100
    assert 0 < gpu.nvlink_latency_us < gpu.network_latency_us <= 10
    assert gpu.intra_node_gbps == (gpu.nvlink_gbps or gpu.pcie_gbps) > 0
    assert gpu.memory_bytes == pytest.approx(gpu.memory_gib * 2**30)
    assert all(isinstance(a, str) for a in gpu.aliases)


@pytest.mark.parametrize(
    "alias",
    [
        "H100",
        "h100",
        "NVIDIA H100 80GB HBM3",
        "h100_sxm",
        "H100-SXM",
        "h100-80gb",
        " h100 ",
    ],
)
def test_h100_aliases_resolve(alias):
    assert get_gpu(alias).name == "h100-sxm"


@pytest.mark.parametrize(
    "alias, name",
    [
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("rtx_4090", "rtx-4090"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
        ("AMD Instinct MI300X", "mi300x"),
    ],
)
def test_device_names_resolve(alias, name):
    assert get_gpu(alias).name == name


def test_aliases_are_unambiguous():
    seen: dict[str, str] = {}
    for gpu in all_gpus().values():
        for key in (gpu.name, *(_key(a) for a in gpu.aliases)):
            assert seen.setdefault(key, gpu.name) == gpu.name, f"{key} names two GPUs"


def test_unknown_gpu_raises_spec_error_listing_known_gpus():
    with pytest.raises(SpecError) as err:
        get_gpu("tpu-v5e")
    message = str(err.value)
    assert "tpu-v5e" in message
    for name in EXPECTED:
        assert name in message


def test_fp8_peak_is_twice_bf16_where_present():
    with_fp8 = [g for g in all_gpus().values() if g.fp8_tflops is not None]
    assert len(with_fp8) >= 10
    for gpu in with_fp8:
        assert gpu.fp8_tflops == pytest.approx(2 * gpu.bf16_tflops, rel=0.02), gpu.name
        assert gpu.peak_tflops("fp8") == gpu.fp8_tflops
        assert gpu.peak_tflops("bf16") == gpu.bf16_tflops


@pytest.mark.parametrize("name", ["a100-80gb", "a100-40gb"])
def test_ampere_has_no_fp8(name):
    gpu = get_gpu(name)
    assert gpu.fp8_tflops is None
    with pytest.raises(SpecError, match="fp8"):
        gpu.peak_tflops("fp8")


def test_h100_sxm_datasheet_values():
    gpu = get_gpu("h100-sxm")
    assert gpu.mem_bw_gbps == 3350
    assert gpu.bf16_tflops == 989
    assert gpu.fp8_tflops == 1979
    assert gpu.sm_count == 132
    assert gpu.l2_mib == 50
    assert gpu.memory_gib == pytest.approx(79.18)
    assert gpu.nvlink_gbps == 450
    assert gpu.network_gbps == 50


def test_other_datasheet_values():
    assert get_gpu("h200").mem_bw_gbps == 4800
    assert get_gpu("h200").memory_gib == pytest.approx(139.8)
    assert get_gpu("a100-80gb").bf16_tflops == 312
    assert get_gpu("a100-80gb").mem_bw_gbps == 2039
    assert get_gpu("rtx-4090").nvlink_gbps == 0
    assert get_gpu("rtx-4090").intra_node_gbps == get_gpu("rtx-4090").pcie_gbps == 32
    assert get_gpu("h800").nvlink_gbps < get_gpu("h100-sxm").nvlink_gbps
    assert get_gpu("gb200").gpus_per_node == 72
