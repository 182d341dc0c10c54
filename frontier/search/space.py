"""The search space: every deployment the sweep file describes, feasible or with the reason not.

A family's fields map to a value or a list of values; the cartesian product of the lists is
the space. `dp: auto` means every replica count that keeps the deployment within the GPU
budget (powers of two and the largest). Fields other than the parallel degrees are passed to
the scenario untouched (whatever `ClusterSpec` accepts), so new engine knobs need no change here.

A point is infeasible, and listed with its reason instead of run, when it leaves the GPU budget,
when TP does not divide the attention heads (vLLM's check in `vllm/config/model.py`
`verify_with_parallel_config`: "Total number of attention heads must be divisible by tensor
parallel size"), when the scenario does not validate (e.g. EP not dividing the instance's GPUs),
or when weights and activations leave no room for a KV block (`frontier.spec.memory`), or under
vLLM for one request of the workload's longest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace

from frontier.errors import SpecError
from frontier.spec.memory import KVCacheTooSmall, TooFewStateBlocks
from frontier.spec.scenario import ClusterSpec, check_keys
from frontier.search.spec import PD_DEPLOYMENT_KEYS, SweepSpec

PARALLEL_KEYS = ("tp", "pp", "dp", "ep", "dp_attention")
# Cluster fields that name or wire a cluster: the search sets them, a user does not.
FIXED_KEYS = ("name", "role")


@dataclass(frozen=True)
class Candidate:
    """One deployment to simulate at every load point."""

    family: str  # "co-located" | "PD-disaggregated" (with the GPU when several are searched)
    gpu: str
    deployment: dict  # the scenario's `deployment:` block
    gpus: int
    label: str  # "TP4 PP1 DP2", "2P(TP4) 1D(TP8)"
    fields: dict  # the searched values, for results.csv (prefill_/decode_ prefixed for PD)


@dataclass(frozen=True)
class Infeasible:
    family: str
    gpu: str
    label: str
    reason: str


def _choices(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _grid(block: dict, where: str) -> list[dict]:
    allowed = {f.name for f in fields(ClusterSpec)} - set(FIXED_KEYS)
    check_keys(block, allowed, where)
    keys = list(block)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_choices(block[k]) for k in keys))]


def _instance_gpus(c: dict) -> int:
    return c.get("tp", 1) * c.get("pp", 1) * c.get("dp_attention", 1)


def _replicas(c: dict, max_gpus: int, where: str) -> list[int]:
    """The dp values of a cluster: as given, or for `auto` every one within the budget."""
    if c.get("dp", "auto") != "auto":
        return [c["dp"]]
    most = max_gpus // _instance_gpus(c)
    return [d for d in range(1, most + 1) if d & (d - 1) == 0 or d == most]


def _searched(block: dict) -> set[str]:
    """Fields given a choice of several values: the ones a label must show."""
    return {k for k, v in block.items() if isinstance(v, list) and len(v) > 1}


def _label(c: dict, searched: set[str] = frozenset()) -> str:
    parts = [f"TP{c.get('tp', 1)}"]
    if c.get("pp", 1) > 1:
        parts.append(f"PP{c['pp']}")
    if c.get("dp_attention", 1) > 1:
        parts.append(f"ADP{c['dp_attention']}")
    if c.get("ep", 1) > 1:
        parts.append(f"EP{c['ep']}")
    extra = [f"{k}={v}" for k, v in c.items() if k not in PARALLEL_KEYS and k in searched]
    return " ".join(parts + extra)


def _ep(c: dict) -> dict:
    """`ep: auto`: experts over all of the instance's GPUs."""
    return dict(c, ep=_instance_gpus(c)) if c.get("ep") == "auto" else c


