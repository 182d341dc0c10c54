"""`make accuracy`: simulate every measured closed-loop run of the development set and compare.

The development set (`validation/real-runs/aic-closed-loop-runs.csv`, Apache-2.0, see the NOTICE
beside it) holds 687 vLLM and SGLang benchmarks on H100 and H200: a deployment, a number of
closed-loop clients (each sends its next request when its previous one finishes), fixed input
and output lengths, and the measured mean TTFT and mean TPOT.

Each row becomes a scenario: the model card whose Hugging Face id matches `model_path`, the
GPU, the engine, the precision, one co-located instance of `tp x pp` GPUs (with attention-DP
and EP for MoE layouts) or, for `mode: disagg`, a prefill and a decode cluster, and a closed
loop of `batch_size` clients. Rows the simulator cannot express (an architecture without a
card, a deployment that does not fit) are listed with the reason, never silently dropped.

What the client sent is not recorded per row; it is known for InferenceMAX's runs. Those are
the rows exported from its dashboard (`silicon_data_source` names a dated file such as
`2026-03-25.csv` with the run's image and measurement date) and the rows of its three
sequence shapes (1k/1k, 1k/8k, 8k/1k tokens) copied under other names than the file of
aiconfigurator's own sweep of the checkpoint (`Qwen_Qwen3-32B.csv`): InferenceMAX's
benchmark scripts (benchmarks/*.sh, `run_benchmark_serving`) run `benchmark_serving.py` with
`--random-range-ratio 0.8` (lengths uniform in [0.8 L, L]), `--num-prompts 10 x concurrency`,
`--max-concurrency` and rate inf. The other rows are aiconfigurator's own sweeps, which its
deployment generator benchmarks with aiperf (generator/config/backend_templates/benchmark/
bench_run.sh.j2): fixed lengths (`--isl-stddev` / `--osl-stddev` 0, `ignore_eos`), `--concurrency`
clients sending `--num-requests` 20 x concurrency (AICONFIGURATOR_BENCH_MULTI_ROUND; its sflow
workflow sends as many, its Kubernetes template 50 x), with prompts drawn from aiperf's 100
synthetic ones (see `_prompt_pool`) after `--warmup-request-count` 2 x concurrency requests
that are not measured (`workload.warmup_requests`: the measured phase starts with the warmup's
prompts in the prefix cache); the server flags the generator writes for the run's engine (see
`aiconfigurator_server_args`); and Dynamo's front end, through which the generator deploys them
(`frontend: dynamo`: its per-prompt-token wait, frontier.engine DYNAMO_US_PER_PROMPT_TOKEN, is
fitted to these runs). Before that wait was modelled, a cold start without the warmup stood in
for it, its first wave's prefills making up the mean: the 4k-token vLLM runs with 96-128 clients
and 500-2,000 output tokens measured 111-121 ms to a first token, 197-227 simulated cold, 81-85
warm without the wait, 119-125 with it.

The report groups runs by (engine, model, GPU, TP) and gives, for mean TTFT and mean TPOT, the
median and p90 absolute percentage error and the median signed error (bias), and the same for
the closed loop's requests a second implied by them (`closed_loop_rps`): whether the simulated
engine serves as many requests as the measured one, however their time splits.
"""

from __future__ import annotations

import json
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontier.errors import FrontierError
from frontier.paths import REPO_ROOT
from frontier.validate.loaders import AIPERF_DATASET_ENTRIES  # aiperf's --num-dataset-entries default
from frontier.validate.replay import started_context

DEV_SET = REPO_ROOT / "validation" / "real-runs" / "aic-closed-loop-runs.csv"
# The columns of a measured run (aiconfigurator's silicon-data schema) the harness cannot do
# without, and those it reads as unknown when a file leaves them out.
REQUIRED_COLUMNS = (
    "id", "backend", "model_path", "system", "mode", "isl", "osl", "batch_size", "tp_size",
    "silicon_ttft_ms", "silicon_tpot_ms",
)  # fmt: skip
_PARALLEL = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
OPTIONAL_COLUMNS = (
    ("backend_version", "silicon_data_source", "precision", "gemm_quant_mode", "moe_quant_mode")
    + _PARALLEL[1:]
    + tuple(f"{side}_{c}" for side in ("prefill", "decode") for c in (*_PARALLEL, "batch_size", "num_workers"))
)
GPU_NAMES = {"h100_sxm": "h100-sxm", "h200_sxm": "h200"}
INFERENCEMAX_PROMPTS_PER_CLIENT = 10  # benchmark_serving.py --num-prompts 10 x concurrency
AICONFIGURATOR_PROMPTS_PER_CLIENT = 20  # aiperf --num-requests 20 x concurrency
INFERENCEMAX_RANGE_RATIO = 0.8
INFERENCEMAX_SHAPES = {(1024, 1024), (1024, 8192), (8192, 1024)}  # (input, output) tokens
AIPERF_WARMUP_PER_CLIENT = 2  # bench_run.sh.j2: --warmup-request-count 2 x concurrency


def _aiconfigurator_sweep(row) -> bool:
    """Whether the run comes from one of aiconfigurator's own sweeps: those are filed under the
    checkpoint they ran (`source_file=Qwen_Qwen3-32B.csv` for `Qwen/Qwen3-32B`)."""
    own_file = str(row["model_path"]).replace("/", "_") + ".csv"
    return f"source_file={own_file}" in str(row.get("silicon_data_source") or "")


def _dated_export(row) -> bool:
    """Whether the row comes from an InferenceMAX dashboard export (a dated source file)."""
    return bool(re.search(r"source_file=\d{4}-\d\d-\d\d\.csv", str(row.get("silicon_data_source") or "")))


def _inferencemax(row) -> bool:
    """Whether InferenceMAX's client produced the run (see the module docstring): a dashboard
    export, or a run of its sequence shapes copied under another name, unless aiconfigurator's
    own sweep of the checkpoint holds it (its sweeps also run 1k/1k prompts, with aiperf)."""
    shape = (int(row["isl"]), int(row["osl"])) in INFERENCEMAX_SHAPES
    return _dated_export(row) or (shape and not _aiconfigurator_sweep(row))


