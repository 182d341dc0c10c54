"""Whole-step cost: the operators of a batch, predicted, plus what the GPU does not spend in them.

A step costs more than its kernels: each kernel launch leaves a gap (a few microseconds in eager
mode, about one inside a CUDA graph), decode batches replayed from CUDA graphs are padded to the
captured batch sizes, and the host spends time scheduling, preparing inputs and sampling.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from frontier.ops.graph import BatchStats, Parallel, attention_operators, grid_neighbours, snap, token_operators
from frontier.predict.base import Predictor
from frontier.spec.model import ModelSpec

# vLLM's default CUDA-graph capture sizes: 1, 2, 4, then every 8 up to 512.
DEFAULT_CAPTURE_SIZES = (1, 2, 4) + tuple(range(8, 513, 8))


@dataclass(frozen=True)
class StepOverheads:
    cuda_graph: bool = True
    eager_launch_us: float = 6.0     # CPU launch cost per kernel when not captured
    graph_launch_us: float = 1.0     # gap between kernels replayed from a CUDA graph
    cpu_overhead_ms: float = 1.0     # host time per step: scheduling, input prep, sampling
    capture_sizes: tuple[int, ...] = DEFAULT_CAPTURE_SIZES


class StepCost:
    """Step time of a batch on one model instance.

    The token-count-shaped part of a step (projections, MLP/MoE, collectives, LM head) is
    memoised exactly on (tokens, sampled rows); the length-shaped part (attention) on length
    statistics snapped to a grid, so a long run predicts few distinct shapes."""

    def __init__(self, model: ModelSpec, par: Parallel, predictor: Predictor,
                 overheads: StepOverheads = StepOverheads(), attn_backend: str = "flash",
                 dtype: str = "bf16"):
        self.model, self.par, self.predictor = model, par, predictor
        self.overheads, self.attn_backend, self.dtype = overheads, attn_backend, dtype
        self._token_memo: dict[tuple, float] = {}

    def padded(self, stats: BatchStats) -> BatchStats:
        """A decode-only batch replayed from a CUDA graph runs at the next captured size."""
        sizes = self.overheads.capture_sizes
        if not self.uses_graph(stats):
            return stats
        size = sizes[bisect.bisect_left(sizes, stats.num_decode)]
        if size == stats.num_decode:
            return stats
        # Padded rows cost GEMM rows, not attention work.
        return BatchStats(num_decode=size, decode_sum_kv=stats.decode_sum_kv,
                          decode_max_kv=stats.decode_max_kv, num_sampled=stats.num_sampled)

    def uses_graph(self, stats: BatchStats) -> bool:
        return (self.overheads.cuda_graph and not stats.num_prefill
                and 0 < stats.num_decode <= self.overheads.capture_sizes[-1])

    def operators(self, stats: BatchStats, moe_tokens: int | None = None):
        padded = self.padded(stats)
        return (token_operators(self.model, self.par, padded.tokens, padded.num_sampled,
                                dtype=self.dtype, moe_tokens=moe_tokens),
                attention_operators(self.model, self.par, stats, attn_backend=self.attn_backend,
                                    dtype=self.dtype))

    def breakdown(self, stats: BatchStats, moe_tokens: int | None = None):
        """[(operator, count, ms per call)] of the step (before launch and host overheads)."""
        token_ops, attn_ops = self.operators(stats, moe_tokens)
        ops = token_ops + attn_ops
        ms = self.predictor.ops_ms([op for op, _ in ops])
        return [(op, count, float(t)) for (op, count), t in zip(ops, ms)]

    def _ops_ms(self, ops, graph: bool) -> float:
        """Kernel time plus launch gaps.

        Replayed from a graph, kernels follow each other with a small fixed gap. Eager, the host
        launches while the GPU runs, so a kernel shorter than its launch waits for the launch."""
        ms = self.predictor.ops_ms([op for op, _ in ops])
        if graph:
            gap_ms = self.overheads.graph_launch_us * 1e-3
            return sum(c * (t + gap_ms) for (_, c), t in zip(ops, ms))
        launch_ms = self.overheads.eager_launch_us * 1e-3
        return sum(c * max(t, launch_ms) for (_, c), t in zip(ops, ms))

    def gpu_ms(self, stats: BatchStats, moe_tokens: int | None = None) -> float:
        """Kernel time plus launch gaps of one step, no host overhead."""
        graph = self.uses_graph(stats)
        padded = self.padded(stats)
        key = (padded.tokens, padded.num_sampled, graph, moe_tokens)
        token_ms = self._token_memo.get(key)
        if token_ms is None:
            ops = token_operators(self.model, self.par, padded.tokens, padded.num_sampled,
                                  dtype=self.dtype, moe_tokens=moe_tokens)
            token_ms = self._token_memo[key] = self._ops_ms(ops, graph)
        return token_ms + self.attention_ms(stats, graph)

    def attention_ms(self, stats: BatchStats, graph: bool) -> float:
        """Attention of the batch, prefill and decode parts apart (each memoised per operator).

        Decode attention is linear in the KV tokens read, so it is predicted at the two
        neighbouring points of a 5 % grid of `decode_sum_kv` and interpolated: few distinct
        shapes reach the predictor, with no visible error."""
        total = 0.0
        if stats.num_prefill:
            prefill = BatchStats(stats.num_prefill, stats.prefill_tokens, snap(stats.prefill_sum_q2),
                                 snap(stats.prefill_sum_qc), snap(stats.prefill_sum_kv),
                                 snap(stats.prefill_max_q, 1.2), snap(stats.prefill_max_kv, 1.2))
            total += self._ops_ms(attention_operators(self.model, self.par, prefill,
                                                      attn_backend=self.attn_backend, dtype=self.dtype), graph)
        if stats.num_decode:
            b, s = stats.num_decode, stats.decode_sum_kv
            lo, hi = grid_neighbours(s, 1.05)
            max_kv = snap(stats.decode_max_kv, 1.2)
            ms = [self._ops_ms(attention_operators(
                self.model, self.par,
                BatchStats(num_decode=b, decode_sum_kv=g, decode_max_kv=max(min(max_kv, g), -(-g // b))),
                attn_backend=self.attn_backend, dtype=self.dtype), graph) for g in (lo, hi)]
            total += ms[0] if hi == lo else ms[0] + (ms[1] - ms[0]) * (s - lo) / (hi - lo)
        return total

    def step_s(self, stats: BatchStats, moe_tokens: int | None = None) -> float:
        """Wall time of one step in seconds, host overhead included."""
        return (self.gpu_ms(stats, moe_tokens) + self.overheads.cpu_overhead_ms) * 1e-3
