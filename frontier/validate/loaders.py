"""Load measured benchmark runs: what a real engine did, in the metric names of `vllm bench serve`.

Three sources are understood, told apart by their content (not their file names):

vllm-bench     `vllm bench serve --save-result` JSON: one object (or several, one a line, with
               `--append-result`). With `--save-detailed` it also holds per-request arrays
               `input_lens, output_lens, ttfts, itls, latencies, start_times, errors`.
sglang-bench   `python -m sglang.bench_serving --output-file` JSONL: one object per line, one
               line per run; fields vary between versions; `--output-details` adds
               `input_lens, output_lens, ttfts, itls, errors`.
vllm-requests  a run folder with `requests.jsonl` (engine timestamps per request: queued_ts,
               scheduled_ts, first_token_ts, last_token_ts, input_toks, output_toks,
               arrival_time) and `meta.json` (engine arguments).
aiperf         NVIDIA aiperf's `profile_export_aiperf.json`: its metrics' statistics and the
               `input_config` it ran with (aiperf exporters/json_exporter.py,
               common/models/export_models.py; the CLI flags' layout up to 0.8, its phases and
               datasets from 0.9), which says the whole workload: clients, request and warmup
               counts, synthetic lengths and the dataset of reused prompts, and their order.

Where per-request data exists the measured metrics are recomputed with
`frontier.metrics.serving.serving_metrics`, so measured and predicted share one definition;
otherwise they are taken from the file as written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from frontier.errors import FrontierError
from frontier.metrics.serving import serving_metrics
from frontier.workload.spec import PROMPT_SAMPLINGS

KINDS = ("vllm-bench", "sglang-bench", "vllm-requests", "aiperf")
RESULT_SUFFIXES = (".json", ".jsonl")
HELP_FORMATS = (
    "expected a `vllm bench serve --save-result` JSON, an SGLang `bench_serving` "
    "JSONL, an aiperf profile_export_aiperf.json, or a run folder with requests.jsonl + meta.json"
)

# Metric keys as `vllm bench serve` writes them: mean_ttft_ms, p99_itl_ms, p99.9_e2el_ms, ...
_LATENCY_KEY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
# SGLang spells end-to-end latency `e2e_latency`: mean_e2e_latency_ms -> mean_e2el_ms.
_SGLANG_E2E_KEY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_e2e_latency_ms$")
_COUNT_KEYS = ("completed", "failed", "duration", "total_input_tokens", "total_output_tokens")
_THROUGHPUT_KEYS = ("request_throughput", "output_throughput", "total_token_throughput", "request_goodput")

_SGLANG_MARKERS = {
    "mean_e2e_latency_ms",
    "median_e2e_latency_ms",
    "total_output_tokens_retokenized",
    "random_input_len",
    "random_output_len",
    "sharegpt_output_len",
    "accept_length",
    "input_throughput",
}
_VLLM_MARKERS = {
    "model_id",
    "tokenizer_id",
    "endpoint_type",
    "burstiness",
    "num_prompts",
    "request_goodput",
    "request_goodput:",
    "mean_e2el_ms",
    "median_e2el_ms",
    "max_concurrent_requests",
    "max_output_tokens_per_s",
}
_METRIC_MARKERS = {
    "mean_ttft_ms",
    "median_ttft_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "output_throughput",
    "request_throughput",
    "mean_tpot_ms",
}

# Engine arguments a vLLM result may carry as `--metadata KEY=VALUE` top-level entries,
# mapped to their engine-argument names.
_METADATA_ENGINE_ARGS = {
    "tensor_parallel_size": "tensor_parallel_size",
    "tp": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "pp": "pipeline_parallel_size",
    "data_parallel_size": "data_parallel_size",
    "dp": "data_parallel_size",
    "enable_expert_parallel": "enable_expert_parallel",
    "max_num_seqs": "max_num_seqs",
    "max_num_batched_tokens": "max_num_batched_tokens",
    "enable_prefix_caching": "enable_prefix_caching",
    "enable_chunked_prefill": "enable_chunked_prefill",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "block_size": "block_size",
    "gpu": "gpu",
    "device_name": "gpu",
    "hardware": "gpu",
}


@dataclass
class RunSettings:
    """How the benchmark was run, as far as the file says."""

    request_rate: float | None = None  # req/s; inf = all at once; None = not recorded
    max_concurrency: int | None = None
    num_prompts: int | None = None
    burstiness: float | None = None  # vLLM's gamma shape (1 = poisson)
    model: str | None = None  # model id as the client named it
    tokenizer: str | None = None
    backend: str | None = None
    date: str | None = None
    gpu: str | None = None  # device name where the file records it
    dataset: dict = field(default_factory=dict)  # name and random_* length settings
    engine_args: dict = field(default_factory=dict)  # vLLM engine argument names
    engine_args_from: str = ""  # where engine_args were read
    workload: dict | None = None  # the client's whole workload as a Frontier `workload:` block (aiperf's)
    workload_from: dict = field(default_factory=dict)  # per workload key, where the file says it


@dataclass
class MeasuredRun:
    """One measured run. Per-request arrays cover completed requests only (None when absent)."""

    source: Path
    kind: str
    settings: RunSettings
    metrics: dict  # vLLM names; from per-request data when present
    reported: dict  # the file's own summary numbers, in vLLM names
    metrics_from: str  # "per-request data" | "file summary"
    index: int | None = None  # line/run number within a multi-run file
    arrival_s: np.ndarray | None = None  # send time relative to the first request
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    ttft_s: np.ndarray | None = None
    e2el_s: np.ndarray | None = None
    itls: list[np.ndarray] | None = None  # per request, the gaps between its output tokens
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    scenario: dict | None = None  # a Frontier summary.json's own scenario, replayed as is

    @property
    def label(self) -> str:
        name = self.source.name
        if name == AIPERF_SUMMARY:  # aiperf names every run's file alike: its folder tells them apart
            name = f"{self.source.parent.name}/{name}"
        return name if self.index is None else f"{name}#{self.index}"

    @property
    def has_per_request(self) -> bool:
        return self.input_tokens is not None and self.output_tokens is not None

    @property
    def has_latencies(self) -> bool:
        return self.ttft_s is not None and self.e2el_s is not None

    @property
    def tpot_s(self) -> np.ndarray | None:
        """Per request with more than one output token: (E2E - TTFT) / (output - 1)."""
        if not self.has_latencies:
            return None
        many = self.output_tokens > 1
        return (self.e2el_s[many] - self.ttft_s[many]) / (self.output_tokens[many] - 1)


# ---------------------------------------------------------------------------- entry points


def load_measured(path: str | Path) -> list[MeasuredRun]:
    """Every run in a result file, a run folder, or a folder of result files / run folders."""
    path = Path(path)
    if not path.exists():
        raise FrontierError(f"{path}: no such file or folder; {HELP_FORMATS}")
    if path.is_dir():
        if (path / "requests.jsonl").is_file():
            return [load_vllm_requests(path)]
        runs, _skipped = load_folder(path)
        return runs
    if path.name == "requests.jsonl":
        return [load_vllm_requests(path.parent)]
    return load_result_file(path)


def _natural(path: Path) -> list:
    """Sort key: numbers in a name by value (concurrency_2 before concurrency_16)."""
    return [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in re.split(r"(\d+)", path.name)]


def load_folder(folder: Path) -> tuple[list[MeasuredRun], list[str]]:
    """All runs in a folder's result files and run subfolders (vLLM run folders, aiperf artifact
    folders such as aiconfigurator's bench_run.sh writes one per concurrency); foreign JSON files
    are skipped (returned as 'name: why'). An error if nothing in the folder is a measured run."""
    runs: list[MeasuredRun] = []
    skipped: list[str] = []
    aiperf = (folder / AIPERF_SUMMARY).is_file()
    for entry in sorted(folder.iterdir(), key=_natural):
        if aiperf and entry.name in (AIPERF_RECORDS, AIPERF_INPUTS):
            continue  # read with the summary / what aiperf sent: not runs of their own
        if entry.is_dir() and (entry / AIPERF_SUMMARY).is_file():
            runs.extend(load_result_file(entry / AIPERF_SUMMARY))
        elif entry.is_dir() and (entry / "requests.jsonl").is_file():
            runs.append(load_vllm_requests(entry))
        elif entry.is_file() and entry.suffix in RESULT_SUFFIXES:
            try:
                runs.extend(load_result_file(entry))
            except NotAResult as exc:
                skipped.append(f"{entry.name}: {exc.reason}")
    if not runs:
        why = f" (skipped {'; '.join(skipped)})" if skipped else ""
        raise FrontierError(f"{folder}: no measured runs found{why}; {HELP_FORMATS}")
    return runs, skipped


class NotAResult(FrontierError):
    """Valid JSON, but not a benchmark result (a folder scan skips these)."""

    def __init__(self, path: Path, reason: str):
        self.reason = reason
        super().__init__(f"{path}: {reason}; {HELP_FORMATS}")


def load_result_file(path: Path) -> list[MeasuredRun]:
    """A vLLM or SGLang result file: one JSON object, or one object per line."""
    objects = _read_json_objects(path)
    runs = []
    many = len(objects) > 1
    loaders = {"vllm-bench": load_vllm_object, "sglang-bench": load_sglang_object, "aiperf": load_aiperf_object}
    for i, (line_no, obj) in enumerate(objects):
        kind = detect_kind(obj)
        if kind is None and isinstance(obj, dict) and {"metadata", "metrics"} <= set(obj):
            raise NotAResult(path, f"aiperf's per-request records: pass {AIPERF_SUMMARY} (they are read with it)")
        if kind is None:
            where = f"line {line_no}: " if many else ""
            raise NotAResult(
                path,
                f"{where}not a benchmark result (no vllm bench serve, "
                f"SGLang bench_serving or aiperf fields; found keys {_some_keys(obj)})",
            )
        runs.append(loaders[kind](obj, path, i if many else None))
    return runs


def detect_kind(obj: Any) -> str | None:
    """'vllm-bench', 'sglang-bench', 'aiperf', or None for JSON that is none of them."""
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    if "input_config" in keys and keys & set(_AIPERF_LATENCIES):
        return "aiperf"
    has_metrics = bool(keys & _METRIC_MARKERS) or any(_LATENCY_KEY.match(k) for k in keys)
    has_counts = bool(keys & {"completed", "duration"})
    if not (has_metrics and has_counts):
        return None
    if keys & _SGLANG_MARKERS:
        return "sglang-bench"
    return "vllm-bench"


# ---------------------------------------------------------------------------- JSON reading


def _some_keys(obj: Any, n: int = 6) -> str:
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    keys = list(obj)
    shown = ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")
    return shown or "none"


def _read_json_objects(path: Path) -> list[tuple[int, Any]]:
    """(line number, object) for a JSON document or JSON Lines; one-line errors otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FrontierError(f"{path}: not a text file; {HELP_FORMATS}") from None
    if not text.strip():
        raise FrontierError(f"{path}: empty file; {HELP_FORMATS}")
    try:
        return [(1, json.loads(text))]
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise _json_error(path, text, exc) from None
    objects = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objects.append((line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _json_error(path, line, exc, line_no) from None
    return objects


def _ends_open(text: str) -> bool:
    """True when the text stops inside a string or with brackets still open: cut short."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def _json_error(path: Path, text: str, exc: json.JSONDecodeError, line_no: int | None = None) -> FrontierError:
    where = f"line {line_no if line_no is not None else exc.lineno}"
    if _ends_open(text):
        return FrontierError(
            f"{path}: truncated JSON ({where} ends mid-object: {exc.msg}); "
            f"the benchmark may have been interrupted while writing it"
        )
    return FrontierError(f"{path}: invalid JSON at {where} column {exc.colno}: {exc.msg}; {HELP_FORMATS}")


# ---------------------------------------------------------------------------- value helpers


def _num(value: Any) -> float | None:
    """A finite or infinite float; None for missing, null, NaN, or non-numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(x) else x


def _int(value: Any) -> int | None:
    x = _num(value)
    return int(x) if x is not None and math.isfinite(x) else None


def _where(path: Path, index: int | None) -> str:
    return str(path) if index is None else f"{path} run {index}"


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    if isinstance(value, (int, float)):
        return bool(value)
    return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _rate(value: Any, where: str) -> float | None:
    """request_rate: a number, "inf" (vLLM) or Infinity (SGLang's json.dumps of float inf);
    None when not recorded. Anything else is refused: it would replay a made-up arrival rate."""
    if value is None:
        return None
    x = _num(value)
    if x is None or x <= 0:
        raise FrontierError(
            f"{where}: request_rate {value!r} is not a rate; a result file records requests per second > 0 or inf"
        )
    return x


def _summary_metrics(obj: dict, rename_sglang: bool = False, where: str = "result") -> dict:
    """The file's summary numbers under vLLM's names (an infinite one is refused)."""
    out: dict = {}
    for key, value in obj.items():
        name = key
        if key == "request_goodput:":  # older vLLM benchmark_serving.py spelling
            name = "request_goodput"
        elif rename_sglang and (m := _SGLANG_E2E_KEY.match(key)):
            name = f"{m.group(1)}_e2el_ms"
        elif rename_sglang and key == "total_throughput":
            name = "total_token_throughput"
        if _LATENCY_KEY.match(name) or name in _THROUGHPUT_KEYS or name in _COUNT_KEYS:
            x = _num(value)
            if x is not None and not math.isfinite(x):
                raise FrontierError(f"{where}: {key} is {value!r}, not a finite number")
            if x is not None:
                out[name] = (
                    int(x) if name in ("completed", "failed", "total_input_tokens", "total_output_tokens") else x
                )
    duration = out.get("duration")
    if duration and duration > 0:  # throughputs some versions leave out, from their totals
        if "request_throughput" not in out and "completed" in out:
            out["request_throughput"] = out["completed"] / duration
        if "output_throughput" not in out and "total_output_tokens" in out:
            out["output_throughput"] = out["total_output_tokens"] / duration
        if "total_token_throughput" not in out and "total_input_tokens" in out and "total_output_tokens" in out:
            out["total_token_throughput"] = (out["total_input_tokens"] + out["total_output_tokens"]) / duration
    return out


def _per_request_metrics(run: MeasuredRun, duration_s: float) -> dict:
    itl_s = np.concatenate(run.itls) if run.itls and any(len(x) for x in run.itls) else np.zeros(0)
    metrics = serving_metrics(
        duration_s=duration_s,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        ttft_s=run.ttft_s,
        e2el_s=run.e2el_s,
        itl_s=itl_s,
        failed=run.failed,
    )
    if run.itls is None:  # no token timestamps: ITL is unknown, not zero
        for key in [k for k in metrics if _LATENCY_KEY.match(k) and "_itl_" in k]:
            del metrics[key]
    return metrics


# ---------------------------------------------------------------------------- vLLM bench serve


def _engine_args_from_metadata(obj: dict) -> dict:
    args = {}
    for key, arg in _METADATA_ENGINE_ARGS.items():
        if key in obj and obj[key] is not None:
            args[arg] = obj[key]
    return _normalise_engine_args(args)


def _normalise_engine_args(args: dict) -> dict:
    """Engine arguments with numbers and booleans as such (metadata values arrive as strings)."""
    out = {}
    for key, value in args.items():
        if key in (
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "data_parallel_size",
            "max_num_seqs",
            "max_num_batched_tokens",
            "block_size",
        ):
            value = _int(value)
        elif key in ("enable_prefix_caching", "enable_chunked_prefill", "enable_expert_parallel"):
            value = _bool(value)
        elif key == "gpu_memory_utilization":
            value = _num(value)
        if value is not None:
            out[key] = value
    return out


def _detail_arrays(obj: dict, path: Path, where: str) -> dict | None:
    """The per-request arrays, checked to be the same length; None if the file has none."""
    names = ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "queue_times", "errors")
    arrays = {k: obj[k] for k in names if isinstance(obj.get(k), list)}
    if not {"input_lens", "output_lens"} <= set(arrays):
        return None
    n = len(arrays["input_lens"])
    for k, v in arrays.items():
        if len(v) != n:
            raise FrontierError(
                f"{path}: {where}per-request arrays differ in length: input_lens has {n}, {k} has {len(v)}"
            )
    return arrays


def _fill_per_request(run: MeasuredRun, arrays: dict, duration_s: float | None) -> None:
    """Per-request arrays of completed requests from `--save-detailed` / `--output-details`."""
    n = len(arrays["input_lens"])
    out_lens = np.array([_int(x) or 0 for x in arrays["output_lens"]], dtype=np.int64)
    errors = arrays.get("errors")
    if errors is not None:
        ok = np.array([not e for e in errors], dtype=bool)
    else:  # no error list: a request that produced no token failed
        ok = out_lens > 0
    run.failed = int(n - ok.sum())
    idx = np.flatnonzero(ok)
    run.input_tokens = np.array([_int(arrays["input_lens"][i]) or 0 for i in idx], dtype=np.int64)
    run.output_tokens = out_lens[idx]
    if "ttfts" in arrays:
        run.ttft_s = np.array([_num(arrays["ttfts"][i]) or 0.0 for i in idx], dtype=np.float64)
    if "itls" in arrays:
        run.itls = [np.asarray(arrays["itls"][i] or [], dtype=np.float64) for i in idx]
    if "latencies" in arrays:
        run.e2el_s = np.array([_num(arrays["latencies"][i]) or 0.0 for i in idx], dtype=np.float64)
    elif run.ttft_s is not None and run.itls is not None:
        run.e2el_s = run.ttft_s + np.array([x.sum() for x in run.itls])
        run.notes.append("E2E latency = TTFT + sum of ITLs (the file has no latencies)")
    if "start_times" in arrays:
        start = np.array([_num(x) or 0.0 for x in arrays["start_times"]], dtype=np.float64)
        if "queue_times" in arrays:  # start_time is after the client's concurrency queue
            start = start - np.array([_num(x) or 0.0 for x in arrays["queue_times"]])
        start = start[idx]
        if start.size:
            run.arrival_s = start - start.min()
    if run.has_latencies and duration_s:
        run.metrics = _per_request_metrics(run, duration_s)
        for key in ("request_goodput",):
            if key in run.reported:
                run.metrics[key] = run.reported[key]
        run.metrics_from = "per-request data"


def load_vllm_object(obj: dict, path: Path, index: int | None = None) -> MeasuredRun:
    reported = _summary_metrics(obj, where=_where(path, index))
    engine_args = _engine_args_from_metadata(obj)
    gpu = engine_args.pop("gpu", None)
    settings = RunSettings(
        request_rate=_rate(obj.get("request_rate"), _where(path, index)),
        max_concurrency=_int(obj.get("max_concurrency")),
        num_prompts=_int(obj.get("num_prompts")),
        burstiness=_num(obj.get("burstiness")),
        model=_str(obj.get("model_id") or obj.get("model")),
        tokenizer=_str(obj.get("tokenizer_id") or obj.get("tokenizer")),
        backend=_str(obj.get("backend") or obj.get("endpoint_type")),
        date=_str(obj.get("date")),
        gpu=_str(gpu),
        dataset={k: obj[k] for k in ("dataset_name", "dataset_path") if obj.get(k) is not None},
        engine_args=engine_args,
        engine_args_from="file metadata" if engine_args else "",
    )
    arrays = _detail_arrays(obj, path, "" if index is None else f"run {index}: ")
    run = _summary_run(path, index, "vllm-bench", settings, reported, arrays)
    own = obj.get("frontier")
    if isinstance(own, dict) and isinstance(own.get("scenario"), dict):
        run.scenario = own["scenario"]
        run.notes.append("a Frontier result: its own scenario (model, deployment, workload, seed) is simulated again")
    return run


def _summary_run(
    path: Path,
    index: int | None,
    kind: str,
    settings: RunSettings,
    reported: dict,
    arrays: dict | None,
    notes: list[str] | None = None,
    duration_s: float | None = None,
) -> MeasuredRun:
    """A run from a file's summary metrics, filled from its per-request arrays (vLLM's
    `--save-detailed` names) where it has them, over the file's duration unless `duration_s`."""
    run = MeasuredRun(
        source=path,
        kind=kind,
        settings=settings,
        metrics=dict(reported),
        reported=reported,
        metrics_from="file summary",
        index=index,
        failed=int(reported.get("failed", 0)),
        notes=notes if notes is not None else [],
    )
    if arrays is not None:
        _fill_per_request(run, arrays, duration_s or reported.get("duration"))
    return run


# ---------------------------------------------------------------------------- SGLang bench_serving


def load_sglang_object(obj: dict, path: Path, index: int | None = None) -> MeasuredRun:
    reported = _summary_metrics(obj, rename_sglang=True, where=_where(path, index))
    dataset = {
        k: obj[k]
        for k in ("dataset_name", "random_input_len", "random_output_len", "random_range_ratio", "sharegpt_output_len")
        if obj.get(k) is not None
    }
    settings = RunSettings(
        request_rate=_rate(obj.get("request_rate"), _where(path, index)),
        max_concurrency=_int(obj.get("max_concurrency")),
        num_prompts=_int(obj.get("num_prompts")),
        model=_str(obj.get("model_id") or obj.get("model")),
        tokenizer=_str(obj.get("tokenizer_id")),
        backend=_str(obj.get("backend")),
        date=_str(obj.get("date")),
        dataset=dataset,
    )
    arrays = _detail_arrays(obj, path, "" if index is None else f"run {index}: ")
    run = _summary_run(path, index, "sglang-bench", settings, reported, arrays)
    if arrays is not None:
        if run.arrival_s is None:
            run.notes.append("SGLang records no send times; arrivals are re-drawn from the rate")
    return run


# ---------------------------------------------------------------------------- aiperf

# aiperf's metrics (its tags) under the vLLM latency names: aiperf's `inter_token_latency` is a
# request's (latency - TTFT) / (output - 1), vLLM's TPOT; its `inter_chunk_latency` the gaps
# between streamed chunks, vLLM's ITL (aiperf metrics/types/*.py).
_AIPERF_LATENCIES = {
    "time_to_first_token": "ttft",
    "inter_token_latency": "tpot",
    "inter_chunk_latency": "itl",
    "request_latency": "e2el",
}
_AIPERF_STATS = {"avg": "mean", "p50": "median", "std": "std", "p90": "p90", "p95": "p95", "p99": "p99"}
_MS_PER = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "ns": 1e-6}
# aiperf's defaults where input_config leaves a setting out (it exports only what was set;
# common/config/config_defaults.py): 100 synthetic prompts, reused; 10 requests; no warmup.
AIPERF_DATASET_ENTRIES = 100
AIPERF_REQUEST_COUNT = 10
# What aiperf writes beside its summary (docs/tutorials/working-with-profile-exports.md): the
# per-request records, read with the summary, and the prompts it sent.
AIPERF_SUMMARY, AIPERF_RECORDS, AIPERF_INPUTS = "profile_export_aiperf.json", "profile_export.jsonl", "inputs.json"