def _prompts_per_client(row) -> int:
    """How many requests each closed-loop client of the run sent (see the module docstring)."""
    return INFERENCEMAX_PROMPTS_PER_CLIENT if _inferencemax(row) else AICONFIGURATOR_PROMPTS_PER_CLIENT


def _prompt_pool(row) -> int | None:
    """How many distinct prompts the run's clients drew from (None: all distinct).

    InferenceMAX's `benchmark_serving.py` sends random token ids, every prompt new. aiperf, which
    aiconfigurator's sweeps used, sends prompts drawn at random from its synthetic dataset of
    `--num-dataset-entries` (100 by default, the bench script sets none: aiperf
    common/config/config_defaults.py, dataset/dataset_manager.py), so after the first hundred a
    prompt is a repeat, served from the prefix cache when the engine holds it. The vLLM 0.12
    sweep rows need it physically: Llama-3.1-8B-FP8 on one H200 at 112 clients of 1,000 / 100
    tokens measured 72 ms TTFT and 11 ms TPOT, 95 requests/s: without reuse each 11 ms step would
    prefill ~1,050 tokens (8.5 ms at the H200's dense FP8 peak) besides decoding 112 sequences.
    With the pool the 21 rows' TPOT errors go from +63-173 % to -22..+23 % and their TTFTs from
    +106 % (median) to -26 %; the 72 vLLM sweep rows' TPOT median error 50 -> 42 % (vLLM 0.12's
    Qwen3-235B decode stays ~45 % fast, a MoE kernel Frontier does not have). The SGLang sweep
    rows show no reuse (Qwen3-235B at TP4, 8 clients of 4,000 tokens: 2.0 s to a first token,
    the prefill of the prompts queued ahead, where a cached prompt takes ~0.2 s; with the pool
    the 76 rows' TTFT median error 35 -> 54 %), though the generator leaves SGLang's radix cache
    on as it leaves vLLM's prefix caching: how those runs avoided reuse is not known, so they
    are simulated without it.

    Drawn at random with replacement, as aiperf did up to 0.2.0. aiperf 0.3.0-0.8.0 (the
    samplers came with ai-dynamo/aiperf PR #395, merged 2025-10-24; aiconfigurator's sflow
    template pins 0.3.0) shuffle instead, each prompt once per pass over the 100, so from 50
    clients on the warmup leaves none unseen; which release measured these rows is not recorded
    (0.9.0, May 2026, sizes the pool to the bench script's --num-requests, a prompt of each
    request's own, which the vLLM rows' reuse rules out: they came into aiconfigurator's silicon
    sample on 2026-05-06 as "older bench data").
    Shuffled, with the Dynamo wait as fitted, the 72 vLLM sweep rows' TTFT median APE went
    23.6 -> 28.9 % (bias -8 -> -13 %; Llama-3.1-8B-FP8 TP2 10.9 -> 23.8 %, TP8 23 -> 10 %), TPOT
    45.6 -> 43.6 %; with the wait refitted to the shuffle (13 us a prompt token) the 21
    Llama-3.1-8B-FP8 rows' TTFT is 12.8 % against 10.9 % drawn at random (16 us: 22.7 %): the
    measured runs miss the cache more than a shuffle lets them, so the random draw stays."""
    if _inferencemax(row) or row["backend"] != "vllm":
        return None
    return AIPERF_DATASET_ENTRIES


