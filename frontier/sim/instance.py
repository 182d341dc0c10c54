"""One model instance (a DP replica of tp x pp GPUs): scheduler, KV cache and step clock.

The loop of an instance: plan a batch, cost it, and when it completes apply it (tokens computed,
tokens emitted, requests finished). With pp > 1 up to pp batches are in flight, one per stage,
and a new batch may start every stage time.

A decode-only batch whose composition cannot change until some event (a request finishing, a
KV block running out) is advanced many iterations at once: its step times are interpolated
between the first and the last iteration, so long decodes cost O(1) Python work. When a request
arrives meanwhile, the run is cut at the end of the iteration in progress (`interrupt`), which
is where stepping one iteration at a time would have seen it.
"""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

from frontier.ops.graph import BatchStats
from frontier.predict.step import StepModel, StepTime
from frontier.sim.kv_cache import BlockManager
from frontier.sim.recorder import Recorder
from frontier.sim.request import Request
from frontier.sim.scheduler import Scheduler, StepPlan

_sum = np.add.reduce  # ndarray.sum's own reduction, without its Python wrappers


@dataclass(slots=True)  # one or more per planned batch
class Batch:
    scheduled: list[tuple[Request, int]]
    start_s: float
    done_s: float
    totals: StepTime  # its time, communication and bubbles, summed
    step_times_s: np.ndarray | None = None  # set for a run of iterations (fast-forwarded)
    # A run with a prompt (its last request): the prompt's new tokens in its first iterations
    # (one chunk each), and the iteration that ends the prompt with its first token (-1: not in
    # this run).
    chunks: list[int] | None = None
    first_step: int = -1
    ids: frozenset[int] | set[int] = frozenset()  # with pp > 1: its requests (see `issue`)
    cancelled: bool = False  # replaced by a shorter run (see Instance.interrupt)
    _ends: np.ndarray | None = None

    @property
    def ends(self) -> np.ndarray:
        """When each iteration of a run ends (computed once: arrivals ask it again and again)."""
        if self._ends is None:
            self._ends = self.start_s + self.step_times_s.cumsum()
        return self._ends


def batch_stats(scheduled: list[tuple[Request, int]]) -> BatchStats:
    num_prefill = prefill_tokens = sum_q2 = sum_qc = prefill_sum_kv = max_q = prefill_max_kv = 0
    num_decode = decode_sum_kv = decode_max_kv = num_sampled = 0
    for req, n in scheduled:
        c = req.num_computed
        out = req.num_output
        kv = c + n
        if kv == req.prompt_tokens + out:
            num_sampled += 1
            if n == 1 and out > 0:  # a decode
                num_decode += 1
                decode_sum_kv += kv
                if kv > decode_max_kv:
                    decode_max_kv = kv
                continue
        num_prefill += 1
        prefill_tokens += n
        sum_q2 += n * n
        sum_qc += n * c
        prefill_sum_kv += kv
        if n > max_q:
            max_q = n
        if kv > prefill_max_kv:
            prefill_max_kv = kv
    return BatchStats(
        num_prefill,
        prefill_tokens,
        sum_q2,
        sum_qc,
        prefill_sum_kv,
        max_q,
        prefill_max_kv,
        num_decode,
        decode_sum_kv,
        decode_max_kv,
        num_sampled,
    )


def _within(need, k: int, free: int, lowest: int = 1) -> int:
    """Largest j <= k with need(j) <= free, for need growing with j and need(lowest) <= free."""
    if need(k) <= free:
        return k
    lo, hi = lowest, k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if need(mid) <= free:
            lo = mid
        else:
            hi = mid
    return lo


