"""The step model: the one home of every duration the simulator uses.

`sim/` asks a `StepModel` for
- `step(stats)`: one iteration of a batch (`StepTime`);
- `decode_run(stats, n)`: n decode iterations of an unchanging batch, each one KV token longer
  per sequence (the rule asked at the run's ends and where its slope may change, the rest
  interpolated: the times of stepping one at a time);
- `steps(stats_list)`: iterations known in advance (a prompt's chunks), each timed on its own;
- `kv_transfer(request, link, now, link_free, layerwise)`: a request's KV crossing to a decode instance;
- `warm(prompt_tokens, budget)`: predict up front what a run will surely ask.

A step is timed by a *timing rule* over one `BlockCosts` cache (`frontier.predict.blocks`):
- `Sequential`: the blocks one after the other (co-located serving);
- `TwoBatchOverlap`: for expert parallelism, two micro-batches alternate, one computing while
  the other's all-to-all is in flight;
- `AFPipeline`: attention/FFN disaggregation, n micro-batches ping-pong between attention and
  FFN GPUs layer by layer.
Any object with `step(BatchStats) -> StepTime` is a rule (tests use known step times); a rule
may also say where decode-run times change slope (`kinks`), time a decode run's iterations
faster than step by step (`decode_steps`) and what to predict up front (`warm`). Host time per
step comes from one place, `StepOverheads.wall_ms` (added by `_with_host`, or inline on the
hottest paths). Link times come from `frontier.predict.links`. The batch handed in is the
instance's whole batch; with `dp_attention` ranks it is split evenly over them (symmetric ranks
are costed once, as the slowest one).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from frontier.ops.graph import BatchStats, stage_layers
from frontier.predict.blocks import BlockCosts, StepOverheads, split
from frontier.predict.links import DEEPEP_NORMAL_SMS, Link, activation_transfer_ms, kv_transfer_window

__all__ = [
    "AFPipeline",
    "BlockCosts",
    "Sequential",
    "SpeculativeDecoding",
    "StepModel",
    "StepOverheads",
    "StepTime",
    "TimingRule",
    "TwoBatchOverlap",
    "af_step_formula_ms",
]


class StepTime(NamedTuple):
    """One step, or the sum over a run of steps (a named tuple: made once per simulated step,
    and a tuple is made in a third of a frozen dataclass's time)."""

    total_s: float  # wall time, host overhead included
    comm_ms: float = 0.0  # all-to-all (EP) or attention<->FFN transfers (AF)
    bubble_ms: float = 0.0  # time the GPUs wait: communication not hidden, pipeline bubbles
    ffn_bubble_ms: float = 0.0  # AF only: the FFN side's idle time
    host_ms: float = 0.0  # host time per step (part of total_s)

    @property
    def gpu_ms(self) -> float:
        return self.total_s * 1e3 - self.host_ms

    def scaled(self, k: float) -> "StepTime":
        return StepTime(
            self.total_s * k, self.comm_ms * k, self.bubble_ms * k, self.ffn_bubble_ms * k, self.host_ms * k
        )

    def __add__(self, other: "StepTime") -> "StepTime":
        return StepTime(
            self.total_s + other.total_s,
            self.comm_ms + other.comm_ms,
            self.bubble_ms + other.bubble_ms,
            self.ffn_bubble_ms + other.ffn_bubble_ms,
            self.host_ms + other.host_ms,
        )


class TimingRule(Protocol):
    def step(self, stats: BatchStats) -> StepTime: ...


def _with_host(
    blocks: BlockCosts,
    gpu_ms: float,
    seqs: int,
    comm_ms: float = 0.0,
    bubble_ms: float = 0.0,
    ffn_bubble_ms: float = 0.0,
) -> StepTime:
    """The step's wall time from its GPU time and the host work of its `seqs` sequences (one
    scheduler's: an attention-DP rank's share)."""
    wall = blocks.overheads.wall_ms(gpu_ms, seqs)
    return StepTime(wall * 1e-3, comm_ms, bubble_ms, ffn_bubble_ms, wall - gpu_ms)


class Sequential:
    """The blocks one after the other; all-to-all, if any, is exposed."""

    def __init__(self, blocks: BlockCosts):
        self.blocks = blocks
        self._fixed: dict[tuple, tuple[float, float]] = {}

    def step(self, stats: BatchStats) -> StepTime:
        blocks = self.blocks
        dp = blocks.par.dp_attention
        rank = split(stats, dp) if dp > 1 else stats
        graph = blocks.uses_graph(rank)
        key = (rank.prefill_tokens + rank.num_decode, rank.num_sampled, graph)
        fixed, comm = self._fixed.get(key) or self._fixed_ms(rank, graph)
        gpu = fixed + blocks.attention_ms(rank, graph)
        wall = blocks.overheads.wall_ms(gpu, rank.num_prefill + rank.num_decode)
        return StepTime(wall * 1e-3, comm, comm, 0.0, wall - gpu)  # _with_host's, inlined

    def _fixed_ms(self, rank: BatchStats, graph: bool) -> tuple[float, float]:
        """(ms, all-to-all ms) of everything but attention: it depends on (tokens, sampled rows)
        only, and is memoised whole."""
        key = (rank.prefill_tokens + rank.num_decode, rank.num_sampled, graph)
        fixed = self._fixed.get(key)
        if fixed is None:
            blocks = self.blocks
            tokens = blocks.padded_tokens(rank)
            compute, comm = blocks.layers_ms(tokens, graph)
            fixed = self._fixed[key] = (blocks.head_ms(tokens, rank.num_sampled, graph) + compute + comm, comm)
        return fixed

    def decode_steps(self, stats: BatchStats):
        """`step` of the decode batch `stats` j iterations later (each adds one KV token per
        sequence) as a function of j, or None: over a decode run only attention changes, so the
        rest is looked up once."""
        blocks, b = self.blocks, stats.num_decode
        if blocks.par.dp_attention > 1 or stats.num_prefill or not b:
            return None
        graph = blocks.uses_graph(stats)
        fixed, comm = self._fixed_ms(stats, graph)
        attention, kv, wall_ms = blocks.decode_attention_ms, stats.decode_sum_kv, blocks.overheads.wall_ms

        def at(j: int) -> StepTime:  # _with_host's, inlined
            gpu = fixed + attention(b, kv + j * b, graph)
            wall = wall_ms(gpu, b)
            return StepTime(wall * 1e-3, comm, comm, 0.0, wall - gpu)

        return at

    def kinks(self, stats: BatchStats, n: int) -> list[int]:
        return self.blocks.decode_kinks(stats.decode_sum_kv, stats.num_decode, n, self.blocks.par.dp_attention)

    def warm(self, prompt_tokens, budget: int) -> None:
        self.blocks.warm(prompt_tokens, budget)


class TwoBatchOverlap:
    """Two-batch overlap (expert parallelism), as SGLang runs it with DeepEP: the batch is cut in
    two halves and in each MoE layer one half computes while the other's dispatch or combine is
    in flight, so per MoE layer the longer of the two sets the pace and one stage fills the
    pipeline (sglang/srt/two_batch_overlap.py).

    - The leading dense layers have no all-to-all to hide behind: both halves run them in turn.
    - DeepEP's normal kernels run on SMs taken from compute (`DEEPEP_NORMAL_SMS` of the GPU's):
      compute overlapped with them runs on the rest, slower by sm_count / (sm_count - taken).
      The low-latency kernels wait in a receive hook and take none.
    """

    def __init__(self, blocks: BlockCosts):
        self.blocks = blocks
        par = blocks.par
        taken = DEEPEP_NORMAL_SMS if par.ep_backend == "deepep-normal" else 0
        self.sm_slowdown = par.fabric.sm_count / max(par.fabric.sm_count - taken, 1)

    def step(self, stats: BatchStats) -> StepTime:
        blocks = self.blocks
        rank = split(stats, blocks.par.dp_attention)
        graph = blocks.uses_graph(rank)
        tokens = blocks.padded_tokens(rank)
        head = blocks.head_ms(tokens, rank.num_sampled, graph)
        half = split(rank, 2)
        half_tokens = -(-tokens // 2)
        compute, comm = blocks.layers_ms(half_tokens, graph)
        compute += blocks.attention_ms(half, graph)
        layers, moe_layers = stage_layers(blocks.model, blocks.par)
        # A dense layer: its share of the attention (the same in every layer) and its MLP.
        attention = blocks.attention_block_ms(half_tokens, graph) + blocks.attention_ms(half, graph)
        dense = (
            attention * (layers - moe_layers) / layers + blocks.dense_mlp_ms(half_tokens, graph)
            if moe_layers < layers
            else 0.0
        )
        moe = (compute - dense) * self.sm_slowdown
        overlapped = 2 * max(moe, comm) + min(moe, comm) / max(moe_layers, 1)
        seqs = rank.num_prefill + rank.num_decode
        return _with_host(blocks, head + 2 * dense + overlapped, seqs, 2 * comm, overlapped - 2 * moe)

    def kinks(self, stats: BatchStats, n: int) -> list[int]:
        return self.blocks.decode_kinks(stats.decode_sum_kv, stats.num_decode, n, 2 * self.blocks.par.dp_attention)

    def warm(self, prompt_tokens, budget: int) -> None:
        self.blocks.warm(prompt_tokens, budget)


def af_step_formula_ms(a: float, t: float, f: float, n: int, layers: int) -> float:
    """The AF pipeline's time for `layers` layers of n micro-batches (see AFPipeline)."""
    return layers * max(n * max(a, t, f), a + 2 * t + f)


class AFPipeline:
    """Attention/FFN disaggregation: M attention instances and N FFN instances exchange each
    layer's activations, with the batch cut into n micro-batches that ping-pong.

    Per layer and micro-batch: attention a, transfer t each way, FFN f. The n micro-batches
    circulate through attention -> link -> FFN -> link like jobs in a closed pipeline, so one
    layer of all of them takes max(n * max(a, t, f), a + t + f + t): the busiest stage when n
    micro-batches keep it fed, else one micro-batch's round trip (`af_step_formula_ms`).
    """

    def __init__(
        self,
        attention: BlockCosts,
        ffn: BlockCosts,
        attention_instances: int,
        ffn_instances: int,
        micro_batches: int,
        link: Link,
    ):
        self.attention, self.ffn = attention, ffn
        self.M, self.N, self.n = attention_instances, ffn_instances, micro_batches
        self.link = link
        self.layers = stage_layers(attention.model, attention.par)[0]

    def layer_times_ms(self, stats: BatchStats) -> tuple[float, float, float]:
        """(a, t, f) in ms for one micro-batch of one layer."""
        att, model = self.attention, self.attention.model
        mb = split(split(stats, self.M), self.n)
        graph = att.uses_graph(mb)
        L = self.layers
        a = (att.attention_block_ms(mb.tokens, graph) + att.attention_ms(mb, graph)) / L
        f = self.ffn.ffn_block_ms(-(-mb.tokens * self.M // self.N)) / L
        t = activation_transfer_ms(self.link, mb.tokens, model.hidden_size, model.dtype_bytes)
        return a, t, f

    def step(self, stats: BatchStats) -> StepTime:
        a, t, f = self.layer_times_ms(stats)
        n, L = self.n, self.layers
        cycle = af_step_formula_ms(a, t, f, n, 1)
        inst = split(stats, self.M)
        head = self.attention.head_ms(inst.tokens, inst.num_sampled, False)
        return _with_host(
            self.attention,
            L * cycle + head,
            inst.num_prefill + inst.num_decode,
            comm_ms=L * 2 * n * t,
            bubble_ms=L * (cycle - n * a),
            ffn_bubble_ms=L * (cycle - n * f),
        )

    def kinks(self, stats: BatchStats, n: int) -> list[int]:
        return self.attention.decode_kinks(stats.decode_sum_kv, stats.num_decode, n, self.M * self.n)

    def warm(self, prompt_tokens, budget: int) -> None:
        self.attention.warm(prompt_tokens, budget)


class SpeculativeDecoding:
    """Speculative decoding (MTP, EAGLE, n-gram) over any timing rule, as a mean field.

    A decode step drafts k tokens per sequence, then verifies k + 1 per sequence in one target
    forward (the token-shaped blocks see B(k+1) rows, attention B(k+1) query rows, each over its
    sequence's context: an upper bound, since the verify kernel reads each context once), and
    emits E = 1 + a1 + a1 a2 + ... tokens per sequence (`Speculative.tokens_per_step`). MTP and
    EAGLE draft with one decoder layer and the LM head per draft token (a target decode step of
    the batch over its layers, plus its head); n-gram drafts on the host, free.

    The simulator credits one token per sequence and step, so a decode step is timed as the real
    step over E: tokens per second and the mean inter-token gap are the real ones. Steps that
    carry prefill are timed without speculation."""

    def __init__(self, rule: TimingRule, spec, layers: int):
        self.rule, self.spec, self.layers = rule, spec, layers
        self.per_step = spec.tokens_per_step

    def _verify(self, stats: BatchStats) -> BatchStats:
        q = self.spec.num_speculative_tokens + 1
        return BatchStats(
            num_decode=stats.num_decode * q,
            decode_sum_kv=stats.decode_sum_kv * q,
            decode_max_kv=stats.decode_max_kv,
            num_sampled=stats.num_decode * q,
        )

    def draft_s(self, stats: BatchStats) -> float:
        """One draft pass of the batch: one decoder layer and the LM head."""
        if self.spec.method == "ngram":
            return 0.0
        one = self.rule.step(stats)
        blocks = getattr(self.rule, "blocks", None)
        head_ms = 0.0
        if blocks is not None:
            rank = split(stats, blocks.par.dp_attention)
            graph = blocks.uses_graph(rank)
            head_ms = blocks.head_ms(blocks.padded_tokens(rank), rank.num_sampled, graph)
        return ((one.gpu_ms - head_ms) / self.layers + head_ms) * 1e-3

    def step(self, stats: BatchStats) -> StepTime:
        if stats.num_prefill or not stats.num_decode:
            return self.rule.step(stats)
        verify = self.rule.step(self._verify(stats))
        real = StepTime(
            verify.total_s + self.spec.num_speculative_tokens * self.draft_s(stats),
            verify.comm_ms,
            verify.bubble_ms,
            verify.ffn_bubble_ms,
            verify.host_ms,
        )
        return real.scaled(1.0 / self.per_step)

    def kinks(self, stats: BatchStats, n: int) -> list[int]:
        kinks = getattr(self.rule, "kinks", None)
        return kinks(self._verify(stats), n) if kinks is not None and stats.num_decode else []

    def warm(self, prompt_tokens) -> None:
        warm = getattr(self.rule, "warm", None)
        if warm is not None:
            warm(prompt_tokens)


class StepModel:
    """Every duration of one cluster's instances: steps by its timing rule, runs of steps, and
    the transfers of its requests' KV."""

    def __init__(self, rule: TimingRule, kv_bytes_per_token: float = 0.0, layers: int = 1):
        self.rule = rule
        self.kv_bytes_per_token = kv_bytes_per_token
        self.layers = layers

    def step(self, stats: BatchStats) -> StepTime:
        return self.rule.step(stats)

    def decode_run(self, stats: BatchStats, n: int) -> tuple[np.ndarray, StepTime]:
        """(step times in s, totals) of n decode iterations starting with `stats`, each adding
        one KV token per sequence.

        Step times are piecewise linear in the KV length: the rule is asked at the run's ends and
        on both sides of each point where the slope may change (its `kinks`, if it has any), and
        the iterations in between are interpolated: the times of stepping one at a time, for a
        handful of predictions."""
        if n <= 1:
            first = self.rule.step(stats)
            return np.array([first.total_s]), first
        b = stats.num_decode
        at = {0, n - 1}
        kinks = getattr(self.rule, "kinks", None)
        if kinks is not None:
            last = n - 1
            for j in kinks(stats, n):
                if 0 < j - 1 < last:
                    at.add(j - 1)
                if 0 < j < last:
                    at.add(j)
        s = stats
        memo: dict[int, StepTime] = {}
        decode_steps = getattr(self.rule, "decode_steps", None)
        timed = decode_steps(stats) if decode_steps is not None else None
        if timed is None:
            step = self.rule.step

            def timed(j: int) -> StepTime:
                return step(
                    BatchStats(
                        s.num_prefill,
                        s.prefill_tokens,
                        s.prefill_sum_q2,
                        s.prefill_sum_qc,
                        s.prefill_sum_kv,
                        s.prefill_max_q,
                        s.prefill_max_kv,
                        b,
                        s.decode_sum_kv + j * b,
                        s.decode_max_kv + j,
                        s.num_sampled,
                    )
                )

        def ask(j: int) -> StepTime:
            t = memo.get(j)
            if t is None:
                t = memo[j] = timed(j)
            return t

        at = sorted(at)
        # Host time hidden behind the GPU is a floor under the step time: where the GPU time,
        # growing with the KV, crosses it, the slope changes. Find that iteration by bisection.
        # Exposed host time shows as a step time that does not grow; hidden, as the end's
        # (GPU-bound) host share.
        lo, hi = at[0], at[-1]
        end = ask(hi)

        def hidden(j: int) -> bool:
            return abs(ask(j).host_ms - end.host_ms) < 1e-9

        if not hidden(lo) and abs(ask(lo).total_s - end.total_s) > 1e-12:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if hidden(mid) else (mid, hi)
            at = sorted(set(at) | {lo, hi})
        total_s, *parts = zip(*(ask(j) for j in at))  # each StepTime field at the points `at`
        steps = np.arange(n)

        def summed(values: tuple[float, ...]) -> float:
            if values.count(values[0]) == len(values):  # constant (often zero): no interpolation
                return values[0] * n
            return float(np.add.reduce(np.interp(steps, at, values)))

        times = np.interp(steps, at, total_s)
        return times, StepTime(float(np.add.reduce(times)), *map(summed, parts))

    def steps(self, stats: list[BatchStats]) -> tuple[np.ndarray, StepTime]:
        """(step times in s, totals) of iterations known in advance, each timed on its own."""
        times = []
        total_s = comm = bubble = ffn_bubble = host = 0.0
        for s in stats:
            t = self.rule.step(s)
            times.append(t.total_s)
            total_s += t.total_s
            comm += t.comm_ms
            bubble += t.bubble_ms
            ffn_bubble += t.ffn_bubble_ms
            host += t.host_ms
        return np.array(times), StepTime(total_s, comm, bubble, ffn_bubble, host)

    def kv_transfer(self, req, link: Link, now_s: float, link_free_s: float, layerwise: bool) -> tuple[float, float]:
        """(start, end) of a request's KV crossing `link`, free from `link_free_s`.

        Layer by layer (`layerwise`: the decode side had blocks ready at once), the transfer
        overlaps the request's own prefill; otherwise it starts now."""
        prefill = (req.prefill_start_s, req.first_token_s) if layerwise else None
        return kv_transfer_window(
            link, self.kv_bytes_per_token * req.prompt_tokens, self.layers, now_s, link_free_s, prefill
        )

    def warm(self, prompt_tokens, budget: int) -> None:
        """Predict up front what prompts of these lengths will ask, prefilled in chunks of at
        most `budget` tokens."""
        warm = getattr(self.rule, "warm", None)
        if warm is not None:
            warm(prompt_tokens, budget)