def _aiperf_avg(obj: dict, tag: str) -> float | None:
    stat = obj.get(tag)
    return _num(stat.get("avg")) if isinstance(stat, dict) else None


def _aiperf_metrics(obj: dict, where: str) -> dict:
    """aiperf's summary statistics under vLLM's names and units (ms, requests/s, tokens/s)."""
    out: dict = {}
    for tag, name in _AIPERF_LATENCIES.items():
        stat = obj.get(tag)
        if not isinstance(stat, dict):
            continue
        unit = str(stat.get("unit", "ms"))
        if unit not in _MS_PER:
            raise FrontierError(f"{where}: {tag} is in {unit!r}; aiperf writes latencies in ms")
        for key, prefix in _AIPERF_STATS.items():
            x = _num(stat.get(key))
            if x is not None:
                out[f"{prefix}_{name}_ms"] = x * _MS_PER[unit]
    counts = {
        "request_throughput": "request_throughput",
        "output_token_throughput": "output_throughput",
        "request_count": "completed",
        "error_request_count": "failed",
        "benchmark_duration": "duration",
        "total_isl": "total_input_tokens",
        "total_osl": "total_output_tokens",
    }
    for tag, name in counts.items():
        x = _aiperf_avg(obj, tag)
        if x is not None:
            out[name] = (
                int(round(x)) if name in ("completed", "failed", "total_input_tokens", "total_output_tokens") else x
            )
    return out


