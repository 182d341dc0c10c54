"""Scenario = model + GPU + deployment + workload + SLO, validated field by field.

A deployment is a list of clusters, each a group of identical instances with one role. The
co-located case is written flat (`deployment: {tp: 4, dp: 2, ...}`) and becomes one `mixed`
cluster. Field names follow vLLM's engine arguments where one exists.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from frontier.errors import SpecError
from frontier.metrics.serving import SLO
from frontier.spec.hardware import GPUSpec, get_gpu
from frontier.spec.model import ModelSpec, load_model
from frontier.workload import WorkloadSpec

ROLES = ("mixed", "prefill", "decode", "attention", "ffn")
ROUTERS = ("round_robin", "least_outstanding", "least_tokens")
ATTENTION_BACKENDS = ("flash", "cudnn")


@dataclass(frozen=True)
class ClusterSpec:
    name: str = "main"
    role: str = "mixed"
    gpu: str | None = None                 # defaults to the scenario's gpu
    tp: int = 1
    pp: int = 1
    dp: int = 1                            # independent instances (replicas)
    ep: int = 1                            # expert parallelism of the MoE layers
    router: str = "round_robin"            # how requests are spread over the dp instances
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    enable_chunked_prefill: bool = True
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = False
    cuda_graph: bool = True
    attention_backend: str = "flash"
    cpu_overhead_ms: float = 1.0
    num_gpu_blocks_override: int = 0        # KV blocks per instance instead of the memory plan's

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp


@dataclass(frozen=True)
class Scenario:
    model: ModelSpec
    gpu: GPUSpec
    clusters: tuple[ClusterSpec, ...]
    workload: WorkloadSpec
    slo: SLO | None = None
    seed: int = 0
    name: str = "scenario"

    def cluster_gpu(self, cluster: ClusterSpec) -> GPUSpec:
        return get_gpu(cluster.gpu) if cluster.gpu else self.gpu

    @property
    def total_gpus(self) -> int:
        return sum(c.gpus for c in self.clusters)

    def describe_deployment(self) -> dict:
        return {"clusters": [{k: v for k, v in vars(c).items()} | {"gpus": c.gpus} for c in self.clusters]}


_CHOICES = {"role": ROLES, "router": ROUTERS, "attention_backend": ATTENTION_BACKENDS}
_POSITIVE = {"tp", "pp", "dp", "ep", "max_num_seqs", "max_num_batched_tokens", "block_size"}


def _closest(key: str, allowed) -> str:
    near = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def check_keys(d: dict, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(d).__name__}")
    for key in d:
        if key not in allowed:
            raise SpecError(f"{where}.{key}: unknown field{_closest(key, allowed)}; "
                            f"allowed: {', '.join(sorted(allowed))}")


def _coerce(value: Any, default: Any, where: str):
    """Check a field against the type of its default value."""
    kind = type(default)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if default is None or kind is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def cluster_from_dict(d: dict, where: str) -> ClusterSpec:
    allowed = {f.name for f in fields(ClusterSpec)}
    check_keys(d, allowed, where)
    values = {}
    for f in fields(ClusterSpec):
        if f.name not in d:
            continue
        value = _coerce(d[f.name], f.default, f"{where}.{f.name}")
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise SpecError(f"{where}.{f.name}: '{value}' is not one of {', '.join(_CHOICES[f.name])}")
        if f.name in _POSITIVE and value < 1:
            raise SpecError(f"{where}.{f.name}: must be >= 1, got {value}")
        values[f.name] = value
    spec = ClusterSpec(**values)
    if not 0.0 < spec.gpu_memory_utilization <= 1.0:
        raise SpecError(f"{where}.gpu_memory_utilization: must be in (0, 1], got {spec.gpu_memory_utilization}")
    if spec.num_gpu_blocks_override < 0:
        raise SpecError(f"{where}.num_gpu_blocks_override: must be >= 0 (0: from the memory plan)")
    if spec.cpu_overhead_ms < 0:
        raise SpecError(f"{where}.cpu_overhead_ms: must be >= 0, got {spec.cpu_overhead_ms}")
    if spec.gpu:
        get_gpu(spec.gpu)
    return spec


def deployment_from_dict(d: dict | None, where: str = "deployment") -> tuple[ClusterSpec, ...]:
    d = d or {}
    if "clusters" in d:
        check_keys(d, {"clusters"}, where)
        if not isinstance(d["clusters"], list) or not d["clusters"]:
            raise SpecError(f"{where}.clusters: expected a non-empty list of clusters")
        clusters = tuple(cluster_from_dict(c, f"{where}.clusters[{i}]") for i, c in enumerate(d["clusters"]))
        names = [c.name for c in clusters]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}.clusters: cluster names must be unique, got {names}")
        return clusters
    return (cluster_from_dict(d, where),)


SCENARIO_KEYS = {"name", "model", "gpu", "deployment", "workload", "slo", "seed"}


def scenario_from_dict(d: dict, base_dir: Path | None = None, name: str = "scenario") -> Scenario:
    check_keys(d, SCENARIO_KEYS, "scenario")
    for key in ("model", "gpu", "workload"):
        if key not in d:
            raise SpecError(f"scenario: missing required field '{key}'")
    slo = None
    if d.get("slo"):
        check_keys(d["slo"], {"ttft_ms", "tpot_ms", "e2el_ms"}, "slo")
        slo = SLO(**{k: float(v) for k, v in d["slo"].items()})
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"seed: expected an integer, got {seed!r}")
    return Scenario(model=load_model(str(d["model"])), gpu=get_gpu(str(d["gpu"])),
                    clusters=deployment_from_dict(d.get("deployment")),
                    workload=WorkloadSpec.from_dict(d["workload"], base_dir=base_dir),
                    slo=slo, seed=seed, name=str(d.get("name", name)))


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    if not path.exists():
        raise SpecError(f"scenario file not found: {path}")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise SpecError(f"{path}: expected a YAML mapping with model, gpu, deployment, workload")
    return scenario_from_dict(d, base_dir=path.parent, name=path.stem)
