"""Start-up checks of a deployment against its model and GPUs, as the engines make them.

vLLM refuses most of these configurations when the server starts, and the rest cannot mean
anything; Frontier refuses them before simulating, with one line naming the field, the value and
what would be valid, instead of predicting a deployment that cannot run. Sources
(vllm-project/vllm):

- heads / tp:          vllm/config/model.py, ModelConfig.verify_with_parallel_config
                       ("Total number of attention heads must be divisible by tensor parallel size")
- KV heads / tp:       vllm/model_executor/layers/linear.py, QKVParallelLinear: KV heads are split
                       over tp when tp < KV heads, else each is replicated tp / KV heads times
                       (both divisions must be exact)
- layers / pp:         vllm/distributed/utils.py, get_pp_indices splits the layers evenly over
                       the stages; with pp > layers some stages would hold none (no refusal
                       there, but nothing to pipeline either)
- block sizes:         vllm/config/cache.py, BlockSize = Literal[1, 8, 16, 32, 64, 128, 256];
                       the FlashAttention backend takes multiples of 16
                       (vllm/v1/attention/backends/flash_attn.py)
- chunked prefill off: vllm/config/scheduler.py, SchedulerConfig.verify_max_model_len
                       (_verify_args in older releases): with chunked prefill off,
                       max_num_batched_tokens must be >= max_model_len
- token budget:        vllm/config/scheduler.py, the same checks: max_num_batched_tokens must be
                       >= max_num_seqs
- max_model_len:       vllm/config/model.py, _get_and_verify_max_len: no longer than the
                       model's context (max_position_embeddings)
- KV for one request:  vllm/v1/core/kv_cache_utils.py, check_enough_kv_cache_memory: the KV
                       cache holds one request of max_model_len tokens (with the memory plan:
                       frontier.spec.memory.check_vllm_starts)
- drafting graphs:     vllm/config/compilation.py adjust_cudagraph_sizes_for_spec_decode (0.12 on):
                       no capture size left once rounded up to multiples of 1 + k
- hybrid state blocks: vllm/config/compilation.py, resolve_cudagraph_mode_and_sizes (0.19 on):
                       max_num_seqs no more than a hybrid's KV blocks (with the memory plan:
                       frontier.spec.memory.check_vllm_state_blocks)
- architectures:       releases before an architecture's first refuse it (VLLM_FIRST_RELEASE);
                       hybrids' prefix caching (`align` mode) is not modelled
- fp8 weights:         vllm/model_executor/layers/quantization/fp8.py runs fp8 GEMMs only on
                       GPUs with fp8 tensor cores (older GPUs fall back to weight-only Marlin
                       kernels, which Frontier does not model)

SGLang (sgl-project/sglang, sglang/srt/server_args.py `check_server_args`, read in the 0.4.10,
0.5.1, 0.5.6.post2, 0.5.9, 0.5.10 and 0.5.14 wheels):

- pipeline parallelism: no speculative decoding with pp > 1 ("Pipeline parallelism is not
                       compatible with overlap schedule, speculative decoding"), nor mixed chunks
                       up to 0.5.10 (the same assertion names "mixed chunked prefill" there; the
                       overlap scheduler it names is turned off for pp > 1 by the engine itself)
- drafts, mixed chunks: "enable_mixed_chunk is required for speculative decoding" asserts that
                       mixed chunks are off; up to 0.5.10 `_handle_speculative_decoding` has
                       already turned them off (frontier.engine SGLANG_SPECULATIVE_SOURCE), later
                       releases refuse to start

Frontier's own limit: a TP group larger than a node takes whole nodes (TP16 on two 8-GPU nodes,
as SGLang serves DeepSeek-R1 on H100); its all-reduce then crosses the NICs (frontier.ops.graph
`all_reduce`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from frontier.engine import VLLM_GRAPHS_ROUNDED_TO_DRAFTS, sglang_speculative_v1, version_tuple
from frontier.errors import SpecError

if TYPE_CHECKING:
    from frontier.spec.hardware import GPUSpec
    from frontier.spec.model import ModelSpec
    from frontier.spec.scenario import ClusterSpec, Scenario

VLLM_BLOCK_SIZES = (1, 8, 16, 32, 64, 128, 256)


def check_scenario(scenario: Scenario) -> None:
    """Raise SpecError on the first thing the engines would refuse at start-up."""
    check_name(scenario.name)
    for i, cluster in enumerate(scenario.clusters):
        where = "deployment" if len(scenario.clusters) == 1 and cluster.role == "mixed" else f"deployment.clusters[{i}]"
        check_cluster(scenario, cluster, where)


def check_name(name: str) -> None:
    """The name becomes results/<name>: one folder name, nothing that climbs out of results/."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise SpecError(
            f"name: {name!r} is not a folder name (results go to results/<name>); "
            "use letters, digits, '-', '_' or '.', without '/' or '..'"
        )