def _aiperf_records(path: Path) -> dict | None:
    """The per-request arrays (vLLM's `--save-detailed` names, seconds) of the records aiperf
    writes beside its summary `path`, measured phase only; None where there are none. A record's
    metrics are `{tag: {"value", "unit"}}`, its send time `metadata.request_start_ns`, a failed
    one has an `error` (and only `error_isl` among its metrics)."""
    records = path.parent / AIPERF_RECORDS
    if not records.is_file():
        return None
    arrays: dict[str, list] = {
        k: [] for k in ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "errors")
    }
    for line_no, rec in _read_json_objects(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("metadata"), dict):
            raise FrontierError(f"{records}: line {line_no} is not an aiperf record (no metadata)")
        meta, metrics = rec["metadata"], rec.get("metrics") or {}
        if meta.get("benchmark_phase", "profiling") != "profiling":
            continue

        def value(tag: str, seconds: bool = False):
            m = metrics.get(tag)
            v = m.get("value") if isinstance(m, dict) else None
            if v is None or not seconds:
                return v
            scale = _MS_PER.get(str(m.get("unit", "ms")))
            if scale is None:
                raise FrontierError(f"{records}: line {line_no}: {tag} is in {m.get('unit')!r}; aiperf writes ms")
            return [x * scale / 1e3 for x in v] if isinstance(v, list) else _num(v) * scale / 1e3

        arrays["errors"].append(rec.get("error") or "")
        arrays["input_lens"].append(value("input_sequence_length") or value("error_isl") or 0)
        arrays["output_lens"].append(value("output_sequence_length") or 0)
        arrays["ttfts"].append(value("time_to_first_token", seconds=True) or 0.0)
        arrays["itls"].append(value("inter_chunk_latency", seconds=True) or [])
        arrays["latencies"].append(value("request_latency", seconds=True) or 0.0)
        arrays["start_times"].append((_num(meta.get("request_start_ns")) or 0.0) / 1e9)
    return arrays if arrays["input_lens"] else None


