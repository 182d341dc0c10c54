"""Block costs: the predicted time of each block of a step, memoised for a whole run.

A step costs more than its kernels: each kernel launch leaves a gap (a few microseconds in eager
mode, about one inside a CUDA graph), decode batches replayed from CUDA graphs are padded to the
captured batch sizes, and the host spends time scheduling, preparing inputs and sampling.

`BlockCosts` prices the blocks of `frontier.ops.graph` (head, attention block, attention core,
FFN block) for one model instance and keeps every answer: the timing rules of
`frontier.predict.step` put the blocks together in time, and several rules share one cache.
Token-shaped blocks are memoised on the token count (exact up to 256 tokens, interpolated on a
2 % grid above). Attention of one prefill sequence (the common case under chunked prefill) and
of a decode batch is interpolated in a dense table of (new tokens, context) or (batch, KV
tokens), filled a whole row per predictor call; attention of several prefills at once on length
statistics snapped to a grid (see `frontier.predict.grid`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from frontier.ops.graph import (
    BatchStats,
    Parallel,
    attention_block,
    attention_core,
    dense_mlp,
    ffn_block,
    head_operators,
)
from frontier.ops.operators import Collective, EPExchange
from frontier.predict.base import Predictor
from frontier.predict.grid import EXACT_TOKENS, grid_neighbours, neighbours_memo, points_from, snap
from frontier.spec.model import ModelSpec

import numpy as np

PREFILL_STEP = 1.05  # grid of the one-prefill attention table, both axes
DECODE_KV_STEP = 1.05  # grid of decode attention's KV sum
_PREFILL_NEIGHBOURS = neighbours_memo(PREFILL_STEP)  # looked up first on the hot path
_DECODE_NEIGHBOURS = neighbours_memo(DECODE_KV_STEP)
MULTI_PREFILL_MEMO = 50_000  # batches of several prefills remembered (then forgotten, to bound memory)


def _grid_points(top: int, step: float) -> int:
    """How many points of the grid (exact to 64, geometric above) reach `top`."""
    n, p = 0, 1
    while p < top:
        p = grid_neighbours(p + 1, step)[1] if p >= 64 else p + 1
        n += 1
    return n


# vLLM's default CUDA-graph capture sizes: 1, 2, 4, then every 8 up to 512.
DEFAULT_CAPTURE_SIZES = (1, 2, 4) + tuple(range(8, 513, 8))

# A kernel replayed from a CUDA graph among its neighbours takes less than the same kernel timed
# alone: the calibration times each call cold (L2 flushed, behind a spin kernel, its own ramp-up
# and tail), while in a graph the next kernel's launch and prologue overlap the previous one's
# tail. GRAPH_OVERLAP_US is that difference and GRAPH_KERNEL_FLOOR_US the shortest kernel in a
# graph. Fitted to the whole decode steps of the development set's runs with at most 4 clients
# (tests/validate/test_whole_steps.py; median / p90 APE): 2.5 us 7.6 / 14.8 %, 3 us 4.7 / 18.5 %,
# 3.5 us 4.3 / 20.2 %, 4 us 4.5 / 21.6 %. The H100 reference's GEMMs are 3.6 us + up to 7 us
# (growing with the bytes read) slower alone than aiconfigurator's graph-replayed ones, which
# now answer the dense GEMMs (frontier.predict.engine_kernels.DenseGemm); before they did, the
# fit was 6 us.
GRAPH_OVERLAP_US = 3.0
GRAPH_KERNEL_FLOOR_US = 2.0


def in_graph_ms(op, ms: float) -> float:
    """A kernel's time inside a CUDA graph from its time measured (or predicted) alone."""
    if isinstance(op, (Collective, EPExchange)):
        return ms
    return max(ms - GRAPH_OVERLAP_US * 1e-3, GRAPH_KERNEL_FLOOR_US * 1e-3)


