"""The event loop: requests arrive, a router hands them to instances, batches complete.

Time advances only by events (an arrival, a batch completing, a pipeline stage freeing up), on
one heap-ordered clock. The same scenario and seed give the same result.
"""
from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from frontier.errors import SpecError
from frontier.metrics.serving import serving_metrics
from frontier.ops.graph import Parallel
from frontier.predict.base import Predictor
from frontier.predict.roofline import AlphaBetaModel, RooflineModel
from frontier.predict.step import StepCost, StepOverheads
from frontier.sim.instance import Batch, Instance
from frontier.sim.kv_cache import BlockManager
from frontier.sim.recorder import Recorder
from frontier.sim.request import Request
from frontier.sim.router import make_router
from frontier.sim.scheduler import Scheduler
from frontier.spec.memory import plan_memory
from frontier.spec.scenario import ClusterSpec, Scenario
from frontier.workload import RequestTable, build_requests

INF = float("inf")


def make_predictor(gpu) -> Predictor:
    try:
        from frontier.predict import load_predictor
    except ImportError:  # calibrated predictors not available: analytic models only
        return Predictor(gpu.name, {"collective": AlphaBetaModel(gpu)}, RooflineModel(gpu))
    return load_predictor(gpu)


@dataclass
class SimResult:
    scenario: Scenario
    summary: dict
    requests: pd.DataFrame
    itl_s: np.ndarray
    itl_weights: np.ndarray
    recorder: Recorder
    instances: list = None


@dataclass
class Cluster:
    spec: ClusterSpec
    instances: list[Instance]
    memory: object
    predictor_sources: dict


def build_cluster(scenario: Scenario, spec: ClusterSpec, recorder: Recorder, where: str,
                  step_time=None, fast_forward: bool = True, prefix_unit_tokens: int = 512) -> Cluster:
    if spec.role != "mixed":
        raise SpecError(f"{where}.role: '{spec.role}' clusters (disaggregated serving) are not "
                        "simulated yet; use role: mixed")
    gpu = scenario.cluster_gpu(spec)
    model = scenario.model
    memory = plan_memory(model, gpu, tp=spec.tp, pp=spec.pp, ep=spec.ep,
                         gpu_memory_utilization=spec.gpu_memory_utilization,
                         block_size=spec.block_size,
                         max_num_batched_tokens=spec.max_num_batched_tokens,
                         max_num_seqs=spec.max_num_seqs, where=where)
    if step_time is None:
        predictor = make_predictor(gpu)
        par = Parallel(tp=spec.tp, pp=spec.pp, ep=spec.ep)
        overheads = StepOverheads(cuda_graph=spec.cuda_graph, cpu_overhead_ms=spec.cpu_overhead_ms)
        step_time = StepCost(model, par, predictor, overheads, attn_backend=spec.attention_backend)
        sources = predictor.sources()
    else:
        sources = {"step": type(step_time).__name__}
    num_blocks = spec.num_gpu_blocks_override or memory.num_blocks
    instances = []
    for i in range(spec.dp):
        kv = BlockManager(num_blocks, spec.block_size, spec.enable_prefix_caching, prefix_unit_tokens)
        sched = Scheduler(kv, spec.max_num_seqs, spec.max_num_batched_tokens, spec.enable_chunked_prefill)
        instances.append(Instance(f"{spec.name}/{i}", sched, step_time, spec.pp, model.max_model_len,
                                  recorder, fast_forward))
    return Cluster(spec, instances, memory, sources)


def simulate(scenario: Scenario, requests: RequestTable, progress: bool = False,
             timeline: bool = True, step_time=None, fast_forward: bool = True) -> SimResult:
    """Serve `requests` with the scenario's deployment.

    `step_time`: an object with `step_s(BatchStats) -> seconds` to use instead of the predictors
    (known step times for tests and what-if studies). `fast_forward`: advance unchanging decode
    batches many iterations at once (exact for step times linear in the KV length)."""
    wall0 = time.perf_counter()
    recorder = Recorder(timeline)
    clusters = [build_cluster(scenario, c, recorder, f"deployment.clusters[{i}]"
                              if len(scenario.clusters) > 1 else "deployment", step_time, fast_forward,
                              requests.block_tokens)
                for i, c in enumerate(scenario.clusters)]
    entry = clusters[0]
    router = make_router(entry.spec.router)
    n = len(requests)
    reqs = [Request(i, float(a), int(p), int(o),
                    requests.prefix_blocks[i] if requests.prefix_blocks is not None else None)
            for i, (a, p, o) in enumerate(zip(requests.arrival_s, requests.input_tokens,
                                              requests.output_tokens))]
    limit = requests.concurrency or INF
    heap: list = []
    seq = itertools.count()
    in_flight = 0
    next_req = 0
    bar = _progress(n) if progress else None

    def start(inst: Instance, now: float, horizon: float) -> None:
        while inst.can_issue(now):
            batch = inst.issue(now, horizon)
            if batch is None:
                return
            heapq.heappush(heap, (batch.done_s, next(seq), batch, inst))
            if inst.next_issue_s < batch.done_s:
                heapq.heappush(heap, (inst.next_issue_s, next(seq), None, inst))

    clock = 0.0
    while True:
        t_send = INF
        if next_req < n and in_flight < limit:
            # A request held back by the client's concurrency limit is sent when a slot frees.
            t_send = max(reqs[next_req].arrival_s, clock)
        t_event = heap[0][0] if heap else INF
        if t_send == INF and t_event == INF:
            break
        if t_send <= t_event:
            clock = t_send
            req = reqs[next_req]
            next_req += 1
            req.arrival_s = clock
            inst = router.pick(entry.instances, req)
            if inst.admit(req):
                in_flight += 1
                start(inst, clock, _next_send(reqs, next_req, in_flight, limit, heap, clock))
            elif bar:
                bar.update(1)
            continue
        clock, _, batch, inst = heapq.heappop(heap)
        if batch is not None:
            finished = inst.complete(batch)
            in_flight -= len(finished)
            if bar and finished:
                bar.update(len(finished))
        start(inst, clock, _next_send(reqs, next_req, in_flight, limit, heap, clock))
    if bar:
        bar.close()
    unfinished = [r for r in reqs if r.status == "pending"]
    for r in unfinished:  # never expected: every admitted request runs to completion
        r.status, r.fail_reason = "failed", "not finished when the simulation ran out of events"
    return _result(scenario, requests, reqs, clusters, recorder, time.perf_counter() - wall0)


