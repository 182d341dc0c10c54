"""The event loop: requests arrive, a router hands them to instances, batches complete, KV moves.

Time advances only by events (an arrival, a batch completing, a pipeline stage freeing up, a KV
transfer landing), on one heap-ordered clock. The same scenario and seed give the same result.

Deployments by the roles of their clusters:
- co-located: one `mixed` cluster of `dp` instances behind a router;
- PD-disaggregated: `prefill` instances hand each request, after its first token, to a `decode`
  instance; the decode instance reserves KV blocks first (so a full decode cluster backs up
  into prefill, which keeps the blocks until the transfer is done), then the KV crosses the link;
- AF-disaggregated: the `attention` cluster schedules, each step ping-pongs micro-batches with
  the `ffn` cluster (`AFPipeline`).
Every duration comes from the clusters' `StepModel`s (`frontier.predict.step`).
"""

from __future__ import annotations

import gc
import heapq
import itertools
from collections import Counter
from functools import cached_property
import math
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from frontier.engine import (
    drafting_graph_tokens,
    FRONTEND_US_PER_PROMPT_TOKEN,
    SGLANG_UNSEEN_GIB,
    SGLANG_UNSET_RUNNING,
    version_tuple,
)
from frontier.errors import SpecError
from frontier.metrics.serving import serving_metrics
from frontier.ops.experts import ExpertRouting, Fabric
from frontier.ops.graph import Parallel
from frontier.predict import load_predictor
from frontier.predict.links import Link, rank_link
from frontier.predict.roofline import RooflineModel
from frontier.predict.scaled import scaled_from
from frontier.predict.step import (
    AFPipeline,
    BlockCosts,
    Sequential,
    SpeculativeDecoding,
    StepModel,
    StepOverheads,
    TwoBatchOverlap,
)
from frontier.predict.engine_kernels import with_engine_attention, with_engine_gemms, with_engine_kernels
from frontier.predict.sustained import SustainedClock
from frontier.sim.frontend import Frontend
from frontier.sim.instance import Batch, Instance
from frontier.sim.kv_cache import BlockManager, KVHold
from frontier.sim.recorder import Recorder, RequestLog
from frontier.sim.request import Request
from frontier.sim.router import make_router
from frontier.sim.scheduler import Scheduler, SGLangScheduler
from frontier.spec.memory import (
    SGLANG_SWA_FULL_TOKENS_RATIO,
    SGLANG_SWA_POOL_RELEASE,
    KVCacheTooSmall,
    MemoryPlan,
    check_vllm_starts,
    check_vllm_state_blocks,
    plan_memory,
)
from frontier.spec.scenario import ClusterSpec, Scenario
from frontier.workload import RequestTable, build_requests

INF = float("inf")
SGLANG_DECODE_RESERVED_TOKENS = 512  # sglang/srt/disaggregation/decode.py num_reserved_decode_tokens


class BatchDone(NamedTuple):
    instance: Instance
    batch: Batch


class KVArrived(NamedTuple):
    instance: Instance  # the decode instance
    request: Request


class AtScheduler(NamedTuple):
    """A request has crossed the front end and reaches the scheduler."""

    request: Request


class Received(NamedTuple):
    """A scheduler that plans ahead takes in a request at the end of the iteration in progress."""

    instance: Instance
    request: Request


class StageFree(NamedTuple):
    """A pipeline stage of the instance can take the next batch."""

    instance: Instance


@dataclass
class SimResult:
    scenario: Scenario
    summary: dict
    columns: dict  # per request: name -> array (see `requests`)
    itl_s: np.ndarray
    itl_weights: np.ndarray
    recorder: Recorder
    instances: list = None

    @cached_property
    def requests(self):
        """One row per request, as a DataFrame (pandas is imported only when asked for)."""
        import pandas as pd

        return pd.DataFrame(self.columns)


@dataclass
class Cluster:
    spec: ClusterSpec
    instances: list[Instance]
    memory: MemoryPlan
    predictor_sources: dict
    kv_transfer_s: list[float] = field(default_factory=list)  # PD prefill: each KV's time on the link
    kv_exposed_s: list[float] = field(default_factory=list)  # PD decode: each KV's wait once pulled