def _aiperf_length(config: dict, measured: float | None, what: str, notes: list[str], where: str) -> int | dict:
    """A length spec from aiperf's synthetic-token config (`--isl` / `--isl-stddev`, `--osl` /
    `--osl-stddev`): normal about the mean (aiperf draws one length per dataset entry), fixed
    without a spread; the measured mean where the config names none."""
    mean, std = _num(config.get("mean")), _num(config.get("stddev")) or 0.0
    if mean is None:
        if measured is None:
            raise FrontierError(
                f"{where}: input_config sets no {what} length and the file measured none "
                f"({what}_sequence_length); pass the run's export with its metrics"
            )
        mean = measured
        notes.append(f"{what} length: the measured mean {measured:.0f} (input_config sets none)")
    mean = max(int(round(mean)), 1)
    return {"dist": "normal", "mean": mean, "std": std} if std > 0 else mean


class _AiperfInput(NamedTuple):
    """What an aiperf run sent, as its input_config records it in either of aiperf's layouts,
    with where each setting came from (`src`) and what cannot be replayed (`notes`)."""

    rate: float | None  # requests/s; None: a closed loop
    process: str  # poisson | constant | gamma
    cv: float | None  # gamma gaps' coefficient of variation
    concurrency: int | None
    requests: int | None
    timed: bool  # stopped by a duration rather than a count
    warmup: int | None
    synthetic: bool
    entries: int | None
    sampling: str | None  # None: not recorded (aiperf before 0.3.0 drew at random)
    isl: dict  # {"mean", "stddev"} as far as set
    osl: dict
    model: str | None
    tokenizer: str | None
    src: dict
    notes: list
    ignore_eos: bool = False  # --extra-inputs ignore_eos:true (or nvext's)


