"""Whole-step cost: the operators of a batch, predicted, plus what the GPU does not spend in them.

A step costs more than its kernels: each kernel launch leaves a gap (a few microseconds in eager
mode, about one inside a CUDA graph), decode batches replayed from CUDA graphs are padded to the
captured batch sizes, and the host spends time scheduling, preparing inputs and sampling.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

from frontier.ops.graph import BatchStats, Parallel, attention_operators, snapped, token_operators
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
    memoised exactly on (tokens, sampled rows); the length-shaped part (attention) on batch
    statistics snapped to a 2 % grid, so a long run predicts few distinct shapes."""

    def __init__(self, model: ModelSpec, par: Parallel, predictor: Predictor,
                 overheads: StepOverheads = StepOverheads(), attn_backend: str = "flash",
                 dtype: str = "bf16"):
        self.model, self.par, self.predictor = model, par, predictor
        self.overheads, self.attn_backend, self.dtype = overheads, attn_backend, dtype
        self._token_memo: dict[tuple, float] = {}
        self._attn_memo: dict[tuple, float] = {}

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
        akey = (snapped(stats), graph)
        attn_ms = self._attn_memo.get(akey)
        if attn_ms is None:
            ops = attention_operators(self.model, self.par, akey[0], attn_backend=self.attn_backend,
                                      dtype=self.dtype)
            attn_ms = self._attn_memo[akey] = self._ops_ms(ops, graph)
        return token_ms + attn_ms

    def step_s(self, stats: BatchStats, moe_tokens: int | None = None) -> float:
        """Wall time of one step in seconds, host overhead included."""
        return (self.gpu_ms(stats, moe_tokens) + self.overheads.cpu_overhead_ms) * 1e-3