# What the host spends per kernel of a step outside CUDA graphs (`launched_ms`): a Triton kernel
# through Inductor's Python wrapper 6.5-9 us (pytorch-labs/tritonbench #1016), Triton's own JIT
# dispatch 8.7 us on GB200 (vllm PR #34838), and between them the engines' custom ops' Python
# (attention, all-reduce, fused MoE), so a mean of 10-15 us a kernel. Checked on the development
# set with launches hiding behind the GPU's work (`make accuracy`, median APE of mean TTFT over all
# runs / vLLM's): 6 us 14.2 / 11.2 %, 15 us 13.8 / 11.1 %, 20 us 13.7 / 11.2 %, 25 us 12.9 /
# 10.7 %, 35 us 12.4 / 10.4 %. Past 20 us the MoE models' low-load TTFTs gain (vLLM Qwen3-235B TP4
# 22.5 -> 9.9 % at 35 us) while dense ones at TP8 lose (Llama-3.1-70B 5.5 -> 7.8 %, gpt-oss-120b
# 10.9 -> 15.7 %) and issue 9's measured Qwen3-32B run (vLLM 0.12, TP8, 8 clients of 1k tokens,
# 92 ms) goes from 94 to 101 ms at 25 us: the public figures' 15 us, until the profiler's
# decode_step family measures it (`frontier calibration decode-steps`).
EAGER_LAUNCH_US = 15.0


@dataclass(frozen=True)
class StepOverheads:
    cuda_graph: bool = True
    eager_launch_us: float = EAGER_LAUNCH_US  # CPU launch cost per kernel when not captured
    graph_launch_us: float = 1.0  # gap between kernels replayed from a CUDA graph
    cpu_overhead_ms: float = 1.0  # host time per step: scheduling, input prep, sampling
    host_us_per_seq: float = 0.0  # host time per step and sequence in the batch (output processing)
    capture_sizes: tuple[int, ...] = DEFAULT_CAPTURE_SIZES
    graph_mixed_batches: bool = False  # vLLM 0.11+: piecewise graphs also for prefill/mixed batches
    host_overlapped: bool = False  # async / overlap scheduling: host work runs during the GPU's
    overlap_residual_ms: float = 0.0  # what an overlapped step still waits for on the host

    def host_ms(self, seqs: int) -> float:
        """Host time of a step over `seqs` sequences (of one scheduler: one attention-DP rank)."""
        return self.cpu_overhead_ms + self.host_us_per_seq * seqs * 1e-3

    def wall_ms(self, gpu_ms: float, seqs: int = 0) -> float:
        """A step's wall time: host time after the GPU's, or beside it when overlapped."""
        host = self.host_ms(seqs)
        if self.host_overlapped:
            return max(gpu_ms, host) + self.overlap_residual_ms
        return gpu_ms + host


def launched_ms(ops, ms, overheads: StepOverheads, graph: bool) -> tuple[float, float]:
    """(compute, all-to-all) ms of (operator, count) pairs predicted at `ms` each, as launched.

    Replayed from a CUDA graph, each kernel runs `in_graph_ms` after a `graph_launch_us` gap.
    Eager, the host launches `eager_launch_us` per kernel into the stream while the GPU works
    through it: the GPU waits only once the host falls behind, so the kernels take their time or
    their launches', the larger (a short kernel's launch hides behind a long one before it). An
    operator priced at exactly 0 is one the engine's kernel fuses into its neighbour (the
    SiLU-and-mul inside a measured fused MoE layer, frontier.predict.engine_kernels): nothing is
    launched for it. The all-to-all exchanges are priced apart (they overlap compute under TBO)."""
    gap = overheads.graph_launch_us * 1e-3
    launch = overheads.eager_launch_us * 1e-3
    compute = comm = 0.0
    launches = 0
    # (In Python floats: the same values as numpy's, and every step adds them up again.)
    for (op, count), t in zip(ops, ms.tolist() if isinstance(ms, np.ndarray) else ms):
        if t == 0.0:
            continue
        if isinstance(op, EPExchange) or (isinstance(op, Collective) and op.kind == "all_to_all"):
            comm += count * (in_graph_ms(op, t) + gap if graph else max(t, launch))
        elif graph:
            compute += count * (in_graph_ms(op, t) + gap)
        else:
            compute += count * t
            launches += count
    return max(compute, launches * launch), comm


