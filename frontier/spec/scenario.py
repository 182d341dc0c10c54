"""Scenario = model + GPU + deployment + workload + SLO, validated field by field.

A deployment is a list of clusters, each a group of identical instances with one role. The
co-located case is written flat (`deployment: {tp: 4, dp: 2, ...}`) and becomes one `mixed`
cluster. Field names follow vLLM's engine arguments where one exists.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from frontier.engine import (
    ENGINES,
    FRONTEND_US_PER_PROMPT_TOKEN,
    FLASHINFER_CUTLASS_MOE_SOURCE,
    FRONTENDS,
    FUSED_QUANT_SOURCES,
    OVERLAP_SOURCES,
    PADDED_DEEP_GEMM_MOE_SOURCE,
    SGLANG_SPECULATIVE_MAX_RUNNING,
    SGLANG_SPECULATIVE_SOURCE,
    SYMM_MEM_SOURCES,
    Engine,
    host_overlapped,
    make_engine,
    sglang_speculative_v1,
    version_tuple,
    vllm_cuda_graph_max_bs,
    vllm_flashinfer_cutlass_moe,
)
from frontier.errors import SpecError
from frontier.spec.slo import SLO
from frontier.numbers import integer, number
from frontier.spec.checks import check_scenario
from frontier.spec.hardware import GPUSpec, get_gpu
from frontier.spec.model import ModelSpec, load_model
from frontier.spec.quant import KV_CACHE_DTYPES, quantization_name
from frontier.workload import WorkloadSpec

ROLES = ("mixed", "prefill", "decode", "attention", "ffn")
# The deployments Frontier simulates, by the roles of their clusters.
# prefill-only / decode-only: one side of a PD deployment measured alone, as SGLang benchmarks
# it (a prefill server whose requests end at their first token; a decode server whose requests
# arrive with their KV present, its "fake" transfer backend).
TOPOLOGIES = {
    ("mixed",): "co-located",
    ("decode", "prefill"): "PD-disaggregated",
    ("attention", "ffn"): "AF-disaggregated",
    ("prefill",): "prefill-only",
    ("decode",): "decode-only",
}
KV_TRANSFER_MODES = ("layerwise", "whole")
ROUTERS = ("round_robin", "least_outstanding", "least_tokens")
ATTENTION_BACKENDS = ("flash", "cudnn")
# vLLM's MoE kernel for MXFP4 experts (--mxfp4-backend; VLLM_MXFP4_USE_MARLIN=1 before it): auto is
# triton_kernels on Hopper (vllm/model_executor/layers/quantization/mxfp4.py get_mxfp4_backend).
MXFP4_BACKENDS = ("auto", "triton", "marlin")
# vLLM's MoE kernel for bf16 and block-FP8 experts (--moe-backend from 0.17; VLLM_USE_FLASHINFER_MOE_FP8 /
# _FP16 before it): auto is the release's choice (frontier.engine `vllm_flashinfer_cutlass_moe`).
MOE_BACKENDS = ("auto", "triton", "flashinfer_cutlass")
# How MoE dispatch/combine move tokens between EP ranks (priced in frontier.ops.experts.ep_traffic).
EP_BACKENDS = ("nccl", "allgather-reducescatter", "deepep-normal", "deepep-low-latency")


SPECULATIVE_METHODS = ("mtp", "eagle", "ngram")


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding: `num_speculative_tokens` drafted per step and verified together;
    `acceptance` the probability that draft position i is accepted once the ones before it were
    (one value for every position, or one per position)."""

    method: str = "mtp"
    num_speculative_tokens: int = 1
    acceptance: tuple[float, ...] = (0.8,)

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a step emits: the verified one plus each accepted draft,
        1 + a1 + a1 a2 + ... (position i is only reached if all before it were accepted)."""
        rates = self.acceptance * self.num_speculative_tokens if len(self.acceptance) == 1 else self.acceptance
        total, reach = 1.0, 1.0
        for a in rates[: self.num_speculative_tokens]:
            reach *= a
            total += reach
        return total


def speculative_from_dict(d, where: str) -> Speculative:
    check_keys(d, {"method", "num_speculative_tokens", "acceptance_rate"}, where)
    method = d.get("method", "mtp")
    if method not in SPECULATIVE_METHODS:
        raise SpecError(f"{where}.method: '{method}' is not one of {', '.join(SPECULATIVE_METHODS)}")
    k = integer(
        d.get("num_speculative_tokens", 1),
        f"{where}.num_speculative_tokens",
        minimum=1,
        what="a number of draft tokens",
    )
    rates = d.get("acceptance_rate", 0.8)
    rates = rates if isinstance(rates, list) else [rates]
    rates = tuple(number(a, f"{where}.acceptance_rate") for a in rates)
    if len(rates) not in (1, k) or not all(0.0 <= a <= 1.0 for a in rates):
        raise SpecError(
            f"{where}.acceptance_rate: one probability in [0, 1], or one per draft position ({k}), got {list(rates)}"
        )
    return Speculative(method, k, rates)


@dataclass(frozen=True)
class ClusterSpec:
    name: str = "main"
    role: str = "mixed"
    gpu: str | None = None  # defaults to the scenario's gpu
    tp: int = 1
    pp: int = 1
    dp: int = 1  # independent instances (replicas)
    ep: int = 1  # expert parallelism of the MoE layers
    ep_backend: str = "nccl"  # dispatch/combine: nccl | allgather-reducescatter | deepep-normal | deepep-low-latency
    router: str = "round_robin"  # how requests are spread over the dp instances
    engine: str = "vllm"  # vllm | sglang: scheduling, defaults, kernels, host time
    engine_version: str = ""  # e.g. "0.12.0"; "" = the newest the engine model knows
    quantization: str = ""  # vLLM's --quantization; "" = the checkpoint's own
    kv_cache_dtype: str = "auto"  # auto (the model's dtype) | fp8
    # Engine arguments left out (None) take the engine's default for this GPU (frontier.engine).
    max_num_seqs: int | None = None  # SGLang: max_running_requests
    max_num_batched_tokens: int | None = None  # SGLang: chunked_prefill_size
    max_prefill_tokens: int | None = None  # SGLang: prefill batch token limit
    enable_chunked_prefill: bool = True
    block_size: int = 16
    gpu_memory_utilization: float | None = None  # SGLang: mem_fraction_static
    enable_prefix_caching: bool | None = None  # SGLang: radix cache (not disable_radix_cache)
    schedule_policy: str = "fcfs"  # SGLang: fcfs | lpm
    enable_mixed_chunk: bool = False  # SGLang: prefill chunks ride in decode batches
    stream_interval: int = 1  # SGLang: a running request's tokens stream out every this many
    tokenizer_workers: int = 1  # SGLang: front-end processes (--tokenizer-worker-num)
    frontend: str = "engine"  # engine (its own API server) | dynamo (NVIDIA Dynamo's front end)
    cuda_graph: bool = True
    cuda_graph_max_bs: int | None = None  # largest decode batch replayed from a CUDA graph
    # The batch sizes captured (SGLang --cuda-graph-bs, vLLM --cudagraph-capture-sizes); empty:
    # the engine's list up to cuda_graph_max_bs. A batch between two sizes runs at the next one.
    cuda_graph_sizes: tuple[int, ...] = ()
    attention_backend: str = "flash"
    mxfp4_backend: str = "auto"  # vLLM's MoE kernel for MXFP4 experts: auto (triton) | triton | marlin
    moe_backend: str = "auto"  # vLLM's for bf16 / block-FP8 experts: auto (by release) | triton | flashinfer_cutlass
    cpu_overhead_ms: float | None = None  # host time per step; None: the engine's (frontier.engine)
    num_gpu_blocks_override: int = 0  # KV blocks per instance instead of the memory plan's
    # Longest request served; 0: the model's context; -1 (`auto`): vLLM's auto-fit, the longest
    # its KV cache holds where that is shorter (frontier.spec.memory.check_vllm_starts).
    max_model_len: int = 0
    dp_attention: int = 1  # attention data-parallel ranks sharing one EP group
    two_batch_overlap: bool = False  # overlap one micro-batch's all-to-all with the other's compute
    micro_batches: int = 2  # AF: micro-batches ping-ponging between attention and FFN
    expert_skew: float = 0.0  # MoE routing: 0 uniform, ~1.2 hot experts (Zipf-like)
    expert_load_file: str = ""  # MoE routing: per-expert loads measured elsewhere
    eplb_redundant_experts: int = 0  # EPLB: replicas of the hottest experts, balanced placement
    expert_load_cv: float = 0.0  # MoE routing: batch-to-batch CV of each expert's load (stale EPLB)
    speculative: Speculative | None = None  # {method, num_speculative_tokens, acceptance_rate}
    defaults_from: tuple = ()  # (field, value, source) of each engine default applied

    @property
    def draft(self) -> str | None:
        """The speculative method drafting for this cluster, if any."""
        return self.speculative.method if self.speculative else None

    @property
    def instance_gpus(self) -> int:
        return self.tp * self.pp * self.dp_attention

    @property
    def gpus(self) -> int:
        return self.instance_gpus * self.dp


@dataclass(frozen=True)
class LinkSpec:
    """A link between clusters; 0 means: from the GPU spec (scale-out NICs of the sender)."""

    bandwidth_gbps: float = 0.0
    latency_us: float = 0.0


@dataclass(frozen=True)
class Scenario:
    model: ModelSpec
    gpu: GPUSpec
    clusters: tuple[ClusterSpec, ...]
    workload: WorkloadSpec
    slo: SLO | None = None
    seed: int = 0
    name: str = "scenario"
    kv_transfer: str = "layerwise"  # PD: KV pushed layer by layer during prefill, or after it
    kv_link: LinkSpec = LinkSpec()  # PD: prefill -> decode
    af_link: LinkSpec = LinkSpec()  # AF: attention <-> FFN
    decode_router: str = "least_outstanding"

    @property
    def topology(self) -> str:
        return TOPOLOGIES[tuple(sorted(c.role for c in self.clusters))]

    def cluster(self, role: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.role == role)

    def cluster_gpu(self, cluster: ClusterSpec) -> GPUSpec:
        return get_gpu(cluster.gpu) if cluster.gpu else self.gpu

    @property
    def total_gpus(self) -> int:
        return sum(c.gpus for c in self.clusters)

    def cluster_engine(self, cluster: ClusterSpec) -> Engine:
        """The cluster's engine at its release: host times and CUDA-graph sizes (its argument
        defaults are already filled into `cluster`; a draft changes SGLang's graph sizes)."""
        return make_engine(
            cluster.engine, cluster.engine_version, self.cluster_gpu(cluster), cluster.tp, draft=cluster.draft
        )

    def cluster_host_overlapped(self, cluster: ClusterSpec) -> bool:
        """Whether the cluster's engine hides its host time behind the GPU (and so plans ahead)."""
        return host_overlapped(
            self.cluster_engine(cluster), self.cluster_model(cluster), cluster.enable_prefix_caching, cluster.draft
        )

    def cluster_request_ms(self, cluster: ClusterSpec) -> float:
        """The latency every request to the cluster sees between client and scheduler and back
        (frontier.engine HostTime: the front end's, and an MoE model's extra)."""
        host = self.cluster_engine(cluster).host
        return host.request_ms + (host.moe_request_ms if self.cluster_model(cluster).moe else 0.0)

    def cluster_symm_mem(self, cluster: ClusterSpec) -> str | None:
        """The CUDA capability whose symmetric-memory all-reduce table the cluster's engine uses
        (frontier.ops.graph `all_reduce`), or None: the engine does not, or the GPUs have no
        NVLink to multicast over."""
        gpu = self.cluster_gpu(cluster)
        if self.cluster_engine(cluster).symm_mem_all_reduce and gpu.nvlink_gbps:
            return gpu.cuda_capability
        return None

    def cluster_padded_deep_gemm_moe(self, cluster: ClusterSpec) -> bool:
        """Whether the cluster's block-FP8 MoE layers run DeepGEMM over every expert's padded
        rows (frontier.engine VLLM_PADDED_DEEP_GEMM_MOE): the engine release does, the experts are
        FP8, DeepGEMM runs on the GPU (SM90, SM100) and the MoE's tensor-parallel size is under 8
        (vLLM flattens attention-DP x TP into it without expert parallelism, 1 with it)."""
        model = self.cluster_model(cluster)
        moe_tp = 1 if cluster.ep > 1 else cluster.tp * cluster.dp_attention
        return (
            self.cluster_engine(cluster).padded_deep_gemm_moe
            and model.moe is not None
            and model.moe_weight_dtype == "fp8"
            and self.cluster_gpu(cluster).cuda_capability in ("9.0", "10.0")
            and moe_tp < 8
        )

    def cluster_flashinfer_cutlass_moe(self, cluster: ClusterSpec) -> bool:
        """Whether the cluster's routed experts run FlashInfer's CUTLASS MoE rather than the
        engine's Triton fused MoE: the deployment's `moe_backend`, else vLLM's choice by release,
        expert precision and layout on Hopper (frontier.engine `vllm_flashinfer_cutlass_moe`)."""
        model = self.cluster_model(cluster)
        if cluster.moe_backend != "auto":
            return cluster.moe_backend == "flashinfer_cutlass" and model.moe is not None
        return (
            cluster.engine == "vllm"
            and model.moe is not None
            and vllm_flashinfer_cutlass_moe(
                cluster.engine_version,
                model.moe_quant,
                cluster.ep,
                cluster.dp_attention,
                self.cluster_gpu(cluster).cuda_capability,
            )
        )

    def cluster_model(self, cluster: ClusterSpec) -> ModelSpec:
        """The model as the cluster serves it: its quantization and KV-cache dtype applied."""
        model = self.model
        if cluster.quantization:
            model = model.with_quantization(cluster.quantization)
        if cluster.kv_cache_dtype != "auto":
            model = model.with_kv_cache_dtype(cluster.kv_cache_dtype)
        return model

    def describe_deployment(self) -> dict:
        def cluster(c: ClusterSpec) -> dict:
            out = {k: v for k, v in vars(c).items() if k != "defaults_from"}
            out["speculative"] = vars(c.speculative) if c.speculative else None
            out["gpus"] = c.gpus
            out["engine_defaults"] = {f: {"value": v, "source": src} for f, v, src in c.defaults_from}
            overlapped = self.cluster_host_overlapped(c)
            out["engine_defaults"]["host_overlapped"] = {"value": overlapped, "source": OVERLAP_SOURCES[c.engine]}
            out["engine_defaults"]["request_latency_ms"] = {
                "value": self.cluster_request_ms(c),
                "source": "frontier/engine.py HOST_TIME (request_ms + moe_request_ms), fitted to measured TTFTs",
            }
            out["engine_defaults"]["frontend_us_per_prompt_token"] = {
                "value": FRONTEND_US_PER_PROMPT_TOKEN[c.frontend],
                "source": "frontier/engine.py DYNAMO_US_PER_PROMPT_TOKEN, fitted to measured TTFTs"
                if c.frontend == "dynamo"
                else "the engine's own API server: none (its costs are request_latency_ms')",
            }
            engine = self.cluster_engine(c)
            out["engine_defaults"]["stream_us_per_output"] = {
                "value": engine.host.stream_us_per_output,
                "source": "frontier/engine.py HOST_TIME (the front end's serial work per streamed output), fitted",
            }
            symm_mem = self.cluster_symm_mem(c) is not None
            out["engine_defaults"]["symm_mem_all_reduce"] = {"value": symm_mem, "source": SYMM_MEM_SOURCES[c.engine]}
            out["engine_defaults"]["fp8_input_quant_fused"] = {
                "value": engine.fused_quant,
                "source": FUSED_QUANT_SOURCES[c.engine],
            }
            out["engine_defaults"]["padded_deep_gemm_moe"] = {
                "value": self.cluster_padded_deep_gemm_moe(c),
                "source": PADDED_DEEP_GEMM_MOE_SOURCE,
            }
            out["engine_defaults"]["flashinfer_cutlass_moe"] = {
                "value": self.cluster_flashinfer_cutlass_moe(c),
                "source": f"deployment moe_backend: {c.moe_backend}"
                if c.moe_backend != "auto"
                else FLASHINFER_CUTLASS_MOE_SOURCE,
            }
            return out

        out = {"topology": self.topology, "clusters": [cluster(c) for c in self.clusters]}
        if self.topology == "PD-disaggregated":
            out.update(kv_transfer=self.kv_transfer, kv_link=vars(self.kv_link), decode_router=self.decode_router)
        if self.topology == "AF-disaggregated":
            out.update(af_link=vars(self.af_link))
        return out


