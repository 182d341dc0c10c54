"""The Python API: `frontier.simulate(...)` and `frontier.sweep(...)`.

    import frontier
    summary, requests = frontier.simulate(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm",
                                          tp=1, input_len=1024, output_len=256, concurrency=16,
                                          num_requests=200)
    df = frontier.sweep(model="llama-3.1-70b", gpu="h100-sxm", gpus=8,
                        workload={"input_len": 1024, "output_len": 256},
                        load={"concurrency": [1, 16, 64]}, slo={"ttft_ms": 2000, "tpot_ms": 50})

Both take what the CLI takes: a scenario / sweep file (path) or its dict, or keyword fields.
Errors are `frontier.errors.FrontierError` with the same one-line messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_GPU = "h100-sxm"
DEFAULT_NUM_REQUESTS = 500
DEFAULT_RATE = 4.0


@dataclass(frozen=True)
class Simulation:
    """`summary`: the run in `vllm bench serve --save-result` keys (+ `frontier` block);
    `requests`: one row per request; `result`: the simulator's SimResult (instances, ITLs).
    Unpacks as `summary, requests = frontier.simulate(...)`."""

    summary: dict
    requests: pd.DataFrame
    result: Any

    def __iter__(self):
        return iter((self.summary, self.requests))


def _base(source, what: str) -> tuple[dict, Path | None]:
    from frontier.spec.scenario import read_yaml_mapping

    if source is None:
        return {}, None
    if isinstance(source, dict):
        return dict(source), None
    path = Path(source)
    d = read_yaml_mapping(path, what)
    d.setdefault("name", path.stem)
    return d, path.parent


def simulate(
    scenario: str | Path | dict | None = None,
    *,
    model: str | None = None,
    gpu: str | None = None,
    input_len: int | None = None,
    output_len: int | None = None,
    num_requests: int | None = None,
    rate: float | None = None,
    concurrency: int | None = None,
    prompt_pool: int | None = None,
    prompt_sampling: str | None = None,
    trace: str | None = None,
    slo: dict | None = None,
    seed: int | None = None,
    detailed: bool = False,
    **deployment,
) -> Simulation:
    """Simulate one deployment. `scenario`: a scenario file or dict; keywords override it.
    Deployment fields (tp, pp, dp, ep, max_num_seqs, engine, ...) go in as keywords."""
    from frontier.metrics.vllm_result import vllm_result
    from frontier.sim.run import run_scenario
    from frontier.spec.scenario import scenario_from_dict

    d, base = _base(scenario, "scenario file")
    d.setdefault("name", "api")
    for key, value in (("model", model), ("gpu", gpu), ("seed", seed), ("slo", slo)):
        if value is not None:
            d[key] = value
    d.setdefault("gpu", DEFAULT_GPU)
    if deployment:
        dep = dict(d.get("deployment") or {})
        if "clusters" in dep:
            from frontier.errors import FrontierError

            raise FrontierError(
                f"{', '.join(deployment)}: apply to a co-located deployment; this "
                "scenario has clusters: change its dict instead"
            )
        d["deployment"] = {**dep, **deployment}
    wl = dict(d.get("workload") or {})
    if trace is not None:
        wl = {k: v for k, v in wl.items() if k not in ("input_len", "output_len")}
        wl["trace"] = {"path": str(trace)}
    for key, value in (
        ("input_len", input_len),
        ("output_len", output_len),
        ("num_requests", num_requests),
        ("concurrency", concurrency),
        ("prompt_pool", prompt_pool),
        ("prompt_sampling", prompt_sampling),
    ):
        if value is not None:
            wl[key] = value
    if rate is not None:
        wl["arrival"] = {"process": "poisson", "rate": rate}
    if "trace" not in wl:
        wl.setdefault("num_requests", DEFAULT_NUM_REQUESTS)
        wl.setdefault("arrival", {"process": "poisson", "rate": "inf" if "concurrency" in wl else DEFAULT_RATE})
    d["workload"] = wl
    spec = scenario_from_dict(d, base_dir=base, name=d["name"])
    result = run_scenario(spec, timeline=False)
    return Simulation(vllm_result(result, detailed=detailed), result.requests, result)


def sweep(
    spec: str | Path | dict | None = None,
    output: str | Path | None = None,
    *,
    jobs: int | None = None,
    ray: str | None = None,
    resume: bool = False,
    progress: bool = False,
    plots: bool = True,
    **fields,
) -> pd.DataFrame:
    """Run a sweep (a sweep file, its dict, or its fields as keywords: model, gpu, gpus,
    workload, load, slo, search, ...) and return results.csv's rows as a DataFrame. With
    `output`, the folder gets every file `frontier sweep` writes; `df.attrs` holds `best`
    (best.json's content) and `infeasible` (configuration -> reason)."""
    from frontier.search import run_sweep, sweep_spec_from_dict, write_outputs
    from frontier.search.report import best_config

    d, base = _base(spec, "sweep file")
    d.update(fields)
    parsed = sweep_spec_from_dict(d, base_dir=base, name=d.get("name", "sweep"))
    result = run_sweep(parsed, output, jobs=jobs, ray_address=ray, resume=resume, progress=progress)
    df = result.results
    if output is not None:
        write_outputs(result, plots=plots)
        df.attrs["best"] = best_config(result)
    df.attrs["infeasible"] = {f"{i.label} on {i.gpu}": i.reason for i in result.infeasible}
    return df