def enumerate_space(spec: SweepSpec, model, longest: int) -> tuple[list[Candidate], list[Infeasible]]:
    """Every (GPU type x family x grid point), split into what can run and what cannot.
    `longest`: the workload's longest request (prompt + output tokens)."""
    raw: list[tuple[str, str, dict, int, str, dict]] = []
    several = len(spec.gpus_types) > 1
    for gpu in spec.gpus_types:
        for fam_key, block in spec.search.items():
            family = ("co-located" if fam_key == "colocated" else "PD-disaggregated") + (f" {gpu}" if several else "")
            if fam_key == "colocated":
                block = {"tp": [1, 2, 4, 8], "dp": "auto", **block}
                for c in _grid(block, "search.colocated"):
                    for dp in _replicas(c, spec.max_gpus, "search.colocated"):
                        c2 = _ep(dict(c, dp=dp))
                        gpus = _instance_gpus(c2) * dp
                        label = f"{_label(c2, _searched(block))} DP{dp}"
                        raw.append((family, gpu, c2, gpus, label, dict(c2)))
            else:
                top = {k: block[k] for k in PD_DEPLOYMENT_KEYS if k in block}
                for p in _grid(block["prefill"], "search.disaggregated.prefill"):
                    for d in _grid(block["decode"], "search.disaggregated.decode"):
                        for pdp in _replicas(p, spec.max_gpus, "prefill"):
                            p2 = _ep(dict(p, dp=pdp))
                            left = spec.max_gpus - _instance_gpus(p2) * pdp
                            for ddp in _replicas(d, left, "decode") if left >= _instance_gpus(d) else [1]:
                                d2 = _ep(dict(d, dp=ddp))
                                gpus = _instance_gpus(p2) * pdp + _instance_gpus(d2) * ddp
                                dep = {
                                    "clusters": [
                                        dict(p2, name="prefill", role="prefill"),
                                        dict(d2, name="decode", role="decode"),
                                    ],
                                    **top,
                                }
                                label = (
                                    f"{pdp}P({_label(p2, _searched(block['prefill']))}) "
                                    f"{ddp}D({_label(d2, _searched(block['decode']))})"
                                )
                                flat = {
                                    **{f"prefill_{k}": v for k, v in p2.items()},
                                    **{f"decode_{k}": v for k, v in d2.items()},
                                }
                                raw.append((family, gpu, dep, gpus, label, flat))
    ok, bad = [], []
    seen = set()
    for family, gpu, dep, gpus, label, flat in raw:
        key = (family, gpu, label)
        if key in seen:
            continue
        seen.add(key)
        reason = _infeasible(spec, model, gpu, dep, gpus, longest)
        if reason:
            bad.append(Infeasible(family, gpu, label, reason))
        else:
            ok.append(Candidate(family, gpu, dep, gpus, label, flat))
    return ok, bad


def _infeasible(spec: SweepSpec, model, gpu: str, dep: dict, gpus: int, longest: int) -> str | None:
    """Why `dep` cannot run, or None. A vLLM cluster whose KV cache cannot hold the model's
    whole context (vLLM would not start) is sized to the workload instead, as a planner does
    (aiconfigurator's generator passes --max-model-len isl + osl + 1,500): its `max_model_len`
    becomes the longest request, `longest` tokens, where it leaves none set and that fits. So is
    one whose hybrid model's states would run short of blocks for max_num_seqs sequences: its
    `max_num_seqs` becomes the blocks it has (what vLLM's refusal asks for)."""
    from frontier.sim.run import memory_for
    from frontier.spec.scenario import scenario_from_dict

    if not spec.min_gpus <= gpus <= spec.max_gpus:
        return f"uses {gpus} GPUs, outside the budget of {spec.min_gpus}-{spec.max_gpus}"
    clusters = dep.get("clusters", [dep])
    for c in clusters:
        tp = c.get("tp", 1)
        if model.num_heads % tp:
            return f"TP {tp} does not divide the {model.num_heads} attention heads"
    try:
        sc = scenario_from_dict(
            {
                "model": spec.model,
                "gpu": gpu,
                "deployment": dep,
                "workload": {"num_requests": 1, "arrival": {"rate": 1}, "input_len": 1, "output_len": 1},
            }
        )
        for c, block in zip(sc.clusters, clusters):
            while True:  # each sizing once: a second refusal of its kind stands
                try:
                    memory_for(sc, c, c.role if len(sc.clusters) > 1 else "deployment")
                    break
                except KVCacheTooSmall as exc:
                    if block.get("max_model_len") or longest > exc.fits:
                        raise
                    block["max_model_len"] = longest
                    c = replace(c, max_model_len=longest)
                except TooFewStateBlocks as exc:
                    if block.get("max_num_seqs"):
                        raise
                    block["max_num_seqs"] = exc.blocks
                    c = replace(c, max_num_seqs=exc.blocks)
    except SpecError as exc:
        return str(exc)
    return None