_CHOICES = {
    "role": ROLES,
    "router": ROUTERS,
    "attention_backend": ATTENTION_BACKENDS,
    "mxfp4_backend": MXFP4_BACKENDS,
    "moe_backend": MOE_BACKENDS,
    "engine": ENGINES,
    "frontend": FRONTENDS,
    "schedule_policy": ("fcfs", "lpm"),
    "kv_cache_dtype": KV_CACHE_DTYPES,
    "ep_backend": EP_BACKENDS,
}
_POSITIVE = {
    "tp",
    "pp",
    "dp",
    "ep",
    "max_num_seqs",
    "max_num_batched_tokens",
    "block_size",
    "dp_attention",
    "micro_batches",
    "max_prefill_tokens",
    "cuda_graph_max_bs",
    "stream_interval",
    "tokenizer_workers",
}
# The type of each field whose default is the engine's (None until resolved).
_ENGINE_DEFAULTED = {
    "max_num_seqs": 1,
    "max_num_batched_tokens": 1,
    "max_prefill_tokens": 1,
    "gpu_memory_utilization": 0.9,
    "enable_prefix_caching": True,
    "cuda_graph_max_bs": 1,
    "cpu_overhead_ms": 0.0,
}


def _closest(key: str, allowed) -> str:
    near = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def check_keys(d: dict, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(d).__name__}")
    for key in d:
        if key not in allowed:
            raise SpecError(
                f"{where}.{key}: unknown field{_closest(key, allowed)}; allowed: {', '.join(sorted(allowed))}"
            )


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
        return number(value, where)
    if default is None or kind is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _graph_sizes(value: Any, max_bs: int | None, where: str) -> tuple[int, ...]:
    """A list of CUDA-graph batch sizes: positive integers, returned sorted and unique; none
    above an explicit cuda_graph_max_bs (the engines capture no batch above it)."""
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise SpecError(f"{where}: expected a list of batch sizes, e.g. [1, 2, 4, 8], got {value!r}")
    sizes = tuple(sorted(set(value)))
    if sizes and sizes[0] < 1:
        raise SpecError(f"{where}: batch sizes must be >= 1, got {sizes[0]}")
    if sizes and max_bs is not None and sizes[-1] > max_bs:
        raise SpecError(
            f"{where}: {sizes[-1]} is above cuda_graph_max_bs ({max_bs}); drop cuda_graph_max_bs or the larger sizes"
        )
    return sizes