class Instance:
    """A serving instance of one role: `mixed` (prefill and decode), `prefill` (hands a request
    off after its first token), `decode` (takes requests whose KV arrives from prefill) or
    `attention` (the scheduling side of an attention/FFN-disaggregated engine)."""

    def __init__(
        self,
        name: str,
        role: str,
        scheduler: Scheduler,
        step_model: StepModel,
        pp: int,
        max_model_len: int,
        recorder: Recorder,
        fast_forward: bool = True,
    ):
        self.name = name
        self.role = role
        self.scheduler = scheduler
        self.kv: BlockManager = scheduler.kv
        self.step_model = step_model
        self.pp = pp
        self.max_model_len = max_model_len
        self.recorder = recorder
        self.fast_forward = fast_forward
        self.inflight: list[Batch] = []
        self.next_issue_s = 0.0
        self.outstanding = 0  # requests routed here and not finished
        self.outstanding_tokens = 0
        self.pending_kv: deque[Request] = deque()  # decode: prefilled elsewhere, waiting for blocks
        self.receiving = 0  # decode: KV transfers in flight into this instance
        # With a front end streaming through its output queue: the completing batch's first tokens.
        self.first_tokens: list[Request] | None = None
        self.reset_counters()

    def reset_counters(self) -> None:
        """Start counting what the instance does, for the summary (again after a warmup)."""
        self.busy_s = 0.0
        self.steps = 0
        self.batches = 0  # steps and runs of steps planned (Python-level iterations)
        self.prefill_tokens = 0
        self.output_tokens = 0
        self.comm_ms = 0.0
        self.bubble_ms = 0.0
        self.ffn_bubble_ms = 0.0
        # (batch end, prefill tokens so far, output tokens so far) of every batch, flat: 24 bytes
        # a batch (a list of tuples took 150).
        self.token_log = array("d")
        self.outputs_clipped = 0  # requests served fewer output tokens than asked (SGLang)
        self.kv.reset_counters()

    # --- admission ---------------------------------------------------------------------------
    # SGLang's longest request, `max_req_len` = min(context - 1, KV pool - 1) tokens
    # (sglang/srt/managers/tp_worker.py); 0 under vLLM, which will not start with a pool that
    # cannot hold its whole context (frontier.spec.memory.check_vllm_starts).
    sglang_max_req_len = 0

    def admit(self, req: Request) -> bool:
        """Queue a request, or mark it failed if this instance can never serve it."""
        reason = self._refusal(req, whole=self.role != "prefill")
        if reason:
            req.status, req.fail_reason = "failed", reason
            return False
        self._enter(req)
        self.scheduler.add(req)
        return True

    def _refusal(self, req: Request, whole: bool) -> str:
        """Why this instance can never serve `req` ('' if it can): the engine's length limits,
        then its KV blocks for the prompt and, `whole`, the output (a prefill-only instance
        holds the prompt and its first token)."""
        reason = self._sglang_limits(req) if self.sglang_max_req_len else self._vllm_limits(req)
        if reason:
            return reason
        held = req.prompt_tokens + (req.max_output_tokens if whole else 1)
        if self.kv.blocks_for(held) > self.kv.num_blocks:
            return f"needs {self.kv.blocks_for(held)} KV blocks, {self.name} holds {self.kv.num_blocks}"
        return ""

    def _vllm_limits(self, req: Request) -> str:
        total = req.prompt_tokens + req.max_output_tokens
        if total > self.max_model_len:
            return f"prompt + output = {total} tokens exceeds max_model_len {self.max_model_len}"
        return ""

    def _sglang_limits(self, req: Request) -> str:
        """SGLang refuses a request that reaches its context length (tokenizer_manager.py
        `_validate_one_request`) or a prompt of max_req_len - 5 tokens or more, and cuts the
        output of one its KV pool cannot hold whole to max_req_len - prompt - 1 tokens
        (scheduler.py `validate_input_length`, `init_req_max_new_tokens`): the request is served,
        shorter, and counted in `outputs_clipped`."""
        total = req.prompt_tokens + req.max_output_tokens
        if total >= self.max_model_len:
            return f"prompt + output = {total} tokens reaches SGLang's context length {self.max_model_len}"
        longest_input = self.sglang_max_req_len - 5
        if req.prompt_tokens >= longest_input:
            return (
                f"prompt of {req.prompt_tokens} tokens exceeds SGLang's longest input, {longest_input} "
                f"tokens (its context or KV pool, the shorter, holds {self.sglang_max_req_len + 1})"
            )
        allowed = self.sglang_max_req_len - req.prompt_tokens - 1
        if req.max_output_tokens > allowed:
            req.max_output_tokens = allowed
            self.outputs_clipped += 1
        return ""

    def _enter(self, req: Request) -> None:
        req.path = f"{req.path}>{self.name}" if req.path else self.name
        req.instance = self.name
        self.outstanding += 1
        self.outstanding_tokens += req.prompt_tokens + req.max_output_tokens

    def _leave(self, req: Request) -> None:
        self.outstanding -= 1
        self.outstanding_tokens -= req.prompt_tokens + req.max_output_tokens

    # --- PD: KV arriving from a prefill instance ---------------------------------------------
    def accept_prefilled(self, req: Request) -> bool:
        """Queue a request prefilled elsewhere; False if it can never be served here (an SGLang
        decode server applies its own max_req_len, cutting the output to its pool)."""
        reason = self._refusal(req, whole=True)
        if reason:
            req.status, req.fail_reason = "failed", reason
            return False
        self._enter(req)
        self.pending_kv.append(req)
        return True

    # SGLang's decode server keeps room for each admitted request's next tokens before it takes
    # another hand-off (sglang/srt/disaggregation/decode.py `_allocatable_tokens`:
    # num_reserved_decode_tokens, 512 by default, per running or transferring request).
    decode_reserved_tokens = 0

    def pull_kv(self) -> list[Request]:
        """Reserve blocks for waiting prefilled requests, in order; their transfers can start.

        Only between batches: a decode run in flight counts on the free blocks it started with."""
        started = []
        limit = self.scheduler.max_num_seqs
        while self.pending_kv and not self.inflight:
            req = self.pending_kv[0]
            admitted = len(self.scheduler.running) + self.receiving
            if admitted >= limit:
                break
            if self.kv.free_blocks < self.kv.blocks_for(self.decode_reserved_tokens * admitted + req.prompt_tokens + 1):
                break
            # Its prompt's KV (`num_computed` tokens, about to arrive) and the first decode
            # token's: num_computed already counts the prompt, so one new token, not prompt + 1.
            if not self.kv.allocate(req, req.remaining_new_tokens):
                break
            self.pending_kv.popleft()
            self.receiving += 1
            started.append(req)
        return started

    def kv_arrived(self, req: Request) -> None:
        """The request's KV is here: it decodes from now on."""
        self.receiving -= 1
        req.num_computed = req.prompt_tokens
        self.scheduler.running.append(req)

    # --- stepping ----------------------------------------------------------------------------
    def can_issue(self, now: float) -> bool:
        sched = self.scheduler  # (its `has_work`, without a property call: asked after every event)
        if not (sched.running or sched.waiting):
            return False
        return len(self.inflight) < self.pp and now >= self.next_issue_s - 1e-12

    def issue(self, now: float) -> Batch | None:
        """Plan and time the next batch; None if nothing can run now."""
        busy = set().union(*(b.ids for b in self.inflight)) if self.inflight else None
        plan = self.scheduler.schedule(busy)
        if not plan.scheduled:
            return None
        if self.role == "prefill":  # where each prompt's KV transfer may start overlapping
            for req, _ in plan.scheduled:
                if req.prefill_start_s != req.prefill_start_s:  # NaN: not started yet
                    req.prefill_start_s = now
        times = stretch = None
        if self.fast_forward and self.pp == 1:
            if self._can_fast_forward(plan):
                times, totals = self._decode_run(plan)
            else:
                stretch = self._prompt_run(plan)
                if stretch is not None:
                    times, totals, chunks, first_step = stretch
        if times is None:
            totals = self.step_model.step(batch_stats(plan.scheduled))
        if times is not None and len(times) > 1:
            batch = Batch(plan.scheduled, now, now + totals.total_s, totals, times)
            if stretch is not None:
                batch.chunks, batch.first_step = chunks, first_step
            self.next_issue_s = batch.done_s
        else:  # one iteration; with pp stages a new batch may start after the first
            batch = Batch(plan.scheduled, now, now + self.pp * totals.total_s, totals)
            self.next_issue_s = now + totals.total_s
        if self.pp > 1:  # requests of a batch in flight sit out the next stages' planning
            batch.ids = {r.id for r, _ in plan.scheduled}
        self.inflight.append(batch)
        self.batches += 1
        self._account(totals, 1)
        return batch

    def _account(self, totals: StepTime, sign: int) -> None:
        self.busy_s += sign * totals.total_s
        self.comm_ms += sign * totals.comm_ms
        self.bubble_ms += sign * totals.bubble_ms
        self.ffn_bubble_ms += sign * totals.ffn_bubble_ms

    def _can_fast_forward(self, plan: StepPlan) -> bool:
        return (
            plan.admission_blocked
            and not plan.preempted
            and plan.decode_only
            and len(plan.scheduled) == len(self.scheduler.running)
        )

    def _prompt_run(self, plan: StepPlan):
        """A prompt prefilled chunk by chunk beside an unchanging set of decodes is as
        predictable as a decode run, and so is the decode run that follows it.

        Returns (step times, totals, the prompt's chunks (one per iteration from the first), the
        iteration of its first token or -1) of the iterations until the next change: the
        prompt's last chunk (included when nothing waits to use the budget it leaves, and then the
        decodes of all, the prompt included), a request finishing or KV blocks running out; None
        if the plan is not such a run. Each chunk's iteration is timed on its own (the context
        grows by a chunk each time), the decode iterations as a decode run."""
        scheduled, sched = plan.scheduled, self.scheduler
        # The chunks below are those of vLLM's chunked prefill (`Scheduler`: decodes first, the
        # prompt takes the rest of the budget); another policy steps one at a time.
        if type(sched) is not Scheduler or plan.preempted or len(scheduled) != len(sched.running):
            return None
        prompt, q = scheduled[-1]
        if prompt.num_output or (len(scheduled) > 1 and scheduled[-2][1] != 1):  # a second prefill
            return None
        b = len(scheduled) - 1
        rem = prompt.prompt_tokens - prompt.num_computed
        cap = sched.max_num_batched_tokens - b  # the prompt's chunk while it lasts
        if q != min(rem, cap):
            return None
        full = (rem - 1) // q  # chunks of q before the one that ends the prompt
        # (A prompt done in one step is left to the scheduler: its run would be timed ahead of
        # arrivals that often cut it.)
        if full < 1:
            return None
        computed = []  # the decodes' KV tokens
        keep = computed.append
        left = 1 << 62  # decode iterations until a decode finishes
        for r, n in scheduled[:-1]:
            out = r.num_output
            if n != 1 or out == 0:
                return None
            keep(r.num_computed)
            if r.max_output_tokens - out < left:
                left = r.max_output_tokens - out
        ends = not sched.waiting  # the last chunk too
        k = min(full + ends, left)
        chunks = [q] * k
        if k > full:
            chunks[-1] = rem - full * q
        bs, free = self.kv.block_size, self.kv.free_blocks
        c0 = prompt.num_computed
        grown = list(itertools.accumulate(chunks, initial=c0))  # the prompt's KV after j chunks
        first_blocks = -(-grown[1] // bs)  # the first chunk's blocks are allocated

        def need(j: int) -> int:  # blocks iterations 2..j take
            held = -(-(c + 1) // bs)
            return int((-(-(c + j) // bs) - held).sum()) + (-(-grown[j] // bs) - first_blocks)

        # A decode grows by at most ceil((j - 1) / block_size) blocks by iteration j: only when
        # that bound does not fit are the blocks counted.
        bound = b * -(-(k - 1) // bs) + (-(-grown[k] // bs) - first_blocks)
        if bound > free:
            c = np.array(computed, dtype=np.int64)
            k = _within(need, k, free)
            chunks = chunks[:k]
        if k <= 1:
            return None
        sum_kv, max_kv = sum(computed) + b, (max(computed) + 1 if b else 0)
        stats = [
            BatchStats(1, n, n * n, n * c, c + n, n, c + n, b, sum_kv + j * b, max_kv + j if b else 0, b + (j == full))
            for j, (n, c) in enumerate(zip(chunks, grown))
        ]
        times, totals = self.step_model.steps(stats)
        if k <= full:
            return times, totals, chunks, -1
        # The prompt has its first token: everyone decodes until the next change.
        n = min(left - k, prompt.max_output_tokens - 1)
        if n < 1 or self.role == "prefill":
            return times, totals, chunks, k - 1
        # Blocks taken by then, and at most ceil(j / block_size) more per sequence by decode j.
        if bound + (b + 1) * -(-n // bs) > free:
            c = np.array(computed, dtype=np.int64)
            base = need(k)
            after = np.append(c + k, prompt.prompt_tokens)
            start = -(-after // bs)

            def decode_need(j: int) -> int:
                return base + int((-(-(after + j) // bs) - start).sum())

            n = _within(decode_need, n, free, lowest=0)
            if n < 1:
                return times, totals, chunks, k - 1
        first = BatchStats(
            num_decode=b + 1,
            decode_sum_kv=sum(computed) + b * k + prompt.prompt_tokens + b + 1,
            decode_max_kv=max(max(computed, default=0) + k, prompt.prompt_tokens) + 1,
            num_sampled=b + 1,
        )
        run_times, run_totals = self.step_model.decode_run(first, n)
        times = np.concatenate([times, run_times])
        totals = (totals + run_totals)._replace(total_s=float(_sum(times)))
        return times, totals, chunks, k - 1

    # Async / overlap scheduling (vLLM 0.12+, SGLang): the scheduler picks iteration n+1 while
    # the GPU runs n, so a request that arrives during n can join n+2 at the earliest.
    schedules_ahead = False

    def iteration_end(self, now: float) -> float:
        """When the iteration in progress at `now` ends (`now` if none is)."""
        if not self.inflight:
            return now
        run = next((b for b in self.inflight if b.step_times_s is not None), None)
        if run is None:
            return min(b.done_s for b in self.inflight)
        ends = run.ends
        return float(ends[min(int(ends.searchsorted(now, side="right")), len(ends) - 1)])

    def interrupt(self, now: float) -> Batch | None:
        """Cut a run in flight (decode or chunked prefill) at the end of its iteration in progress.

        Returns the shorter run that replaces it (the caller schedules its completion), or None
        if nothing was cut."""
        for run in self.inflight:
            if run.step_times_s is not None:
                break
        else:
            return None
        all_times = run.step_times_s
        k = int(run.ends.searchsorted(now, side="right")) + 1
        if k >= len(all_times):
            return None
        run.cancelled = True
        self.inflight.remove(run)
        times = all_times[:k]
        # Costs are linear over the run: the kept iterations carry their share of its totals.
        t, share = run.totals, k / len(all_times)
        totals = StepTime(
            float(_sum(times)), t.comm_ms * share, t.bubble_ms * share, t.ffn_bubble_ms * share, t.host_ms * share
        )
        short = Batch(run.scheduled, run.start_s, run.start_s + totals.total_s, totals, times)
        if run.chunks is not None:
            short.chunks, short.first_step = run.chunks[:k], (run.first_step if run.first_step < k else -1)
        self._account(run.totals, -1)
        self._account(totals, 1)
        self.next_issue_s = short.done_s
        self.inflight.append(short)
        return short

    def _decode_run(self, plan: StepPlan) -> tuple[np.ndarray, StepTime]:
        """The decode iterations that can run before anything changes: their step times and
        totals."""
        scheduled = plan.scheduled
        b = len(scheduled)
        k = min([r.max_output_tokens - r.num_output for r, _ in scheduled])
        computed = [r.num_computed for r, _ in scheduled]
        bs = self.kv.block_size
        # A sequence grows by at most ceil((k - 1) / block_size) blocks in iterations 2..k.
        if k > 1 and b * -(-(k - 1) // bs) > self.kv.free_blocks:
            k = self._steps_within_free_blocks(np.array(computed, dtype=np.int64), k)
        first = BatchStats(0, 0, 0, 0, 0, 0, 0, b, sum(computed) + b, max(computed) + 1, b)  # b decodes
        return self.step_model.decode_run(first, k)

    def _steps_within_free_blocks(self, computed: np.ndarray, k: int) -> int:
        """Largest j <= k such that decode iterations 2..j find KV blocks (iteration 1 is
        allocated)."""
        bs = self.kv.block_size
        held = -(-(computed + 1) // bs)
        return _within(lambda j: int((-(-(computed + j) // bs) - held).sum()), k, self.kv.free_blocks)

    def _first_token(self, req: Request, t: float, finished: list, handoffs: list) -> None:
        """A prompt's prefill ended at t with its first token."""
        req.first_token_s = req.last_token_s = t
        if self.first_tokens is not None:
            self.first_tokens.append(req)
        self.kv.register_prefix(req)
        req.num_output = 1
        if req.num_output >= req.max_output_tokens:
            finished.append(req)
        elif self.role == "prefill":
            handoffs.append(req)

    def complete(self, batch: Batch) -> tuple[list[Request], list[Request]]:
        """Apply a finished batch: (requests finished, requests prefilled for a decode instance)."""
        self.inflight.remove(batch)
        finished, handoffs = [], []
        rec = self.recorder
        if batch.step_times_s is not None:
            times = batch.step_times_s
            k = len(times)
            reqs = [r for r, _ in batch.scheduled]
            prompt = None
            if batch.chunks is not None:  # the last request is a prompt being prefilled
                prompt = reqs.pop()
                prefilled = sum(batch.chunks)
                prompt.num_computed += prefilled
                self.prefill_tokens += prefilled
            done_s = batch.done_s
            last = [r.last_token_s for r in reqs]  # each request's last token before this run
            for req in reqs:
                req.num_computed += k
                out = req.num_output + k
                req.num_output = out
                req.last_token_s = done_s
                if out >= req.max_output_tokens:
                    finished.append(req)
            # Each request's first gap runs from its last token; the rest are the step times.
            if reqs:
                rec.gaps(batch.start_s + float(times[0]) - np.array(last), 1)
                rec.gaps(times[1:], len(reqs))
            self.steps += k
            self.output_tokens += k * len(reqs)
            if prompt is None:
                rec.step(self.name, batch.start_s, done_s, "decode", len(reqs), k)
                self.kv.grow_to_computed(reqs)
                self.scheduler.advance(k - 1)  # the first iteration was planned by `schedule`
            else:
                f = batch.first_step
                decoded = k - 1 - f if f >= 0 else 0
                rec.step(
                    self.name, batch.start_s, done_s, "prefill", len(reqs) + 1, k, k * len(reqs) + prefilled + decoded
                )
                if f >= 0:  # its first token, then a token per decode iteration
                    prompt.num_computed += decoded
                    self.kv.grow_to_computed(reqs + [prompt])
                    # (At the last iteration: the batch's end, not a sum rounded another way.)
                    first_s = done_s if f == k - 1 else batch.start_s + float(_sum(times[: f + 1]))
                    self._first_token(prompt, first_s, finished, handoffs)
                    self.output_tokens += 1 + decoded
                    if decoded:
                        rec.gaps(times[f + 1 :], 1)
                        prompt.num_output += decoded
                        prompt.last_token_s = done_s
                        if prompt.num_output >= prompt.max_output_tokens:
                            finished.append(prompt)
                else:
                    self.kv.grow_to_computed(reqs + [prompt])
        else:
            t = batch.done_s
            tokens = emitted = prefilled = 0
            gaps = []
            gap = gaps.append
            hands_off = self.role == "prefill"
            for req, n in batch.scheduled:
                out = req.num_output
                if n > 1 or out == 0:
                    prefilled += n
                c = req.num_computed + n
                req.num_computed = c
                tokens += n
                if c == req.prompt_tokens + out:
                    emitted += 1
                    if out == 0:
                        self._first_token(req, t, finished, handoffs)
                        continue
                    gap(t - req.last_token_s)
                    req.num_output = out = out + 1
                    req.last_token_s = t
                    if out >= req.max_output_tokens:
                        finished.append(req)
                    elif hands_off:
                        handoffs.append(req)
            rec.gap_list(gaps)
            self.prefill_tokens += prefilled
            self.steps += 1
            self.output_tokens += emitted
            kind = "decode" if tokens == len(batch.scheduled) else "prefill"
            rec.step(self.name, batch.start_s, batch.done_s, kind, len(batch.scheduled), 1, tokens)
        for req in finished:
            req.finish_s = batch.done_s
            req.status = "finished"
            self.scheduler.finish(req)
            self._leave(req)
        for req in handoffs:
            self.scheduler.running.remove(req)
            self._leave(req)
        self.token_log.extend((batch.done_s, self.prefill_tokens, self.output_tokens))
        return finished, handoffs