def _tp_fits_heads(model, tp: int) -> bool:
    if model.num_heads % tp:
        return False
    kv = model.num_kv_heads
    return model.mla is not None or not (kv % tp if tp < kv else tp % kv)


def _valid_tp(model, limit: int) -> str:
    return ", ".join(str(t) for t in range(1, limit + 1) if _tp_fits_heads(model, t))


def check_tp(model: ModelSpec, gpu: GPUSpec, tp: int, where: str, attention: bool = True) -> None:
    """Tensor parallelism the engines accept for this model, on one node of this GPU."""
    if attention and not _tp_fits_heads(model, tp):
        kv = model.num_kv_heads
        heads = (
            f"{model.num_heads} attention heads"
            if model.num_heads % tp
            else f"{kv} KV heads (split over tp, or each replicated tp/{kv} times)"
        )
        raise SpecError(
            f"{where}: {tp} does not fit {model.name}'s {heads}; the engines refuse it. "
            f"Valid tp: {_valid_tp(model, gpu.gpus_per_node)}"
        )
    if tp > gpu.gpus_per_node and tp % gpu.gpus_per_node:
        raise SpecError(
            f"{where}: {tp} spans {tp / gpu.gpus_per_node:g} nodes of {gpu.gpus_per_node} "
            f"{gpu.name} GPUs; tensor parallelism across nodes takes whole nodes: use tp <= "
            f"{gpu.gpus_per_node} or a multiple of {gpu.gpus_per_node}"
        )


# The first vLLM release with each architecture Frontier's cards hold that came late: Qwen3.5's
# came with 0.17.0 (0.16 refuses `Model architectures ['Qwen3_5MoeForConditionalGeneration'] are
# not supported for now`, runpod-workers/worker-vllm issue #279).
VLLM_FIRST_RELEASE = {"Qwen3_5ForConditionalGeneration": (0, 17), "Qwen3_5MoeForConditionalGeneration": (0, 17)}


def check_vllm_refusals(model: ModelSpec, c: ClusterSpec, where: str) -> None:
    """What vLLM alone refuses at start-up: a token budget below its sequences, the model's
    architecture in a release before it, a hybrid's prefix caching (not modelled)."""
    if c.max_num_batched_tokens < c.max_num_seqs:
        raise SpecError(
            f"{where}.max_num_batched_tokens: {c.max_num_batched_tokens} is below max_num_seqs "
            f"{c.max_num_seqs} (vLLM refuses this at start-up: every running sequence needs a token "
            f"a step); raise it to >= {c.max_num_seqs} or lower max_num_seqs"
        )
    first = VLLM_FIRST_RELEASE.get(model.architecture)
    version = version_tuple(c.engine_version)
    if first and version and version < first:
        raise SpecError(
            f"{where}.engine_version: vLLM {c.engine_version} does not serve {model.name} "
            f"({model.architecture}, from vLLM {'.'.join(map(str, first))}.0); use a later release or SGLang"
        )
    graphs = max(c.cuda_graph_sizes) if c.cuda_graph_sizes else c.cuda_graph_max_bs
    query = 1 + (c.speculative.num_speculative_tokens if c.speculative else 0)
    if query > 1 and c.cuda_graph and graphs < query and not (version and version < VLLM_GRAPHS_ROUNDED_TO_DRAFTS):
        raise SpecError(
            f"{where}.cuda_graph_sizes: vLLM {c.engine_version or '(newest)'} rounds its CUDA-graph sizes up to "
            f"multiples of a drafting step's {query} query tokens and refuses to start when none is left below "
            f"its largest, {graphs}; capture a size of at least {query} tokens or draft fewer"
        )
    if model.linear_attention is not None and c.enable_prefix_caching:
        raise SpecError(
            f"{where}.enable_prefix_caching: vLLM's prefix caching of hybrid models ({model.name}: its "
            f"recurrent states cached in `align` mode) is not modelled; set it false, vLLM's default for them"
        )


# The last SGLang release whose pipeline parallelism refuses mixed chunks (0.5.14's does not).
SGLANG_PP_MIXED_CHUNK_LAST = (0, 5, 10)