def cluster_from_dict(d: dict, where: str, scenario_gpu: GPUSpec | None = None) -> ClusterSpec:
    allowed = {f.name for f in fields(ClusterSpec)} - {"defaults_from"}
    check_keys(d, allowed, where)
    values = {}
    for f in fields(ClusterSpec):
        if f.name not in d:
            continue
        if f.name == "speculative":
            values[f.name] = speculative_from_dict(d[f.name], f"{where}.speculative")
            continue
        if f.name == "cuda_graph_sizes":
            # (cuda_graph_max_bs, a field before this one, is checked already)
            values[f.name] = _graph_sizes(d[f.name], values.get("cuda_graph_max_bs"), f"{where}.cuda_graph_sizes")
            values.setdefault("cuda_graph_max_bs", max(values[f.name], default=None))
            continue
        value = d[f.name]
        if f.name == "max_model_len" and value == "auto":
            value = -1  # vLLM's --max-model-len auto is -1 too
        value = _coerce(value, _ENGINE_DEFAULTED.get(f.name, f.default), f"{where}.{f.name}")
        if f.name == "quantization" and value:
            value = quantization_name(value, f"{where}.quantization")
        if f.name in _CHOICES and value not in _CHOICES[f.name]:
            raise SpecError(f"{where}.{f.name}: '{value}' is not one of {', '.join(_CHOICES[f.name])}")
        if f.name in _POSITIVE and value < 1:
            raise SpecError(f"{where}.{f.name}: must be >= 1, got {value}")
        values[f.name] = value
    spec = _with_engine_defaults(ClusterSpec(**values), scenario_gpu, where)
    if not 0.0 < spec.gpu_memory_utilization <= 1.0:
        default = {f: src for f, _, src in spec.defaults_from}.get("gpu_memory_utilization")
        why = f" (the engine's default, {default}; set it, e.g. 0.85)" if default else ""
        raise SpecError(f"{where}.gpu_memory_utilization: must be in (0, 1], got {spec.gpu_memory_utilization}{why}")
    if spec.ep > 1 and spec.instance_gpus % spec.ep:
        raise SpecError(
            f"{where}.ep: {spec.ep} must divide the instance's GPUs (tp x pp x dp_attention = {spec.instance_gpus})"
        )
    if spec.expert_skew < 0 or spec.eplb_redundant_experts < 0 or spec.expert_load_cv < 0:
        raise SpecError(f"{where}: expert_skew, expert_load_cv and eplb_redundant_experts must be >= 0")
    if spec.max_model_len < -1:
        raise SpecError(
            f"{where}.max_model_len: must be >= 1, 0 (the model's context) or auto (what the KV cache holds), "
            f"got {spec.max_model_len}"
        )
    if spec.num_gpu_blocks_override < 0:
        raise SpecError(f"{where}.num_gpu_blocks_override: must be >= 0 (0: from the memory plan)")
    if spec.cpu_overhead_ms < 0:
        raise SpecError(f"{where}.cpu_overhead_ms: must be >= 0, got {spec.cpu_overhead_ms}")
    if spec.gpu:
        get_gpu(spec.gpu)
    return spec


