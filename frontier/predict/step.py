"""Whole-step cost: the operators of a batch, predicted, plus what the GPU does not spend in them.

A step costs more than its kernels: each kernel launch leaves a gap (a few microseconds in eager
mode, about one inside a CUDA graph), decode batches replayed from CUDA graphs are padded to the
captured batch sizes, and the host spends time scheduling, preparing inputs and sampling.

How the blocks of a step (see `frontier.ops.graph`) are put together in time:
- one after the other (co-located serving);
- two-batch overlap for expert parallelism: two micro-batches alternate, one computing while
  the other's all-to-all is in flight;
- attention/FFN disaggregation: n micro-batches ping-pong between the attention GPUs and the
  FFN GPUs layer by layer (`AFStepCost`).
The batch handed in is the instance's whole batch; with `dp_attention` ranks it is split evenly
over them (symmetric ranks are costed once, as the slowest one).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from frontier.ops.graph import (BatchStats, Parallel, attention_block, attention_core, ffn_block,
                                grid_neighbours, head_operators, snap, stage_layers)
from frontier.ops.operators import Collective
from frontier.predict.base import Predictor
from frontier.spec.model import ModelSpec

EXACT_TOKENS = 256  # token counts up to this are costed exactly, above on a 2 % grid


def _points_from(x: int, count: int, step: float = 1.02) -> list[int]:
    """x and the next grid points above it: +1 steps up to EXACT_TOKENS, geometric beyond."""
    points, p = [], x
    while len(points) < count:
        points.append(p)
        p = p + 1 if p < EXACT_TOKENS and step == 1.02 else grid_neighbours(p + 1, step)[1]
    return points


# vLLM's default CUDA-graph capture sizes: 1, 2, 4, then every 8 up to 512.
DEFAULT_CAPTURE_SIZES = (1, 2, 4) + tuple(range(8, 513, 8))

# A kernel replayed from a CUDA graph among its neighbours takes less than the same kernel timed
# alone: the calibration times each call cold (L2 flushed, behind a spin kernel, its own ramp-up
# and tail), while in a graph the next kernel's launch and prologue overlap the previous one's
# tail. GRAPH_OVERLAP_US is that difference and GRAPH_KERNEL_FLOOR_US the shortest kernel in a
# graph; both fitted to the decode steps of the development set's runs with 4-8 clients
# (mean TPOT; `make accuracy`), see the README's accuracy section.
GRAPH_OVERLAP_US = 6.0
GRAPH_KERNEL_FLOOR_US = 2.0


def in_graph_ms(op, ms: float) -> float:
    """A kernel's time inside a CUDA graph from its time measured (or predicted) alone."""
    if isinstance(op, Collective):
        return ms
    return max(ms - GRAPH_OVERLAP_US * 1e-3, GRAPH_KERNEL_FLOOR_US * 1e-3)


@dataclass(frozen=True)
class StepOverheads:
    cuda_graph: bool = True
    eager_launch_us: float = 6.0     # CPU launch cost per kernel when not captured
    graph_launch_us: float = 1.0     # gap between kernels replayed from a CUDA graph
    cpu_overhead_ms: float = 1.0     # host time per step: scheduling, input prep, sampling
    capture_sizes: tuple[int, ...] = DEFAULT_CAPTURE_SIZES
    graph_mixed_batches: bool = False  # vLLM 0.11+: piecewise graphs also for prefill/mixed batches
    host_overlapped: bool = False    # async / overlap scheduling: host work runs during the GPU's
    overlap_residual_ms: float = 0.0  # what an overlapped step still waits for on the host

    def wall_ms(self, gpu_ms: float) -> float:
        """A step's wall time: host time after the GPU's, or beside it when overlapped."""
        if self.host_overlapped:
            return max(gpu_ms, self.cpu_overhead_ms) + self.overlap_residual_ms
        return gpu_ms + self.cpu_overhead_ms


@dataclass(frozen=True)
class StepTime:
    total_s: float
    comm_ms: float = 0.0     # all-to-all (EP) or attention<->FFN transfers (AF) of the step
    bubble_ms: float = 0.0   # time the GPUs wait: communication not hidden, pipeline bubbles
    ffn_bubble_ms: float = 0.0  # AF only: the FFN side's idle time


