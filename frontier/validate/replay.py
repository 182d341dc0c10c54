"""Replay a measured run through the simulator and compare, metric by metric.

The replay's requests come from the run (its per-request lengths and send times where the file
has them; else its rate, concurrency, prompt count and mean lengths). Its deployment comes from
the run's engine arguments where it records them, from a `--scenario` file or built-in defaults
otherwise, and command-line flags override both. Every choice is written down in `provenance`:
field -> {"value": ..., "from": ...}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frontier.errors import FrontierError, SpecError
from frontier.spec.hardware import all_gpus, get_gpu
from frontier.spec.model import available_models, card_for_checkpoint, load_model
from frontier.validate.loaders import MeasuredRun
from frontier.workload import ArrivalSpec, RequestTable, WorkloadSpec, build_requests
from frontier.workload.synthetic import arrival_times

# Deployment fields a replay sets, with the vLLM engine argument each comes from.
ENGINE_ARG_FIELDS = {
    "tp": "tensor_parallel_size",
    "pp": "pipeline_parallel_size",
    "dp": "data_parallel_size",
    "max_num_seqs": "max_num_seqs",
    "max_num_batched_tokens": "max_num_batched_tokens",
    "enable_chunked_prefill": "enable_chunked_prefill",
    "block_size": "block_size",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "enable_prefix_caching": "enable_prefix_caching",
    "max_model_len": "max_model_len",
    # The KV pool the engine sized at start-up (vLLM's cache_config.num_gpu_blocks), where recorded.
    "num_gpu_blocks_override": "num_gpu_blocks",
}
# Command-line overrides a replay accepts (None = not given).
OVERRIDE_KEYS = (
    "model",
    "gpu",
    "tp",
    "pp",
    "dp",
    "ep",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "engine",
    "engine_version",
    "frontend",
)


def started_context(deployment: dict) -> bool:
    """Give a measured vLLM deployment (one cluster's dict) that records no `max_model_len`
    `auto`, and say whether it did. The run was served, so its engine started; vLLM refuses to
    start where one request of the model's whole context does not fit the KV cache
    (frontier.spec.memory.check_vllm_starts: Qwen3-32B's 40,960 tokens on one H100, 10.0 GiB of
    KV with 7.9 left), so whoever launched it passed a length that fits, as the refusal asks.
    `auto` is vLLM's own fit: the model's context where it fits (the run's default), else the
    longest request the KV cache holds."""
    if deployment.get("engine") != "vllm" or deployment.get("max_model_len"):
        return False
    deployment["max_model_len"] = "auto"
    return True


@dataclass
class Replay:
    """Everything a replay simulates, and where each piece came from."""

    run: MeasuredRun
    scenario_dict: dict
    requests: RequestTable
    provenance: dict = field(default_factory=dict)
    scenario: Any = None  # frontier.spec.scenario.Scenario


@dataclass
class Validation:
    """A replay's outcome: the simulator's result and the metric-by-metric comparison."""

    replay: Replay
    sim: Any  # frontier.sim.run.SimResult
    comparison: dict  # metric -> {"measured", "predicted", "error_pct"}

    @property
    def run(self) -> MeasuredRun:
        return self.replay.run


# ---------------------------------------------------------------------------- name resolution


def resolve_model(name: str) -> str | None:
    """A model card for a model id as engines spell it ('meta-llama/Llama-3.1-8B-Instruct'):
    a card path as is, else the card of the architecture the name says, chat and packaging
    suffixes off (`frontier.spec.model.card_for_checkpoint`; a quantised checkpoint's name is
    not taken, since a result file does not say its weights' format). None if nothing matches."""
    p = Path(name)
    if p.suffix in (".json", ".yaml", ".yml") and p.exists():
        return str(p)
    card = card_for_checkpoint(name)
    return card.stem if card else None


def resolve_gpu(name: str) -> str | None:
    """The GPU key for a device name ('NVIDIA H100 80GB HBM3'); None if unknown."""
    for candidate in (name, name.replace("NVIDIA ", "").replace("GeForce ", "")):
        try:
            return get_gpu(candidate).name
        except SpecError:
            continue
    return None


# ---------------------------------------------------------------------------- the scenario


def _load_scenario_file(path: str | Path) -> dict:
    from frontier.spec.scenario import read_yaml_mapping

    return read_yaml_mapping(path, "--scenario: file")


def _pick(
    prov: dict, key: str, candidates: list[tuple[Any, str]], default: Any = None, default_from: str = "frontier default"
) -> Any:
    """The first candidate that is not None (candidates in priority order), recorded."""
    for value, source in candidates:
        if value is not None:
            prov[key] = {"value": value, "from": source}
            return value
    if default is not None:
        prov[key] = {"value": default, "from": default_from}
    return default


def build_scenario_dict(
    run: MeasuredRun, overrides: dict | None = None, scenario_file: str | Path | None = None
) -> tuple[dict, dict]:
    """(scenario dict without its workload, provenance) for replaying `run`.

    Priority, highest first: command-line flags, the run's engine arguments, the scenario file,
    Frontier's defaults."""
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(flags) - set(OVERRIDE_KEYS)
    if unknown:
        raise FrontierError(f"unknown replay override(s) {sorted(unknown)}; allowed: {', '.join(OVERRIDE_KEYS)}")
    base = _load_scenario_file(scenario_file) if scenario_file else {}
    base_name = Path(scenario_file).name if scenario_file else ""
    args = run.settings.engine_args
    args_from = run.settings.engine_args_from or run.kind
    prov: dict = {}

    # model
    file_model = run.settings.model
    file_card = resolve_model(file_model) if file_model else None
    model = _pick(
        prov,
        "model",
        [
            (flags.get("model"), "--model flag"),
            (file_card, f"{run.kind} file: model '{file_model}'"),
            (
                base.get("model"),
                f"scenario file {base_name}"
                + (f" (the run's model '{file_model}' is not a known card)" if file_model else ""),
            ),
        ],
    )
    if model is None:
        if file_model:
            raise FrontierError(
                f"{run.label}: model '{file_model}' is not a known model card "
                f"({', '.join(available_models())}); pass --model CARD or the "
                f"path of its config.json"
            )
        raise FrontierError(
            f"{run.label}: the result file names no model; pass --model "
            f"({', '.join(available_models())}) or --scenario FILE"
        )
    if flags.get("model"):
        card = resolve_model(str(flags["model"]))
        model = card or flags["model"]
        prov["model"]["value"] = model
    load_model(str(model))  # a clear error now rather than inside the simulator

    # GPU
    file_gpu = resolve_gpu(run.settings.gpu) if run.settings.gpu else None
    gpu = _pick(
        prov,
        "gpu",
        [
            (flags.get("gpu"), "--gpu flag"),
            (file_gpu, f"{args_from}: device '{run.settings.gpu}'"),
            (
                base.get("gpu"),
                f"scenario file {base_name}"
                + (f" (the run's device '{run.settings.gpu}' is not a known GPU)" if run.settings.gpu else ""),
            ),
        ],
    )
    if gpu is None:
        where = (
            f"device '{run.settings.gpu}' is not a known GPU" if run.settings.gpu else "the result file records no GPU"
        )
        raise FrontierError(f"{run.label}: {where}; pass --gpu ({', '.join(all_gpus())}) or --scenario FILE")
    get_gpu(str(gpu))

    # deployment
    base_dep = dict(base.get("deployment") or {})
    if "clusters" in base_dep:
        deployment = base_dep
        prov["deployment"] = {
            "value": "clusters",
            "from": f"scenario file {base_name} (the "
            f"run's engine arguments are not applied to a multi-cluster "
            f"deployment)",
        }
        dep_flags = {
            k: flags[k]
            for k in OVERRIDE_KEYS
            if k in flags and k not in ("model", "gpu")  # the rest are per-cluster fields
        }
        if dep_flags:
            deployment = {"clusters": [dict(c, **dep_flags) for c in base_dep["clusters"]]}
            prov["deployment"]["from"] += f"; flags {sorted(dep_flags)} applied to every cluster"
    else:
        deployment = {}
        defaults = _cluster_defaults()
        for key, arg in ENGINE_ARG_FIELDS.items():
            value = _pick(
                prov,
                f"deployment.{key}",
                [
                    (flags.get(key), f"--{key.replace('_', '-')} flag"),
                    (args.get(arg), f"{args_from}: {arg}"),
                    (base_dep.get(key), f"scenario file {base_name}"),
                ],
                default=defaults.get(key),
            )
            if value is not None:
                deployment[key] = value
            elif key not in prov:
                prov[f"deployment.{key}"] = {"value": None, "from": "engine default (see frontier.engine)"}
        ep_from_args = None
        if args.get("enable_expert_parallel"):
            ep_from_args = deployment.get("tp", 1)
        ep = _pick(
            prov,
            "deployment.ep",
            [
                (flags.get("ep"), "--ep flag"),
                (ep_from_args, f"{args_from}: enable_expert_parallel (experts over the TP ranks)"),
                (base_dep.get("ep"), f"scenario file {base_name}"),
            ],
            default=1,
        )
        deployment["ep"] = ep
        deployment["engine"] = _pick(
            prov,
            "deployment.engine",
            [
                (flags.get("engine"), "--engine flag"),
                (base_dep.get("engine"), f"scenario file {base_name}"),
                (
                    "sglang" if run.kind.startswith("sglang") else "vllm",
                    "aiperf records no engine: vLLM assumed (--engine sglang for SGLang)"
                    if run.kind == "aiperf"
                    else f"the result file's kind ({run.kind})",
                ),
            ],
        )
        for key in ("engine_version", "frontend"):
            if flags.get(key) is not None:
                deployment[key] = flags[key]
                prov[f"deployment.{key}"] = {"value": flags[key], "from": f"--{key.replace('_', '-')} flag"}
        for key, value in base_dep.items():  # the scenario file's other knobs (router, ...)
            if key not in deployment:
                deployment[key] = value
                prov[f"deployment.{key}"] = {"value": value, "from": f"scenario file {base_name}"}

    d = {"name": _scenario_name(run), "model": model, "gpu": gpu, "deployment": deployment}
    if base.get("slo"):
        d["slo"] = base["slo"]
    seed = _pick(prov, "seed", [(base.get("seed"), f"scenario file {base_name}")], default=0)
    d["seed"] = seed
    return d, prov


def _scenario_name(run: MeasuredRun) -> str:
    """The replay's scenario name: one folder name, so a label's '/' (an aiperf run's folder)
    becomes '_'."""
    return f"validate-{run.label}".replace("/", "_")


def _cluster_defaults() -> dict:
    from dataclasses import fields as dc_fields

    from frontier.spec.scenario import ClusterSpec

    return {f.name: f.default for f in dc_fields(ClusterSpec)}


# ---------------------------------------------------------------------------- the requests


def build_request_table(run: MeasuredRun, seed: int = 0) -> tuple[RequestTable, dict]:
    """The requests to replay, and where their arrivals and lengths came from."""
    prov: dict = {}
    s = run.settings
    rng = np.random.default_rng(seed)
    rate = s.request_rate
    what = f"{run.kind} file"

    if s.workload is not None:  # the client's own record of its whole workload (aiperf's)
        table = build_requests(WorkloadSpec.from_dict(s.workload, where=f"{run.label}: workload"), rng)
        for key, value in s.workload.items():
            prov[f"workload.{key}"] = {"value": value, "from": f"{what}: {s.workload_from.get(key, 'its workload')}"}
        return table, prov

    if run.has_per_request:
        n = len(run.input_tokens)
        input_tokens = np.maximum(run.input_tokens, 1)
        output_tokens = np.maximum(run.output_tokens, 1)
        prov["workload.num_requests"] = {
            "value": n,
            "from": f"{what}: completed requests" + (f" ({run.failed} failed ones not replayed)" if run.failed else ""),
        }
        prov["workload.input_tokens"] = {"value": "per request", "from": f"{what}: per-request input lengths"}
        prov["workload.output_tokens"] = {"value": "per request", "from": f"{what}: per-request output lengths"}
    else:
        n = s.num_prompts or (int(run.reported.get("completed", 0)) + run.failed)
        if not n:
            raise FrontierError(
                f"{run.label}: the file says neither how many prompts were sent "
                f"nor how many completed; nothing to replay"
            )
        input_tokens, output_tokens = _lengths_from_summary(run, n, rng, prov)
        prov["workload.num_requests"] = {
            "value": n,
            "from": f"{what}: " + ("num_prompts" if s.num_prompts else "completed + failed"),
        }

    if run.arrival_s is not None and run.has_per_request:
        arrival = np.asarray(run.arrival_s, dtype=float)
        source = {"vllm-requests": "per-request queued_ts (engine clock)", "vllm-bench": "per-request start_times"}.get(
            run.kind, "per-request send times"
        )
        prov["workload.arrivals"] = {"value": "per request", "from": f"{what}: {source}"}
    else:
        arrival = _arrivals_from_rate(run, n, rng, prov)

    order = np.argsort(arrival, kind="stable")
    table = RequestTable(
        arrival_s=arrival[order],
        input_tokens=input_tokens[order],
        output_tokens=output_tokens[order],
        source=f"replay of {run.label} ({n} requests)",
        concurrency=s.max_concurrency,
    )
    prov["workload.concurrency"] = {
        "value": s.max_concurrency,
        "from": f"{what}: max_concurrency" if s.max_concurrency else "unlimited (the file sets no max_concurrency)",
    }
    if rate is not None:
        prov["workload.request_rate"] = {
            "value": "inf" if math.isinf(rate) else rate,
            "from": f"{what}: request_rate" if run.kind != "vllm-requests" else "observed arrival rate of the run",
        }
    return table, prov


def _lengths_from_summary(
    run: MeasuredRun, n: int, rng: np.random.Generator, prov: dict
) -> tuple[np.ndarray, np.ndarray]:
    rep = run.reported
    ds = run.settings.dataset
    what = f"{run.kind} file"
    if (
        run.kind == "sglang-bench"
        and str(ds.get("dataset_name", "")).startswith("random")
        and ds.get("random_input_len")
        and ds.get("random_output_len")
    ):
        ratio = float(ds.get("random_range_ratio", 1.0) or 0.0)
        out = []
        for key in ("random_input_len", "random_output_len"):
            hi = int(ds[key])
            lo = max(int(hi * ratio), 1)
            out.append(rng.integers(lo, hi, size=n, endpoint=True, dtype=np.int64))
            name = "input" if "input" in key else "output"
            prov[f"workload.{name}_tokens"] = {
                "value": f"fixed {hi}" if lo == hi else f"uniform [{lo}, {hi}]",
                "from": f"{what}: {key} {hi} x random_range_ratio {ratio:g} (SGLang's random "
                f"dataset draws lengths uniformly from this range)",
            }
        return out[0], out[1]
    completed = int(rep.get("completed", 0))
    if not completed or "total_input_tokens" not in rep or "total_output_tokens" not in rep:
        raise FrontierError(
            f"{run.label}: the file has no per-request lengths and no "
            f"total_input_tokens / total_output_tokens to take means from"
        )
    lengths = []
    for key, name in (("total_input_tokens", "input"), ("total_output_tokens", "output")):
        mean = max(int(round(rep[key] / completed)), 1)
        lengths.append(np.full(n, mean, dtype=np.int64))
        prov[f"workload.{name}_tokens"] = {"value": f"fixed {mean}", "from": f"{what}: {key} / completed (the mean)"}
    return lengths[0], lengths[1]


def _arrivals_from_rate(run: MeasuredRun, n: int, rng: np.random.Generator, prov: dict) -> np.ndarray:
    rate = run.settings.request_rate
    what = f"{run.kind} file"
    if rate is None:
        prov["workload.arrivals"] = {"value": "all at t=0", "from": f"{what} records no request_rate; assumed inf"}
        return np.zeros(n)
    if math.isinf(rate):
        prov["workload.arrivals"] = {"value": "all at t=0", "from": f"{what}: request_rate inf"}
        return np.zeros(n)
    b = run.settings.burstiness
    if b is not None and b > 0 and not math.isclose(b, 1.0):
        spec = ArrivalSpec(process="gamma", rate=rate, cv=1.0 / math.sqrt(b))
    else:
        spec = ArrivalSpec(process="poisson", rate=rate)
    arrival = arrival_times(spec, n, rng)
    how = f"{spec.describe()}, re-drawn with the scenario seed"
    if run.kind == "vllm-bench" and n > 1 and arrival[-1] > 0:
        arrival = arrival * ((n - 1) / rate / arrival[-1])  # vLLM rescales to n / rate overall
        how += ", rescaled to span (n-1)/rate as vllm bench serve does"
    prov["workload.arrivals"] = {
        "value": spec.describe(),
        "from": f"{what}: request_rate {rate:g}" + (f", burstiness {b:g}" if b else "") + f" ({how})",
    }
    return arrival


def _workload_dict(table: RequestTable) -> dict:
    """A `workload:` block that validates and describes the replayed requests."""
    rate = table.rate_rps
    d: dict = {
        "num_requests": len(table),
        "arrival": {"process": "poisson", "rate": "inf" if math.isinf(rate) else float(rate)},
        "input_len": max(int(round(float(table.input_tokens.mean()))), 1),
        "output_len": max(int(round(float(table.output_tokens.mean()))), 1),
    }
    if table.concurrency:
        d["concurrency"] = int(table.concurrency)
    return d


# ---------------------------------------------------------------------------- replay


def plan_replay(run: MeasuredRun, overrides: dict | None = None, scenario_file: str | Path | None = None) -> Replay:
    """The scenario and requests that replay `run` (validated; nothing simulated yet)."""
    from frontier.spec.scenario import scenario_from_dict

    if run.scenario is not None and scenario_file is None:
        return _replay_own_scenario(run, overrides)
    d, prov = build_scenario_dict(run, overrides, scenario_file)
    table, req_prov = build_request_table(run, seed=int(d.get("seed", 0)))
    prov.update(req_prov)
    prov["measured_metrics"] = {"value": run.metrics_from, "from": f"{run.kind} file {run.source.name}"}
    d["workload"] = run.settings.workload or _workload_dict(table)
    if started_context(d["deployment"]):
        prov["deployment.max_model_len"] = {
            "value": "auto",
            "from": "not recorded: auto, the model's context or the longest request its KV cache holds "
            "(the engine served the run, so it started)",
        }
    base_dir = Path(scenario_file).parent if scenario_file else None
    scenario = scenario_from_dict(d, base_dir=base_dir, name=d["name"])
    return Replay(run=run, scenario_dict=d, requests=table, provenance=prov, scenario=scenario)


def _replay_own_scenario(run: MeasuredRun, overrides: dict | None) -> Replay:
    """A Frontier result names its whole scenario: simulate that again (flags still override
    the model, GPU and a co-located deployment's knobs)."""
    import copy

    from frontier.spec.scenario import scenario_from_dict

    d = copy.deepcopy(run.scenario)
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    what = f"Frontier result {run.source.name}"
    prov = {key: {"value": d.get(key), "from": f"{what}: frontier.scenario"} for key in ("model", "gpu", "seed")}
    prov["deployment"] = {"value": "as simulated", "from": f"{what}: frontier.scenario"}
    prov["workload"] = {"value": "as simulated (same generator and seed)", "from": f"{what}: frontier.scenario"}
    for key in ("model", "gpu"):
        if key in flags:
            d[key] = resolve_model(str(flags[key])) or flags[key] if key == "model" else flags[key]
            prov[key] = {"value": d[key], "from": f"--{key} flag"}
    dep = d.get("deployment") or {}
    for key in set(flags) - {"model", "gpu"}:
        if "clusters" in dep:
            raise FrontierError(
                f"--{key.replace('_', '-')} applies to a co-located deployment; {run.label} has clusters"
            )
        dep[key] = flags[key]
        prov[f"deployment.{key}"] = {"value": flags[key], "from": f"--{key.replace('_', '-')} flag"}
    prov["measured_metrics"] = {"value": run.metrics_from, "from": f"{what}"}
    scenario = scenario_from_dict(d, name=str(d.get("name", _scenario_name(run))))
    table = build_requests(scenario.workload, np.random.default_rng(scenario.seed))
    return Replay(run=run, scenario_dict=d, requests=table, provenance=prov, scenario=scenario)


def run_replay(replay: Replay, progress: bool = False) -> Validation:
    """Simulate the replay and compare the prediction with the measurement."""
    from frontier.sim.run import simulate
    from frontier.validate.report import compare

    sim = simulate(replay.scenario, replay.requests, progress=progress)
    return Validation(replay=replay, sim=sim, comparison=compare(replay.run.metrics, sim.summary))


def validate_run(
    run: MeasuredRun, overrides: dict | None = None, scenario_file: str | Path | None = None, progress: bool = False
) -> Validation:
    return run_replay(plan_replay(run, overrides, scenario_file), progress=progress)