def _with_engine_defaults(spec: ClusterSpec, scenario_gpu: GPUSpec | None, where: str) -> ClusterSpec:
    """Fill the engine arguments left out with the engine's defaults for this GPU and tp."""
    gpu = get_gpu(spec.gpu) if spec.gpu else (scenario_gpu or get_gpu("h100-sxm"))
    engine = make_engine(
        spec.engine,
        spec.engine_version,
        gpu,
        spec.tp,
        where,
        spec.pp,
        spec.dp_attention,
        spec.max_num_batched_tokens,  # the user's: SGLang's default memory fraction follows them
        spec.cuda_graph_max_bs,
        spec.draft,
    )
    filled, sources = {}, []
    for name in _ENGINE_DEFAULTED:
        if getattr(spec, name) is not None:
            continue
        if name == "cpu_overhead_ms":
            filled[name] = engine.host.step_ms
            sources.append((name, engine.host.step_ms, "frontier.engine host time fitted to the development set"))
            continue
        value, source = engine.defaults.get(name, (None, ""))
        if value is None:  # an argument this engine does not have: it does not limit
            value, source = {"max_prefill_tokens": (1 << 62, "vLLM has no separate prefill limit")}.get(
                name, (None, "")
            )
        filled[name] = value
        sources.append((name, value, source))

    def override(name: str, value, source: str) -> None:
        """A default that depends on other arguments, or the engine overruling the user."""
        filled[name] = value
        sources[:] = [s for s in sources if s[0] != name] + [(name, value, source)]

    if spec.engine == "vllm" and "cuda_graph_max_bs" in filled:
        seqs, tokens = (filled.get(f, getattr(spec, f)) for f in ("max_num_seqs", "max_num_batched_tokens"))
        drafts = spec.speculative.num_speculative_tokens if spec.speculative else 0
        override("cuda_graph_max_bs", *vllm_cuda_graph_max_bs(spec.engine_version, seqs, tokens, drafts))
    if spec.speculative and spec.engine == "sglang" and sglang_speculative_v1(version_tuple(spec.engine_version)):
        # SGLang's own overrides for drafting (its overlap scheduler: `host_overlapped`).
        if "max_num_seqs" in filled:
            override("max_num_seqs", SGLANG_SPECULATIVE_MAX_RUNNING, SGLANG_SPECULATIVE_SOURCE)
        override("enable_mixed_chunk", False, SGLANG_SPECULATIVE_SOURCE)
    return replace(spec, defaults_from=tuple(sources), **filled)