def check_sglang_refusals(c: ClusterSpec, where: str) -> None:
    """What SGLang alone refuses at start-up (see above): drafting with pipeline parallelism,
    mixed chunks with pipeline parallelism up to SGLANG_PP_MIXED_CHUNK_LAST, mixed chunks with a
    draft after the releases that turn them off themselves."""
    version = version_tuple(c.engine_version)
    release = f"SGLang {c.engine_version or '(newest)'}"
    if c.pp > 1 and c.speculative:
        raise SpecError(
            f"{where}.speculative: {release} refuses speculative decoding with pipeline parallelism "
            f"(pp {c.pp}) at start-up; use pp 1 or drop speculative"
        )
    if c.pp > 1 and c.enable_mixed_chunk and version and version[:3] <= SGLANG_PP_MIXED_CHUNK_LAST:
        raise SpecError(
            f"{where}.enable_mixed_chunk: {release} refuses mixed chunks with pipeline parallelism "
            f"(pp {c.pp}) at start-up; set it false or use pp 1"
        )
    if c.speculative and c.enable_mixed_chunk and not sglang_speculative_v1(version):
        raise SpecError(
            f"{where}.enable_mixed_chunk: {release} refuses mixed chunks with speculative decoding at "
            "start-up; set it false (releases up to 0.5.10 turn it off themselves)"
        )


def check_moe_backend(model: ModelSpec, gpu: GPUSpec, c: ClusterSpec, where: str) -> None:
    """vLLM's --moe-backend as Frontier prices it: Triton or FlashInfer's CUTLASS MoE for bf16 and
    block-FP8 experts on Hopper (frontier.predict.engine_kernels CUTLASS_MOE)."""
    if c.engine != "vllm":
        raise SpecError(
            f"{where}.moe_backend: {c.moe_backend} is vLLM's --moe-backend; {c.engine}'s experts run "
            "its own fused MoE here: use moe_backend auto"
        )
    if model.moe is None:
        raise SpecError(f"{where}.moe_backend: {model.name} has no experts; use moe_backend auto")
    if c.moe_backend == "flashinfer_cutlass" and (
        model.moe_quant not in ("none", "fp8_block") or gpu.cuda_capability != "9.0"
    ):
        experts = "bf16" if model.moe_quant == "none" else model.moe_quant
        raise SpecError(
            f"{where}.moe_backend: flashinfer_cutlass is priced for bf16 and block-FP8 experts on Hopper "
            f"(measured there), not {experts} experts on {gpu.name}; use moe_backend auto or triton"
        )


def check_cluster(scenario: Scenario, c: ClusterSpec, where: str) -> None:
    model, gpu = scenario.cluster_model(c), scenario.cluster_gpu(c)
    check_tp(model, gpu, c.tp, f"{where}.tp", attention=c.role != "ffn")  # FFN GPUs hold no attention
    if c.pp > model.num_layers:
        raise SpecError(
            f"{where}.pp: {c.pp} pipeline stages for {model.name}'s "
            f"{model.num_layers} layers; every stage needs a layer: pp <= "
            f"{model.num_layers}"
        )
    if c.block_size not in VLLM_BLOCK_SIZES:
        raise SpecError(
            f"{where}.block_size: {c.block_size} is not a vLLM block size; use one "
            f"of {', '.join(map(str, VLLM_BLOCK_SIZES))}"
        )
    if c.attention_backend == "flash" and c.block_size % 16:
        raise SpecError(
            f"{where}.block_size: {c.block_size} with attention_backend flash; "
            f"FlashAttention needs a multiple of 16 (16, 32, 64, 128, 256)"
        )
    if c.max_model_len > model.max_model_len:
        raise SpecError(
            f"{where}.max_model_len: {c.max_model_len} exceeds {model.name}'s context "
            f"of {model.max_model_len} tokens; use <= {model.max_model_len} (0: the "
            f"model's context)"
        )
    max_len = c.max_model_len if c.max_model_len > 0 else model.max_model_len  # auto: at most the context
    if not c.enable_chunked_prefill and c.max_num_batched_tokens < max_len:
        raise SpecError(
            f"{where}.max_num_batched_tokens: {c.max_num_batched_tokens} is below "
            f"max_model_len {max_len} with enable_chunked_prefill false (vLLM refuses "
            f"this at start-up: a prompt must fit one step); raise it to >= {max_len}, "
            f"set max_model_len <= {c.max_num_batched_tokens}, or enable chunked "
            f"prefill"
        )
    if c.moe_backend != "auto":
        check_moe_backend(model, gpu, c, where)
    if c.engine == "vllm":
        check_vllm_refusals(model, c, where)
    elif c.engine == "sglang":
        check_sglang_refusals(c, where)
    if model.weight_dtype == "fp8" and gpu.fp8_tflops is None:
        raise SpecError(
            f"{where}: {model.name} has fp8 weights but {gpu.name} has no fp8 tensor "
            f"cores; use a bf16 checkpoint or a GPU with fp8 (`frontier gpus` lists them)"
        )