def split(stats: BatchStats, parts: int) -> BatchStats:
    """One of `parts` even shares of a batch (the largest one: counts round up)."""
    if parts == 1:
        return stats

    def up(x: int) -> int:
        return -(-x // parts)

    return BatchStats(up(stats.num_prefill), up(stats.prefill_tokens), up(stats.prefill_sum_q2),
                      up(stats.prefill_sum_qc), up(stats.prefill_sum_kv), stats.prefill_max_q,
                      stats.prefill_max_kv, up(stats.num_decode), up(stats.decode_sum_kv),
                      stats.decode_max_kv, up(stats.num_sampled))


class StepCost:
    """Step time of a batch on one model instance.

    Token-count-shaped blocks are memoised exactly on the token count; attention on length
    statistics snapped to a grid, so a long run predicts few distinct shapes."""

    def __init__(self, model: ModelSpec, par: Parallel, predictor: Predictor,
                 overheads: StepOverheads = StepOverheads(), attn_backend: str = "flash",
                 dtype: str = "bf16", two_batch_overlap: bool = False):
        self.model, self.par, self.predictor = model, par, predictor
        self.overheads, self.attn_backend, self.dtype = overheads, attn_backend, dtype
        self.tbo = two_batch_overlap and model.moe is not None and par.ep > 1
        self._memo: dict[tuple, tuple[float, float]] = {}
        self._fixed: dict[tuple, tuple[float, float]] = {}

    # --- CUDA graphs -------------------------------------------------------------------------
    def uses_graph(self, stats: BatchStats) -> bool:
        o = self.overheads
        if not o.cuda_graph or (stats.num_prefill and not o.graph_mixed_batches):
            return False
        return 0 < stats.tokens <= o.capture_sizes[-1]

    def padded_tokens(self, stats: BatchStats) -> int:
        """A decode-only batch replayed from a CUDA graph runs at the next captured size."""
        if not self.uses_graph(stats):
            return stats.tokens
        sizes = self.overheads.capture_sizes
        return sizes[bisect.bisect_left(sizes, stats.tokens)]

    # --- predicted blocks --------------------------------------------------------------------
    def _ops_ms(self, ops, graph: bool) -> tuple[float, float]:
        """(compute ms, communication ms) of (operator, count) pairs, launch gaps included.

        Replayed from a graph, kernels follow each other with a small fixed gap. Eager, the host
        launches while the GPU runs, so a kernel shorter than its launch waits for the launch."""
        ms = self.predictor.ops_ms([op for op, _ in ops])
        gap = self.overheads.graph_launch_us * 1e-3
        launch = self.overheads.eager_launch_us * 1e-3
        compute = comm = 0.0
        for (op, count), t in zip(ops, ms):
            t = count * (in_graph_ms(op, t) + gap if graph else max(t, launch))
            if isinstance(op, Collective) and op.kind == "all_to_all":
                comm += t
            else:
                compute += t
        return compute, comm

    def _block(self, key: tuple, build, graph: bool) -> tuple[float, float]:
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._ops_ms(build(), graph)
        return hit

    def _fill(self, keys: list[tuple], build, graph: bool) -> None:
        """Predict the blocks of many memo keys in one predictor call (batched misses)."""
        keys = [k for k in dict.fromkeys(keys) if k not in self._memo]
        if not keys:
            return
        lists = [build(k) for k in keys]
        flat = [pair for ops in lists for pair in ops]
        ms = iter(self.predictor.ops_ms([op for op, _ in flat]))
        gap = self.overheads.graph_launch_us * 1e-3
        launch = self.overheads.eager_launch_us * 1e-3
        for key, ops in zip(keys, lists):
            compute = comm = 0.0
            for op, count in ops:
                t = next(ms)
                t = count * (in_graph_ms(op, t) + gap if graph else max(t, launch))
                if isinstance(op, Collective) and op.kind == "all_to_all":
                    comm += t
                else:
                    compute += t
            self._memo[key] = (compute, comm)

    def _on_token_grid(self, kind: str, tokens: int, graph: bool, build) -> tuple[float, float]:
        """A token-shaped block at `tokens`: exact up to 256 tokens, above interpolated between
        the neighbouring points of a 2 % grid (GEMM time is close to linear in the rows there).
        A miss predicts the next 16 points with it, in one call."""
        lo, hi = (tokens, tokens) if tokens <= EXACT_TOKENS else grid_neighbours(tokens, 1.02)
        for t in (lo, hi):
            if (kind, t, graph) not in self._memo:
                self._fill([(kind, p, graph) for p in _points_from(t, 16)], lambda k: build(k[1]), graph)
        a, b = self._memo[(kind, lo, graph)], self._memo[(kind, hi, graph)]
        if hi == lo:
            return a
        w = (tokens - lo) / (hi - lo)
        return a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1])

    def head_ms(self, tokens: int, rows: int, graph: bool) -> float:
        """Embedding (per token) and LM head with sampling (per sampled row)."""
        m, p, d = self.model, self.par, self.dtype
        embed = self._on_token_grid("embed", tokens, graph, lambda t: head_operators(m, p, t, 0, d))[0]
        if not rows:
            return embed
        return embed + self._on_token_grid("lm_head", rows, graph, lambda r: head_operators(m, p, 0, r, d))[0]

    def layers_ms(self, tokens: int, graph: bool) -> tuple[float, float]:
        """(compute, all-to-all) ms of the layers' token-shaped blocks for one rank's `tokens`
        (the EP group of the MoE layers gathers the tokens of all attention-DP ranks)."""
        m, p, d = self.model, self.par, self.dtype
        return self._on_token_grid("layers", tokens, graph, lambda t: (
            attention_block(m, p, t, d) + ffn_block(m, p, t, d, t * p.dp_attention)))

    def _prefill_key(self, stats: BatchStats, graph: bool) -> tuple:
        return ("pre", BatchStats(stats.num_prefill, snap(stats.prefill_tokens), snap(stats.prefill_sum_q2),
                                  snap(stats.prefill_sum_qc), snap(stats.prefill_sum_kv),
                                  snap(stats.prefill_max_q, 1.2), snap(stats.prefill_max_kv, 1.2)), graph)

    def warm(self, prompt_tokens) -> None:
        """Predict, in one call, the attention of each prompt prefilled whole and alone: the
        commonest prefill of a run, known before it starts."""
        budget_free = [int(n) for n in set(prompt_tokens)]
        keys = [self._prefill_key(BatchStats(1, n, n * n, 0, n, n, n), False) for n in budget_free]
        m, p, be, d = self.model, self.par, self.attn_backend, self.dtype
        self._fill(keys, lambda k: attention_core(m, p, k[1], be, d), False)

    def attention_ms(self, stats: BatchStats, graph: bool) -> float:
        """Attention proper of one rank's batch, prefill and decode parts apart.

        Prefill statistics are snapped to a 2 % grid. Decode attention is linear in the KV
        tokens read, so it is predicted at the two neighbouring points of a 5 % grid of
        `decode_sum_kv` and interpolated; a miss predicts the grid ahead (decode batches grow)
        and the neighbouring batch sizes in the same call."""
        total = 0.0
        m, p, be, d = self.model, self.par, self.attn_backend, self.dtype
        if stats.num_prefill:
            key = self._prefill_key(stats, graph)
            total += self._block(key, lambda: attention_core(m, p, key[1], be, d), graph)[0]
        if stats.num_decode:
            b, s = stats.num_decode, stats.decode_sum_kv
            lo, hi = grid_neighbours(s, 1.05)

            # The longest sequence only shapes how a decode kernel splits its work; the
            # calibrated predictors do not see it, so the key carries the mean length instead.
            def key(batch: int, g: int) -> tuple:
                return ("dec", batch, g, -(-g // batch), graph)

            if key(b, lo) not in self._memo or key(b, hi) not in self._memo:
                ahead = _points_from(lo, 24, 1.05)
                sizes = {max(1, b + d) for d in (-2, -1, 0, 1, 2)}
                self._fill([key(bb, g) for bb in sizes for g in ahead if g >= bb],
                           lambda k: attention_core(m, p, BatchStats(num_decode=k[1], decode_sum_kv=k[2],
                                                                     decode_max_kv=k[3]), be, d), graph)
            a, c = self._memo[key(b, lo)][0], self._memo[key(b, hi)][0]
            total += a if hi == lo else a + (c - a) * (s - lo) / (hi - lo)
        return total

    # --- the step ------------------------------------------------------------------------------
    def cost(self, stats: BatchStats) -> StepTime:
        """The step of the instance's whole batch (all attention-DP ranks)."""
        rank = split(stats, self.par.dp_attention)
        graph = self.uses_graph(rank)
        if not self.tbo:
            # Everything but attention depends on (tokens, sampled rows): memoised whole.
            key = (rank.tokens, rank.num_sampled, graph)
            fixed = self._fixed.get(key)
            if fixed is None:
                tokens = self.padded_tokens(rank)
                compute, comm = self.layers_ms(tokens, graph)
                fixed = self._fixed[key] = (self.head_ms(tokens, rank.num_sampled, graph) + compute + comm, comm)
            gpu = fixed[0] + self.attention_ms(rank, graph)
            return StepTime(self.overheads.wall_ms(gpu) * 1e-3, fixed[1], fixed[1])
        tokens = self.padded_tokens(rank)
        head = self.head_ms(tokens, rank.num_sampled, graph)
        # Two-batch overlap: each half computes while the other's dispatch/combine is in flight,
        # so per layer the longer of the two stages sets the pace; one stage fills the pipeline.
        half = split(rank, 2)
        compute, comm = self.layers_ms(-(-tokens // 2), graph)
        compute += self.attention_ms(half, graph)
        _, moe_layers = stage_layers(self.model, self.par)
        overlapped = 2 * max(compute, comm) + min(compute, comm) / max(moe_layers, 1)
        gpu = head + overlapped
        return StepTime(self.overheads.wall_ms(gpu) * 1e-3, 2 * comm, overlapped - 2 * compute)

    def step_s(self, stats: BatchStats) -> float:
        """Wall time of one step in seconds, host overhead included."""
        return self.cost(stats).total_s

    def gpu_free_step_ms(self, stats: BatchStats) -> float:
        """The step without host overhead, in ms."""
        return self.cost(stats).total_s * 1e3 - self.overheads.wall_ms(0.0)

    def breakdown(self, stats: BatchStats):
        """[(operator, count, ms per call)] of one rank's step (before launch and host overheads)."""
        rank = split(stats, self.par.dp_attention)
        ops = (head_operators(self.model, self.par, self.padded_tokens(rank), rank.num_sampled, self.dtype)
               + attention_block(self.model, self.par, self.padded_tokens(rank), self.dtype)
               + attention_core(self.model, self.par, rank, self.attn_backend, self.dtype)
               + ffn_block(self.model, self.par, self.padded_tokens(rank), self.dtype, stats.tokens))
        ms = self.predictor.ops_ms([op for op, _ in ops])
        return [(op, count, float(t)) for (op, count), t in zip(ops, ms)]


@dataclass(frozen=True)
class AFLink:
    bandwidth_gbps: float   # per attention instance, one direction
    latency_us: float


class AFStepCost:
    """Attention/FFN disaggregation: M attention instances and N FFN instances exchange each
    layer's activations, with the batch cut into n micro-batches that ping-pong.

    Per layer and micro-batch: attention a, transfer t each way, FFN f. The n micro-batches
    circulate through attention -> link -> FFN -> link like jobs in a closed pipeline, so one
    layer of all of them takes max(n * max(a, t, f), a + t + f + t): the busiest stage when n
    micro-batches keep it fed, else one micro-batch's round trip.
    """

    def __init__(self, attention: StepCost, ffn: StepCost, attention_instances: int,
                 ffn_instances: int, micro_batches: int, link: AFLink):
        self.attention, self.ffn = attention, ffn
        self.M, self.N, self.n = attention_instances, ffn_instances, micro_batches
        self.link = link
        self.layers = stage_layers(attention.model, attention.par)[0]

    def layer_times_ms(self, stats: BatchStats) -> tuple[float, float, float]:
        """(a, t, f) in ms for one micro-batch of one layer."""
        att, model = self.attention, self.attention.model
        inst = split(stats, self.M)
        mb = split(inst, self.n)
        graph = att.uses_graph(mb)
        L = self.layers
        a = (att._block(("af-att", mb.tokens, graph), lambda: attention_block(model, att.par, mb.tokens, att.dtype),
                        graph)[0] + att.attention_ms(mb, graph)) / L
        ffn_tokens = -(-mb.tokens * self.M // self.N)
        f = sum(self.ffn._block(("ffn", ffn_tokens), lambda: ffn_block(
            model, self.ffn.par, ffn_tokens, self.ffn.dtype, ffn_tokens), False)) / L
        size = mb.tokens * model.hidden_size * model.dtype_bytes
        t = self.link.latency_us * 1e-3 + size / (self.link.bandwidth_gbps * 1e9) * 1e3
        return a, t, f

    def cost(self, stats: BatchStats) -> StepTime:
        a, t, f = self.layer_times_ms(stats)
        n = self.n
        cycle = max(n * max(a, t, f), a + 2 * t + f)
        inst = split(stats, self.M)
        head = self.attention.head_ms(inst.tokens, inst.num_sampled, False)
        gpu = self.layers * cycle + head
        return StepTime(self.attention.overheads.wall_ms(gpu) * 1e-3, comm_ms=self.layers * 2 * n * t,
                       bubble_ms=self.layers * (cycle - n * a), ffn_bubble_ms=self.layers * (cycle - n * f))

    def step_s(self, stats: BatchStats) -> float:
        return self.cost(stats).total_s


def af_step_formula_ms(a: float, t: float, f: float, n: int, layers: int) -> float:
    """The AF pipeline's time for `layers` layers of n micro-batches (see AFStepCost)."""
    return layers * max(n * max(a, t, f), a + 2 * t + f)