CLUSTER_DEFAULT_KEYS = ("ep_backend",)
DEPLOYMENT_KEYS = {"clusters", "kv_transfer", "links", "decode_router", *CLUSTER_DEFAULT_KEYS}


def _link(d: dict | None, where: str) -> LinkSpec:
    if d is None:
        return LinkSpec()
    check_keys(d, {"bandwidth_gbps", "latency_us"}, where)
    link = LinkSpec(*(_coerce(d.get(k, 0.0), 0.0, f"{where}.{k}") for k in ("bandwidth_gbps", "latency_us")))
    if link.bandwidth_gbps < 0 or link.latency_us < 0:
        raise SpecError(f"{where}: bandwidth_gbps and latency_us must be >= 0")
    return link


def deployment_from_dict(d: dict | None, where: str = "deployment", gpu: GPUSpec | None = None) -> dict:
    """The clusters and the links between them, as Scenario fields."""
    d = d or {}
    if "clusters" not in d:
        return {"clusters": (cluster_from_dict(d, where, gpu),)}
    check_keys(d, DEPLOYMENT_KEYS, where)
    if not isinstance(d["clusters"], list) or not d["clusters"]:
        raise SpecError(f"{where}.clusters: expected a non-empty list of clusters")
    # Deployment-wide defaults a cluster may override (e.g. one EP library for every cluster).
    shared = {k: d[k] for k in CLUSTER_DEFAULT_KEYS if k in d}
    clusters = tuple(
        cluster_from_dict({**shared, **c} if isinstance(c, dict) else c, f"{where}.clusters[{i}]", gpu)
        for i, c in enumerate(d["clusters"])
    )
    names = [c.name for c in clusters]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}.clusters: cluster names must be unique, got {names}")
    roles = tuple(sorted(c.role for c in clusters))
    if roles not in TOPOLOGIES:
        raise SpecError(
            f"{where}.clusters: roles {list(roles)} do not form a deployment; use one "
            "'mixed' cluster, a 'prefill' and a 'decode' cluster, or an 'attention' and an "
            "'ffn' cluster (or one 'prefill' or one 'decode' cluster alone)"
        )
    links = d.get("links") or {}
    check_keys(links, {"kv", "af"}, f"{where}.links")
    kv_transfer = d.get("kv_transfer", "layerwise")
    if kv_transfer not in KV_TRANSFER_MODES:
        raise SpecError(f"{where}.kv_transfer: '{kv_transfer}' is not one of {', '.join(KV_TRANSFER_MODES)}")
    decode_router = d.get("decode_router", "least_outstanding")
    if decode_router not in ROUTERS:
        raise SpecError(f"{where}.decode_router: '{decode_router}' is not one of {', '.join(ROUTERS)}")
    return {
        "clusters": clusters,
        "kv_transfer": kv_transfer,
        "decode_router": decode_router,
        "kv_link": _link(links.get("kv"), f"{where}.links.kv"),
        "af_link": _link(links.get("af"), f"{where}.links.af"),
    }


