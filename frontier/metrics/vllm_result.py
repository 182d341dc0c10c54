"""A simulated run as the JSON `vllm bench serve --save-result [--save-detailed]` writes.

Keys, order and units follow vLLM's `vllm/benchmarks/serve.py` (`main_async` builds the setup
keys, `benchmark` the metrics, `calculate_metrics` the peaks): setup (`date`, `endpoint_type`,
`backend`, `label`, `model_id`, `tokenizer_id`, `num_prompts`), `--metadata`-style engine
arguments (strings), traffic (`request_rate`, `burstiness`, `max_concurrency`), counts and
throughputs (`request_goodput` is null when no SLO was set, as vLLM writes it without
`--goodput`), `latencies` and `queue_times` (vLLM keeps these even without `--save-detailed`),
`max_output_tokens_per_s`, `max_concurrent_requests`, `rtfx`, then the latency statistics.
`detailed` adds the per-request arrays of `--save-detailed`: `input_lens`, `output_lens`,
`ttfts`, `itls`, `start_times`, `generated_texts`, `errors` (one entry per request sent,
failed ones with output length 0 and their error text).

Frontier's own block follows under `frontier`, with the SLO used and the scenario as a dict
(`frontier.scenario`) so `frontier validate` can simulate the same run again.

Where the simulator has no per-request token times (it pools inter-token gaps), a request's
tokens are placed evenly between its first and last token for `max_output_tokens_per_s`, and
`itls` deal the pooled gaps out in order, which keeps every ITL statistic exact.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

# What `vllm bench serve --save-result` writes without --save-detailed, in its order (the
# latency statistics follow). `vllm bench sweep plot_pareto` reads output_throughput,
# max_concurrency / request_rate / max_concurrent_requests and *_parallel_size.
VLLM_SETUP_KEYS = ("date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts")
VLLM_TRAFFIC_KEYS = ("request_rate", "burstiness", "max_concurrency")
VLLM_RESULT_KEYS = (
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
)
VLLM_DETAILED_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "start_times", "generated_texts", "errors")
VLLM_PEAK_KEYS = ("max_output_tokens_per_s", "max_concurrent_requests", "rtfx")


def _finished(df) -> np.ndarray:
    return df["status"].to_numpy() == "finished"


def per_request_itls(sim_result, finished: np.ndarray, output_tokens: np.ndarray) -> list[list[float]]:
    """Each request's gaps between output tokens (empty for failed ones).

    The pooled gaps are dealt out in order, output_tokens - 1 to each finished request; where
    the pooled count disagrees, each request gets its own TPOT repeated instead."""
    need = np.where(finished, np.maximum(output_tokens - 1, 0), 0)
    itl_s = np.asarray(getattr(sim_result, "itl_s", np.zeros(0)), dtype=float)
    weights = getattr(sim_result, "itl_weights", None)
    pooled = itl_s
    if weights is not None:
        counts = np.asarray(weights)
        pooled = None if np.any(counts != np.round(counts)) else np.repeat(itl_s, counts.astype(np.int64))
    if pooled is not None and len(pooled) == int(need.sum()):
        bounds = np.concatenate([[0], np.cumsum(need)])
        return [pooled[bounds[i] : bounds[i + 1]].tolist() for i in range(len(finished))]
    df = sim_result.requests
    first, finish = df["first_token_s"].to_numpy(float), df["finish_s"].to_numpy(float)
    return [[float((finish[i] - first[i]) / need[i])] * int(need[i]) if need[i] else [] for i in range(len(finished))]


def peak_output_and_concurrency(
    start_s: np.ndarray, first_s: np.ndarray, end_s: np.ndarray, output_tokens: np.ndarray
) -> tuple[float, int]:
    """vLLM's `max_output_tokens_per_s` (most tokens in one 1-second bucket from the first
    start) and `max_concurrent_requests` (peak of half-open [start, end) intervals), over
    finished requests. Token i of a request is at first + i x (end - first) / (n - 1)."""
    if len(start_s) == 0:
        return 0.0, 0
    t0 = start_s.min()
    buckets = np.zeros(int(np.ceil(end_s.max() - t0)) + 1)
    for f, e, n in zip(first_s, end_s, output_tokens):
        times = f + (e - f) * np.arange(n) / max(n - 1, 1) if n > 1 else np.array([f])
        idx = (times - t0).astype(np.int64)
        np.add.at(buckets, idx[(idx >= 0) & (idx < len(buckets))], 1)
    events = sorted([(s, 1) for s in start_s] + [(e, -1) for e in end_s])  # -1 first on ties
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return float(buckets.max()), int(peak)


def _traffic(scenario, df) -> tuple[Any, Any, int | None]:
    """(request_rate, burstiness, max_concurrency) as the client was configured."""
    wl = scenario.workload
    arrival = wl.arrival
    if arrival is not None:
        rate = arrival.rate
        burstiness = (
            1.0 if arrival.process == "poisson" else math.inf if arrival.process == "constant" else 1.0 / arrival.cv**2
        )
    else:  # a trace on its own clock: the observed rate
        a = df["arrival_s"].to_numpy(float)
        span = float(a.max() - a.min()) if len(a) > 1 else 0.0
        rate, burstiness = ((len(a) - 1) / span if span > 0 else math.inf), 1.0
    as_json = lambda x: "inf" if math.isinf(x) else float(x)
    return as_json(rate), as_json(burstiness), wl.concurrency


def engine_metadata(scenario) -> dict[str, str]:
    """Engine arguments as `--metadata KEY=VALUE` strings: the GPU and, for one cluster, its
    vLLM engine arguments; `num_gpus` for every deployment (plot_pareto's --gpu-count-var)."""
    meta = {"gpu": scenario.gpu.name, "num_gpus": str(scenario.total_gpus)}
    if len(scenario.clusters) != 1:
        return meta
    c = scenario.clusters[0]
    args = {
        "tensor_parallel_size": c.tp,
        "pipeline_parallel_size": c.pp,
        "data_parallel_size": c.dp * c.dp_attention,
        "max_num_seqs": c.max_num_seqs,
        "max_num_batched_tokens": c.max_num_batched_tokens,
        "enable_chunked_prefill": c.enable_chunked_prefill,
        "block_size": c.block_size,
        "gpu_memory_utilization": c.gpu_memory_utilization,
        "enable_prefix_caching": c.enable_prefix_caching,
    }
    if c.ep > 1:
        args["enable_expert_parallel"] = True
    meta.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in args.items()})
    return meta