def _section(d: dict, key: str) -> dict:
    return d[key] if isinstance(d.get(key), dict) else {}


def _aiperf_ignore_eos(extra) -> bool:
    """Whether aiperf's `--extra-inputs` (its flags' layout: [key, value] pairs; 0.9's
    endpoint.extra: a mapping) asked the engine to ignore EOS, at the top or in Dynamo's nvext."""
    if isinstance(extra, list):
        extra = dict(pair for pair in extra if isinstance(pair, (list, tuple)) and len(pair) == 2)
    if not isinstance(extra, dict):
        return False
    return extra.get("ignore_eos") is True or _section(extra, "nvext").get("ignore_eos") is True


def _aiperf_flags_input(cfg: dict, where: str) -> _AiperfInput:
    """aiperf up to 0.8: input_config mirrors the CLI flags (`loadgen`, `input`, `endpoint`).
    From 0.3.0 it writes the dataset sampling strategy it used (its validator sets one, so the
    export's exclude_unset keeps it) and counts the prompts in conversation.num_dataset_entries;
    before, it had no strategy (it drew at random with replacement) and --num-dataset-entries set
    conversation.num (common/config/conversation_config.py of 0.2.0, 0.3.0, 0.6.0)."""
    loadgen, inp = _section(cfg, "loadgen"), _section(cfg, "input")
    prompt, conversation = _section(inp, "prompt"), _section(inp, "conversation")
    notes = []
    sampling = _str(inp.get("dataset_sampling_strategy"))
    count = "num" if sampling is None else "num_dataset_entries"
    if _int(_section(prompt, "prefix_prompt").get("pool_size")):
        notes.append("aiperf's shared prefix prompts (--num-prefix-prompts) are not modelled")
    if (_num(_section(conversation, "turn").get("mean")) or 1) > 1:
        notes.append("aiperf's multi-turn conversations are replayed as independent single-turn requests")
    models = _section(cfg, "endpoint").get("model_names") or []
    return _AiperfInput(
        rate=_rate(loadgen.get("request_rate"), where),
        process="constant" if loadgen.get("request_rate_mode") == "constant" else "poisson",
        cv=None,
        concurrency=_int(loadgen.get("concurrency")),
        requests=_int(loadgen.get("request_count")),
        timed=bool(loadgen.get("benchmark_duration")),
        warmup=_int(loadgen.get("warmup_request_count")),
        synthetic=not any(inp.get(k) for k in ("file", "public_dataset", "custom_dataset_type")),
        entries=_int(conversation.get(count)),
        sampling=sampling,
        isl=_section(prompt, "input_tokens"),
        osl=_section(prompt, "output_tokens"),
        model=_str(models[0]) if models else None,
        tokenizer=_str(_section(cfg, "tokenizer").get("name")),
        ignore_eos=_aiperf_ignore_eos(inp.get("extra")),
        src={
            "arrival": "input_config: loadgen.request_rate",
            "concurrency": "input_config: loadgen.concurrency",
            "num_requests": "input_config: loadgen.request_count",
            "warmup_requests": "input_config: loadgen.warmup_request_count",
            "prompt_pool": f"input_config: input.conversation.{count}",
            "prompt_sampling": "input_config: input.dataset_sampling_strategy",
            "input_len": "input_config: input.prompt.input_tokens",
            "output_len": "input_config: input.prompt.output_tokens",
            "ignore_eos": "input_config: input.extra (--extra-inputs)",
        },
        notes=notes,
    )