def block_costs_for(scenario: Scenario, spec: ClusterSpec) -> tuple[BlockCosts, dict]:
    """The block-cost cache of one cluster's instances, and where its predictions come from."""
    gpu = scenario.cluster_gpu(spec)
    model = scenario.cluster_model(spec)
    engine = scenario.cluster_engine(spec)
    predictor = with_engine_attention(
        with_engine_gemms(load_predictor(gpu), gpu.name, spec.engine), gpu.name, spec.engine
    )
    if model.moe or model.mla or model.linear_attention:  # the engine kernels measured: MoE, MLA, GDN
        marlin = model.moe_quant == "mxfp4" and spec.mxfp4_backend == "marlin"
        hybrid = model.linear_attention is not None
        predictor = with_engine_kernels(
            predictor,
            gpu.name,
            spec.engine,
            mxfp4_marlin=marlin,
            linear_attention=hybrid,
            cutlass_moe=scenario.cluster_flashinfer_cutlass_moe(spec),
        )
    predictor = SustainedClock(predictor, gpu)
    routing = ExpertRouting(spec.expert_skew, spec.expert_load_file, spec.eplb_redundant_experts, spec.expert_load_cv)
    fabric = Fabric(gpu.gpus_per_node, gpu.intra_node_gbps, gpu.network_gbps, gpu.sm_count)
    par = Parallel(
        tp=spec.tp,
        pp=spec.pp,
        ep=spec.ep,
        dp_attention=spec.dp_attention,
        routing=routing,
        ep_backend=spec.ep_backend,
        fabric=fabric,
        symm_mem=scenario.cluster_symm_mem(spec),
        padded_deep_gemm=scenario.cluster_padded_deep_gemm_moe(spec),
    )
    graphs = spec.cuda_graph_sizes or tuple(s for s in engine.capture_sizes if s <= spec.cuda_graph_max_bs) or (1,)
    if spec.speculative:
        graphs = drafting_graph_tokens(
            spec.engine, spec.engine_version, graphs, spec.speculative.num_speculative_tokens
        )
    overheads = StepOverheads(
        cuda_graph=spec.cuda_graph,
        cpu_overhead_ms=spec.cpu_overhead_ms,
        capture_sizes=graphs,
        graph_mixed_batches=engine.graph_mixed_batches,
        host_overlapped=scenario.cluster_host_overlapped(spec),
        host_us_per_seq=engine.host.step_us_per_seq,
        overlap_residual_ms=engine.host.overlap_residual_ms,
    )
    blocks = BlockCosts(
        model,
        par,
        predictor,
        overheads,
        attn_backend=spec.attention_backend,
        dtype=model.weight_dtype,
        fused_quant=engine.fused_quant,
    )
    return blocks, predictor.sources()


def predictor_coverage(cluster_sources) -> dict:
    """Which operator families no calibration of the GPU answers, from the clusters' predictor
    sources (`Predictor.sources`): `predictor_fallback`, answered by the analytic roofline
    (source "roofline", or its fallback past the engine's measured kernels: "..., else roofline");
    `predictor_scaled`, by another GPU's calibration scaled by roofline ratios ("..., roofline-scaled")."""
    analytic = RooflineModel.source
    sources = [(f, s) for per_cluster in cluster_sources for f, s in per_cluster.items()]
    return {
        "predictor_fallback": sorted({f for f, s in sources if s == analytic or s.endswith(f"else {analytic}")}),
        "predictor_scaled": sorted({f for f, s in sources if scaled_from(s)}),
    }


def step_model_for(scenario: Scenario, spec: ClusterSpec, step_time=None) -> tuple[StepModel, dict]:
    """The step model of a scheduling cluster: its timing rule (or `step_time`, a rule given by
    the caller) and the model's KV size for transfers."""
    model = scenario.cluster_model(spec)
    if step_time is not None:
        rule, sources = step_time, {"step": type(step_time).__name__}
    else:
        blocks, sources = block_costs_for(scenario, spec)
        if spec.role == "attention":
            ffn = scenario.cluster("ffn")
            ffn_blocks, ffn_sources = block_costs_for(scenario, ffn)
            sources = {
                f: (s if s == ffn_sources[f] else f"{s} (attention) / {ffn_sources[f]} (ffn)")
                for f, s in sources.items()
            }
            rule = AFPipeline(blocks, ffn_blocks, spec.dp, ffn.dp, spec.micro_batches, _af_link(scenario, spec))
        elif spec.two_batch_overlap and model.moe is not None and spec.ep > 1:
            rule = TwoBatchOverlap(blocks)
        else:
            rule = Sequential(blocks)
        if spec.speculative is not None:
            rule = SpeculativeDecoding(rule, spec.speculative, model.num_layers)
    return StepModel(rule, model.kv_bytes_per_token, model.num_layers), sources