def vllm_result(
    sim_result,
    *,
    detailed: bool = False,
    model_id: str | None = None,
    scenario=None,
    backend: str = "frontier",
    label: str | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    """The run as vLLM's result JSON (plus the `frontier` block when the summary has one)."""
    from frontier.spec.scenario_dict import scenario_to_dict

    scenario = scenario if scenario is not None else sim_result.scenario
    df = sim_result.requests
    summary = sim_result.summary
    finished = _finished(df)
    arrival = df["arrival_s"].to_numpy(float)
    first = df["first_token_s"].to_numpy(float)
    finish = df["finish_s"].to_numpy(float)
    out_tokens = df["output_tokens"].to_numpy(np.int64)
    model_id = model_id or scenario.model.served_id
    rate, burstiness, concurrency = _traffic(scenario, df)

    result: dict[str, Any] = {
        "date": date or datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": backend,
        "backend": backend,
        "label": label,
        "model_id": model_id,
        "tokenizer_id": model_id,
        "num_prompts": int(len(df)),
    }
    result.update(engine_metadata(scenario))
    result.update(request_rate=rate, burstiness=burstiness, max_concurrency=concurrency)
    for key in VLLM_RESULT_KEYS:
        result[key] = summary.get(key)
    if detailed:
        reasons = df["fail_reason"].tolist()
        result.update(
            {
                "input_lens": [int(x) for x in df["input_tokens"]],
                "output_lens": [int(o) if ok else 0 for o, ok in zip(out_tokens, finished)],
                "ttfts": [float(f - a) if ok else 0.0 for f, a, ok in zip(first, arrival, finished)],
                "itls": per_request_itls(sim_result, finished, out_tokens),
                "start_times": arrival.tolist(),
                "generated_texts": [""] * len(df),
                "errors": ["" if ok else (str(r) or "failed in simulation") for ok, r in zip(finished, reasons)],
            }
        )
    result["latencies"] = [float(e - a) if ok else 0.0 for e, a, ok in zip(finish, arrival, finished)]
    # The client sends when a slot frees; Frontier does not keep the time a request waited for it.
    result["queue_times"] = [0.0] * len(df)
    peak_tokens, peak_requests = peak_output_and_concurrency(
        arrival[finished], first[finished], finish[finished], out_tokens[finished]
    )
    result.update(max_output_tokens_per_s=peak_tokens, max_concurrent_requests=peak_requests, rtfx=0.0)
    for key, value in summary.items():  # mean_/median_/std_/pNN_ latency statistics
        if key.endswith("_ms"):
            result[key] = value
    if "frontier" in summary:
        slo = scenario.slo
        result["frontier"] = dict(
            summary["frontier"],
            slo=None if slo is None else {k: v for k, v in vars(slo).items() if v is not None},
            scenario=scenario_to_dict(scenario),
        )
    return result