def _aiperf_distribution(value: Any, what: str, notes: list[str]) -> dict:
    """aiperf 0.9's sampled quantity (config/distributions.py: a number, or fixed `value`, normal
    `mean` / `stddev`, ...) as {"mean", "stddev"}; other shapes keep their mean, with a note."""
    if isinstance(value, int | float):
        return {"mean": value}
    if not isinstance(value, dict):
        return {}
    if "value" in value:
        return {"mean": value["value"]}
    if set(value) - {"mean", "stddev", "type"}:
        notes.append(f"aiperf's {value.get('type', 'sampled')} {what} is replayed as normal about its mean")
    return {k: value[k] for k in ("mean", "stddev") if k in value}


# aiperf 0.9's phase types that Frontier replays: a closed loop or rate-timed arrivals.
_AIPERF_PHASE_ARRIVALS = {"concurrency": None, "poisson": "poisson", "constant": "constant", "gamma": "gamma"}


def _aiperf_phases_input(cfg: dict, where: str) -> _AiperfInput:
    """aiperf 0.9 on: input_config is its benchmark configuration (config/config.py
    `BenchmarkConfig`): ordered `phases` (the warmup ones excluded from the results, then the
    measured one, each `concurrency`-driven or `rate`-timed, stopping after `requests` or a
    `duration`) and one dataset, synthetic with `entries` prompts (100 unless set; a plain
    `--request-count N` sets N, every prompt new) picked `sequential`ly unless `sampling` says
    otherwise (config/dataset/config.py `SyntheticDataset`)."""
    phases = [p for p in cfg.get("phases") or [] if isinstance(p, dict)]
    measured = [p for p in phases if not p.get("exclude_from_results")]
    if not measured:
        raise FrontierError(f"{where}: aiperf's input_config has no phase whose results count (phases)")
    phase = measured[-1]
    kind = str(phase.get("type", "concurrency"))
    if kind not in _AIPERF_PHASE_ARRIVALS:
        raise FrontierError(
            f"{where}: aiperf's '{kind}' phase is not replayed; Frontier replays "
            f"{', '.join(_AIPERF_PHASE_ARRIVALS)} phases (give the workload as flags instead)"
        )
    at = f"input_config: phases['{phase.get('name', kind)}']"
    rate = _rate(phase.get("rate"), where) if kind != "concurrency" else None
    smoothness = _num(phase.get("smoothness"))
    datasets = [d for d in cfg.get("datasets") or [] if isinstance(d, dict)]
    dataset = datasets[0] if datasets else {}
    prompts = _section(dataset, "prompts")
    notes = []
    if len(measured) > 1:
        notes.append(f"aiperf ran {len(measured)} measured phases: replaying the last, '{phase.get('name')}'")
    warmups = [p for p in phases if p.get("exclude_from_results")]
    if any(not _int(p.get("requests")) for p in warmups):
        notes.append("aiperf's warmup by duration is not replayed (only warmup phases with a request count are)")
    if _section(dataset, "prefix_prompts"):
        notes.append("aiperf's shared prefix prompts (prefix_prompts) are not modelled")
    if (_aiperf_distribution(dataset.get("turns"), "turns", notes).get("mean") or 1) > 1:
        notes.append("aiperf's multi-turn conversations are replayed as independent single-turn requests")
    models = [_str(m.get("name")) for m in _section(cfg, "models").get("items") or [] if isinstance(m, dict)]
    return _AiperfInput(
        rate=rate,
        process=_AIPERF_PHASE_ARRIVALS[kind] or "poisson",
        cv=smoothness**-0.5 if kind == "gamma" and smoothness else None,
        concurrency=_int(phase.get("concurrency")) or (1 if kind == "concurrency" else None),
        requests=_int(phase.get("requests")),
        timed=phase.get("duration") is not None,
        warmup=sum(_int(p.get("requests")) or 0 for p in warmups) or None,
        synthetic=dataset.get("type", "synthetic") == "synthetic",
        entries=_int(dataset.get("entries")),
        sampling=_str(dataset.get("sampling")) or "sequential",
        isl=_aiperf_distribution(prompts.get("isl"), "input length", notes),
        osl=_aiperf_distribution(prompts.get("osl"), "output length", notes),
        model=models[0] if models else None,
        tokenizer=_str(_section(cfg, "tokenizer").get("name")),
        ignore_eos=_aiperf_ignore_eos(_section(cfg, "endpoint").get("extra")),
        src={
            "arrival": f"{at}.rate",
            "concurrency": f"{at}.concurrency",
            "num_requests": f"{at}.requests",
            "warmup_requests": "input_config: the phases excluded from the results",
            "prompt_pool": "input_config: datasets[0].entries",
            "prompt_sampling": "input_config: datasets[0].sampling (aiperf's default: sequential)",
            "input_len": "input_config: datasets[0].prompts.isl",
            "output_len": "input_config: datasets[0].prompts.osl",
            "ignore_eos": "input_config: endpoint.extra (--extra-inputs)",
        },
        notes=notes,
    )