def inferencemax_server_args(row) -> dict:
    """The engine arguments InferenceMAX's launch script gave a run's server, as deployment
    fields ({} where the script is not known): the script in SemiAnalysisAI/InferenceX
    (benchmarks/, from March 2026 benchmarks/single_node/) as it stood when the run was measured
    (the row's `measured=` date), its layout from .github/configs/nvidia-master.yaml:
    - DeepSeek-R1 FP8, SGLang, H200 (dsr1_fp8_h200.sh, Feb.-Mar. 2026): --chunked-prefill-size and
      --max-prefill-tokens 32768, --mem-fraction-static 0.82, --disable-radix-cache, and
      --max-running-requests / --cuda-graph-max-bs 512 at 1k/1k, 256 otherwise, --stream-interval
      10 (flashinfer attention is not modelled);
    - Qwen3.5-397B-A17B FP8, SGLang, H200 (qwen3.5_fp8_h200.sh, 2026-03-09): --disable-radix-cache
      (so the overlap scheduler stays on), --max-running-requests 128, --chunked-prefill-size
      16384, --mem-fraction-static 0.8, --kv-cache-dtype fp8_e4m3, --cuda-graph-max-bs = the
      concurrency, --stream-interval 50, --tokenizer-worker-num 6 (flashinfer attention and
      all-reduce fusion: not modelled);
    - GLM-5 FP8, SGLang, H200 (glm5_fp8_h200.sh, 2026-03-19): --mem-fraction-static 0.85;
    - gpt-oss-120b, vLLM, H100 and H200 (gptoss_fp4_h{100,200}.sh, 2026-03-27): its config.yaml's
      no-enable-prefix-caching, max-num-batched-tokens 8192, --max-num-seqs = the concurrency,
      and VLLM_MXFP4_USE_MARLIN=1 (Marlin MoE kernels);
    - Kimi-K2.5 INT4, vLLM, H200 (kimik2.5_int4_h200.sh, March 2026): --gpu-memory-utilization
      0.95, --max-num-seqs = the concurrency (its all-reduce + RMSNorm fusion is not modelled);
    - MiniMax-M2.5 FP8, vLLM: on H100 (minimaxm2.5_fp8_h100.sh, 2026-03-11) TP4 with
      --enable-expert-parallel, --gpu-memory-utilization 0.90, --max-num-seqs 256 (its piecewise-
      only CUDA graphs are not modelled); on H200 --gpu-memory-utilization 0.95, and the v0.18
      runs' script (2026-03-13) passes --enable-expert-parallel whenever EP_SIZE >= 1, i.e.
      always: the experts are spread over the TP ranks (the v0.16 runs' script, 2026-03-01, had
      no such flag);
    - Llama-3.1-70B FP8, vLLM, H200 (nvidia/Llama-3.1-70B-Instruct-FP8, whose ModelOpt checkpoint
      carries FP8 KV-cache scales): an FP8 KV cache. Not read from a script but from the runs: on
      one H200 they hold 32 clients of 1k + 8k tokens (295k tokens) without queueing and queue
      at 64 (589k), which an FP8 cache's 353k tokens gives and a bf16 one's 176k does not (with
      bf16 those two TTFTs come out 5.7x and 13x the measured, with FP8 19 % and 21 % short, as
      the group's other prefill-bound runs)."""
    from frontier.engine import version_tuple

    if not _inferencemax(row):
        return {}
    model, engine, gpu = str(row["model_path"]).lower(), row["backend"], row["system"]
    clients = _int(row["batch_size"])
    if engine == "vllm" and "llama-3.1-70b" in model:
        return {"kv_cache_dtype": "fp8"}
    if engine == "vllm" and "gpt-oss" in model:
        return {
            "enable_prefix_caching": False,
            "max_num_batched_tokens": 8192,
            "max_num_seqs": clients,
            "mxfp4_backend": "marlin",
        }
    if engine == "vllm" and "kimi-k2.5" in model:
        return {"gpu_memory_utilization": 0.95, "max_num_seqs": clients}
    if engine == "vllm" and "minimax-m2.5" in model:
        if gpu == "h100_sxm":
            return {"gpu_memory_utilization": 0.90, "max_num_seqs": 256}
        always_ep = version_tuple(str(row.get("backend_version") or "")) >= (0, 18)
        return {"gpu_memory_utilization": 0.95, **({"ep": _int(row["tp_size"])} if always_ep else {})}
    if engine == "sglang" and "glm-5" in model:
        return {"gpu_memory_utilization": 0.85}
    if engine == "sglang" and "deepseek" in model and gpu == "h200_sxm":
        seqs = 512 if (int(row["isl"]), int(row["osl"])) == (1024, 1024) else 256
        return {
            "max_num_batched_tokens": 32768,
            "max_prefill_tokens": 32768,
            "gpu_memory_utilization": 0.82,
            "enable_prefix_caching": False,
            "max_num_seqs": seqs,
            "cuda_graph_max_bs": seqs,
            "stream_interval": 10,
        }
    if engine == "sglang" and "qwen3.5" in model and gpu == "h200_sxm":
        return {
            "enable_prefix_caching": False,
            "max_num_seqs": 128,
            "max_num_batched_tokens": 16384,
            "max_prefill_tokens": 16384,
            "gpu_memory_utilization": 0.8,
            "kv_cache_dtype": "fp8",
            "cuda_graph_max_bs": clients,
            "stream_interval": 50,
            "tokenizer_workers": 6,
        }
    return {}


# The first releases aiconfigurator's deployment generator deploys with its benchmark flags: their
# templates (cli_args.0.5.6.post2.j2, vllm/cli_args.0.12.0.j2) came with the Dynamo 0.8.0 backend
# on 2026-01-23, after SGLang's --enable-mixed-chunk (2026-01-19) and vLLM's
# --max-num-batched-tokens in run.sh (2026-01-08) (aiconfigurator commits c46a56b02, 07a377923,
# 2cecd6596). Sweeps of earlier releases predate those flags and ran the engine's defaults.
GENERATOR_RELEASES = {"sglang": (0, 5, 6), "vllm": (0, 12)}


def aiconfigurator_server_args(row) -> dict:
    """The engine arguments aiconfigurator's deployment generator gives an aggregated worker,
    for the rows of its own sweeps (not InferenceMAX's) of the releases it deploys with them
    (`GENERATOR_RELEASES`). Its benchmark rules
    (aiconfigurator/generator/rule_plugin/benchmark/{sglang,vllm}.rule, rendered by
    config/backend_templates/<engine>/cli_args.<version>.j2) set, with the run's batch size as
    the worker's max batch size (the rows' client counts are the generator's
    `estimated_concurrency` = workers x max batch size):
    - SGLang: --enable-mixed-chunk, --max-prefill-tokens = isl + 1500, --max-running-requests
      = the batch size, and a CUDA graph for every batch size up to it (--cuda-graph-bs 1..bs);
    - vLLM: --max-num-batched-tokens = batch size + isl + 1500, --max-num-seqs = the batch
      size, --max-model-len = isl + osl + 1500, and --cudagraph-capture-sizes 1..bs (so batches
      of more tokens, prefills included, run without graphs).
    Prefix caching is left at the engine's default (on). Checked on the development set
    (`make accuracy`, median APE of mean TTFT / TPOT): SGLang 27 % / 14 % -> 27 % / 11 % (127
    runs), vLLM 20 % / 11 % -> 19 % / 10 % (347 runs); the sweeps' TTFTs stay the least explained
    rows (see the README). An earlier release's sweep gets no flags: issue 9's measured SGLang
    0.5.1 Qwen3-32B run (TP2, 64 clients, 1k/128 tokens) took 2,530 ms to a first token, the time
    to prefill the 64 prompts batch after batch, which SGLang's defaults give and mixed chunks do
    not (2,143 and 1,136 ms simulated)."""
    from frontier.engine import version_tuple

    if _inferencemax(row) or row["mode"] != "agg":
        return {}
    engine, version = row["backend"], version_tuple(str(row.get("backend_version") or ""))
    if version and version < GENERATOR_RELEASES.get(engine, ()):
        return {}
    bs, isl, osl = _int(row["batch_size"]), int(row["isl"]), int(row["osl"])
    graphs = list(range(1, bs + 1))  # the rules' cuda_graph_batch_sizes
    if engine == "sglang":
        return {
            "enable_mixed_chunk": True,
            "max_prefill_tokens": isl + 1500,
            "max_num_seqs": bs,
            "cuda_graph_sizes": graphs,
        }
    return {
        "max_num_batched_tokens": bs + isl + 1500,
        "max_num_seqs": bs,
        "max_model_len": isl + osl + 1500,
        "cuda_graph_sizes": graphs,
    }


