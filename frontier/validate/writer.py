"""Write a simulated run as a `vllm bench serve --save-result --save-detailed` JSON.

The file has the fields vLLM writes (setup, summary metrics, per-request arrays), so every tool
that reads vLLM results reads it, and `frontier validate` can replay it: simulate -> write ->
validate gives zero error. Engine arguments go in as `--metadata KEY=VALUE`-style top-level
string entries (tensor_parallel_size, max_num_seqs, gpu, ...), which the loader reads back.
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from frontier.numbers import strict_json_dumps

_SUMMARY_KEY = re.compile(r"^((mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms|"
                          r"completed|failed|duration|total_input_tokens|total_output_tokens|"
                          r"request_throughput|output_throughput|total_token_throughput|"
                          r"request_goodput)$")


def _finished_mask(df) -> np.ndarray:
    if "status" in df:
        return (df["status"].to_numpy() == "finished")
    return np.isfinite(df["finish_s"].to_numpy(dtype=float))


def per_request_itls(sim_result, finished: np.ndarray, output_tokens: np.ndarray) -> list[list[float]]:
    """Each finished request's gaps between output tokens.

    The simulator keeps ITLs pooled (values with counts); vLLM's format wants them per request.
    The pooled sample is dealt out in order, output_tokens - 1 gaps to each request, which keeps
    the pooled distribution (and so every ITL statistic) exact. Where the counts disagree, each
    request gets its own TPOT repeated instead.
    """
    per_req = getattr(sim_result, "request_itls", None)
    if per_req is not None:
        return [list(map(float, per_req[i])) if finished[i] else [] for i in range(len(finished))]
    need = np.where(finished, np.maximum(output_tokens - 1, 0), 0)
    itl_s = np.asarray(getattr(sim_result, "itl_s", np.zeros(0)), dtype=float)
    weights = getattr(sim_result, "itl_weights", None)
    if weights is None:
        pooled = itl_s
    else:
        counts = np.asarray(weights)
        if np.any(counts != np.round(counts)):
            pooled = None
        else:
            pooled = np.repeat(itl_s, counts.astype(np.int64))
    out: list[list[float]] = []
    if pooled is not None and len(pooled) == int(need.sum()):
        bounds = np.concatenate([[0], np.cumsum(need)])
        for i in range(len(finished)):
            out.append(pooled[bounds[i]:bounds[i + 1]].tolist())
        return out
    df = sim_result.requests
    for i in range(len(finished)):
        if not finished[i] or need[i] == 0:
            out.append([])
            continue
        tpot = (df["finish_s"].iat[i] - df["first_token_s"].iat[i]) / need[i]
        out.append([float(tpot)] * int(need[i]))
    return out


def _metadata_from_scenario(scenario) -> dict[str, str]:
    """Engine arguments of a one-cluster scenario as `--metadata` strings."""
    if scenario is None:
        return {}
    meta = {"gpu": scenario.gpu.name}
    clusters = getattr(scenario, "clusters", ())
    if len(clusters) != 1:
        return meta
    c = clusters[0]
    fields = {"tensor_parallel_size": c.tp, "pipeline_parallel_size": c.pp,
              "data_parallel_size": c.dp, "max_num_seqs": c.max_num_seqs,
              "max_num_batched_tokens": c.max_num_batched_tokens,
              "enable_chunked_prefill": c.enable_chunked_prefill, "block_size": c.block_size,
              "gpu_memory_utilization": c.gpu_memory_utilization,
              "enable_prefix_caching": c.enable_prefix_caching}
    if c.ep > 1:
        fields["enable_expert_parallel"] = True
    for key, value in fields.items():
        meta[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return meta


def vllm_result_dict(sim_result, *, model_id: str | None = None, scenario=None,
                     request_rate: float | None = None, max_concurrency: int | None = None,
                     burstiness: float = 1.0, backend: str = "frontier",
                     date: str | None = None) -> dict[str, Any]:
    """The JSON object `vllm bench serve --save-result --save-detailed` would have written."""
    df = sim_result.requests
    finished = _finished_mask(df)
    arrival = df["arrival_s"].to_numpy(dtype=float)
    first = df["first_token_s"].to_numpy(dtype=float)
    finish = df["finish_s"].to_numpy(dtype=float)
    out_tokens = df["output_tokens"].to_numpy(dtype=np.int64)
    in_tokens = df["input_tokens"].to_numpy(dtype=np.int64)

    if model_id is None and scenario is not None:
        model_id = scenario.model.name
    if request_rate is None:
        n = len(arrival)
        span = float(arrival.max() - arrival.min()) if n > 1 else 0.0
        request_rate = (n - 1) / span if span > 0 else math.inf
    if max_concurrency is None and scenario is not None:
        max_concurrency = getattr(getattr(scenario, "workload", None), "concurrency", None)

    result: dict[str, Any] = {
        "date": date or datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": None,
        "model_id": model_id,
        "tokenizer_id": model_id,
        "num_prompts": int(len(df)),
    }
    result.update(_metadata_from_scenario(scenario))
    result["request_rate"] = "inf" if math.isinf(request_rate) else float(request_rate)
    result["burstiness"] = float(burstiness)
    result["max_concurrency"] = max_concurrency

    summary = {k: v for k, v in sim_result.summary.items() if _SUMMARY_KEY.match(k)}
    for key in ("duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
                "request_throughput"):
        result[key] = summary.pop(key, None)
    result["request_goodput"] = summary.pop("request_goodput", None)
    for key in ("output_throughput", "total_token_throughput"):
        result[key] = summary.pop(key, None)

    itls = per_request_itls(sim_result, finished, out_tokens)
    result["input_lens"] = [int(x) for x in in_tokens]
    result["output_lens"] = [int(o) if ok else 0 for o, ok in zip(out_tokens, finished)]
    result["ttfts"] = [float(f - a) if ok else 0.0 for f, a, ok in zip(first, arrival, finished)]
    result["itls"] = itls
    result["latencies"] = [float(e - a) if ok else 0.0 for e, a, ok in zip(finish, arrival, finished)]
    result["start_times"] = [float(a) for a in arrival]
    result["queue_times"] = [0.0] * len(arrival)
    result["generated_texts"] = [""] * len(arrival)
    reasons = df["fail_reason"].tolist() if "fail_reason" in df else [""] * len(arrival)
    result["errors"] = ["" if ok else (str(r) or "failed in simulation")
                        for ok, r in zip(finished, reasons)]
    result.update(summary)  # mean_/median_/std_/pNN_ latency keys, as vLLM appends them last
    return result


def write_vllm_result(sim_result, path: str | Path, model_id: str | None = None,
                      **kwargs) -> Path:
    """Write `vllm_result_dict(...)` to path (folders made as needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = vllm_result_dict(sim_result, model_id=model_id, **kwargs)
    path.write_text(strict_json_dumps(_plain(data)))
    return path


def _plain(value):
    """numpy scalars to Python ones, so json can write them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