SCENARIO_KEYS = {"name", "model", "gpu", "deployment", "workload", "slo", "seed"}


def scenario_from_dict(d: dict, base_dir: Path | None = None, name: str = "scenario") -> Scenario:
    check_keys(d, SCENARIO_KEYS, "scenario")
    for key in ("model", "gpu", "workload"):
        if key not in d:
            raise SpecError(f"scenario: missing required field '{key}'")
    slo = None
    if d.get("slo"):
        check_keys(d["slo"], {"ttft_ms", "tpot_ms", "e2el_ms"}, "slo")
        slo = SLO(**{k: number(v, f"slo.{k}", positive=True, what="a latency in ms") for k, v in d["slo"].items()})
    seed = integer(d.get("seed", 0), "seed", minimum=0, what="a random seed")
    gpu = get_gpu(str(d["gpu"]))
    scenario = Scenario(
        model=load_model(str(d["model"])),
        gpu=gpu,
        workload=WorkloadSpec.from_dict(d["workload"], base_dir=base_dir),
        slo=slo,
        seed=seed,
        name=str(d.get("name", name)),
        **deployment_from_dict(d.get("deployment"), gpu=gpu),
    )
    scenario = replace(
        scenario, clusters=tuple(_with_model_defaults(c, scenario.cluster_model(c)) for c in scenario.clusters)
    )
    check_scenario(scenario)
    return scenario