def _lengths(row) -> tuple:
    """The workload's input and output length specs of a run."""

    def length(n: int):
        if _inferencemax(row):
            return {"dist": "uniform", "min": math.ceil(INFERENCEMAX_RANGE_RATIO * n), "max": n}
        return n  # not recorded: fixed, as the benchmark was configured

    return length(int(row["isl"])), length(int(row["osl"]))


@dataclass(frozen=True)
class Run:
    """One measured run: its scenario (or why there is none) and what was measured."""

    id: str
    engine: str
    version: str
    model: str
    gpu: str
    precision: str
    tp: int
    concurrency: int
    isl: int
    osl: int
    ttft_ms: float
    tpot_ms: float
    scenario: dict | None
    unexpressed: str = ""


def _int(x) -> int:
    return 1 if x is None or (isinstance(x, float) and math.isnan(x)) else int(x)


# aiconfigurator's GEMM quantisation modes (sdk/common.py GEMMQuantMode) in frontier.spec.quant's
# names, where they differ: static per-tensor and "out of the box" FP8 are vLLM's per-tensor FP8,
# and NVFP4 / MXFP4 weights dequantised to bf16 are what Hopper does with every 4-bit format.
AICONFIGURATOR_QUANT_MODES = {
    "int4_wo": "int4",
    "fp8_static": "fp8",
    "fp8_ootb": "fp8",
    "nvfp4_wo": "nvfp4",
    "w4a16_nvfp4": "nvfp4",
    "w4a16_mxfp4": "mxfp4",
}


def quantization_of(row) -> str:
    """The precision of the run's linear layers, in frontier.spec.quant's names (a mode it has no
    kernels for, such as int8 weights, stays as named and is reported as unknown)."""
    gemm = str(row.get("gemm_quant_mode") or "")
    if gemm in ("", "nan"):
        return "none"
    return AICONFIGURATOR_QUANT_MODES.get(gemm, gemm)


def checkpoint_quantization(row, card: str) -> str:
    """The precision of the checkpoint a run served on the bf16 architecture `card`: the row's
    (`quantization_of`), except that aiconfigurator labels a block-scaled checkpoint `fp8` in its
    vLLM rows and `fp8_block` in its SGLang rows of the same checkpoint (Qwen/Qwen3-235B-A22B-FP8,
    whose config.json has weight_block_size [128, 128]). An -FP8 release of the architecture's own
    organisation (Qwen's, as DeepSeek's and MiniMax's) is block-scaled; another's, such as
    NVIDIA's ModelOpt nvidia/Llama-3.1-8B-Instruct-FP8, per-tensor as labelled."""
    from frontier.spec.model import load_model

    quantization = quantization_of(row)
    org, _, name = str(row["model_path"]).lower().partition("/")
    owner = load_model(card).hf_id.lower().partition("/")[0]
    return "fp8_block" if quantization == "fp8" and org == owner and name.endswith("-fp8") else quantization


def load_runs(path: Path = DEV_SET, num_prompts_per_client: int | None = None) -> list[Run]:
    """The runs of a development-set file, each with its scenario or why there is none.
    `num_prompts_per_client`: requests per client for every run (default: each run's client's,
    `_prompts_per_client`)."""
    import pandas as pd

    if not path.is_file():
        raise FrontierError(f"development set not found: {path}")
    df = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise FrontierError(
            f"{path}: no column {', '.join(missing)}; a measured run needs {', '.join(REQUIRED_COLUMNS)} "
            "(aiconfigurator's silicon-data columns, as in validation/real-runs/)"
        )
    # Optional columns (the release, the source note, quantisation, the other parallel sizes and a
    # disaggregated run's workers) read as unknown where a file leaves them out.
    df = df.reindex(columns=list(df.columns) + [c for c in OPTIONAL_COLUMNS if c not in df.columns])
    rows = [_dashboard_layout(row) for row in df.to_dict("records")]
    rows.sort(key=lambda row: not _dated_export(row))  # of a run's copies, the dashboard's is kept
    from frontier.spec.model import card_for_checkpoint, card_ids

    ids = card_ids()
    runs = []
    for row in rows:
        version = "" if pd.isna(row["backend_version"]) else str(row["backend_version"])
        card = card_for_checkpoint(row["model_path"], quantised=True, ids=ids)
        card = card and card.stem
        gpu = GPU_NAMES.get(row["system"])
        pd_layout = row["mode"] == "disagg"  # prefill and decode workers
        if pd_layout:
            row["batch_size"] = _silicon_concurrency(row)
        reason = (
            _pd_unexpressed(row)
            if pd_layout
            else _agg_unexpressed(row)
            if row["mode"] == "agg"
            else f"mode {row['mode']} not expressed"
        )
        if not reason and card is None:
            reason = f"no model card for {row['model_path']}"
        elif not reason and gpu is None:
            reason = f"no GPU spec for {row['system']}"
        tp, conc = _int(row["prefill_tp_size" if pd_layout else "tp_size"]), _int(row.get("batch_size"))
        build = _pd_scenario if pd_layout else _scenario
        per_client = num_prompts_per_client or _prompts_per_client(row)
        scenario = None if reason else build(row, card, gpu, version, per_client)
        # PD runs are reported apart ("sglang PD"): their own groups and engine line.
        engine = f"{row['backend']} PD" if pd_layout else row["backend"]
        runs.append(
            Run(
                row["id"],
                engine,
                version or "-",
                row["model_path"],
                row["system"],
                quantization_of(row),
                tp,
                conc,
                int(row["isl"]),
                int(row["osl"]),
                float(row["silicon_ttft_ms"]),
                float(row["silicon_tpot_ms"]),
                scenario,
                reason,
            )
        )
    return _one_per_measurement(runs)


