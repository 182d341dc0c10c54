"""Continuous-batching policies: vLLM v1 (`Scheduler`) and SGLang (`SGLangScheduler`).

Both keep the same contract with the instance: `add`, `schedule(busy) -> StepPlan`, `finish`,
`advance(k)` (k decode iterations ran in one fast-forwarded batch), `running`, `waiting`.

vLLM v1 (vllm/v1/core/sched/scheduler.py): running requests first, then waiting ones.
One step's token budget is `max_num_batched_tokens` and at most `max_num_seqs` requests run.
Running requests each get their remaining tokens (one for a decode, a chunk for a prefill);
when the KV cache has no block for one, the lowest-priority running request (the last admitted)
is preempted by recompute. Waiting requests are admitted in arrival order while budget, sequence
slots and blocks last; with chunked prefill a long prompt is split over steps.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from frontier.sim.kv_cache import BlockManager
from frontier.sim.request import Request


@dataclass(slots=True)  # one per planned batch
class StepPlan:
    scheduled: list[tuple[Request, int]] = field(default_factory=list)  # (request, new tokens)
    preempted: list[Request] = field(default_factory=list)
    # Admission of waiting requests stopped for a reason that decode steps cannot lift
    # (no waiting request, all sequence slots taken, or no free block).
    admission_blocked: bool = True
    decode_only: bool = True  # every scheduled request decodes one token


class Scheduler:
    def __init__(
        self, kv: BlockManager, max_num_seqs: int, max_num_batched_tokens: int, enable_chunked_prefill: bool = True
    ):
        self.kv = kv
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.chunked_prefill = enable_chunked_prefill
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()

    def add(self, req: Request) -> None:
        self.waiting.append(req)

    def advance(self, steps: int) -> None:
        """`steps` decode iterations ran as one batch (vLLM keeps no per-step state)."""

    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def _preempt(self, req: Request) -> None:
        self.kv.free(req)
        req.num_computed = 0
        req.preemptions += 1
        self.waiting.appendleft(req)

    def _victim(self, busy: set[int] | None) -> Request | None:
        """The lowest-priority running request (the last admitted) not in flight elsewhere."""
        for req in reversed(self.running):
            if not busy or req.id not in busy:
                return req
        return None

    def schedule(self, busy: set[int] | None = None) -> StepPlan:
        """Plan one step. `busy`: ids of requests still in flight in an earlier pipeline batch."""
        plan = StepPlan()
        budget = self.max_num_batched_tokens
        running = self.running
        kv = self.kv
        scheduled, decode_only = plan.scheduled, True
        append = scheduled.append
        # (A preemption removes a request at or after this one: iterating on stays in order.)
        for req in running:
            if budget <= 0:
                break
            if busy and req.id in busy:
                continue
            out, computed = req.num_output, req.num_computed
            n = req.prompt_tokens + out - computed
            if n > budget:
                n = budget
            # Most decode steps stay inside the request's last block: no allocation needed.
            if computed + n > kv.token_room(req) and not kv.allocate(req, n):
                fits = False
                while not fits:
                    victim = self._victim(busy)
                    if victim is None:
                        break
                    running.remove(victim)
                    self._preempt(victim)
                    plan.preempted.append(victim)
                    if victim is req:
                        break
                    fits = kv.allocate(req, n)
                if not fits:
                    break  # the request itself was preempted: nothing later can fit either
            append((req, n))
            if n != 1 or out == 0:
                decode_only = False
            budget -= n
        plan.decode_only = decode_only
        if plan.preempted:
            return plan
        waiting = self.waiting
        while waiting and budget > 0:
            if len(running) >= self.max_num_seqs:
                return plan
            req = waiting[0]
            if req.num_computed == 0:
                kv.match_prefix(req)
            n = req.remaining_new_tokens
            if n > budget and not self.chunked_prefill:
                self._unmatch(req)
                plan.admission_blocked = False
                return plan
            n = min(n, budget)
            if not kv.allocate(req, n):
                self._unmatch(req)
                return plan
            waiting.popleft()
            running.append(req)
            plan.scheduled.append((req, n))
            plan.decode_only = False
            budget -= n
        plan.admission_blocked = not waiting
        return plan

    def _unmatch(self, req: Request) -> None:
        """Release a prefix match of a request that was not admitted after all."""
        if req.shared_units:
            self.kv.free(req)
            req.num_computed = req.cached_tokens = 0

    def finish(self, req: Request) -> None:
        self.running.remove(req)
        self.kv.free(req)


class SGLangScheduler(Scheduler):
    """SGLang's scheduler (sglang/srt/managers/scheduler.py `get_next_batch_to_run`,
    schedule_policy.py `PrefillAdder`), as far as it shapes latency:

    - Prefill first: each step is a prefill (extend) batch if one can be formed, else a decode
      batch of every running request. Prefill chunks ride in decode batches only with
      `enable_mixed_chunk`.
    - A prefill batch takes waiting requests in order (fcfs; lpm: longest cached prefix first)
      while the batch's new tokens stay within `max_prefill_tokens`, the request's within
      `chunked_prefill_size` (a longer prompt is chunked: one chunk per prefill batch, the
      chunked request first in the next one), both less the running batch's decode tokens with
      `enable_mixed_chunk` (`mixed_with_decode_tokens`); a request stops the batch when its
      prompt needs all the input budget left. The KV pool must hold the new request's prompt
      plus min(max_new_tokens, 4096) after reserving `new_token_ratio` x the remaining output
      of every running request.
    - `new_token_ratio` starts at 0.7, decays linearly to 0.098 over 600 decode steps, and
      returns to 0.7 when the server idles (both x `schedule_conservativeness`, which SGLang
      scales by 0.3 with attention-DP ranks: server_args.py `_handle_data_parallelism`); a decode
      step without KV for every running request retracts the last admitted ones (recompute
      later).
    - Requests that ignore EOS (`ignore_eos`: each will generate all its max_new_tokens) with the
      radix cache off take another path (`PrefillAdder.add_one_req_ignore_eos`, read in the
      0.5.1, 0.5.6.post2 and 0.5.14 wheels): a request joins the batch while any input budget is
      left, so one goes past it, and the KV pool must hold its prompt and then, finishing the
      running and added requests in order of their remaining outputs (all of them, no
      new_token_ratio), always have a token a request to spare (`_outputs_fit`).
    The radix cache is the block manager's prefix cache.
    """

    INIT_NEW_TOKEN_RATIO = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO (x schedule_conservativeness)
    MIN_NEW_TOKEN_RATIO_FACTOR = 0.14  # SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR
    DECAY_STEPS = 600  # SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS
    CLIP_MAX_NEW_TOKENS = 4096  # SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION

    def __init__(
        self,
        kv: BlockManager,
        max_running_requests: int,
        chunked_prefill_size: int,
        max_prefill_tokens: int,
        enable_mixed_chunk: bool = False,
        schedule_policy: str = "fcfs",
        schedule_conservativeness: float = 1.0,
        ignore_eos: bool = False,
    ):
        super().__init__(kv, max_running_requests, chunked_prefill_size, True)
        self.max_prefill_tokens = max_prefill_tokens
        self.ignore_eos_path = ignore_eos and not kv.prefix_caching  # `tree_cache.disable`
        self.mixed_chunk = enable_mixed_chunk
        self.policy = schedule_policy
        self.chunked: Request | None = None
        self.init_ratio = min(self.INIT_NEW_TOKEN_RATIO * schedule_conservativeness, 1.0)
        self.min_ratio = self.init_ratio * self.MIN_NEW_TOKEN_RATIO_FACTOR
        self.new_token_ratio = self.init_ratio

    def advance(self, steps: int) -> None:
        decay = (self.init_ratio - self.min_ratio) / self.DECAY_STEPS
        self.new_token_ratio = max(self.new_token_ratio - decay * steps, self.min_ratio)

    def _prefilled(self, req: Request) -> bool:
        """Its prompt (and, after a retraction, its earlier output) is in the KV cache."""
        return req.is_decoding and req is not self.chunked

    def schedule(self, busy: set[int] | None = None) -> StepPlan:
        if not self.running:
            self.new_token_ratio = self.init_ratio
        plan = self._prefill_batch(busy)
        if plan.scheduled:
            if self.mixed_chunk:
                self._add_decodes(plan, busy)
            return plan
        plan = StepPlan(admission_blocked=plan.admission_blocked)
        self._add_decodes(plan, busy)
        if plan.scheduled:
            self.advance(1)
        return plan

    def _add_decodes(self, plan: StepPlan, busy: set[int] | None) -> None:
        """One token for every running request whose prefill is done, retracting on KV shortage."""
        kv = self.kv
        for req in list(self.running):
            if not self._prefilled(req) or (busy and req.id in busy) or req not in self.running:
                continue
            fits = req.num_computed + 1 <= kv.token_room(req) or kv.allocate(req, 1)
            while not fits:
                victim = self._victim(busy)
                if victim is None or victim is self.chunked:
                    break
                self.running.remove(victim)
                self._preempt(victim)
                plan.preempted.append(victim)
                self.new_token_ratio = self.init_ratio
                if victim is req:
                    break
                fits = kv.allocate(req, 1)
            if fits and req in self.running:
                plan.scheduled.append((req, 1))

    def _prefill_batch(self, busy: set[int] | None) -> StepPlan:
        plan = StepPlan(decode_only=False)
        if not self.waiting and self.chunked is None:
            return plan
        kv = self.kv
        reserved = (
            sum(
                min(r.max_output_tokens - r.num_output, self.CLIP_MAX_NEW_TOKENS)
                for r in self.running
                if self._prefilled(r)
            )
            * self.new_token_ratio
        )
        # A mixed batch's decode tokens come out of every prefill budget (PrefillAdder's
        # `mixed_with_decode_tokens` = the running batch size with --enable-mixed-chunk).
        mixed = sum(map(self._prefilled, self.running)) if self.mixed_chunk else 0
        free = kv.free_blocks * kv.block_size - mixed  # PrefillAdder.cur_rem_tokens
        rem_total = free - reserved
        rem_input = self.max_prefill_tokens - mixed
        rem_chunk = self.max_num_batched_tokens - mixed
        if self.chunked is not None and self.chunked.is_decoding:  # its last chunk ran fast-forwarded
            self.chunked = None
        chunked = self.chunked
        if chunked is not None and not (busy and chunked.id in busy):
            n = min(chunked.remaining_new_tokens, rem_chunk)
            if kv.allocate(chunked, n):
                plan.scheduled.append((chunked, n))
                rem_input -= n
                rem_chunk -= n
                rem_total -= n
                free -= n
                if n == chunked.remaining_new_tokens:
                    self.chunked = None
                else:
                    return plan
        if self.policy == "lpm" and len(self.waiting) > 1:
            for req in self.waiting:
                if req.num_computed == 0:
                    self.kv.match_prefix(req)
            self.waiting = deque(sorted(self.waiting, key=lambda r: -r.cached_tokens))
        outputs = None  # the ignore-EOS path's (remaining output, tokens held) of every request
        while self.waiting:
            if len(self.running) >= self.max_num_seqs:
                return plan
            req = self.waiting[0]
            if req.num_computed == 0:
                kv.match_prefix(req)
            extend = req.remaining_new_tokens
            total = extend + min(req.max_output_tokens - req.num_output, self.CLIP_MAX_NEW_TOKENS)
            if self.ignore_eos_path:
                if outputs is None:
                    outputs = sorted(o for r in self.running if (o := self._outputs(r))[0] > 0)
                bisect.insort(outputs, self._outputs(req))
                fits = extend <= min(free, rem_total) and self._outputs_fit(outputs, free - extend)
            else:
                fits = total < rem_total and not (extend >= rem_input and plan.scheduled)
            n = min(extend, rem_chunk)
            if not fits or n <= 0 or not kv.allocate(req, n):
                self._unmatch(req)
                plan.admission_blocked = False
                return plan
            self.waiting.popleft()
            self.running.append(req)
            plan.scheduled.append((req, n))
            rem_total -= total if n == extend else n
            rem_input -= n
            rem_chunk -= n
            free -= n
            if n < extend:
                self.chunked = req
                return plan
            if self.ignore_eos_path and min(rem_total, free, rem_input, rem_chunk) <= 0:
                plan.admission_blocked = False
                return plan
        plan.admission_blocked = True
        return plan

    @staticmethod
    def _outputs(req: Request) -> tuple[int, int]:
        """(output tokens it will still generate, KV tokens it holds once done) of an ignore-EOS
        request, as `add_one_req_ignore_eos` sorts them (those with none left not at all)."""
        return req.max_output_tokens - req.num_output, req.prompt_tokens + req.num_output

    @staticmethod
    def _outputs_fit(outputs: list[tuple[int, int]], free: int) -> bool:
        """Whether `free` KV tokens see every request through, finishing them shortest remaining
        output first: while the i-th finishes, the n - i still running each take a token a step
        and need one more to spare (IGNORE_EOS_RESERVE_TOKENS); each done frees what it held."""
        freed, n = 0, len(outputs)
        for i, (left, held) in enumerate(outputs):
            if free + freed - left * (n - i) <= n - i:
                return False
            freed += held
        return True

    def finish(self, req: Request) -> None:
        if req is self.chunked:
            self.chunked = None
        super().finish(req)