def load_aiperf_object(obj: dict, path: Path, index: int | None = None) -> MeasuredRun:
    """An aiperf `profile_export_aiperf.json`: its summary metrics and, from its input_config
    (the CLI flags' layout up to aiperf 0.8, its phases and datasets from 0.9), the workload it
    sent: a closed loop of `--concurrency` clients (or `--request-rate`), `--request-count`
    requests after `--warmup-request-count` warmup ones, synthetic prompts drawn from
    `--num-dataset-entries` distinct ones (so a repeat can hit the prefix cache)."""
    where = _where(path, index)
    cfg = obj.get("input_config")
    if not isinstance(cfg, dict):
        raise FrontierError(f"{where}: aiperf's input_config is not an object")
    sent = (_aiperf_phases_input if "phases" in cfg else _aiperf_flags_input)(cfg, where)
    notes, src = list(sent.notes), dict(sent.src)
    rate, concurrency = sent.rate, sent.concurrency
    if rate is None and concurrency is None:
        concurrency = 1  # aiperf's user_config: no rate and no concurrency is one client
        src["concurrency"] = "aiperf's default without --request-rate or --concurrency (one client)"
    if rate is None:
        src["arrival"] = "no --request-rate: a closed loop, each client sending when its last request is done"
    requests = sent.requests
    if not requests:
        src["num_requests"] = "aiperf's default --request-count"
    measured = _int(_aiperf_avg(obj, "request_count"))
    if not requests and sent.timed and measured:  # a timed run: as many as it sent
        requests = measured + (_int(_aiperf_avg(obj, "error_request_count")) or 0)
        src["num_requests"] = "the requests a --benchmark-duration run measured (request_count + errors)"
    arrival = {"process": sent.process, "rate": "inf" if rate is None else rate}
    if sent.cv is not None:
        arrival["cv"] = sent.cv
    workload: dict = {"num_requests": requests or AIPERF_REQUEST_COUNT, "arrival": arrival}
    for name, spec, tag in (
        ("input", sent.isl, "input_sequence_length"),
        ("output", sent.osl, "output_sequence_length"),
    ):
        workload[f"{name}_len"] = _aiperf_length(spec, _aiperf_avg(obj, tag), name, notes, where)
        if "mean" not in spec:
            src[f"{name}_len"] = f"measured {tag}"
    if concurrency:
        workload["concurrency"] = concurrency
    workload["ignore_eos"] = sent.ignore_eos
    if sent.warmup:
        workload["warmup_requests"] = sent.warmup
    if sent.synthetic:
        workload["prompt_pool"] = sent.entries or AIPERF_DATASET_ENTRIES
        if not sent.entries:
            src["prompt_pool"] = f"aiperf's default --num-dataset-entries ({AIPERF_DATASET_ENTRIES} prompts, reused)"
        workload["prompt_sampling"] = sent.sampling if sent.sampling in PROMPT_SAMPLINGS else "random"
        if sent.sampling is None:
            src["prompt_sampling"] = "no dataset_sampling_strategy (aiperf before 0.3.0): drawn at random"
        elif sent.sampling not in PROMPT_SAMPLINGS:
            src.pop("prompt_sampling")
            notes.append(
                f"aiperf's dataset sampling strategy '{sent.sampling}' is not modelled: prompts drawn at random"
            )
    else:
        notes.append("prompts from a dataset file: lengths replayed as their means, no prompt reuse")
    src = {key: src[key] for key in workload if key in src}  # where each setting replayed came from
    reported = _aiperf_metrics(obj, where)
    settings = RunSettings(
        request_rate=math.inf if rate is None else rate,
        max_concurrency=concurrency,
        num_prompts=workload["num_requests"],
        model=sent.model,
        tokenizer=sent.tokenizer,
        backend="aiperf",
        date=_str(obj.get("start_time")),
        workload=workload,
        workload_from=src,
    )
    arrays = _aiperf_records(path) if path.name == AIPERF_SUMMARY and index is None else None
    span = None
    if arrays is not None:
        ends = [s + (lat or 0.0) for s, lat in zip(arrays["start_times"], arrays["latencies"])]
        span = max(ends) - min(arrays["start_times"])  # first send to last response, where no duration is given
        notes.append(f"per-request metrics from {AIPERF_RECORDS} beside it ({len(arrays['errors'])} measured requests)")
    return _summary_run(path, index, "aiperf", settings, reported, arrays, notes, reported.get("duration") or span)