def _dashboard_layout(row) -> dict:
    """A dashboard row with the layout InferenceMAX ran. Its config (.github/configs/
    nvidia-master.yaml, `search-space: {tp, ep}`) is named in the row's id (`..._tp4_ep4_1357`),
    and its client count in the source note (`silicon_concurrency`). One export (2026-04-06.csv)
    records expert-parallel runs in layouts no single node holds: MiniMax-M2.5's H100 runs
    (`minimaxm2.5-fp8-h100-vllm`, tp 4, ep 4: vLLM's --tensor-parallel-size 4
    --enable-expert-parallel on 4 GPUs) as 4 attention-DP ranks of TP4 (16 GPUs) with a quarter
    of the clients each, Qwen3.5's (tp 8, ep 8) as TP64. Where the recorded layout spans another
    number of GPUs than the id's tp, the id's layout is taken; other rows keep theirs (an
    attention-DP run records its GPUs as tp x attention_dp)."""
    m = re.search(r"_tp(\d+)(?:_0)?_ep(\d+)(?:_0)?_\d+$", str(row["id"]))
    if not _dated_export(row) or not m or row["mode"] != "agg":
        return row
    tp, ep = int(m.group(1)), int(m.group(2))
    clients = _silicon_concurrency(row)
    row = {**row, "batch_size": row["batch_size"] if math.isnan(clients) else clients}
    if _int(row["tp_size"]) * _int(row["attention_dp_size"]) == tp:
        return row
    return {**row, "tp_size": tp, "attention_dp_size": 1, "moe_tp_size": tp // ep, "moe_ep_size": ep}


def _one_per_measurement(runs: list[Run]) -> list[Run]:
    """The runs less copies of one measurement: runs of one engine release, GPU, TP size, client
    count and lengths with the same mean TTFT and TPOT to 0.01 ms (two benchmark runs never agree
    that closely) are one run filed more than once (a dashboard export, a later export of the
    same runs, a gap analysis, a database dump that names InferenceMAX's DeepSeek-R1 runs
    DeepSeek-V3), whatever their ids, model names or layout columns say. The first copy that can
    be simulated is kept (`load_runs` puts the dashboard's first)."""
    copies: dict[tuple, list[Run]] = {}
    for r in runs:
        key = (r.engine, r.version, r.gpu, r.tp, r.concurrency, r.isl, r.osl, round(r.ttft_ms, 2), round(r.tpot_ms, 2))
        copies.setdefault(key, []).append(r)
    return [next((r for r in group if r.scenario), group[0]) for group in copies.values()]


def _silicon_concurrency(row) -> float:
    """A run's client count as its source note records it (a disaggregated run's only record of
    it; a dashboard row's batch_size may be per attention-DP rank)."""
    m = re.search(r"silicon_concurrency=(\d+)", str(row.get("silicon_data_source") or ""))
    return float(m.group(1)) if m else float("nan")


def _attention_dp(row) -> int:
    """A co-located run's attention data-parallel ranks. aiconfigurator's columns give the MoE
    layout as moe_tp x moe_ep GPUs; where that exceeds tp x attention_dp the run had more
    attention-DP ranks than recorded: vLLM's data-parallel ranks without expert parallelism run
    the MoE tensor-parallel over all tp x dp GPUs (vllm/model_executor/layers/fused_moe/config.py,
    FusedMoEParallelConfig flattens them), so the DP size is moe_tp x moe_ep / tp."""
    dp = _int(row["attention_dp_size"])
    moe_gpus = _int(row["moe_tp_size"]) * _int(row["moe_ep_size"])
    tp = _int(row["tp_size"])
    return moe_gpus // tp if moe_gpus > tp * dp and moe_gpus % tp == 0 else dp


def _agg_unexpressed(row) -> str:
    """Why a co-located run's layout cannot be expressed, or '': MoE GPUs that are no multiple
    of the attention TP size."""
    moe_gpus = _int(row["moe_tp_size"]) * _int(row["moe_ep_size"])
    attn_gpus = _int(row["tp_size"]) * _attention_dp(row)
    if moe_gpus > 1 and moe_gpus != attn_gpus:
        return (
            f"MoE over {moe_gpus} GPUs (moe_tp {_int(row['moe_tp_size'])} x moe_ep {_int(row['moe_ep_size'])}) "
            f"but attention over tp x attention_dp = {attn_gpus}: not expressed"
        )
    return ""


def _pd_unexpressed(row) -> str:
    """Why a disaggregated run cannot be expressed, or ''. Runs without worker counts are not
    guessed as one prefill and one decode worker: InferenceMAX's disaggregated DeepSeek-R1 runs
    (empty counts) serve up to 2,048 clients at 27 ms per token, more KV than one TP8 decode
    instance of H200s holds (2,048 x 1.5k tokens x 70 KB of MLA latent per token, on every rank)."""
    for side in ("prefill", "decode"):
        workers = row.get(f"{side}_num_workers")
        if workers is None or (isinstance(workers, float) and math.isnan(workers)):
            return "disaggregated run without prefill/decode worker counts"
    if math.isnan(_silicon_concurrency(row)):
        return "disaggregated run without silicon_concurrency in its source note"
    return ""


def _pd_scenario(row, card: str, gpu: str, version: str, per_client: int) -> dict:
    """A disaggregated run: its prefill and decode workers (`<side>_num_workers` instances of the
    run's engine each, the cluster's replicas, requests spread round-robin), each with its own
    (attention tp, attention DP, EP) as aiconfigurator's prefill_* / decode_* columns give them,
    the KV crossing the prefill GPUs' NICs; fixed lengths and a closed loop of clients."""
    clusters = []
    for side in ("prefill", "decode"):
        c = {
            "name": side,
            "role": side,
            "engine": row["backend"],
            "tp": _int(row[f"{side}_tp_size"]),
            "pp": _int(row[f"{side}_pp_size"]),
        }
        if version:
            c["engine_version"] = version
        if _int(row[f"{side}_attention_dp_size"]) > 1:
            c["dp_attention"] = _int(row[f"{side}_attention_dp_size"])
        if _int(row[f"{side}_moe_ep_size"]) > 1:
            c["ep"] = _int(row[f"{side}_moe_ep_size"])
        if _int(row[f"{side}_num_workers"]) > 1:
            c["dp"] = _int(row[f"{side}_num_workers"])
        clusters.append(c)
    return _row_scenario(row, card, gpu, {"clusters": clusters}, per_client)


def _row_scenario(row, card: str, gpu: str, deployment: dict, per_client: int) -> dict:
    """A run's scenario: its deployment and a closed loop of `batch_size` clients, rate inf,
    `per_client` prompts each, of the lengths its client drew, from its prompt pool if any. A vLLM
    deployment whose launch flags are not known to set `--max-model-len` gets the context it
    started with (`started_context`)."""
    conc = _int(row["batch_size"])
    isl, osl = _lengths(row)
    workload = {
        "num_requests": per_client * conc,
        "concurrency": conc,
        "arrival": {"process": "poisson", "rate": "inf"},
        "input_len": isl,
        "output_len": osl,
    }
    pool = _prompt_pool(row)
    if pool is not None:
        workload["prompt_pool"] = pool
    clusters = deployment.get("clusters", [deployment])
    if _aiconfigurator_sweep(row):  # aiperf's warmup, through Dynamo's front end
        workload["warmup_requests"] = AIPERF_WARMUP_PER_CLIENT * conc
        for cluster in clusters:
            cluster["frontend"] = "dynamo"
    for cluster in clusters:
        started_context(cluster)
    return {"name": row["id"], "model": card, "gpu": gpu, "deployment": deployment, "workload": workload, "seed": 0}


def _scenario(row, card: str, gpu: str, version: str, per_client: int) -> dict:
    from frontier.spec.model import load_model

    tp, pp = _int(row["tp_size"]), _int(row["pp_size"])
    dp_attn, ep = _attention_dp(row), _int(row["moe_ep_size"])
    # aiconfigurator's columns: tp_size is attention TP, so an instance has tp x attention_dp GPUs.
    deployment = {"engine": row["backend"], "tp": tp, "pp": pp}
    if load_model(card).precision == "bf16":  # a quantized checkpoint keeps its own precision
        deployment["quantization"] = checkpoint_quantization(row, card)
    if version:
        deployment["engine_version"] = version
    if dp_attn > 1:
        deployment["dp_attention"] = dp_attn
    if ep > 1:
        deployment["ep"] = ep
    deployment.update(inferencemax_server_args(row) or aiconfigurator_server_args(row))
    return _row_scenario(row, card, gpu, deployment, per_client)


def simulate_run(scenario: dict) -> dict:
    """Mean TTFT and TPOT of one scenario, or the one-line reason it could not run."""
    from frontier.errors import FrontierError as Err
    from frontier.sim.run import run_scenario
    from frontier.spec.scenario import scenario_from_dict

    try:
        result = run_scenario(scenario_from_dict(scenario), timeline=False)
    except Err as exc:
        return {"error": str(exc)}
    s = result.summary
    load = s["frontier"]["frontend"] or {}
    return {
        "ttft_ms": s["mean_ttft_ms"],
        "tpot_ms": s["mean_tpot_ms"],
        "failed": s["failed"],
        "stream_busy": load.get("stream_busy_fraction"),
    }


def closed_loop_rps(clients: int, ttft_ms: float, tpot_ms: float, output_tokens: float) -> float:
    """Requests a second that `clients` closed-loop clients complete when a request takes its
    TTFT and then (output_tokens - 1) TPOTs (Little's law over a client's cycle; the client's
    own gap before its next request, a few ms, left out). Computed alike from the measured and
    the predicted latencies, it tells an error in the engine's capacity (how many requests it
    serves) from one in how a request's time splits between its first token and the rest."""
    return clients / ((ttft_ms + (output_tokens - 1) * tpot_ms) / 1e3)


def _mean_output_tokens(scenario: dict) -> float:
    out = scenario["workload"]["output_len"]
    return (out["min"] + out["max"]) / 2 if isinstance(out, dict) else float(out)


# Each metric the report compares: the suffix of its measured_ / predicted_ columns, its label.
METRICS = {"ttft": ("ttft_ms", "mean TTFT (ms)"), "tpot": ("tpot_ms", "mean TPOT (ms)"), "rps": ("rps", "requests/s")}


def evaluate(runs: list[Run], jobs: int | None = None, progress: bool = True) -> list[dict]:
    """Simulate the expressible runs (in parallel) and return one row per run."""
    todo = [r for r in runs if r.scenario is not None]
    jobs = jobs or os.cpu_count() or 1
    results: dict[str, dict] = {}
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            futures = {r.id: pool.submit(simulate_run, r.scenario) for r in todo}
            results = _collect(futures, progress)
    else:
        for r in _progress(todo, progress):
            results[r.id] = simulate_run(r.scenario)
    rows = []
    for r in runs:
        row = {
            k: getattr(r, k)
            for k in ("id", "engine", "version", "model", "gpu", "precision", "tp", "concurrency", "isl", "osl")
        }
        row.update(measured_ttft_ms=r.ttft_ms, measured_tpot_ms=r.tpot_ms)
        res = results.get(r.id, {"error": r.unexpressed})
        if "error" in res:
            row["unexpressed"] = res["error"]
        else:
            row.update(
                predicted_ttft_ms=res["ttft_ms"],
                predicted_tpot_ms=res["tpot_ms"],
                failed_requests=res["failed"],
                predicted_stream_busy_fraction=res["stream_busy"],
            )
            out = _mean_output_tokens(r.scenario)
            for side in ("measured", "predicted"):
                ttft, tpot = row[f"{side}_ttft_ms"], row[f"{side}_tpot_ms"]
                row[f"{side}_rps"] = closed_loop_rps(r.concurrency, ttft, tpot, out)
            for m, (unit, _) in METRICS.items():
                row[f"{m}_error_pct"] = 100.0 * (row[f"predicted_{unit}"] / row[f"measured_{unit}"] - 1.0)
        rows.append(row)
    return rows


def _collect(futures: dict, progress: bool) -> dict:
    from concurrent.futures import as_completed

    ids = {f: i for i, f in futures.items()}
    out = {}
    for f in _progress(as_completed(list(ids)), progress, total=len(ids)):
        out[ids[f]] = f.result()
    return out


def _progress(it, show: bool, total: int | None = None):
    if not show:
        return it
    from rich.progress import track

    return track(it, description="simulating measured runs", total=total, transient=True)


def _stats(errors: np.ndarray) -> dict:
    a = np.abs(errors)
    return {
        "median_ape_pct": float(np.median(a)),
        "p90_ape_pct": float(np.percentile(a, 90)),
        "bias_pct": float(np.median(errors)),
    }


def summarise(rows: list[dict], by=("engine", "model", "gpu", "tp")) -> dict:
    """Error statistics per group, per engine, and over every run that was simulated."""
    done = [r for r in rows if "ttft_error_pct" in r]

    def block(sel: list[dict]) -> dict:
        out = {"runs": len(sel)}
        for m in METRICS:
            out[m] = _stats(np.array([r[f"{m}_error_pct"] for r in sel]))
        return out

    groups: dict[tuple, list] = {}
    for r in done:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    engines: dict[str, list] = {}
    for r in done:
        engines.setdefault(r["engine"], []).append(r)
    unexpressed: dict[str, int] = {}
    for r in rows:
        if "unexpressed" in r:
            unexpressed[r["unexpressed"]] = unexpressed.get(r["unexpressed"], 0) + 1
    return {
        "groups": [dict(zip(by, k), **block(v)) for k, v in sorted(groups.items(), key=lambda kv: kv[0])],
        "engines": {e: block(v) for e, v in sorted(engines.items())},
        "all": block(done) if done else {"runs": 0},
        "unexpressed": unexpressed,
        "runs_total": len(rows),
    }


def _table_rows(summary: dict):
    """(key, label cells, statistics) of each row a report's table shows: the groups, each engine,
    all runs."""
    for g in summary["groups"]:
        key = (g["engine"], g["model"], g["gpu"], g["tp"])
        yield key, f"{g['engine']} | {g['model'].split('/')[-1]} | {g['gpu']} | {g['tp']}", g
    for e, b in summary["engines"].items():
        yield ("engine", e), f"**{e}** | all | |", b
    if summary["all"]["runs"]:
        yield ("all",), "**all** | | |", summary["all"]


def _pct(b: dict, m: str, k: str) -> str:
    """One statistic as the tables print it: a signed bias, an unsigned error (without the %)."""
    return f"{b[m][k]:+.0f}" if k == "bias_pct" else f"{b[m][k]:.0f}"


def format_table(summary: dict) -> str:
    """The report as a Markdown table (what the README shows)."""
    lines = [
        "| engine | model | GPU | TP | runs | TTFT median APE | TTFT p90 APE | TTFT bias | "
        "TPOT median APE | TPOT p90 APE | TPOT bias | req/s median APE | req/s bias |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    columns = [(m, k) for m in ("ttft", "tpot") for k in ("median_ape_pct", "p90_ape_pct", "bias_pct")]
    columns += [("rps", "median_ape_pct"), ("rps", "bias_pct")]
    for _, label, b in _table_rows(summary):
        lines.append(f"| {label} | {b['runs']} | " + " | ".join(f"{_pct(b, m, k)} %" for m, k in columns) + " |")
    if summary["unexpressed"]:
        lines.append("")
        lines.append("Not simulated:")
        for reason, n in sorted(summary["unexpressed"].items(), key=lambda kv: -kv[1]):
            lines.append(f"- {n} runs: {reason}")
    return "\n".join(lines)


def steep_front_end(rows: list[dict]) -> str | None:
    """A line on the runs whose simulated front-end stream was near saturation
    (frontier.metrics.report FRONTEND_STEEP): there TTFT sits on a steep queue, so their errors
    say as much about a few percent of per-output cost as about the model. None without any."""
    from frontier.metrics.report import FRONTEND_STEEP

    steep, rest = [], []
    for r in rows:
        if "ttft_error_pct" in r:
            (steep if (r.get("predicted_stream_busy_fraction") or 0.0) >= FRONTEND_STEEP else rest).append(r)
    if not steep:
        return None

    def median(sel: list[dict]) -> str:
        return f"{np.median(np.abs([r['ttft_error_pct'] for r in sel])):.0f} %" if sel else "-"

    return (
        f"{len(steep)} runs stream their outputs through a front end at least {FRONTEND_STEEP:.0%} busy "
        f"(TTFT median APE {median(steep)}; the other {len(rest)}: {median(rest)})"
    )


def write_report(rows: list[dict], summary: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": rows}, indent=1, allow_nan=False))


def read_report(path: Path) -> dict:
    """An `accuracy.json` written earlier (its "runs"), or one clear error."""
    try:
        report = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FrontierError(
            f"baseline not found: {path} (an accuracy.json written by `frontier accuracy -o`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise FrontierError(f"baseline {path} is not an accuracy.json: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("runs"), list):
        raise FrontierError(f"baseline {path} is not an accuracy.json: it has no 'runs' list (`frontier accuracy -o`)")
    simulated = ("id", "engine", "model", "gpu", "tp", *(f"{m}_error_pct" for m in METRICS))
    for i, run in enumerate(report["runs"]):
        needs = ("id", "unexpressed") if isinstance(run, dict) and "unexpressed" in run else simulated
        missing = [k for k in needs if not isinstance(run, dict) or k not in run]
        if missing:
            raise FrontierError(
                f"baseline {path}: run {i} has no {', '.join(missing)} (`frontier accuracy -o` writes them)"
            )
    return report


def compare_table(before: dict, after: dict) -> str:
    """Two reports' summaries side by side, `before -> after`, for the rows both hold: what a
    change did to the table (the form a closing note gives it)."""
    columns = [(m, k) for m in ("ttft", "tpot") for k in ("median_ape_pct", "bias_pct")]

    def cell(b: dict, a: dict, m: str, k: str) -> str:
        old, new = _pct(b, m, k), _pct(a, m, k)
        return f"{new} %" if old == new else f"{old} -> {new} %"

    old_rows = {key: b for key, _, b in _table_rows(before)}
    lines = [
        "| engine | model | GPU | TP | runs | TTFT median APE | TTFT bias | TPOT median APE | TPOT bias |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label, a in _table_rows(after):
        b = old_rows.get(key)
        if b is not None:
            runs = str(a["runs"]) if a["runs"] == b["runs"] else f"{b['runs']} -> {a['runs']}"
            lines.append(f"| {label} | {runs} | " + " | ".join(cell(b, a, m, k) for m, k in columns) + " |")
    return "\n".join(lines)


def moved_runs(before: list[dict], after: list[dict], n: int = 10) -> list[str]:
    """The `n` runs both reports simulated whose mean-TTFT or mean-TPOT error moved most, largest
    first: `id: TTFT +93 -> +12 %, TPOT -18 -> -3 %`."""
    old = {r["id"]: r for r in before if "ttft_error_pct" in r}
    pairs = [(old[r["id"]], r) for r in after if "ttft_error_pct" in r and r["id"] in old]

    def moved(pair) -> float:
        b, a = pair
        return max(abs(a[f"{m}_error_pct"] - b[f"{m}_error_pct"]) for m in ("ttft", "tpot"))

    return [
        f"{a['id']}: TTFT {b['ttft_error_pct']:+.0f} -> {a['ttft_error_pct']:+.0f} %, "
        f"TPOT {b['tpot_error_pct']:+.0f} -> {a['tpot_error_pct']:+.0f} %"
        for b, a in sorted(pairs, key=moved, reverse=True)[:n]
        if moved((b, a)) >= 0.5
    ]


def plot_accuracy(rows: list[dict], path: Path) -> Path:
    """Predicted against measured mean TTFT, mean TPOT and requests a second, one point per
    simulated run, coloured by engine, on log axes with the diagonal and a ±15 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "ttft_error_pct" in r]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for ax, (key, label) in zip(axes, METRICS.values()):
        values = []
        for i, engine in enumerate(sorted({r["engine"] for r in done})):
            sel = [r for r in done if r["engine"] == engine]
            x = [r[f"measured_{key}"] for r in sel]
            y = [r[f"predicted_{key}"] for r in sel]
            values += x + y
            ax.scatter(x, y, s=12, alpha=0.6, color=f"C{i}", label=f"{engine} ({len(sel)})")
        if values:
            lo, hi = min(values) / 1.2, max(values) * 1.2
            line = np.geomspace(lo, hi, 50)
            ax.plot(line, line, color="k", lw=0.8)
            ax.fill_between(line, line * 0.85, line * 1.15, color="k", alpha=0.08, lw=0, label="±15 %")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"make accuracy: {len(done)} measured runs, predicted vs measured")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _command():
    import click

    @click.command("accuracy")
    @click.option(
        "--dev-set",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEV_SET,
        show_default=True,
        help="CSV of measured closed-loop runs.",
    )
    @click.option("--filter", "pattern", default="", help="Only runs whose id contains this text.")
    @click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes [default: all cores]."
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("accuracy.json"),
        show_default=True,
    )
    @click.option(
        "--prompts-per-client",
        type=click.IntRange(min=1),
        default=None,
        help="Requests each closed-loop client sends [default: as the run's benchmark client did: "
        f"{INFERENCEMAX_PROMPTS_PER_CLIENT} for InferenceMAX's, {AICONFIGURATOR_PROMPTS_PER_CLIENT} for aiconfigurator's aiperf]",
    )
    @click.option(
        "--baseline",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="An earlier accuracy.json: also print each group's errors before -> after, and the runs that moved most.",
    )
    def accuracy(
        dev_set: Path,
        pattern: str,
        jobs: int | None,
        output: Path,
        prompts_per_client: int | None,
        baseline: Path | None,
    ):
        """Simulate every measured run of the development set; print the error table (mean TTFT,
        mean TPOT, and the requests a second the closed loop completes by them), write it with
        every run's figures to OUTPUT and a predicted-vs-measured plot beside it (.png)."""
        before = read_report(baseline) if baseline else None
        runs = [r for r in load_runs(dev_set, prompts_per_client) if pattern in r.id]
        if not runs:
            raise FrontierError(f"no run id contains '{pattern}'")
        if before:  # the baseline's figures for the same runs, so that like is compared with like
            ids = {r.id for r in runs}
            before_rows = [r for r in before["runs"] if r["id"] in ids]
            if not before_rows:
                raise FrontierError(f"the baseline {baseline} holds none of these {len(runs)} runs")
        rows = evaluate(runs, jobs)
        summary = summarise(rows)
        write_report(rows, summary, output)
        plot = plot_accuracy(rows, output.with_suffix(".png"))
        click.echo(format_table(summary))
        steep = steep_front_end(rows)
        if steep:
            click.echo(f"\n{steep}.")
        if before:
            click.echo(f"\nAgainst {baseline} (the same runs):\n\n" + compare_table(summarise(before_rows), summary))
            movers = moved_runs(before_rows, rows)
            click.echo("\nRuns that moved most:" if movers else "\nNo run moved by half a point or more.")
            for line in movers:
                click.echo(f"- {line}")
        click.echo(f"\nwrote {output} and {plot}")

    return accuracy


accuracy_command = _command()