def _next_send(reqs: list[Request], next_req: int, in_flight: int, limit: float, heap: list,
               clock: float) -> float:
    """When the next outside event may change an instance's batch (for decode fast-forward)."""
    if next_req >= len(reqs):
        return INF
    if in_flight < limit:
        return max(reqs[next_req].arrival_s, clock)
    return heap[0][0] if heap else INF  # a completion elsewhere may free a client slot


def run_scenario(scenario: Scenario, progress: bool = False, timeline: bool = True) -> SimResult:
    requests = build_requests(scenario.workload, np.random.default_rng(scenario.seed))
    return simulate(scenario, requests, progress=progress, timeline=timeline)


class _progress:
    """A transient rich progress bar over requests done."""

    def __init__(self, total: int):
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._task = self._progress.add_task("simulating", total=total)
        self._progress.start()

    def update(self, k: int) -> None:
        self._progress.advance(self._task, k)

    def close(self) -> None:
        self._progress.stop()


def _result(scenario: Scenario, table: RequestTable, reqs: list[Request], clusters: list[Cluster], recorder: Recorder,
            wall_s: float) -> SimResult:
    df = pd.DataFrame({
        "request_id": [r.id for r in reqs],
        "arrival_s": [r.arrival_s for r in reqs],
        "first_token_s": [r.first_token_s for r in reqs],
        "finish_s": [r.finish_s for r in reqs],
        "input_tokens": [r.prompt_tokens for r in reqs],
        "output_tokens": [r.max_output_tokens for r in reqs],
        "preemptions": [r.preemptions for r in reqs],
        "instance": [r.instance for r in reqs],
        "status": [r.status for r in reqs],
        "fail_reason": [r.fail_reason for r in reqs],
    })
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["e2el_s"] = df.finish_s - df.arrival_s
    ok = df[df.status == "finished"]
    itl_s, itl_w = recorder.itl_samples()
    start = float(df.arrival_s.min()) if len(df) else 0.0
    end = float(ok.finish_s.max()) if len(ok) else start
    summary = serving_metrics(
        duration_s=end - start, input_tokens=ok.input_tokens.to_numpy(),
        output_tokens=ok.output_tokens.to_numpy(), ttft_s=ok.ttft_s.to_numpy(),
        e2el_s=ok.e2el_s.to_numpy(), itl_s=itl_s, itl_weights=itl_w,
        failed=int((df.status == "failed").sum()), slo=scenario.slo)
    duration = max(end - start, 1e-12)
    summary["frontier"] = {
        "scenario": scenario.name,
        "model": scenario.model.name,
        "gpu": scenario.gpu.name,
        "deployment": scenario.describe_deployment(),
        "workload": table.source,
        "predictor": clusters[0].predictor_sources,
        "predictor_fallback": sorted(f for c in clusters for f, s in c.predictor_sources.items()
                                     if s == "roofline"),
        "simulated_gpus": scenario.total_gpus,
        "num_requests": len(reqs),
        "failed_reasons": df[df.status == "failed"].fail_reason.value_counts().to_dict(),
        "preemptions": int(df.preemptions.sum()),
        "steps": sum(i.steps for c in clusters for i in c.instances),
        "clusters": [{
            "name": c.spec.name, "role": c.spec.role, "gpu": scenario.cluster_gpu(c.spec).name,
            "gpus": c.spec.gpus, "instances": c.spec.dp,
            "kv_blocks_per_instance": c.memory.num_blocks,
            "kv_tokens_per_instance": c.memory.kv_tokens,
            "weight_gib_per_gpu": c.memory.weight_bytes / 2**30,
            "kv_cache_gib_per_gpu": c.memory.kv_bytes / 2**30,
            "busy_fraction": sum(i.busy_s for i in c.instances) / (len(c.instances) * duration),
            "peak_kv_fraction": max(i.kv.peak_used / max(i.kv.num_blocks, 1) for i in c.instances),
            "prefix_cache_hit_rate": (sum(i.kv.prefix_hit_tokens for i in c.instances)
                                      / max(sum(i.kv.prefix_query_tokens for i in c.instances), 1)),
        } for c in clusters],
        "wall_time_s": wall_s,
    }
    return SimResult(scenario, summary, df, itl_s, itl_w, recorder,
                     [i for c in clusters for i in c.instances])
