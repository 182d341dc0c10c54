"""A parsed Scenario back as the plain dict `scenario_from_dict` reads (a scenario's round trip).

Results record it (`summary.json` -> `frontier.scenario`, a sweep's `best.json`) so a run can be
simulated again exactly: `scenario_from_dict(scenario_to_dict(s))` describes the same run.
Deployment fields are copied generically from the cluster dataclass, so fields added to
`ClusterSpec` travel without changes here.
"""

from __future__ import annotations

import math
from dataclasses import fields

from frontier.spec.scenario import ClusterSpec, Scenario


def _number(x: float):
    return "inf" if math.isinf(x) else x


def _length(spec) -> dict | int:
    if spec.dist == "fixed":
        return int(spec.value)
    d = {"dist": spec.dist, "min": spec.min}
    if spec.max is not None:
        d["max"] = spec.max
    if spec.dist != "uniform":
        d.update(mean=spec.mean, std=spec.std)
    return d


def workload_to_dict(w) -> dict:
    d: dict = {}
    if w.num_requests is not None:
        d["num_requests"] = w.num_requests
    if w.arrival is not None:
        d["arrival"] = {"process": w.arrival.process, "rate": _number(w.arrival.rate)}
        if w.arrival.cv is not None:
            d["arrival"]["cv"] = w.arrival.cv
    if w.concurrency is not None:
        d["concurrency"] = w.concurrency
        d["send_gap_ms"] = w.send_gap_ms
    for key in ("input_len", "output_len"):
        if getattr(w, key) is not None:
            d[key] = _length(getattr(w, key))
    if w.prompt_pool is not None:
        d["prompt_pool"], d["prompt_sampling"] = w.prompt_pool, w.prompt_sampling
    if w.warmup_requests:
        d["warmup_requests"] = w.warmup_requests
    if w.ignore_eos is not None:
        d["ignore_eos"] = w.ignore_eos
    if w.trace is not None:
        t = w.trace
        d["trace"] = {"path": str(t.path), "format": t.format, "time_scale": t.time_scale, "start_s": t.start_s}
        if t.duration_s is not None:
            d["trace"]["duration_s"] = t.duration_s
    return d


def cluster_to_dict(c: ClusterSpec) -> dict:
    """Every field as resolved (engine defaults included, so a later default change cannot
    alter a recorded run); `defaults_from` is provenance, not a field one writes."""
    return {
        f.name: getattr(c, f.name)
        for f in fields(ClusterSpec)
        if getattr(c, f.name) is not None and f.name != "defaults_from"
    }


def scenario_to_dict(s: Scenario) -> dict:
    deployment: dict = {"clusters": [cluster_to_dict(c) for c in s.clusters]}
    if len(s.clusters) == 1:
        deployment = deployment["clusters"][0]
    else:
        deployment.update(
            kv_transfer=s.kv_transfer,
            decode_router=s.decode_router,
            links={"kv": vars(s.kv_link), "af": vars(s.af_link)},
        )
    d = {
        "name": s.name,
        "model": getattr(s.model, "source", "") or s.model.name,
        "gpu": s.gpu.name,
        "deployment": deployment,
        "workload": workload_to_dict(s.workload),
        "seed": s.seed,
    }
    if s.slo is not None:
        d["slo"] = {k: v for k, v in vars(s.slo).items() if v is not None}
    return d
