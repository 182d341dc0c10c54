"""Serving metrics with the names and definitions of `vllm bench serve --save-result`.

TTFT is measured from arrival (the moment the client sends) to the first output token; TPOT is
(E2E - TTFT) / (output_tokens - 1) per request, over requests with more than one output token;
ITL is every gap between consecutive output tokens of a request, pooled over all requests;
E2E latency is arrival to last token.
"""

from __future__ import annotations

import numpy as np

from frontier.spec.slo import SLO

PERCENTILES = (50, 90, 99)
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs) -> list[float]:
    """np.percentile (linear) at each of `qs` of the sample where values[i] appears weights[i]
    times."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    out = []
    for q in qs:
        rank = q / 100.0 * (cum[-1] - 1)
        lo, hi = int(np.floor(rank)), int(np.ceil(rank))
        v_lo = v[np.searchsorted(cum, lo, side="right")]
        v_hi = v[np.searchsorted(cum, hi, side="right")]
        out.append(float(v_lo + (v_hi - v_lo) * (rank - lo)))
    return out


def latency_stats(name: str, values_ms: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """mean_/median_/std_/pNN_<name>_ms; zeros when there is no sample (as vLLM reports)."""
    values_ms = np.asarray(values_ms, dtype=float)
    out = {}
    if values_ms.size == 0:
        keys = ["mean", "median", "std"] + [f"p{p}" for p in PERCENTILES if p != 50]
        return {f"{k}_{name}_ms": 0.0 for k in keys}
    if weights is None:
        out[f"mean_{name}_ms"] = float(values_ms.mean())
        out[f"median_{name}_ms"] = float(np.median(values_ms))
        out[f"std_{name}_ms"] = float(values_ms.std())
        for p in PERCENTILES:
            if p != 50:
                out[f"p{p}_{name}_ms"] = float(np.percentile(values_ms, p))
        return out
    weights = np.asarray(weights, dtype=float)
    mean = float(np.average(values_ms, weights=weights))
    out[f"mean_{name}_ms"] = mean
    at = dict(zip(PERCENTILES, weighted_percentiles(values_ms, weights, PERCENTILES)))
    out[f"median_{name}_ms"] = at[50]
    out[f"std_{name}_ms"] = float(np.sqrt(np.average((values_ms - mean) ** 2, weights=weights)))
    for p in PERCENTILES:
        if p != 50:
            out[f"p{p}_{name}_ms"] = at[p]
    return out


def tpot_s(ttft_s: np.ndarray, e2el_s: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
    """Per-request TPOT over requests with more than one output token."""
    many = output_tokens > 1
    return (e2el_s[many] - ttft_s[many]) / (output_tokens[many] - 1)


def serving_metrics(
    *,
    duration_s: float,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    ttft_s: np.ndarray,
    e2el_s: np.ndarray,
    itl_s: np.ndarray,
    itl_weights: np.ndarray | None = None,
    failed: int = 0,
    slo: SLO | None = None,
) -> dict:
    """The summary block of one run, keyed like `vllm bench serve` results.

    Arrays describe completed requests only; `failed` counts the ones that were not served.
    `itl_weights` lets a run of identical gaps be stored once with its count.
    """
    input_tokens = np.asarray(input_tokens)
    output_tokens = np.asarray(output_tokens)
    ttft_s, e2el_s = np.asarray(ttft_s, float), np.asarray(e2el_s, float)
    completed = int(len(ttft_s))
    duration_s = max(float(duration_s), 1e-12)
    out = {
        "completed": completed,
        "failed": int(failed),
        "duration": float(duration_s),
        "total_input_tokens": int(input_tokens.sum()),
        "total_output_tokens": int(output_tokens.sum()),
        "request_throughput": completed / duration_s,
        "output_throughput": float(output_tokens.sum()) / duration_s,
        "total_token_throughput": float(input_tokens.sum() + output_tokens.sum()) / duration_s,
    }
    tpot = tpot_s(ttft_s, e2el_s, output_tokens)
    out["request_goodput"] = None  # as vLLM writes it when no SLO (--goodput) is given
    if slo is not None:
        good = np.ones(completed, dtype=bool)
        if slo.ttft_ms is not None:
            good &= ttft_s * 1e3 <= slo.ttft_ms
        if slo.tpot_ms is not None:
            per_req = np.zeros(completed)
            many = output_tokens > 1
            per_req[many] = tpot
            good &= per_req * 1e3 <= slo.tpot_ms
        if slo.e2el_ms is not None:
            good &= e2el_s * 1e3 <= slo.e2el_ms
        out["request_goodput"] = float(good.sum()) / duration_s
    out.update(latency_stats("ttft", ttft_s * 1e3))
    out.update(latency_stats("tpot", tpot * 1e3))
    out.update(latency_stats("itl", np.asarray(itl_s, float) * 1e3, itl_weights))
    out.update(latency_stats("e2el", e2el_s * 1e3))
    return out
