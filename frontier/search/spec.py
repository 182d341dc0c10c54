"""The sweep file: which model on which GPUs, the workload, load points, SLO and search space.

```yaml
name: llama70b-8xh100
model: meta-llama/Llama-3.1-70B-Instruct   # a card, a card alias, or a config.json
gpu: h100-sxm                  # or a list of GPU types, each searched
gpus: 8                        # GPU budget: most GPUs a deployment may use (or [min, max])
workload:                      # a scenario's workload without arrival / concurrency
  input_len: 1024
  output_len: 256
  # num_requests: 500          # default per load point: max(100, 4 x concurrency) or 60 s of rate
load:
  concurrency: [1, 4, 16, 64, 256]   # closed loop: rate inf, at most C in flight
  rate: [2, 8]                       # open loop: Poisson arrivals, requests/s
slo: {ttft_ms: 2000, tpot_ms: 50}    # + e2el_ms; statistic: mean | median | p90 | p99 (mean)
search:
  colocated:                   # co-located TP x PP x DP (and attention-DP x EP for MoE)
    tp: [1, 2, 4, 8]
    pp: [1]
    dp: auto                   # every replica count that fits the budget
    max_num_seqs: [128, 256]   # any deployment field: a list is searched, a scalar is fixed
    # MoE: dp_attention: [8, 16] with ep: auto (experts over all of an instance's GPUs)
  disaggregated:               # xPyD: every prefill/decode split within the budget
    prefill: {tp: [4], dp: auto}
    decode: {tp: [8], dp: auto}
    kv_transfer: layerwise     # deployment-level fields of a PD scenario
early_stop: true               # stop a config's higher load points once the SLO is clearly missed
seed: 0
```
Deployment fields are passed through to the scenario untouched, so every field a cluster
accepts (engine, max_num_batched_tokens, ep, dp_attention, quantization, ...) can be searched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frontier.errors import SpecError
from frontier.spec.scenario import check_keys, read_yaml_mapping

SLO_STATISTICS = ("mean", "median", "p90", "p99")
FAMILIES = ("colocated", "disaggregated")
SPEC_KEYS = ("name", "model", "gpu", "gpus", "workload", "load", "slo", "search", "early_stop", "seed")
PD_DEPLOYMENT_KEYS = ("kv_transfer", "links", "decode_router")


@dataclass(frozen=True)
class LoadPoint:
    """One load level: a closed loop of `concurrency` clients, or Poisson arrivals at `rate`."""

    concurrency: int | None
    rate: float | None
    num_requests: int

    @property
    def series(self) -> str:
        return "concurrency" if self.concurrency is not None else "rate"

    @property
    def label(self) -> str:
        return f"c{self.concurrency}" if self.concurrency is not None else f"r{self.rate:g}"

    def workload(self, base: dict) -> dict:
        wl = dict(base, num_requests=base.get("num_requests", self.num_requests))
        if self.concurrency is not None:
            wl.update(arrival={"process": "poisson", "rate": "inf"}, concurrency=self.concurrency)
        else:
            wl["arrival"] = {"process": "poisson", "rate": self.rate}
        return wl


@dataclass(frozen=True)
class SweepSpec:
    name: str
    model: str
    gpus_types: tuple[str, ...]
    min_gpus: int
    max_gpus: int
    workload: dict
    loads: tuple[LoadPoint, ...]
    slo: dict | None
    slo_statistic: str = "mean"
    search: dict = field(default_factory=dict)
    early_stop: bool = True
    seed: int = 0
    base_dir: Path | None = None


def _int_list(value: Any, where: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise SpecError(f"{where}: expected whole numbers >= 1 (a number or a list), got {value!r}")
    return sorted(set(values))


def _rate_list(value: Any, where: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise SpecError(
                f"{where}: expected request rates > 0 (requests/s), got {value!r}; "
                "for all requests at once use load.concurrency"
            )
        out.append(float(v))
    return sorted(set(out))


def _loads(d: Any, workload: dict) -> tuple[LoadPoint, ...]:
    check_keys(d, ("concurrency", "rate"), "load")
    if not d:
        raise SpecError("load: give concurrency (a list of client counts) and/or rate (requests/s)")
    fixed_n = workload.get("num_requests")
    points = []
    for c in _int_list(d["concurrency"], "load.concurrency") if "concurrency" in d else []:
        points.append(LoadPoint(c, None, fixed_n or max(100, 4 * c)))
    for r in _rate_list(d["rate"], "load.rate") if "rate" in d else []:
        points.append(LoadPoint(None, r, fixed_n or max(100, int(60 * r))))
    return tuple(points)


def _slo(d: Any) -> tuple[dict | None, str]:
    if not d:
        return None, "mean"
    check_keys(d, ("ttft_ms", "tpot_ms", "e2el_ms", "statistic"), "slo")
    stat = d.get("statistic", "mean")
    if stat not in SLO_STATISTICS:
        raise SpecError(f"slo.statistic: '{stat}' is not one of {', '.join(SLO_STATISTICS)}")
    targets = {}
    for k, v in d.items():
        if k == "statistic":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise SpecError(f"slo.{k}: expected milliseconds > 0, got {v!r}")
        targets[k] = float(v)
    return targets or None, stat


def _search(d: Any) -> dict:
    if d is None:
        return {"colocated": {}}
    check_keys(d, FAMILIES, "search")
    if not d:
        raise SpecError(f"search: name at least one family ({', '.join(FAMILIES)})")
    if "disaggregated" in d:
        pd_ = d["disaggregated"] or {}
        check_keys(pd_, ("prefill", "decode") + PD_DEPLOYMENT_KEYS, "search.disaggregated")
        for role in ("prefill", "decode"):
            if not isinstance(pd_.get(role), dict):
                raise SpecError(
                    f"search.disaggregated.{role}: required, a mapping of cluster "
                    f"fields (tp, dp, ep, ...) to a value or a list of values"
                )
    if "colocated" in d and not isinstance(d["colocated"] or {}, dict):
        raise SpecError("search.colocated: expected a mapping of deployment fields to values or lists")
    return {k: (v or {}) for k, v in d.items()}


def sweep_spec_from_dict(d: dict, base_dir: Path | None = None, name: str = "sweep") -> SweepSpec:
    check_keys(d, SPEC_KEYS, "sweep")
    for key in ("model", "gpu", "gpus", "load"):
        if key not in d:
            raise SpecError(f"sweep: missing required field '{key}'")
    gpus_types = tuple(d["gpu"]) if isinstance(d["gpu"], list) else (d["gpu"],)
    if not gpus_types or any(not isinstance(g, str) for g in gpus_types):
        raise SpecError(f"gpu: expected a GPU name or a list of them, got {d['gpu']!r}")
    budget = d["gpus"]
    lo, hi = budget if isinstance(budget, list) and len(budget) == 2 else (1, budget)
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in (lo, hi)) or lo > hi:
        raise SpecError(f"gpus: expected a GPU budget (a whole number >= 1, or [min, max]), got {budget!r}")
    workload = dict(d.get("workload") or {})
    for key in ("arrival", "concurrency"):
        if key in workload:
            raise SpecError(f"workload.{key}: set by the load points; use load.concurrency / load.rate")
    if "trace" not in workload:
        for key in ("input_len", "output_len"):
            if key not in workload:
                raise SpecError(f"workload.{key}: required for a synthetic workload (or give workload.trace)")
    slo, stat = _slo(d.get("slo"))
    early = d.get("early_stop", True)
    if not isinstance(early, bool):
        raise SpecError(f"early_stop: expected true or false, got {early!r}")
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SpecError(f"seed: expected an integer, got {seed!r}")
    return SweepSpec(
        name=str(d.get("name", name)),
        model=str(d["model"]),
        gpus_types=gpus_types,
        min_gpus=lo,
        max_gpus=hi,
        workload=workload,
        loads=_loads(d["load"], workload),
        slo=slo,
        slo_statistic=stat,
        search=_search(d.get("search")),
        early_stop=early,
        seed=seed,
        base_dir=base_dir,
    )


def load_sweep_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    return sweep_spec_from_dict(read_yaml_mapping(path, "sweep file"), base_dir=path.parent, name=path.stem)
