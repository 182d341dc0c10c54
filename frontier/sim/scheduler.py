"""vLLM-v1-like continuous batching: running requests first, then waiting ones.

One step's token budget is `max_num_batched_tokens` and at most `max_num_seqs` requests run.
Running requests each get their remaining tokens (one for a decode, a chunk for a prefill);
when the KV cache has no block for one, the lowest-priority running request (the last admitted)
is preempted by recompute. Waiting requests are admitted in arrival order while budget, sequence
slots and blocks last; with chunked prefill a long prompt is split over steps.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from frontier.sim.kv_cache import BlockManager
from frontier.sim.request import Request


@dataclass
class StepPlan:
    scheduled: list[tuple[Request, int]] = field(default_factory=list)  # (request, new tokens)
    preempted: list[Request] = field(default_factory=list)
    # Admission of waiting requests stopped for a reason that decode steps cannot lift
    # (no waiting request, all sequence slots taken, or no free block).
    admission_blocked: bool = True
    decode_only: bool = True  # every scheduled request decodes one token


class Scheduler:
    def __init__(self, kv: BlockManager, max_num_seqs: int, max_num_batched_tokens: int,
                 enable_chunked_prefill: bool = True):
        self.kv = kv
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.chunked_prefill = enable_chunked_prefill
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()

    def add(self, req: Request) -> None:
        self.waiting.append(req)

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
        kv, block_size = self.kv, self.kv.block_size
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            if busy and req.id in busy:
                i += 1
                continue
            n = min(req.prompt_tokens + req.num_output - req.num_computed, budget)
            # Most decode steps stay inside the request's last block: no allocation needed.
            fits = req.num_computed + n <= req.num_blocks * block_size or kv.allocate(req, n)
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
            else:
                plan.scheduled.append((req, n))
                if n != 1 or req.num_output == 0:
                    plan.decode_only = False
                budget -= n
                i += 1
                continue
            break  # the request itself was preempted: nothing later can fit either
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