def make_scheduler(
    spec: ClusterSpec, kv: BlockManager, ranks: int, max_seqs: int = 0, ignore_eos: bool = False
) -> Scheduler:
    """The engine's scheduling policy over one instance's KV cache (`ranks` attention-DP ranks
    scheduled together, with their combined limits). `max_seqs`: fewer sequences than
    max_num_seqs that can run (a hybrid model's recurrent states: MemoryPlan.state_seqs);
    `ignore_eos`: whether the requests generate all their output tokens (WorkloadSpec)."""
    if spec.engine == "sglang":
        # The server's limits split over its attention-DP ranks (frontier.engine SGLANG_UNSET_RUNNING).
        dp = spec.dp_attention
        unset = ("max_num_seqs", SGLANG_UNSET_RUNNING) in {(f, v) for f, v, _ in spec.defaults_from}
        per_rank = spec.max_num_seqs if unset else spec.max_num_seqs // dp
        return SGLangScheduler(
            kv,
            max(1, min(per_rank, max_seqs or per_rank)) * ranks,
            max(1, spec.max_num_batched_tokens // dp) * ranks,
            spec.max_prefill_tokens * ranks,
            spec.enable_mixed_chunk,
            spec.schedule_policy,
            schedule_conservativeness=0.3 if dp > 1 else 1.0,
            ignore_eos=ignore_eos,
        )
    seqs = min(spec.max_num_seqs, max_seqs or spec.max_num_seqs)
    return Scheduler(kv, seqs * ranks, spec.max_num_batched_tokens * ranks, spec.enable_chunked_prefill)


def memory_for(scenario: Scenario, spec: ClusterSpec, where: str, hint: bool = True) -> MemoryPlan:
    """The cluster's memory plan (its KV pool num_gpu_blocks_override's where set, and the
    longest request it serves); a SpecError where it cannot hold the weights or, under vLLM,
    one request of max_model_len tokens (vLLM would not start; with `hint`, the refusal names
    a TP that would)."""
    part = {"attention": "attention", "ffn": "ffn"}.get(spec.role, "all")
    model = scenario.cluster_model(spec)
    draft_layers = int(spec.speculative is not None and spec.speculative.method != "ngram")
    plan = plan_memory(
        model,
        scenario.cluster_gpu(spec),
        tp=spec.tp,
        pp=spec.pp,
        ep=spec.ep,
        dp_attention=spec.dp_attention,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        block_size=spec.block_size,
        max_num_batched_tokens=spec.max_num_batched_tokens,
        max_num_seqs=spec.max_num_seqs,
        where=where,
        part=part,
        activations_inside=spec.engine != "sglang",
        redundant_experts=spec.eplb_redundant_experts,
        unseen_bytes=SGLANG_UNSEEN_GIB * 2**30,
        draft_layers=draft_layers,
        paged=spec.engine == "vllm",
        window_share=_sglang_window_share(spec),
    )
    if spec.num_gpu_blocks_override:
        # A pool set outright. vLLM up to 0.12 checks its start-up against the memory it profiled
        # and sets the override after; later releases check the override's memory
        # (`_apply_num_blocks_override` first). Either passing means it starts: a replayed run's
        # own pool proves the start where the plan's estimate falls short, and a small test pool
        # does not refuse a context the GPU holds.
        blocks = spec.num_gpu_blocks_override
        kv = max(plan.kv_bytes, blocks * plan.block_size * plan.kv_bytes_per_token)
        plan = replace(plan, num_blocks=blocks, kv_bytes=kv)
    context = spec.max_model_len if spec.max_model_len > 0 else model.max_model_len
    if spec.engine == "vllm" and part != "ffn":
        try:
            context = check_vllm_starts(
                plan,
                model,
                tp=spec.tp,
                pp=spec.pp,
                max_model_len=spec.max_model_len or model.max_model_len,
                max_num_batched_tokens=spec.max_num_batched_tokens,
                gpu_memory_utilization=spec.gpu_memory_utilization,
                draft_layers=draft_layers,
                where=where,
            )
        except KVCacheTooSmall as exc:
            if not hint:
                raise
            tp = _tp_that_starts(scenario, spec)
            raise KVCacheTooSmall(f"{exc} ({f'tp={tp} holds it' if tp else 'no tp up to 8 holds it'})", exc.fits)
        check_vllm_state_blocks(plan, spec.max_num_seqs, version_tuple(spec.engine_version), where)
    return replace(plan, max_model_len=context)


def _sglang_window_share(spec: ClusterSpec) -> float:
    """The share of its pool's tokens SGLang gives a sliding-window layer (1: its pool counts
    them as full-attention layers'); see memory.SGLANG_SWA_FULL_TOKENS_RATIO."""
    version = version_tuple(spec.engine_version)
    if spec.engine != "sglang" or (version and version < SGLANG_SWA_POOL_RELEASE):
        return 1.0
    return SGLANG_SWA_FULL_TOKENS_RATIO


def _tp_that_starts(scenario: Scenario, spec: ClusterSpec) -> int | None:
    """The smallest larger TP (up to 8, the heads divided) at which vLLM would start, for the
    refusal's hint; None for attention-DP / EP layouts, whose GPU counts TP does not set alone."""
    if spec.ep > 1 or spec.dp_attention > 1:
        return None
    model = scenario.cluster_model(spec)
    for tp in (t for t in (2, 4, 8) if t > spec.tp and not model.num_heads % t):
        try:
            memory_for(scenario, replace(spec, tp=tp), "deployment", hint=False)
            return tp
        except SpecError:
            continue
    return None


def build_clusters(
    scenario: Scenario, recorder: Recorder, step_time=None, fast_forward: bool = True, prefix_unit_tokens: int = 512
) -> list[Cluster]:
    """Instances of every cluster that schedules (all roles but `ffn`)."""
    where = {
        c.name: (f"deployment.clusters[{i}]" if len(scenario.clusters) > 1 else "deployment")
        for i, c in enumerate(scenario.clusters)
    }
    memory = {c.name: memory_for(scenario, c, where[c.name]) for c in scenario.clusters}
    clusters = []
    for spec in scenario.clusters:
        if spec.role == "ffn":
            continue
        step_model, sources = step_model_for(scenario, spec, step_time)
        # Whether the scheduler plans iteration n+1 while n runs (async / overlap scheduling): the
        # engine's; a rule of known step times (`step_time`) says so itself, else it does not.
        if step_time is None:
            ahead = scenario.cluster_host_overlapped(spec)
        else:
            ahead = getattr(step_time, "schedules_ahead", False)
        instances, ranks = spec.dp, spec.dp_attention
        if spec.role == "attention":
            # The attention instances of an AF engine step together, fed through the FFN cluster:
            # one scheduler with their combined capacity.
            ranks, instances = spec.dp, 1
        plan = memory[spec.name]
        num_blocks, max_len = plan.num_blocks * ranks, plan.max_model_len
        insts = []
        for i in range(instances):
            kv = BlockManager(
                num_blocks, plan.block_size, spec.enable_prefix_caching, prefix_unit_tokens, plan.seq_blocks
            )
            sched = make_scheduler(spec, kv, ranks, plan.state_seqs, scenario.workload.requests_ignore_eos)
            insts.append(
                Instance(f"{spec.name}/{i}", spec.role, sched, step_model, spec.pp, max_len, recorder, fast_forward)
            )
            if spec.engine == "sglang":
                insts[-1].decode_reserved_tokens = SGLANG_DECODE_RESERVED_TOKENS
                insts[-1].sglang_max_req_len = min(max_len, plan.kv_tokens) - 1
            insts[-1].schedules_ahead = ahead
        clusters.append(Cluster(spec, insts, plan, sources))
    return clusters


def _af_link(scenario: Scenario, spec: ClusterSpec) -> Link:
    link = scenario.af_link
    return rank_link(scenario.cluster_gpu(spec), spec.tp * spec.pp, link.bandwidth_gbps, link.latency_us)


def _kv_link(scenario: Scenario, spec: ClusterSpec) -> Link:
    """A prefill rank's KV leaves from its tp x pp GPUs, each over its own NIC."""
    link = scenario.kv_link
    return rank_link(scenario.cluster_gpu(spec), spec.tp * spec.pp, link.bandwidth_gbps, link.latency_us)


def _frontend(scenario: Scenario, spec: ClusterSpec) -> Frontend:
    """The entry cluster's front end, one API server per replica. A decode-only benchmark sends
    token ids with KV already in place (SGLang's fake transfer backend): nothing to tokenise.
    Behind Dynamo's front end, Dynamo tokenises and its worker hands the engine token ids
    (SGLang's with skip_tokenizer_init, Dynamo's default: ai-dynamo/dynamo components/src/
    dynamo/sglang/request_handlers/handler_base.py `_get_input_param`), so the engine's own
    tokeniser's per-token work is left out and Dynamo's wait per prompt token comes instead."""
    host = scenario.cluster_engine(spec).host
    tokenises = spec.role != "decode"
    return Frontend(
        scenario.cluster_request_ms(spec),
        host.request_serial_ms,
        host.request_us_per_token if tokenises and spec.frontend == "engine" else 0.0,
        host.stream_us_per_output,
        spec.dp,
        spec.tokenizer_workers,
        spec.stream_interval,
        FRONTEND_US_PER_PROMPT_TOKEN[spec.frontend] if tokenises else 0.0,
    )


class Simulation:
    """One run: the clusters, the clock, and what happens at each event."""

    def __init__(
        self, scenario: Scenario, requests: RequestTable, progress: bool, timeline: bool, step_time, fast_forward: bool
    ):
        self.scenario = scenario
        self.table = requests
        self.recorder = Recorder(timeline)
        self.clusters = build_clusters(scenario, self.recorder, step_time, fast_forward, requests.block_tokens)
        self.entry = self.clusters[0] if scenario.topology != "PD-disaggregated" else self._role("prefill")
        self.decode = self._role("decode") if scenario.topology == "PD-disaggregated" else None
        self.router = make_router(self.entry.spec.router)
        self.decode_router = make_router(scenario.decode_router)
        # Requests are made as they arrive and recorded as they leave (`log`).
        self.arrivals = requests.arrival_s
        self.log = RequestLog(len(self.arrivals))
        # A closed-loop client sends its next request a random gap after its last one finished
        # (its own processing of the response and of the next request, the HTTP round trip):
        # exponential gaps of mean `send_gap_s`, seeded. Slots free at these times, soonest first.
        self.send_gap_s = requests.send_gap_s
        self.gap_rng = np.random.default_rng(scenario.seed + 1)
        self.slots_free_s = [0.0] * requests.concurrency if requests.concurrency else None
        for c in self.clusters:  # predict the prompts' prefill attention in one batch
            if c.spec.role != "decode":
                c.instances[0].step_model.warm(requests.input_tokens, c.spec.max_num_batched_tokens)
        self.kv_link = _kv_link(scenario, self.entry.spec) if self.decode else None
        self.attach_frontend(None if step_time is not None else _frontend(scenario, self.entry.spec))
        self.heap: list = []
        self.seq = itertools.count()
        self.in_flight = 0
        self.next_req = 0
        self.measuring = not requests.warmup  # False while a warmup's requests are served
        self.clock = 0.0
        self.bar = _Progress(len(self.arrivals)) if progress else None
        self.holds: dict[int, tuple[Instance, KVHold, float]] = {}  # PD: request -> prefill side
        # PD: when each attention-DP rank's NICs of each prefill instance are free again
        self.link_free = {i: [0.0] * self.entry.spec.dp_attention for i in self.entry.instances} if self.decode else {}

    def attach_frontend(self, frontend: Frontend | None) -> None:
        """The engine's front end (None: known step times stand for the whole engine)."""
        self.frontend = frontend
        streams = frontend is not None and frontend.stream_s > 0
        for c in self.clusters:  # with an output queue the batches' first tokens go through it
            for inst in c.instances:
                inst.first_tokens = [] if streams else None

    def _role(self, role: str) -> Cluster:
        return next(c for c in self.clusters if c.spec.role == role)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        arrivals, heap, pop = self.arrivals, self.heap, heapq.heappop
        n, slots, warmup = len(arrivals), self.slots_free_s, self.table.warmup
        sent, arrival_s = -1, INF  # the next request and its arrival (read once: the loop asks often)
        while True:
            t_send = INF
            i = self.next_req
            if not self.measuring and i == warmup and not self.in_flight:
                arrivals = self.start_measuring()
            if i < n and (slots is None or slots) and (self.measuring or i < warmup):
                if i != sent:
                    sent, arrival_s = i, float(arrivals[i])
                # A request held back by the client's concurrency limit is sent when a slot frees.
                t_send = max(arrival_s, self.clock, slots[0] if slots else 0.0)
            t_event = heap[0][0] if heap else INF
            if t_send == INF and t_event == INF:
                break
            if t_send <= t_event:
                self.clock = t_send
                self.on_arrival(self.request(i))
                continue
            self.clock, _, event = pop(heap)
            kind = type(event)
            if kind is BatchDone:
                if not event.batch.cancelled:
                    self.on_batch_done(event.instance, event.batch)
            elif kind is KVArrived:
                self.on_kv_arrived(event.instance, event.request)
            elif kind is AtScheduler:
                self.on_at_scheduler(event.request)
            elif kind is Received:
                self._admit(event.instance, event.request)
            else:
                self.kick(event.instance)
        if self.bar:
            self.bar.close()
        # Never expected: every admitted request runs to completion.
        self.log.close("not finished when the simulation ran out of events", self.arrivals)

    def start_measuring(self) -> np.ndarray:
        """The warmup is done and the engine idle: the measured requests leave from now (their
        arrival times shifted by as much) and the counters start from zero; what the warmup left
        in the prefix caches stays."""
        self.measuring = True
        w = self.table.warmup
        late = self.clock - float(self.arrivals[w])
        if late > 0:
            self.arrivals = self.arrivals.copy()
            self.arrivals[w:] += late
        self.recorder.reset_gaps()
        if self.frontend is not None:
            self.frontend.reset_counters()
        for c in self.clusters:
            c.kv_transfer_s.clear()
            c.kv_exposed_s.clear()
            for inst in c.instances:
                inst.reset_counters()
        return self.arrivals

    def request(self, i: int) -> Request:
        t = self.table
        prefix = t.prefix_blocks[i] if t.prefix_blocks is not None else None
        return Request(i, float(self.arrivals[i]), int(t.input_tokens[i]), int(t.output_tokens[i]), prefix)

    def push(self, at_s: float, event) -> None:
        heapq.heappush(self.heap, (at_s, next(self.seq), event))

    def interrupt(self, inst: Instance) -> None:
        """Something new for `inst`: cut its decode run at the iteration in progress."""
        short = inst.interrupt(self.clock)
        if short is not None:
            self.push(short.done_s, BatchDone(inst, short))

    def kick(self, inst: Instance) -> None:
        """Start as many batches as the instance can now."""
        now = self.clock
        while inst.can_issue(now):
            batch = inst.issue(now)
            if batch is None:
                return
            self.push(batch.done_s, BatchDone(inst, batch))
            if inst.next_issue_s < batch.done_s:
                self.push(inst.next_issue_s, StageFree(inst))

    # --- events -------------------------------------------------------------------------------
    def on_arrival(self, req: Request) -> None:
        """The client sends `req`; it holds a client slot until it finishes or fails."""
        self.next_req += 1
        req.arrival_s = self.clock
        self.in_flight += 1
        if self.slots_free_s is not None:
            heapq.heappop(self.slots_free_s)  # this request takes the client slot that freed first
        if self.frontend is None:
            self.on_at_scheduler(req)
        else:
            self.push(self.frontend.admit(self.clock, req.prompt_tokens), AtScheduler(req))

    def on_at_scheduler(self, req: Request) -> None:
        inst = self.router.pick(self.entry.instances, req)
        if inst.role == "decode":  # decode-only: arrives prefilled, its first token out
            self._arrive_prefilled(inst, req)
            return
        if inst.schedules_ahead:
            seen = inst.iteration_end(self.clock)
            if seen > self.clock:
                self.push(seen, Received(inst, req))
                return
        self._admit(inst, req)

    def _admit(self, inst: Instance, req: Request) -> None:
        if inst.admit(req):
            self.interrupt(inst)
            self.kick(inst)
        else:
            self._finished([req])

    def _arrive_prefilled(self, inst: Instance, req: Request) -> None:
        """Decode-only: the request's prompt KV is in place when it arrives (SGLang's fake KV
        transfer backend), its first token already counted."""
        req.num_computed, req.num_output = req.prompt_tokens, 1
        req.first_token_s = req.last_token_s = self.clock
        if req.max_output_tokens <= 1:
            req.finish_s, req.status = self.clock, "finished"
        elif inst.accept_prefilled(req):
            self.interrupt(inst)
            self._pull(inst)
            self.kick(inst)
            return
        self._finished([req])

    def on_batch_done(self, inst: Instance, batch: Batch) -> None:
        emitted = inst.output_tokens
        finished, handoffs = inst.complete(batch)
        late = 0.0
        if inst.first_tokens is not None:  # the front end streams the tokens through its output queue
            lasts = sum(r.num_output > 1 for r in finished)  # (a one-token output's last is its first)
            tokens = inst.output_tokens - emitted
            late = self.frontend.stream(inst.name, batch.start_s, batch.done_s, tokens, len(inst.first_tokens), lasts)
            if late:  # they reach their clients late
                for req in inst.first_tokens:
                    req.first_token_s += late
                for req in finished:
                    req.finish_s += late
            inst.first_tokens.clear()
        self._finished(finished, late)
        for req in handoffs:
            self._hand_off(inst, req)
        if inst.role == "decode":
            self._pull(inst)
        self.kick(inst)

    def _finished(self, finished: list[Request], late: float = 0.0) -> None:
        """Requests leave; a closed loop's clients see them `late` s from now and send again."""
        self.in_flight -= len(finished)
        if self.slots_free_s is not None:
            for _ in finished:
                gap = self.gap_rng.exponential(self.send_gap_s) if self.send_gap_s else 0.0
                heapq.heappush(self.slots_free_s, self.clock + late + gap)
        for req in finished:
            self.log.record(req)
        if self.bar and finished:
            self.bar.update(len(finished))

    def _hand_off(self, prefill: Instance, req: Request) -> None:
        """A prefilled request goes to a decode instance; the prefill keeps its KV until sent.
        Prefill-only: the request ends with its first token."""
        if self.decode is None:
            prefill.kv.free(req)
            req.max_output_tokens, req.finish_s, req.status = req.num_output, self.clock, "finished"
            self._finished([req])
            return
        hold = prefill.kv.hold(req)
        target = self.decode_router.pick(self.decode.instances, req)
        if not target.accept_prefilled(req):
            prefill.kv.free(hold)
            self._finished([req])
            return
        self.holds[req.id] = (prefill, hold, self.clock)
        self.interrupt(target)
        self._pull(target)

    def _pull(self, decode: Instance) -> None:
        for req in decode.pull_kv():
            if req.id not in self.holds:  # decode-only: the KV is already there
                decode.kv_arrived(req)
                continue
            prefill, hold, handed_s = self.holds[req.id]
            # Layer by layer only if the decode side had blocks ready when the prefill ended.
            layerwise = self.scenario.kv_transfer != "whole" and self.clock <= handed_s
            links = self.link_free[prefill]  # the request leaves from the rank whose link frees first
            free = heapq.heappop(links)
            start, done = prefill.step_model.kv_transfer(req, self.kv_link, self.clock, free, layerwise)
            heapq.heappush(links, done)
            self.push(done, KVArrived(decode, req))
            self.recorder.transfer(f"{prefill.name} kv out", start, done, f"kv {req.id}")
            self.entry.kv_transfer_s.append(done - start)
            self.decode.kv_exposed_s.append(done - self.clock)

    def on_kv_arrived(self, decode: Instance, req: Request) -> None:
        """The KV is in the decode instance. The client sees the first token now: the decode
        server streams it (the prefill server's token travels with the KV; sglang/srt/
        disaggregation/decode.py hands the request to its running batch only once the transfer
        is done), so waiting for decode blocks and the transfer are part of TTFT, not TPOT."""
        prefill, hold, _ = self.holds.pop(req.id)
        prefill.kv.free(hold)
        req.first_token_s = req.last_token_s = self.clock
        decode.kv_arrived(req)
        self.interrupt(decode)
        self.kick(prefill)
        self.kick(decode)


def simulate(
    scenario: Scenario,
    requests: RequestTable,
    progress: bool = False,
    timeline: bool = True,
    step_time=None,
    fast_forward: bool = True,
) -> SimResult:
    """Serve `requests` with the scenario's deployment.

    `step_time`: a timing rule, an object with `step(BatchStats) -> StepTime`, to use instead of the predictors
    (known step times for tests and what-if studies). `fast_forward`: advance unchanging decode
    batches many iterations at once (exact for step times linear in the KV length)."""
    wall0 = time.perf_counter()
    sim = Simulation(scenario, requests, progress, timeline, step_time, fast_forward)
    # The loop makes and drops millions of small objects but next to no reference cycles (a
    # few thousand objects in a 100,000-request run): the cyclic collector's passes over the
    # live objects only cost time (2-4 % of the loop), so it is paused while the loop runs.
    collecting = gc.isenabled()
    gc.disable()
    try:
        sim.run()
    finally:
        if collecting:
            gc.enable()
    return _result(sim, time.perf_counter() - wall0)


def run_scenario(scenario: Scenario, progress: bool = False, timeline: bool = True) -> SimResult:
    requests = build_requests(scenario.workload, np.random.default_rng(scenario.seed))
    return simulate(scenario, requests, progress=progress, timeline=timeline)


class _Progress:
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


def _result(sim: Simulation, wall_s: float) -> SimResult:
    scenario, table = sim.scenario, sim.table
    n = len(sim.arrivals)
    log = sim.log.columns
    cols = {
        "request_id": np.arange(n),
        "arrival_s": log["arrival_s"],
        "first_token_s": log["first_token_s"],
        "finish_s": log["finish_s"],
        "input_tokens": np.asarray(table.input_tokens, dtype=np.int64),
        # What each request was served (prefill-only: its first token); unrecorded: asked.
        "output_tokens": np.where(
            log["max_output_tokens"] > 0, log["max_output_tokens"], np.asarray(table.output_tokens, dtype=np.int64)
        ),
    }
    cols.update({k: log[k] for k in ("cached_tokens", "preemptions", "path", "status", "fail_reason")})
    cols["ttft_s"] = cols["first_token_s"] - cols["arrival_s"]
    cols["e2el_s"] = cols["finish_s"] - cols["arrival_s"]
    # A warmup's requests are not measured (as a benchmark client leaves them out); the summary
    # says how many there were and how many of them failed.
    warmup_failed = int(np.sum(cols["status"][: table.warmup] == "failed"))
    cols = {k: v[table.warmup :] for k, v in cols.items()}
    n -= table.warmup
    ok = cols["status"] == "finished"
    failed = cols["status"] == "failed"
    itl_s, itl_w = sim.recorder.itl_samples()
    start = float(cols["arrival_s"].min()) if n else 0.0
    end = float(cols["finish_s"][ok].max()) if ok.any() else start
    summary = serving_metrics(
        duration_s=end - start,
        input_tokens=cols["input_tokens"][ok],
        output_tokens=cols["output_tokens"][ok],
        ttft_s=cols["ttft_s"][ok],
        e2el_s=cols["e2el_s"][ok],
        itl_s=itl_s,
        itl_weights=itl_w,
        failed=int(failed.sum()),
        slo=scenario.slo,
    )
    duration = max(end - start, 1e-12)
    sources = sim.clusters[0].predictor_sources
    summary["frontier"] = {
        "scenario": scenario.name,
        "model": scenario.model.name,
        "precision": scenario.model.precision,
        "gpu": scenario.gpu.name,
        "deployment": scenario.describe_deployment(),
        "workload": sim.table.source,
        "predictor": sources,
        **predictor_coverage(c.predictor_sources for c in sim.clusters),
        "simulated_gpus": scenario.total_gpus,
        "num_requests": n,
        "warmup_requests": table.warmup,
        **({"warmup_failed": warmup_failed} if warmup_failed else {}),
        "failed_reasons": dict(Counter(cols["fail_reason"][failed]).most_common()),
        "outputs_clipped": sum(i.outputs_clipped for c in sim.clusters for i in c.instances),
        "preemptions": int(cols["preemptions"].sum()),
        "steps": sum(i.steps for c in sim.clusters for i in c.instances),
        "batches": sum(i.batches for c in sim.clusters for i in c.instances),  # planned one by one
        "clusters": _cluster_summaries(sim, duration),
        "frontend": sim.frontend.load(duration) if sim.frontend is not None else None,
        "wall_time_s": wall_s,
    }
    return SimResult(
        scenario, summary, cols, itl_s, itl_w, sim.recorder, [i for c in sim.clusters for i in c.instances]
    )


def _cluster_summaries(sim: Simulation, duration: float) -> list[dict]:
    scenario = sim.scenario
    out = []
    for c in sim.clusters:
        insts, spec = c.instances, c.spec
        busy = sum(i.busy_s for i in insts)
        steps = max(sum(i.steps for i in insts), 1)
        engines = len(insts)
        kv = insts[0].kv  # the instance's pool: its attention ranks' together
        row = _cluster_row(scenario, spec)
        row.update(
            {
                "input_tokens_per_s": sum(i.prefill_tokens for i in insts) / duration,
                "output_tokens_per_s": sum(i.output_tokens for i in insts) / duration,
                "steady_input_tokens_per_s": steady_rate(insts, 1),
                "steady_output_tokens_per_s": steady_rate(insts, 2),
                "busy_fraction": busy / (engines * duration),
                # The longest request served: as set, vLLM's auto-fit, or SGLang's max_req_len.
                "max_model_len_served": insts[0].sglang_max_req_len or c.memory.max_model_len,
                "kv_blocks_per_instance": kv.num_blocks,
                "kv_tokens_per_instance": kv.num_blocks * kv.block_size,
                "kv_block_tokens": kv.block_size,
                # Blocks each running sequence holds besides its tokens' (vLLM: memory.KVGroups).
                "kv_seq_blocks": kv.seq_blocks,
                "kv_seq_blocks_hold": c.memory.kv_groups.seq_blocks_hold if c.memory.kv_groups else "",
                "weight_gib_per_gpu": c.memory.weight_bytes / 2**30,
                "kv_cache_gib_per_gpu": c.memory.kv_tokens * c.memory.kv_bytes_per_token / 2**30,
                "peak_kv_fraction": max(i.kv.peak_used / max(i.kv.num_blocks, 1) for i in insts),
                "prefix_cache_hit_rate": (
                    sum(i.kv.prefix_hit_tokens for i in insts) / max(sum(i.kv.prefix_query_tokens for i in insts), 1)
                ),
                "kv_transfer_ms": float(np.mean(c.kv_transfer_s)) * 1e3 if c.kv_transfer_s else None,
                "kv_exposed_ms": float(np.mean(c.kv_exposed_s)) * 1e3 if c.kv_exposed_s else None,
                "all_to_all_ms": (
                    sum(i.comm_ms for i in insts) / steps if spec.ep > 1 and spec.role != "attention" else None
                ),
                "bubble_fraction": (
                    sum(i.bubble_ms for i in insts) * 1e-3 / busy
                    if busy and (spec.two_batch_overlap or spec.role == "attention")
                    else None
                ),
            }
        )
        out.append(row)
        if spec.role == "attention":  # the FFN cluster works in the attention cluster's steps
            ffn = scenario.cluster("ffn")
            row = _cluster_row(scenario, ffn)
            row.update(
                {
                    "busy_fraction": busy / duration,
                    "bubble_fraction": sum(i.ffn_bubble_ms for i in insts) * 1e-3 / busy if busy else None,
                    "af_transfer_ms": sum(i.comm_ms for i in insts) / steps,
                    "weight_gib_per_gpu": memory_for(scenario, ffn, "deployment").weight_bytes / 2**30,
                }
            )
            out.append(row)
    return out


STEADY_QUANTILES = (0.1, 0.9)


def steady_rate(instances, column: int) -> float | None:
    """Tokens per second of a cluster in steady state: the cluster's cumulative count of prefill
    (`column` 1) or output (2) tokens, summed over its instances batch by batch, is timed between
    the moments it passes 10 % and 90 % of its final value, so the ramp-up (the first 10 % of
    the tokens) and the drain (the last 10 %) are left out. None without tokens."""
    times, added = [], []
    for inst in instances:
        log = np.asarray(inst.token_log, dtype=float).reshape(-1, 3)  # rows (time, prefill, output)
        new = np.diff(log[:, column], prepend=0.0)
        times.append(log[new > 0, 0])
        added.append(new[new > 0])
    times, added = (np.concatenate(x) if x else np.zeros(0) for x in (times, added))
    if len(times) < 2:
        return None
    order = np.lexsort((added, times))  # by time (then count, as sorting the pairs would)
    times, counts = times[order], np.cumsum(added[order])
    lo, hi = (q * counts[-1] for q in STEADY_QUANTILES)
    t_lo, t_hi = np.interp([lo, hi], counts, times)
    return (hi - lo) / (t_hi - t_lo) if t_hi > t_lo else None


def _cluster_row(scenario: Scenario, spec: ClusterSpec) -> dict:
    gpu = scenario.cluster_gpu(spec)
    return {
        "name": spec.name,
        "role": spec.role,
        "gpu": gpu.name,
        "gpus": spec.gpus,
        "nodes": math.ceil(spec.gpus / gpu.gpus_per_node),
        "instances": spec.dp,
    }
