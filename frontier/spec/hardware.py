"""GPU and interconnect specs (datasheet numbers) from `gpus.yaml` beside this file."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import yaml

from frontier.errors import SpecError

GPUS_FILE = Path(__file__).with_name("gpus.yaml")


@dataclass(frozen=True)
class GPUSpec:
    name: str  # canonical key, e.g. "h100-sxm"
    display_name: str  # e.g. "NVIDIA H100 80GB HBM3 (SXM5)"
    memory_gib: float  # HBM capacity
    mem_bw_gbps: float  # HBM bandwidth, GB/s
    bf16_tflops: float  # dense bf16 tensor-core peak
    fp8_tflops: float | None  # dense fp8 peak; None where the GPU has no fp8 tensor cores
    sm_count: int
    cuda_capability: str | None  # "9.0" for Hopper; None for non-NVIDIA GPUs
    l2_mib: float
    nvlink_gbps: float  # per-GPU unidirectional NVLink bandwidth, GB/s (0: PCIe only)
    pcie_gbps: float  # per-GPU unidirectional PCIe bandwidth, GB/s
    gpus_per_node: int
    network_gbps: float  # per-GPU scale-out NIC bandwidth, GB/s (400 Gb/s = 50 GB/s)
    nvlink_latency_us: float
    network_latency_us: float
    aliases: tuple[str, ...] = ()

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    @property
    def intra_node_gbps(self) -> float:
        """Bandwidth between GPUs of one node: NVLink where present, else PCIe."""
        return self.nvlink_gbps or self.pcie_gbps

    def peak_tflops(self, dtype: str) -> float:
        if dtype == "fp8":
            if self.fp8_tflops is None:
                raise SpecError(f"GPU {self.name} has no fp8 tensor cores; use dtype bf16")
            return self.fp8_tflops
        return self.bf16_tflops


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


@lru_cache(maxsize=1)
def all_gpus() -> dict[str, GPUSpec]:
    raw = yaml.safe_load(GPUS_FILE.read_text())
    known = {f.name for f in fields(GPUSpec)}
    gpus = {}
    for name, entry in raw.items():
        unknown = set(entry) - known
        if unknown:
            raise SpecError(f"{GPUS_FILE.name}: {name}: unknown fields {sorted(unknown)}")
        missing = known - set(entry) - {"name", "aliases"}
        if missing:
            raise SpecError(f"{GPUS_FILE.name}: {name}: missing fields {sorted(missing)}")
        entry = dict(entry, name=name, aliases=tuple(str(a) for a in entry.get("aliases", ())))
        gpus[name] = GPUSpec(**entry)
    return gpus


def get_gpu(name: str) -> GPUSpec:
    """Look a GPU up by name or alias (case and -/_ insensitive)."""
    gpus = all_gpus()
    key = _key(name)
    for gpu in gpus.values():
        if key == gpu.name or key in (_key(a) for a in gpu.aliases):
            return gpu
    raise SpecError(f"unknown GPU '{name}'; known GPUs: {', '.join(gpus)}")
