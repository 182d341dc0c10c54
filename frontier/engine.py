"""Serving engines: what differs between vLLM and SGLang, as each release ships it.

An `Engine` owns the defaults of its engine arguments (with where each comes from), its CUDA-graph
capture sizes and which host work overlaps the GPU; its scheduling policy lives in
`frontier.sim.scheduler`, the kernels a step launches (the same fused set in both engines) in
`frontier.ops.graph`. Chosen by
`deployment.engine` (`vllm` | `sglang`) and `deployment.engine_version` (default: the newest).

vLLM (sources: vllm/engine/arg_utils.py `_set_default_args`, vllm/config/scheduler.py,
vllm/config/compilation.py, vllm/v1/core/sched/scheduler.py):
- API server on a GPU with >= 70 GiB (from 0.9 not an A100): max_num_batched_tokens 8192,
  max_num_seqs 1024 (else 2048 and 256); prefix caching on; gpu_memory_utilization 0.9 (0.92 from 0.22: vllm/config/cache.py).
- v1 scheduler (0.8+): running requests first, then waiting, one token budget, chunked prefill,
  mixed prefill+decode batches, preemption by recompute.
- CUDA graphs: capture sizes 1, 2, 4, then every 8 to 256 and every 16 to 512 (0.11+: full
  graphs for decode batches, piecewise for mixed ones); before 0.11 every 8 up to 512; from 0.10
  none above min(2 x max_num_seqs, 512, max_num_batched_tokens) (`vllm_cuda_graph_max_bs`).
- Async scheduling (on by default from 0.14.0, PR #27614; an opt-in `--async-scheduling` since
  0.10): the scheduler and input preparation of step n+1 run while the GPU runs step n, so host
  time hides behind GPU time. Before it each step waits for its host work; it stays off for an
  ngram draft (`VLLM_ASYNC_DRAFTS`).
- MoE kernels by release: Triton's fused MoE, FlashInfer's CUTLASS MoE where the release's MoE
  oracle picks it on Hopper (`vllm_flashinfer_cutlass_moe`), DeepGEMM over padded rows in 0.12.
- Fused kernels: add+RMSNorm (`fused_add_rms_norm`), SiLU-and-mul, rotary on q/k, KV-cache
  write (`reshape_and_cache_flash`); custom all-reduce (one-shot/two-shot over NVLink P2P,
  vllm/distributed/device_communicators/custom_all_reduce.py) up to 8 MiB, then PyTorch
  symmetric-memory multimem where `VLLM_ALLREDUCE_USE_SYMM_MEM` is on (`symm_mem_all_reduce`,
  frontier.ops.graph `all_reduce`), NCCL above.

SGLang (sources: python/sglang/srt/server_args.py, managers/scheduler.py,
managers/schedule_policy.py, managers/schedule_batch.py):
- Memory defaults by release (`sglang_memory_defaults`): mem_fraction_static by tp up to 0.4.7,
  from a reserve by GPU-memory class in 0.4.8-0.5.2, from the chunk and CUDA-graph sizes since
  0.5.3 (`_handle_gpu_memory_settings`); on an 80 GiB GPU chunked_prefill_size 8192 and
  cuda_graph_max_bs 160 before 0.5.3, then 256 (tp < 4) or 512; releases after 0.5.9 get 0.5.9's.
- max_prefill_tokens 16384; radix cache on; schedule_policy fcfs; mixed chunk off; with
  attention-DP ranks, max_running_requests (when set) and chunked_prefill_size are the server's,
  split over them (`SGLANG_UNSET_RUNNING`).
- Prefill first: a step is either a prefill (extend) batch or a decode batch; new requests
  are admitted while `max_prefill_tokens`, `chunked_prefill_size` and the KV reservation of
  `new_token_ratio` x remaining output tokens allow (the ratio starts at 0.7 and decays to
  0.1 over 600 decode steps; a retraction resets it).
- Overlap scheduler (on by default since 0.4): host work of the next batch runs during the
  current one; off for hybrid (gated-DeltaNet / mamba) models with the radix cache on
  (`host_overlapped`).
- Speculative decoding up to 0.5.10: 48 running requests unless set, no overlap scheduler, no
  mixed chunks (`SGLANG_SPECULATIVE_SOURCE`), 2 GiB more reserved (`sglang_memory_defaults`).
- Custom all-reduce as vLLM's (sglang/srt/distributed/device_communicators/custom_all_reduce.py).

Host time per step and per request are constants fitted to the development set
(`make accuracy`, `validation/real-runs/`): see `HostTime`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from frontier.errors import SpecError

ENGINES = ("vllm", "sglang")
GIB = 2**30


def version_tuple(v: str) -> tuple[int, ...]:
    """A release's numbers: '0.5.6.post2' -> (0, 5, 6, 2), 'v0.12.0' -> (0, 12, 0); a local
    build label ('0.12.0+cu128') is not part of the release."""
    out = []
    for part in v.split("+")[0].replace("post", ".").replace("rc", ".").split("."):
        digits = "".join(c for c in part if c.isdigit())
        if digits:
            out.append(int(digits))
    return tuple(out)


@dataclass(frozen=True)
class HostTime:
    """Host work of a serving engine, in ms.

    step_ms: scheduling, input preparation, sampling bookkeeping and output processing of one
      step; hidden behind the GPU when `overlapped` (async / overlap scheduling), whose
      residual `overlap_residual_ms` is what a step still waits for (the sync on the sampled
      tokens, the launch of the next graph). The step rule itself is
      frontier.predict.blocks.StepOverheads.wall_ms.
    step_us_per_seq: the part of a step's host time that grows with its sequences (processing
      each one's sampled token: stop checks, detokenisation, streaming it out), added to step_ms;
    request_ms: the latency every request sees between the client and the scheduler and back
      (HTTP, inter-process hops, streaming the first token), in parallel for all requests;
    moe_request_ms: what a request to a mixture-of-experts model waits on top of `request_ms`
      (fitted, cause not known: see SGLANG_MOE_REQUEST_MS);
    request_serial_ms, request_us_per_token: the front end's one-request-at-a-time work
      (parsing, tokenisation, hand-off to the engine core), a FIFO server
      (frontier.sim.frontend): it lands in TTFT and spreads bursts out; the per-token part is
      the engine's own tokeniser's, not done behind Dynamo's front end (frontier.sim.run._frontend);
    stream_us_per_output: the same process's work per output it streams (us): one request's new
      tokens going out, one token at a time unless the engine batches them (SGLang's
      `stream_interval`); a FIFO too: outputs emitted faster reach the clients late (see
      SGLANG_STREAM_US_PER_OUTPUT).
    """

    step_ms: float
    step_us_per_seq: float
    overlapped: bool
    overlap_residual_ms: float
    request_ms: float
    request_serial_ms: float
    request_us_per_token: float
    moe_request_ms: float = 0.0
    stream_us_per_output: float = 0.0


@dataclass(frozen=True)
class Engine:
    name: str
    version: str
    defaults: dict  # field -> (value, source)
    host: HostTime
    capture_sizes: tuple[int, ...]
    graph_mixed_batches: bool = False  # prefill/mixed batches also replayed (piecewise) from graphs
    symm_mem_all_reduce: bool = False  # TP all-reduce also through PyTorch symmetric memory
    fused_quant: bool = True  # FP8 inputs quantised inside norms (frontier.ops.graph.unfused_quant)
    padded_deep_gemm_moe: bool = False  # block-FP8 MoE on DeepGEMM over every expert's padded rows (see below)


# vLLM captures CUDA graphs up to min(2 x max_num_seqs, 512) batch sizes by default from 0.10.0
# (vllm/config/scheduler.py `cuda_graph_sizes`, 0.10.0-0.11; vllm/config/vllm.py
# `max_cudagraph_capture_size` from 0.12, which also keeps it within max_num_batched_tokens and,
# from 0.13, counts a drafting decode's 1 + k query tokens; read in the 0.9.2, 0.10.0, 0.10.1,
# 0.11.0, 0.12.0, 0.13.0 and 0.14.0 wheels); up to 0.9 at 512.
VLLM_GRAPHS_FOLLOW_SEQS = (0, 10)
VLLM_GRAPHS_FOLLOW_DRAFTS = (0, 13)  # from 0.13 a decode's query is 1 + the draft tokens long


def vllm_cuda_graph_max_bs(
    version: str, max_num_seqs: int, max_num_batched_tokens: int, draft_tokens: int = 0
) -> tuple[int, str]:
    """(the largest batch vLLM `version` ('' or 'newest': the newest) captures by default, where
    that is set), with `draft_tokens` speculative tokens a step."""
    v = version_tuple(version)  # () for '' and 'newest'
    if v and v < VLLM_GRAPHS_FOLLOW_SEQS:
        return 512, "vllm/config.py cuda_graph_sizes: [512] (before 0.10)"
    query = 1 + (draft_tokens if not v or v >= VLLM_GRAPHS_FOLLOW_DRAFTS else 0)
    top = min(2 * max_num_seqs * query, 512, max_num_batched_tokens)
    rule = "min(2 x max_num_seqs" + (f" x {query} query tokens" if query > 1 else "") + ", 512, max_num_batched_tokens)"
    return top, f"vllm/config/vllm.py max_cudagraph_capture_size: {rule}"


def _vllm_capture_sizes(version: tuple, max_size: int) -> tuple[int, ...]:
    if version and version < (0, 11):
        sizes = [1, 2, 4] + list(range(8, 513, 8))
    else:
        sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))
    return tuple(s for s in sizes if s <= max_size)


# Where SGLang's defaults live, by release (checked in the released wheels' sglang/srt/server_args.py
# and model_executor/cuda_graph_runner.py of 0.4.0, 0.4.5-0.4.10, 0.5.1-0.5.9).
_SGLANG_SRC = "sglang/srt/server_args.py"
_SGLANG_RELEASES = {  # first release: (the range sharing its defaults, the function setting them)
    (0, 5, 3): ("v0.5.3-v0.5.9", "_handle_gpu_memory_settings"),
    (0, 4, 8): ("v0.4.8-v0.5.2", "__post_init__"),
    (0, 4, 7): ("v0.4.7", "__post_init__"),
    (0, 4, 6): ("v0.4.6", "__post_init__"),
    (): ("v0.4.0-v0.4.5", "__post_init__"),
}


def _sglang_release(v: tuple) -> tuple:
    """The first release of the range whose defaults `v` (() = newest) ships."""
    return next(first for first in _SGLANG_RELEASES if not v or v >= first)


# What speculative decoding changes in an engine's own defaults.
# - SGLang up to 0.5.10 (read in the 0.4.10, 0.5.1, 0.5.6, 0.5.9 and 0.5.10 wheels:
#   sglang/srt/server_args.py `_handle_speculative_decoding`, `__post_init__` in 0.4.10) runs
#   EAGLE, EAGLE3 and MTP (NEXTN, run as EAGLE), and NGRAM where it has it, with
#   max_running_requests reset to 48 unless set, the overlap scheduler off (the overlapping "spec
#   v2" workers need SGLANG_ENABLE_SPEC_V2, off by default) and mixed chunks off. 0.5.14 drafts on
#   its v2 workers only (sglang/srt/speculative/*_worker_v2.py), overlapped and without the reset,
#   so later releases and the newest keep their defaults.
# - vLLM's async scheduling (on by default from 0.14) turns itself off for a draft that is not of
#   the EAGLE kind (EagleModelTypes: eagle, eagle3, MTP): ngram (vllm/config/vllm.py
#   `VllmConfig.__post_init__`, read in the 0.14.0 wheel).
SGLANG_SPECULATIVE_V1_LAST = (0, 5, 10)
SGLANG_SPECULATIVE_MAX_RUNNING = 48
SGLANG_SPECULATIVE_SOURCE = (
    "sglang/srt/server_args.py _handle_speculative_decoding @ v0.4.10-v0.5.10: speculative decoding resets "
    "max_running_requests to 48 (unless set) and turns the overlap scheduler and mixed chunks off"
)
VLLM_ASYNC_DRAFTS = ("mtp", "eagle")


# SGLang's --max-running-requests and --chunked-prefill-size are the server's, split over its
# attention-DP ranks (--enable-dp-attention): managers/tp_worker.py `max_running_requests //
# dp_size`, server_args.py `_handle_data_parallelism` `chunked_prefill_size // dp_size` (read in
# the 0.5.1, 0.5.6, 0.5.9 and 0.5.14 wheels); --max-prefill-tokens is each rank's. Unset, a rank's
# running requests are bounded by its own KV pool (`SGLANG_UNSET_RUNNING` stands for that bound).
SGLANG_UNSET_RUNNING = 4096


def sglang_speculative_v1(version: tuple) -> bool:
    """Whether SGLang release `version` (() = newest) drafts without overlap, 48 requests at most
    and 2 GiB reserved (see above)."""
    return bool(version) and version[:3] <= SGLANG_SPECULATIVE_V1_LAST


def sglang_memory_defaults(
    version: tuple,
    gpu_memory_gib: float,
    tp: int,
    pp: int = 1,
    dp_attention: int = 1,
    chunked_prefill_size: int | None = None,
    cuda_graph_max_bs: int | None = None,
    draft: str | None = None,
) -> tuple[int, int, float]:
    """SGLang's chunked_prefill_size, cuda_graph_max_bs and mem_fraction_static (weights + KV pool
    over GPU memory; activations and CUDA graphs live in the rest) as release `version` (() =
    newest) picks them (`_SGLANG_RELEASES` names the file and function). `chunked_prefill_size` and
    `cuda_graph_max_bs` are the user's when set: from 0.5.3 the fraction is computed from them.
    SGLang reads GPU memory in MiB; its --tp spans the attention data-parallel ranks
    (tp x dp_attention here).
    - 0.4.0-0.4.7: the fraction by parallel size, 0.88 / 0.87 (2+) / 0.85 (4+) / 0.81 (8+) /
      0.79 (16+), up to 80 GiB; above, 0.4.6: 13 GiB left; 0.4.7: 0.88, and above 96 GiB the
      smaller of 0.88 + 48 GiB x 0.12 / memory and 18 GiB left, 0.79 above 180,000 MiB. Chunks of
      8192 tokens (2048 under 25,000 MiB; 0.4.7: 16384 above 180,000 MiB); CUDA graphs to 160
      (model_executor/cuda_graph_runner.py: to 256 above 80 GiB in 0.4.6 without DP attention,
      above 96 GiB in 0.4.7, to 512 above 180,000 MiB in 0.4.7).
    - 0.4.8-0.5.2: 2.8 GiB + parallel/10 reserved under 35 GiB, 9.5 + parallel/2 under 90 GiB,
      12 + parallel/2 under 160 GiB, else 32; 4 GiB more with DP attention; chunks of 2048 under
      35 GiB, 8192 under 160 GiB, else 16384; CUDA graphs to 160, 256 above 90 GiB, 512 above
      160,000 MiB (cuda_graph_runner.py).
    - 0.5.3-0.5.9: chunks and CUDA graphs by GPU memory and tp (8192 and 256 at tp < 4, else 512,
      from 60 to 160 GiB), then 512 MiB + 1.5 MiB per chunk token + 2 MiB per graph batch slot +
      1 GiB per 8 GPUs (tp x pp) reserved, at least 10 GiB above 60 GiB; DP attention adds
      3 MiB per graph slot and DP rank (4.5 MiB above 300 slots).
    - A speculative `draft` (0.4.8-0.5.10): 2 GiB more for the draft model's CUDA graphs, none for
      an ngram draft from 0.5.3 (read in the 0.4.10, 0.5.1, 0.5.6, 0.5.9 and 0.5.10 wheels; 0.5.14
      reserves none).
    Not modelled: multimodal and per-model adjustments."""
    v = _sglang_release(version)
    mib = gpu_memory_gib * 1024
    tp_size = tp * dp_attention
    parallel = tp_size * pp
    drafts = bool(draft) and sglang_speculative_v1(version) and version[:3] >= (0, 4, 8)
    draft_mib = 2048 if drafts and (draft != "ngram" or v < (0, 5, 3)) else 0
    if v >= (0, 5, 3):
        if mib < 20 * 1024:
            chunk, graph_bs = 2048, 8
        elif mib < 35 * 1024:
            small_tp_bs = 16 if version and version < (0, 5, 5) else 24
            chunk, graph_bs = 2048, small_tp_bs if tp_size < 4 else 80
        elif mib < 60 * 1024:
            chunk, graph_bs = 4096, 32 if tp_size < 4 else 160
        elif mib < 160 * 1024:
            chunk, graph_bs = 8192, 256 if tp_size < 4 else 512
        else:
            chunk, graph_bs = 16384, 512
        used_chunk, used_bs = chunked_prefill_size or chunk, cuda_graph_max_bs or graph_bs
        reserved = 512 + max(used_chunk, 2048) * 1.5 + used_bs * 2 + parallel / 8 * 1024
        if dp_attention > 1:
            reserved += used_bs * dp_attention * (4.5 if used_bs > 300 else 3)
        if mib > 60 * 1024:
            reserved = max(reserved, 10 * 1024)
        return chunk, graph_bs, round((mib - reserved - draft_mib) / mib, 3)
    if v >= (0, 4, 8):
        chunk = 2048 if mib < 35 * 1024 else 8192 if mib < 160 * 1024 else 16384
        if mib < 35 * 1024:
            graph_bs = 8 if tp_size < 4 else 80
        else:
            graph_bs = 512 if mib > 160_000 else 256 if mib > 90 * 1024 else 160
        if mib < 35 * 1024:
            reserved_gib = 2.8 + parallel / 10
        elif mib < 90 * 1024:
            reserved_gib = 9.5 + parallel / 2
        elif mib < 160 * 1024:
            reserved_gib = 12 + parallel / 2
        else:
            reserved_gib = 32.0
        reserved_gib += (4.0 if dp_attention > 1 else 0.0) + draft_mib / 1024
        return chunk, graph_bs, round(1 - reserved_gib / gpu_memory_gib, 3)
    chunk = 2048 if mib < 25_000 else 16384 if v == (0, 4, 7) and mib > 180_000 else 8192
    if mib < 25_000:
        graph_bs = 8 if tp_size < 4 else 80
    elif v == (0, 4, 6):
        graph_bs = 256 if mib > 80 * 1024 and dp_attention == 1 else 160
    elif v == (0, 4, 7):
        graph_bs = 512 if mib > 180_000 else 256 if mib > 96 * 1024 else 160
    else:
        graph_bs = 160
    by_parallel = next(f for n, f in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88)) if parallel >= n)
    if mib <= 80 * 1024 or v < (0, 4, 6):
        fraction = by_parallel
    elif v == (0, 4, 6):
        fraction = 1 - 13 / gpu_memory_gib
    elif mib > 180_000:
        fraction = 0.79
    elif mib > 96 * 1024:
        fraction = min(0.88 + 48 * 0.12 / gpu_memory_gib, 1 - 18 / gpu_memory_gib)
    else:
        fraction = 0.88
    return chunk, graph_bs, round(fraction, 3)


def _sglang_capture_sizes(version: tuple, graph_bs: int, drafting: bool = False) -> tuple[int, ...]:
    """The decode batch sizes SGLang captures CUDA graphs for, up to 1024 (the run keeps those up
    to cuda_graph_max_bs): before 0.5.3 model_executor/cuda_graph_runner.py
    `get_batch_sizes_to_capture` (1, 2, 4, 8, then every 8 to the GPU's default cap, every 16
    beyond); from 0.5.3 server_args.py `_generate_cuda_graph_batch_sizes`. With a speculative
    draft both capture a finer list at small batches ("less padding for smaller batch sizes"):
    every size to 8, every 2 to 32, then every 4 to 64 and 8 to 256 (before 0.5.3: 40, 48, 56,
    then every 16 from 80 to 160; the GPU's default cap as without a draft), every 16 beyond
    (read in the 0.5.1, 0.5.6.post2, 0.5.9 and 0.5.14 wheels)."""
    small = list(range(1, 9)) + list(range(10, 33, 2))  # with a draft
    if _sglang_release(version) >= (0, 5, 3):
        if drafting:
            sizes = small + list(range(40, 65, 4)) + list(range(72, 257, 8)) + list(range(272, 1025, 16))
        else:
            sizes = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 512, 16)) + list(range(512, 1025, 32))
        return tuple(sizes)
    sizes = small + [40, 48, 56] + list(range(80, 161, 16)) if drafting else [1, 2, 4, 8] + list(range(16, 161, 8))
    top = max(160, graph_bs)
    sizes += list(range(168, min(top, 256) + 1, 8)) + list(range(272, top + 1, 16))
    sizes += list(range(sizes[-1] + 16, 1025, 16))
    return tuple(sizes)


# From 0.12 vLLM rounds its capture sizes up to multiples of a drafting decode's 1 + k query
# tokens, dropping those that round past the largest (vllm/config/compilation.py
# `adjust_cudagraph_sizes_for_spec_decode`, called by v1/worker/gpu_model_runner.py with the
# default FULL_AND_PIECEWISE graphs, the "temp-fix" of vllm-project/vllm issue #28207; read in the
# 0.12.0, 0.13.0 and 0.14.0 wheels, not in 0.11.0).
VLLM_GRAPHS_ROUNDED_TO_DRAFTS = (0, 12)


def drafting_graph_tokens(engine: str, version: str, sizes: tuple[int, ...], draft_tokens: int) -> tuple[int, ...]:
    """The token counts of the CUDA graphs an engine replays when a draft proposes `draft_tokens`
    a sequence, from the sizes it captures (`sizes`; SGLang's are batch sizes, vLLM's tokens).
    - SGLang captures by batch size: a verify pass of B sequences replays the graph of the next
      captured size with 1 + k tokens a sequence (model_executor/cuda_graph_runner.py
      `num_tokens_per_bs` = speculative_num_draft_tokens, TARGET_VERIFY; read in 0.5.1), so a
      verify batch of B x (1 + k) tokens pads to (1 + k) x that size. (The draft model's own
      passes of B tokens pad to the same sizes; they run one layer and are the smaller part.)
    - vLLM from 0.12 (VLLM_GRAPHS_ROUNDED_TO_DRAFTS): each size rounded up to a multiple of 1 + k,
      those past the largest dropped (none left: vLLM refuses to start, frontier.spec.checks);
      before, as captured."""
    query = 1 + draft_tokens
    if engine == "sglang":
        return tuple(s * query for s in sizes)
    v = version_tuple(version)
    if v and v < VLLM_GRAPHS_ROUNDED_TO_DRAFTS:
        return sizes
    top = max(sizes)
    return tuple(sorted({r for s in sizes if (r := -(-s // query) * query) <= top})) or (query,)


# The first SGLang release whose radix cache serves hybrid (mamba / gated-DeltaNet) models
# (MambaRadixCache, sgl-project/sglang PR #11214); earlier ones disabled the radix cache for them.
SGLANG_MAMBA_RADIX_CACHE = (0, 5, 4)


# Where each engine's overlap of host and GPU work is decided (printed with the defaults).
OVERLAP_SOURCES = {
    "vllm": "vllm/config/scheduler.py async_scheduling: on by default from 0.14.0 (PR #27614), off for "
    "an ngram draft (vllm/config/vllm.py)",
    "sglang": "sglang/srt/server_args.py disable_overlap_schedule: overlap scheduler on, off for "
    "hybrid models with the radix cache (`_handle_mamba_radix_cache`, 0.5.4+) and for speculative "
    "decoding up to 0.5.10 (`_handle_speculative_decoding`)",
}
# Where each engine decides whether its TP all-reduce also uses PyTorch symmetric memory.
SYMM_MEM_SOURCES = {
    "vllm": "vllm/envs.py VLLM_ALLREDUCE_USE_SYMM_MEM: on by default in 0.11.0 (PR #24111), off in "
    "0.11.1-0.11.2 (PR #26925, 'temporarily'), on again in the 0.12 sources; needs NVLink multicast",
    "sglang": "sglang/srt/server_args.py enable_torch_symm_mem: off by default",
}
# vLLM 0.12 runs a block-FP8 MoE layer on DeepGEMM's contiguous grouped GEMM at every batch size and
# computes every expert's padding rows with it (read in the vllm 0.12.0 wheel):
# - model_executor/layers/quantization/fp8.py `get_fp8_moe_backend`: DeepGEMM for block-quantised
#   experts on SM90/SM100 where it is installed (it was for the development set's 0.12 runs, in
#   Dynamo's vLLM container), unless the MoE's tensor-parallel size is 8 or more (then Triton,
#   unless VLLM_MOE_USE_DEEP_GEMM is set);
# - layers/fused_moe/fused_moe.py `fused_experts`: DeepGEMM when `is_deep_gemm_e8m0_used()` (on by
#   default on Hopper too from 0.12: envs VLLM_USE_DEEP_GEMM_E8M0=1; 0.11 needed
#   VLLM_USE_DEEP_GEMM_E8M0_HOPPER) or the batch has 128+ rows (`_valid_deep_gemm`), so decode too;
# - layers/fused_moe/deep_gemm_utils.py: the permuted activations take M_sum = M x top-k + local
#   experts x 127 rows rounded up to 128 (`compute_aligned_M`: every expert's block padded to 128),
#   and the rows no token fills keep expert id 0 (`expert_ids_init = torch.zeros`), so both grouped
#   GEMMs, the SiLU-and-mul and the FP8 quantisation between them run over all M_sum rows. 0.13.0
#   fills them with -1, which DeepGEMM's scheduler skips.
# The development set's 51 vLLM 0.12.0 runs of Qwen3-235B-A22B-FP8 on H200 show it: TPOT flat in
# the clients (TP2: 51-56 ms from 4 to 20, where random routing touches 28 to 91 of the 128 experts)
# and falling with the experts' width per GPU (MoE over two GPUs 51-58 ms, over four 34-45 ms),
# where the measured Triton kernel of the experts a batch touches gives 36-58 % less.
# `frontier.ops.graph.padded_deep_gemm_experts` emits those M_sum rows as dense FP8 GEMMs, priced
# from the measured CUTLASS FP8 table as DeepGEMM is throughout (which makes small-K GEMMs such as
# Qwen3-235B's TP4 down projection, K = 384, too slow: aiconfigurator's SGLang tables time DeepGEMM
# 2-3.7x faster than CUTLASS FP8 at K = 256-768), and the two elementwise kernels.
VLLM_PADDED_DEEP_GEMM_MOE = ((0, 12), (0, 13))  # the releases, first included and first not
PADDED_DEEP_GEMM_MOE_SOURCE = (
    "vllm 0.12 fused_moe/fused_moe.py fused_experts + deep_gemm_utils.py compute_aligned_M: block-FP8 MoE "
    "on DeepGEMM at every batch size over M x top-k + experts x 127 rows (padding computed as expert 0; "
    "MoE TP < 8, SM90+)"
)

# From 0.15 vLLM picks an MoE layer's kernel by a priority list (model_executor/layers/fused_moe/
# oracle/fp8.py `select_fp8_moe_backend`, oracle/unquantized.py `select_unquantized_moe_backend`;
# read in the 0.14.0-0.24.0 wheels), on Hopper (SM90) with FlashInfer installed, as vLLM's images
# have it:
# - block-FP8 experts: FlashInfer's CUTLASS fused MoE ahead of DeepGEMM and Triton in 0.15-0.16
#   (0.14 only with VLLM_USE_FLASHINFER_MOE_FP8); from 0.17 "On Hopper for Block Fp8, prefer Triton
#   for TP and FI CUTLASS for EP" (`_get_priority_backends`);
# - bf16 experts: FlashInfer's CUTLASS MoE ahead of Triton in 0.20-0.22 (before 0.20 only with
#   VLLM_USE_FLASHINFER_MOE_FP16) unless the MoE spans attention-DP ranks; from 0.23 Triton on SM90
#   ("the FlashInfer unquantized MoE kernels are slower than Triton").
# FlashInfer's cutlass_fused_moe is TensorRT-LLM's CUTLASS MoE runner; aiconfigurator timed it in
# TensorRT-LLM (`moe_torch_flow_cutlass`), 1.2-1.8x vLLM's Triton fused_moe for tensor-parallel
# experts at prefill sizes and 1.5-3x at 1-8 tokens, within 5 % for an expert-parallel rank
# (MiniMax-M2.5's experts on H200). The development set's MiniMax-M2.5 runs on vLLM 0.16, TP4 on
# H200, show it: TTFT / TPOT 26 / 19 % short priced as Triton, 8 / 6 % as FlashInfer's CUTLASS.
VLLM_CUTLASS_BLOCK_FP8_MOE = (
    (0, 15),
    (0, 17),
)  # block-FP8 experts: all from the first, expert-parallel only from the second
VLLM_CUTLASS_BF16_MOE = ((0, 20), (0, 23))  # bf16 experts: the releases, first included and first not
FLASHINFER_CUTLASS_MOE_SOURCE = (
    "vllm fused_moe/oracle/fp8.py + unquantized.py: on SM90 FlashInfer's CUTLASS MoE for block-FP8 experts "
    "in 0.15-0.16 and for expert-parallel ones from 0.17 (Triton for tensor-parallel ones), for bf16 experts "
    "in 0.20-0.22 without attention DP; priced from TensorRT-LLM's CUTLASS MoE as aiconfigurator measured it"
)


def vllm_flashinfer_cutlass_moe(version: str, moe_quant: str, ep: int, dp_attention: int, capability) -> bool:
    """Whether vLLM `version` ('' or 'newest': the newest) runs routed experts of `moe_quant`
    (frontier.spec.quant) on FlashInfer's CUTLASS MoE on a GPU of CUDA `capability` (see above)."""
    if capability != "9.0":
        return False
    v = version_tuple(version)
    if moe_quant == "fp8_block":
        first, expert_parallel_only = VLLM_CUTLASS_BLOCK_FP8_MOE
        return (not v or v >= first) and (ep > 1 or bool(v) and v < expert_parallel_only)
    if moe_quant == "none":
        return bool(v) and VLLM_CUTLASS_BF16_MOE[0] <= v < VLLM_CUTLASS_BF16_MOE[1] and dp_attention == 1
    return False


# Where each engine quantises an FP8 linear layer's input (frontier.ops.graph.unfused_quant).
FUSED_QUANT_SOURCES = {
    "vllm": "torch.compile: Inductor fuses it into the RMSNorm and SiLU-and-mul kernels (vllm/config/vllm.py "
    "fuse_norm_quant / fuse_act_quant where those are custom ops); a kernel of its own only before the output "
    "projection",
    "sglang": "sglang/srt/layers/quantization/fp8_utils.py sglang_per_token_group_quant_fp8: a kernel of its "
    "own before every FP8 linear layer",
}


def host_overlapped(engine: Engine, model, radix_cache: bool, draft: str | None = None) -> bool:
    """Whether the engine hides its host time behind the GPU when serving `model` (speculative
    decoding with the `draft` method, if any). SGLang turns its overlap scheduler off for a hybrid
    model whose radix cache keeps no extra state buffer, the default `mamba_scheduler_strategy`
    no_buffer with the radix cache on (sglang/srt/server_args.py `_handle_mamba_radix_cache`:
    "Disabling overlap schedule since mamba no_buffer is not compatible with overlap schedule"),
    and, up to 0.5.10, for speculative decoding; vLLM its async scheduling for an ngram draft
    (see SGLANG_SPECULATIVE_SOURCE): each step waits for its host work."""
    if draft is not None and (
        (engine.name == "sglang" and sglang_speculative_v1(version_tuple(engine.version)))
        or (engine.name == "vllm" and draft not in VLLM_ASYNC_DRAFTS)
    ):
        return False
    if engine.name == "sglang" and model.linear_attention is not None and radix_cache:
        v = version_tuple(engine.version)
        if not v or v >= SGLANG_MAMBA_RADIX_CACHE:
            return False
    return engine.host.overlapped


def make_engine(
    name: str,
    version: str,
    gpu,
    tp: int,
    where: str = "deployment",
    pp: int = 1,
    dp_attention: int = 1,
    chunked_prefill_size: int | None = None,
    cuda_graph_max_bs: int | None = None,
    draft: str | None = None,
) -> Engine:
    """The engine `name` at `version` ('' = newest) serving on `gpu` with tensor parallel `tp`
    (`dp_attention` ranks of it). `chunked_prefill_size` and `cuda_graph_max_bs`: the user's, when
    set, and `draft` the speculative method, if any (SGLang's default mem_fraction_static depends
    on them)."""
    if name not in ENGINES:
        raise SpecError(f"{where}.engine: '{name}' is not one of {', '.join(ENGINES)}")
    v = version_tuple(version) if version else ()
    if version and not v:
        raise SpecError(f"{where}.engine_version: '{version}' is not a release number; use e.g. 0.12.0 or 0.5.6")
    big = gpu.memory_bytes >= 70 * GIB
    if name == "vllm":
        src = "vllm/engine/arg_utils.py (API server"
        # From 0.9 an A100 keeps the small budget at 80 GB (`get_batch_defaults`: "a100" not in the
        # device name, vLLM PR #17885; read in the 0.9.2-0.13.0 wheels).
        a100 = "a100" in gpu.name and (not v or v >= (0, 9))
        big = big and not a100
        seqs, tokens = (1024, 8192) if big else (256, 2048)
        budget = f"{src}, {'>= 70 GiB GPU' if big else 'an A100' if a100 else '< 70 GiB GPU'})"
        if v and v < (0, 8):  # v0 engine: 256 sequences, no prefix caching
            seqs = 256
        defaults = {
            "max_num_seqs": (seqs, budget),
            "max_num_batched_tokens": (tokens, budget),
            "enable_prefix_caching": (not (v and v < (0, 8)), "vllm/config/cache.py (v1: on)"),
            "gpu_memory_utilization": (
                0.92 if not v or v >= (0, 22) else 0.9,
                "vllm/config/cache.py (0.9 at v0.19.0, 0.92 at v0.22.0; between them taken as 0.9)",
            ),
            "enable_chunked_prefill": (True, "vllm/config/scheduler.py (v1: always)"),
            # cuda_graph_max_bs follows max_num_seqs, known with the cluster: vllm_cuda_graph_max_bs
        }
        overlapped = not v or v >= (0, 14)
        host = replace(HOST_TIME["vllm"], overlapped=overlapped)
        return Engine(
            name,
            version or "newest",
            defaults,
            host,
            _vllm_capture_sizes(v, 512),
            graph_mixed_batches=not v or v >= (0, 11),
            symm_mem_all_reduce=not v or (0, 11) <= v < (0, 11, 1) or v >= (0, 12),
            padded_deep_gemm_moe=bool(v) and VLLM_PADDED_DEEP_GEMM_MOE[0] <= v < VLLM_PADDED_DEEP_GEMM_MOE[1],
        )
    chunk, graph_bs, fraction = sglang_memory_defaults(
        v, gpu.memory_bytes / GIB, tp, pp, dp_attention, chunked_prefill_size, cuda_graph_max_bs, draft
    )
    releases, function = _SGLANG_RELEASES[_sglang_release(v)]
    src = f"{_SGLANG_SRC} @ {releases}"
    memory_src = f"{_SGLANG_SRC} `{function}` @ {releases}"
    graph_src = memory_src  # 0.4.6-0.5.2 leave it unset: the capture list's largest size
    if (0, 4, 6) <= _sglang_release(v) < (0, 5, 3):
        graph_src = f"sglang/srt/model_executor/cuda_graph_runner.py `get_batch_sizes_to_capture` @ {releases}"
    defaults = {
        "max_num_seqs": (
            SGLANG_UNSET_RUNNING,
            f"sglang/srt/managers/tp_worker.py (0.5.9: model_executor/model_runner.py) @ {releases}: "
            "max_running_requests unset, bounded by the KV pool (min(pool tokens / 2, 2048-4096 slots))",
        ),
        "max_num_batched_tokens": (chunk, f"{memory_src}: chunked_prefill_size by GPU memory"),
        "max_prefill_tokens": (16384, f"{src}: max_prefill_tokens"),
        "enable_prefix_caching": (True, f"{src}: radix cache on (disable_radix_cache false)"),
        "gpu_memory_utilization": (
            fraction,
            f"{memory_src}: mem_fraction_static, {(1 - fraction) * gpu.memory_bytes / GIB:.1f} GiB left "
            "for activations and CUDA graphs",
        ),
        "enable_chunked_prefill": (True, f"{src}: chunked_prefill_size > 0"),
        "cuda_graph_max_bs": (graph_bs, f"{graph_src}: cuda_graph_max_bs by GPU memory and tp"),
    }
    return Engine(
        name,
        version or "newest",
        defaults,
        HOST_TIME["sglang"],
        _sglang_capture_sizes(v, graph_bs, draft is not None),
        fused_quant=False,
    )


# Memory SGLang's KV pool loses besides the weights inside mem_fraction_static: the pool is sized
# from the free memory measured after the weights load (model_runner.py `profile_max_num_token`),
# so the CUDA context, NCCL and custom all-reduce buffers and kernel workspaces allocated before
# it come off the pool. Fitted to the development set's six SGLang 0.5.8 Qwen3-32B runs on one
# H100 (16 clients, 1-2k prompts), whose TTFT is set by how many requests the pool holds: with
# 0.5.8's own mem_fraction_static (0.84 there) the pool is 5.5 GiB less this; median TTFT APE
# 3.6 GiB 7.2 % (bias -7 %), 3.75 GiB 4.5 % (-3.5 %), 3.86 GiB 9.4 % (+9 %), 4.0 GiB 28 %: a few
# requests' worth of KV either way, so the figure is only as good as that one deployment.
SGLANG_UNSEEN_GIB = 3.75

# SGLang's host time per step and sequence (us): fitted to the development set's Llama-3.1-8B FP8
# runs on H200 (SGLang 0.5.6, 20-512 clients), whose decode steps at 512 sequences take 23-30 ms
# at TP4 and TP8 (about 20k tokens/s in all) where the GPU needs 10-15 ms: the scheduler's
# Python loop over the batch's requests (process_batch_result_decode, stream_output) and the
# detokenizer's per request, in managers/scheduler_output_processor_mixin.py.
SGLANG_US_PER_SEQ = 45.0

# Host time (ms). Per step: 1 ms of scheduling and input preparation (the previous model's figure;
# vllm-project/vllm PR #11133 measured the gap between V1 steps at 5-6 ms for 256 sequences without
# async scheduling and 150-170 us with it, so small batches' 1 ms is if anything low), hidden
# behind the GPU when the engine overlaps it, 0.1 ms of it still exposed (an assumption: the wait
# on the sampled tokens). Per request (the front end): fitted to the development set's
# mean TTFTs at up to 16 clients, where queueing is small (`make accuracy` rows; median APE):
# vLLM over 180 runs of Llama-3.1-70B, gpt-oss-120b, Kimi-K2.5 and MiniMax-M2.5 (12 ms serial +
# 8 ms latency: 13.8 %; 12 + 0: 18.5 %; 20 + 0: 13.9 %; with the engines' measured FlashAttention-3
# since, 12 + 8: 10.1 %, 12 + 10: 9.9 %, 12 + 12: 10.9 %; the 20 ms then split 6 serial + 14
# latency, because the vLLM 0.12 Llama-3.1-8B-FP8 sweep serves up to 126 requests/s on one
# instance (TP4, 128 clients of 2,000 / 100 tokens, 88 ms TTFT), which a 12 ms serial front end
# cannot: its TTFTs blew up 5-10x, while the 346 vLLM runs' median moves by under 1 point),
# SGLang: 25 ms for every model and release, which both real 2024 bench_serving runs of dense
# models we have want (Llama-3.3-70B TP4 and Llama-3.1-405B TP8 on H200 at 1-2 req/s,
# datacrunch-research/h200-benchmarks, median TTFT 86 and 219 ms: 18 and 25 ms left after the
# simulated queueing and prefill) and the development set's dense SGLang 0.5 runs too (below);
# an MoE model's requests wait SGLANG_MOE_REQUEST_MS more.
SGLANG_REQUEST_MS = 25.0

# What a request to an MoE model waits under SGLang beyond SGLANG_REQUEST_MS and its modelled
# prefill. The development set's SGLang MoE runs at low load take 230-370 ms to a first token at
# 1k-token prompts (InferenceMAX's DeepSeek-R1, GLM-5 and Qwen3.5 on H200 TP8 through SGLang's own
# server, aiconfigurator's Qwen3-235B sweeps on H200 TP2/TP4 through a Dynamo front end), ~150 ms
# more than their kernels' prefill; their dense runs through the same front ends do not (the
# Llama-3.1-8B sweeps, 46 runs: median APE of mean TTFT / TPOT with 160 ms for every request 80 /
# 10.4 %, 60 ms 71 / 8.6 %, 40 ms 62 / 7.8 %, 25 ms 60 / 7.6 %, 10 ms 62 / 7.2 %), so the figure
# belongs to the models, not to the front end. Fitted as one per-request latency over the MoE
# runs (first as 150-180 ms for every SGLang request: 160 ms 11.5 % median APE, 150 12.5 %, 170
# 11.6 %; kept at 160 in all), the cause not known: DeepSeek's 1k-token prompts want more and its
# 8k ones less, so part of it looks like host work a short prefill cannot hide, but 40-60 us per
# eager kernel launch (instead of 15) recovers only a fifth of it. vLLM's MoE runs fall short too
# (MiniMax-M2.5 H200, Qwen3-235B) but gpt-oss-120b and Kimi-K2.5 do not, so vLLM has none.
SGLANG_MOE_REQUEST_MS = 135.0

# SGLang's front end streams every output of every request out of one process (the
# TokenizerManager, managers/tokenizer_manager.py `handle_loop` -> `_handle_batch_output`, one
# asyncio loop per server by default: sglang issue #6553 found it single-core bound under high
# concurrency, which `--tokenizer-worker-num` (PR #8964, default 1) spreads over processes; the
# deployment's `tokenizer_workers`). An output is one request's new tokens: every token by
# default, every `--stream-interval`-th with its first and last (the deployment's
# `stream_interval`; managers/scheduler_output_processor_mixin.py `stream_output_generation`:
# `len(req.output_ids) % stream_interval == 1`, or finished). Per output (us), fitted to the
# development set's SGLang 0.5.6 Llama-3.1-8B sweeps on H200 (which stream every token), the only
# runs that stream faster than it (15-22k tokens/s at 352-512 clients): there, at
# a fixed client count, the measured TTFT grows with the output length (TP8, 512 clients of 1k
# prompts: 2.0 / 3.2 / 8.0 s at 500 / 1,000 / 2,000 output tokens) as a fixed number of clients
# waiting out of the engine gives (~25 at TP2, ~45 at TP4, ~65 at TP8, more as the stream is
# faster): requests done on the GPU whose last tokens are still queued here. It must be slower
# than the scheduler's own per-sequence work (SGLANG_US_PER_SEQ) to queue at all, so the figure
# sits close to it and the fit is steep: those 46 runs' median APE of mean TTFT / TPOT is
# 59.6 / 7.6 % without it and at 47 us, 35.6 / 7.6 % at 52 us (TP2 / TP4 / TP8 64 / 85 / 91 ->
# 31 / 38 / 28 %), 34.6 / 7.7 % at 55 us (TP8 overshoots, +20 % bias), 37.1 / 7.7 % at 60 us; no
# other SGLang run of the set moves. None of vLLM's development runs shows such a queue, so
# vLLM has none.
SGLANG_STREAM_US_PER_OUTPUT = 52.0

# The front end a request enters by: the engine's own API server (`engine`: `vllm serve`, SGLang's
# `launch_server`; their costs are HOST_TIME's) or NVIDIA Dynamo's (`dynamo`: its HTTP front end
# applies the chat template and tokenises, then hands the token ids to the engine running inside a
# Dynamo worker; how aiconfigurator deploys the runs of its sweeps,
# generator/config/backend_templates/<engine>/run.sh.j2).
FRONTENDS = ("engine", "dynamo")

# What a request waits behind Dynamo's front end per prompt token (us), in parallel with the
# others, on top of the engine's per-request latency. Fitted to the development set's vLLM 0.12
# Llama-3.1-8B-FP8 sweep on H200 (21 runs, TP1-8, 1-8k-token prompts served from the prefix cache
# after aiperf's warmup, `make accuracy`), whose TTFTs exceed the GPU's work by about this much a
# prompt token at every TP: median APE (bias) of mean TTFT 43 % (-43 %) at 0 us, 10.1 % (-8 %) at
# 8, 10.9 % (-2 %) at 10, 16.9 % (+2 %) at 12; the 30 SGLang 0.5.6 / 0.5.8 Qwen3 sweep runs through
# the same front end go from 16.6 to 14.4 % anywhere in 6-14 us. It cannot be serial work (those
# vLLM runs pass up to 356k prompt tokens/s through one front end), and the engines' own servers
# show none (InferenceMAX's 8k-token vLLM and SGLang runs, tokenised by the engine's API server).
# Where it is spent is not known: Dynamo's tokenisation and request plane, or aiperf's client.
DYNAMO_US_PER_PROMPT_TOKEN = 10.0
FRONTEND_US_PER_PROMPT_TOKEN = {"engine": 0.0, "dynamo": DYNAMO_US_PER_PROMPT_TOKEN}

HOST_TIME = {
    "vllm": HostTime(
        step_ms=1.0,
        step_us_per_seq=0.0,
        overlapped=True,
        overlap_residual_ms=0.1,
        request_ms=14.0,
        request_serial_ms=6.0,
        request_us_per_token=0.0,
    ),
    "sglang": HostTime(
        step_ms=1.0,
        step_us_per_seq=SGLANG_US_PER_SEQ,
        overlapped=True,
        overlap_residual_ms=0.1,
        request_ms=SGLANG_REQUEST_MS,
        request_serial_ms=0.0,
        request_us_per_token=2.0,
        moe_request_ms=SGLANG_MOE_REQUEST_MS,
        stream_us_per_output=SGLANG_STREAM_US_PER_OUTPUT,
    ),
}