def split(stats: BatchStats, parts: int) -> BatchStats:
    """One of `parts` even shares of a batch (the largest one: counts round up)."""
    if parts == 1:
        return stats

    def up(x: int) -> int:
        return -(-x // parts)

    return BatchStats(
        up(stats.num_prefill),
        up(stats.prefill_tokens),
        up(stats.prefill_sum_q2),
        up(stats.prefill_sum_qc),
        up(stats.prefill_sum_kv),
        stats.prefill_max_q,
        stats.prefill_max_kv,
        up(stats.num_decode),
        up(stats.decode_sum_kv),
        stats.decode_max_kv,
        up(stats.num_sampled),
    )


class BlockCosts:
    """(compute ms, all-to-all ms) of the blocks of one instance's steps, memoised."""

    def __init__(
        self,
        model: ModelSpec,
        par: Parallel,
        predictor: Predictor,
        overheads: StepOverheads = StepOverheads(),
        attn_backend: str = "flash",
        dtype: str = "bf16",
        fused_quant: bool = True,
    ):
        self.model, self.par, self.predictor = model, par, predictor
        self.overheads, self.attn_backend, self.dtype = overheads, attn_backend, dtype
        self.fused_quant = fused_quant  # FP8 inputs quantised inside the norms (frontier.ops.graph.unfused_quant)
        self._memo: dict[tuple, tuple[float, float]] = {}
        self._multi: dict[tuple, float] = {}  # attention of several prefills, by snapped statistics
        self._dec: dict[tuple, tuple[float, float]] = {}  # the memo's decode entries by (batch, KV point, graph)
        # One prefill sequence: (new tokens grid point) -> attention ms at every context point.
        self._prefill_rows: dict[int, list[float]] = {}
        self._contexts = [0] + points_from(1, 1 + _grid_points(model.max_model_len, PREFILL_STEP), PREFILL_STEP)

    # --- CUDA graphs -------------------------------------------------------------------------
    def uses_graph(self, stats: BatchStats) -> bool:
        o = self.overheads
        if not o.cuda_graph or (stats.num_prefill and not o.graph_mixed_batches):
            return False
        return 0 < stats.prefill_tokens + stats.num_decode <= o.capture_sizes[-1]  # its tokens

    def padded_tokens(self, stats: BatchStats) -> int:
        """A batch replayed from a CUDA graph runs at the next captured size."""
        if not self.uses_graph(stats):
            return stats.tokens
        sizes = self.overheads.capture_sizes
        return sizes[bisect.bisect_left(sizes, stats.tokens)]

    # --- prediction and memo -----------------------------------------------------------------
    def _fill(self, keys: list[tuple], build, graph: bool) -> None:
        """Predict the blocks of many memo keys in one predictor call (batched misses), each
        block as launched (`launched_ms`)."""
        keys = [k for k in dict.fromkeys(keys) if k not in self._memo]
        if not keys:
            return
        lists = [build(k) for k in keys]
        ms = self.predictor.ops_ms([op for ops in lists for op, _ in ops])
        at = 0
        for key, ops in zip(keys, lists):
            self._memo[key] = self._launched(ops, ms[at : at + len(ops)], graph)
            at += len(ops)

    def _launched(self, ops, ms, graph: bool) -> tuple[float, float]:
        return launched_ms(ops, ms, self.overheads, graph)

    def _block(self, key: tuple, build, graph: bool) -> tuple[float, float]:
        hit = self._memo.get(key)
        if hit is None:
            self._fill([key], lambda k: build(), graph)
            hit = self._memo[key]
        return hit

    def _on_token_grid(self, kind: str, tokens: int, graph: bool, build) -> tuple[float, float]:
        """A token-shaped block at `tokens`: exact up to 256 tokens, above interpolated between
        the neighbouring points of a 2 % grid (GEMM time is close to linear in the rows there).
        A miss predicts the next 16 points with it, in one call."""
        lo, hi = (tokens, tokens) if tokens <= EXACT_TOKENS else grid_neighbours(tokens, 1.02)
        for t in (lo, hi):
            if (kind, t, graph) not in self._memo:
                self._fill([(kind, p, graph) for p in points_from(t, 16)], lambda k: build(k[1]), graph)
        a, b = self._memo[(kind, lo, graph)], self._memo[(kind, hi, graph)]
        if hi == lo:
            return a
        w = (tokens - lo) / (hi - lo)
        return a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1])

    # --- the blocks ----------------------------------------------------------------------------
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
        m, p, d, q = self.model, self.par, self.dtype, self.fused_quant
        return self._on_token_grid(
            "layers",
            tokens,
            graph,
            lambda t: attention_block(m, p, t, d, q) + ffn_block(m, p, t, d, t * p.dp_attention, q),
        )

    def dense_mlp_ms(self, tokens: int, graph: bool) -> float:
        """The dense MLP of the leading dense layers alone (no all-to-all to hide behind)."""
        m, p, d, q = self.model, self.par, self.dtype, self.fused_quant
        return self._on_token_grid("dense-mlp", tokens, graph, lambda t: dense_mlp(m, p, t, d, q))[0]

    def attention_block_ms(self, tokens: int, graph: bool) -> float:
        """The attention block alone (norms, projections, TP all-reduce), exact in the tokens."""
        m, p, d, q = self.model, self.par, self.dtype, self.fused_quant
        return self._block(("attention-block", tokens, graph), lambda: attention_block(m, p, tokens, d, q), graph)[0]

    def ffn_block_ms(self, tokens: int) -> float:
        """The FFN block alone, eager, its all-to-all included, for `tokens` tokens of one group:
        with expert parallelism each of its ep GPUs holds and dispatches 1/ep of them."""
        m, p, d, q = self.model, self.par, self.dtype, self.fused_quant
        per_gpu = -(-tokens // p.ep)
        return sum(self._block(("ffn-block", tokens), lambda: ffn_block(m, p, per_gpu, d, tokens, q), False))

    def _prefill_key(self, stats: BatchStats, graph: bool) -> tuple:
        return (
            "pre",
            BatchStats(
                stats.num_prefill,
                snap(stats.prefill_tokens),
                snap(stats.prefill_sum_q2),
                snap(stats.prefill_sum_qc),
                snap(stats.prefill_sum_kv),
                snap(stats.prefill_max_q, 1.2),
                snap(stats.prefill_max_kv, 1.2),
            ),
            graph,
        )

    def warm(self, prompt_tokens, budget: int) -> None:
        """Predict, in one call, the one-prefill attention rows of every prompt (or chunk) size
        the run starts with, over the contexts its prompts can have: known before it starts."""
        prompts = np.unique(np.asarray(prompt_tokens, dtype=np.int64))
        if not len(prompts):
            return
        longest = int(prompts[-1])
        at = bisect.bisect_left(self._contexts, longest)
        self._contexts = self._contexts[: at + 1]
        chunks = np.unique(np.minimum(prompts, budget)).tolist()
        self._fill_prefill_rows(sorted({g for n in chunks for g in grid_neighbours(n, PREFILL_STEP)}))

    def _fill_prefill_rows(self, rows: list[int]) -> None:
        rows = [q for q in rows if q not in self._prefill_rows]
        if not rows:
            return
        m, p, be, d = self.model, self.par, self.attn_backend, self.dtype
        ctx = self._contexts
        cores = [
            attention_core(m, p, BatchStats(1, q, q * q, q * c, q + c, q, q + c), be, d) for q in rows for c in ctx
        ]
        ops = [pair for core in cores for pair in core]
        ms = self.predictor.ops_ms([op for op, _ in ops])
        counts = np.array([count for _, count in ops], dtype=float)
        # Prefill steps are never graph-captured: launched eagerly (`launched_ms`, vectorised here).
        launch = self.overheads.eager_launch_us * 1e-3
        weighted = ms * counts
        if len({len(core) for core in cores}) == 1:
            per_row = weighted.reshape(len(rows), len(ctx), -1).sum(axis=2)
            launched = counts.reshape(len(rows), len(ctx), -1).sum(axis=2)
        else:  # a DSA model's core gains its indexer's scoring past index_topk tokens
            starts = np.cumsum([0] + [len(core) for core in cores[:-1]])
            per_row = np.add.reduceat(weighted, starts).reshape(len(rows), len(ctx))
            launched = np.add.reduceat(counts, starts).reshape(len(rows), len(ctx))
        per_row = np.maximum(per_row, launched * launch)
        for q, row in zip(rows, per_row.tolist()):
            self._prefill_rows[q] = row

    def one_prefill_ms(self, q: int, context: int) -> float | None:
        """Attention of one sequence bringing q new tokens after `context` cached ones: bilinear
        in the (q, context) table (exact in q * context, the causal work's cross term); None for
        a context beyond the table's."""
        ctx = self._contexts
        if context > ctx[-1]:
            return None
        lo, hi = _PREFILL_NEIGHBOURS.get(q) or grid_neighbours(q, PREFILL_STEP)
        rows = self._prefill_rows
        a, b = rows.get(lo), rows.get(hi)
        if a is None or b is None:
            self._fill_prefill_rows([lo, hi])
            a, b = rows[lo], rows[hi]
        j = bisect.bisect_right(ctx, context) - 1
        if j < 0:
            j = 0
        elif j > len(ctx) - 2:
            j = len(ctx) - 2
        c0, c1 = ctx[j], ctx[j + 1]
        wc = (context - c0) / (c1 - c0)
        at_lo = a[j] + wc * (a[j + 1] - a[j])
        if hi == lo:
            return at_lo
        at_hi = b[j] + wc * (b[j + 1] - b[j])
        return at_lo + (q - lo) / (hi - lo) * (at_hi - at_lo)

    def _dec_entry(self, b: int, point: int, graph: bool) -> tuple[float, float] | None:
        """The memo's decode-attention entry at a grid point, also kept by (batch, point, graph)."""
        hit = self._memo.get(("dec", b, point, -(-point // b), graph))
        if hit is not None:
            self._dec[(b, point, graph)] = hit
        return hit

    def decode_kinks(self, sum_kv: int, num_decode: int, n: int, parts: int) -> list[int]:
        """Iterations of a decode run at which decode attention changes slope: its KV sum, one
        rank's share of `parts`, crosses a point of the 5 % grid it is interpolated on."""
        last = sum_kv + (n - 1) * num_decode
        out, g = [], grid_neighbours(max(-(-sum_kv // parts), 1), DECODE_KV_STEP)[1]
        memo = _DECODE_NEIGHBOURS
        while g * parts < last:
            out.append(-(-(g * parts - sum_kv) // num_decode))
            g = (memo.get(g + 1) or grid_neighbours(g + 1, DECODE_KV_STEP))[1]
        return out

    def attention_ms(self, stats: BatchStats, graph: bool) -> float:
        """Attention proper of one rank's batch, prefill and decode parts apart.

        Prefill statistics are snapped to a 2 % grid. Decode attention is linear in the KV
        tokens read, so it is predicted at the two neighbouring points of a 5 % grid of
        `decode_sum_kv` and interpolated; a miss predicts the grid ahead (decode batches grow)
        and the neighbouring batch sizes in the same call."""
        total = 0.0
        num_prefill = stats.num_prefill
        one = None
        if num_prefill == 1:
            q = stats.prefill_tokens
            c = stats.prefill_max_kv - q
            if stats.prefill_sum_q2 == q * q and stats.prefill_sum_qc == q * c and stats.prefill_max_q == q:
                # One whole sequence (a share of a batch split over ranks or micro-batches is not).
                one = self.one_prefill_ms(q, c)
        if one is not None:
            total += one
        elif num_prefill:
            key = self._prefill_key(stats, graph)
            hit = self._multi.get(key)
            if hit is None:
                if len(self._multi) >= MULTI_PREFILL_MEMO:
                    self._multi.clear()
                ops = attention_core(self.model, self.par, key[1], self.attn_backend, self.dtype)
                hit = self._multi[key] = self._launched(ops, self.predictor.ops_ms([op for op, _ in ops]), graph)[0]
            total += hit
        b = stats.num_decode
        if b:
            total += self.decode_attention_ms(b, stats.decode_sum_kv, graph)
        return total

    def decode_attention_ms(self, b: int, s: int, graph: bool) -> float:
        """Decode attention of `b` sequences reading `s` KV tokens in all (see `attention_ms`)."""
        lo, hi = _DECODE_NEIGHBOURS.get(s) or grid_neighbours(s, DECODE_KV_STEP)
        # The longest sequence only shapes how a decode kernel splits its work; the
        # calibrated predictors do not see it, so the key carries the mean length instead.
        memo, dec = self._memo, self._dec
        a, c = (
            dec.get((b, lo, graph)) or self._dec_entry(b, lo, graph),
            dec.get((b, hi, graph)) or self._dec_entry(b, hi, graph),
        )
        if a is None or c is None:
            m, p, be, d = self.model, self.par, self.attn_backend, self.dtype
            ahead = points_from(lo, 24, 1.05)
            sizes = {max(1, b + d) for d in (-2, -1, 0, 1, 2)}
            self._fill(
                [("dec", bb, g, -(-g // bb), graph) for bb in sizes for g in ahead if g >= bb],
                lambda k: attention_core(
                    m, p, BatchStats(num_decode=k[1], decode_sum_kv=k[2], decode_max_kv=k[3]), be, d
                ),
                graph,
            )
            a, c = memo[("dec", b, lo, -(-lo // b), graph)], memo[("dec", b, hi, -(-hi // b), graph)]
        a, c = a[0], c[0]
        return a if hi == lo else a + (c - a) * (s - lo) / (hi - lo)