# vLLM leaves prefix caching off for a hybrid (gated-DeltaNet / Mamba) model unless asked:
# vllm/engine/arg_utils.py `default_prefix_caching = is_prefix_caching_supported and not is_hybrid`
# (0.11-0.12 turn it off for them whatever is asked, model_executor/models/config.py
# `MambaModelConfig`; vLLM PR #50991, merged 2026-08-04, turns it on in its `align` mode).
VLLM_HYBRID_PREFIX_CACHING = "vllm/engine/arg_utils.py: off for hybrid models"


def _with_model_defaults(c: ClusterSpec, model) -> ClusterSpec:
    """The engine defaults that depend on the model: vLLM's prefix caching for a hybrid."""
    defaulted = any(f == "enable_prefix_caching" for f, _, _ in c.defaults_from)
    if c.engine != "vllm" or model.linear_attention is None or not defaulted:
        return c
    sources = tuple(
        (f, False, VLLM_HYBRID_PREFIX_CACHING) if f == "enable_prefix_caching" else (f, v, src)
        for f, v, src in c.defaults_from
    )
    return replace(c, enable_prefix_caching=False, defaults_from=sources)


def read_yaml_mapping(path: str | Path, what: str = "scenario file") -> dict:
    """A YAML file that must hold a mapping, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{what} not found: {path}")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise SpecError(f"{path}: expected a YAML mapping with model, gpu, deployment, workload")
    return d


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    return scenario_from_dict(read_yaml_mapping(path), base_dir=path.parent, name=path.stem)