# ---------------------------------------------------------------------------- vLLM engine timestamps

_REQUEST_FIELDS = ("input_toks", "output_toks", "queued_ts", "first_token_ts", "last_token_ts")


def load_vllm_requests(folder: Path) -> MeasuredRun:
    """A run folder of engine timestamps. TTFT = first_token_ts - queued_ts; TPOT =
    (last_token_ts - first_token_ts) / (output_toks - 1); E2E = last_token_ts - queued_ts;
    duration = last token of the run - first queued. No per-token times, so no ITL."""
    req_path = folder / "requests.jsonl"
    rows = [obj for _, obj in _read_json_objects(req_path)]
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"input_toks", "output_toks", "queued_ts"} <= set(row):
            raise FrontierError(
                f"{req_path}: request {i + 1} lacks {', '.join(_REQUEST_FIELDS)} (found keys {_some_keys(row)})"
            )
        for key in ("queued_ts", "input_toks", "output_toks"):
            x = _num(row[key])
            if x is None or not math.isfinite(x) or x < 0 or (key != "queued_ts" and x != int(x)):
                raise FrontierError(
                    f"{req_path}: request {i + 1}: {key} is {row[key]!r}, not a "
                    f"{'time stamp' if key == 'queued_ts' else 'token count'} >= 0"
                )
    meta: dict = {}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta_objs = _read_json_objects(meta_path)
        meta = meta_objs[0][1] if isinstance(meta_objs[0][1], dict) else {}

    done = [r for r in rows if _num(r.get("first_token_ts")) is not None and _num(r.get("last_token_ts")) is not None]
    done.sort(key=lambda r: float(r["queued_ts"]))
    queued = np.array([float(r["queued_ts"]) for r in done])
    first = np.array([float(r["first_token_ts"]) for r in done])
    last = np.array([float(r["last_token_ts"]) for r in done])
    t0 = min(float(r["queued_ts"]) for r in rows)

    engine_args, gpu = _meta_engine_args(meta)
    rate = None
    if len(queued) > 1 and queued[-1] > queued[0]:
        rate = (len(rows) - 1) / (max(float(r["queued_ts"]) for r in rows) - t0)
    settings = RunSettings(
        request_rate=rate,
        num_prompts=_int(meta.get("num_requests")) or len(rows),
        model=_str(meta.get("model") or engine_args.get("model")),
        backend="vllm",
        date=_str(meta.get("started_at")),
        gpu=gpu,
        dataset={k: meta[k] for k in ("dataset_path",) if meta.get(k)},
        engine_args=engine_args,
        engine_args_from="meta.json" if meta else "",
    )
    run = MeasuredRun(
        source=folder,
        kind="vllm-requests",
        settings=settings,
        metrics={},
        reported={},
        metrics_from="per-request data",
        failed=len(rows) - len(done),
        arrival_s=queued - t0,
        input_tokens=np.array([int(r["input_toks"]) for r in done], dtype=np.int64),
        output_tokens=np.array([int(r["output_toks"]) for r in done], dtype=np.int64),
        ttft_s=first - queued,
        e2el_s=last - queued,
    )
    if not meta:
        run.notes.append("no meta.json beside requests.jsonl: no engine arguments")
    run.notes.append("request rate is the observed arrival rate (the run folder records none)")
    duration = float(last.max() - t0) if len(done) else 0.0
    run.metrics = _per_request_metrics(run, duration)
    return run


def _meta_engine_args(meta: dict) -> tuple[dict, str | None]:
    """Engine arguments from meta.json: engine_kwargs, then kv_cache, then resolved_config."""
    args: dict = {}
    resolved = meta.get("resolved_config") or {}
    for section, keys in (
        ("scheduler_config", ("enable_chunked_prefill", "max_num_seqs", "max_num_batched_tokens")),
        (
            "parallel_config",
            ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "enable_expert_parallel"),
        ),
        ("cache_config", ("block_size", "gpu_memory_utilization", "enable_prefix_caching")),
    ):
        block = resolved.get(section) or {}
        args.update({k: block[k] for k in keys if block.get(k) is not None})
    kv = meta.get("kv_cache") or {}
    args.update(
        {
            k: kv[k]
            for k in ("block_size", "gpu_memory_utilization", "enable_prefix_caching", "num_gpu_blocks")
            if kv.get(k) is not None
        }
    )
    args.update({k: v for k, v in (meta.get("engine_kwargs") or {}).items() if v is not None})
    if meta.get("model") and "model" not in args:
        args["model"] = meta["model"]
    model = args.pop("model", None)
    extra = {k: v for k, v in args.items() if k not in _METADATA_ENGINE_ARGS.values()}
    args = _normalise_engine_args(args) | extra
    if model is not None:
        args["model"] = model
    gpu = (meta.get("hardware") or {}).get("device_name")
    return args, _str(gpu)
