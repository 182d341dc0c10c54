"""Cases and the loop that measures them.

A `Case` is one table row to be: its identifying columns (`row`) are known before anything runs
(so a rerun can skip it), and `setup()` allocates the inputs on the device and returns the
zero-argument call to time (or, for a case that times itself, such as a sum of calls each timed
alone, the finished `Timing`). Shapes a backend cannot run raise `Unsupported`; the rest of that
case's `group` is then skipped and the reason is kept once in meta.json's notes.
"""

from __future__ import annotations

import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from profiler.tables import TableWriter
from profiler.timing import Timing


class Unsupported(Exception):
    """This backend cannot run this shape on this machine (the reason is the message)."""


@dataclass
class Case:
    family: str
    row: dict
    setup: Callable[[], Callable[[], object] | Timing]
    group: str = ""
    derive: Callable[[float], dict] | None = None  # extra columns from the median ms
    cost_ms: float = 0.0  # rough estimate of one call, for planning


@dataclass
class Notes:
    """What was skipped or failed, once per (group, reason)."""

    items: list[dict] = field(default_factory=list)
    _seen: set = field(default_factory=set)

    def add(self, kind: str, where: str, message: str) -> None:
        key = (kind, where, message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append({"kind": kind, "where": where, "message": message})

    def errors(self) -> list[dict]:
        return [n for n in self.items if n["kind"] == "error"]


class TensorCache:
    """Keeps the last few large inputs (weights, KV caches) so consecutive cases share them.

    At most `capacity` entries and, beyond the newest one, at most `max_bytes` of tensors.
    """

    def __init__(self, capacity: int = 3, max_bytes: int = 24 * 2**30):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()

    @staticmethod
    def _nbytes(value) -> int:
        return int(getattr(value, "nbytes", 0) or 0)

    def get(self, key, factory: Callable[[], object]):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        while len(self._items) >= self.capacity:
            self._items.popitem(last=False)
        value = factory()
        self._items[key] = value
        while len(self._items) > 1 and sum(self._nbytes(v) for v in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


@dataclass
class Context:
    device: str  # "cuda" or "cpu"
    dry_run: bool
    quick: bool
    seed: int = 0
    triton: bool = False  # Triton kernels usable (on the GPU, or in the interpreter on a dry run)
    notes: Notes = field(default_factory=Notes)
    cache: TensorCache = field(default_factory=TensorCache)
    timer: object = None
    sm_count: int = 0

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def generator(self, salt: int = 0):
        import torch

        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed * 1_000_003 + salt)
        return gen


class FatalDeviceError(Exception):
    """The GPU context is broken (illegal address, ...): nothing after this can be trusted."""


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def is_fatal(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        s in text
        for s in ("illegal memory access", "an illegal instruction", "unspecified launch failure", "device-side assert")
    )


def measure_cases(
    cases: Iterable[Case],
    writers: dict[str, TableWriter],
    ctx: Context,
    advance: Callable[[Case], None] = lambda case: None,
    deadline: float | None = None,
) -> int:
    """Measure every case, appending each row as soon as it is timed. Returns rows written.

    Past `deadline` (time.time()) the remaining cases are left for a later run (resume).
    """
    dead: set[str] = set()
    written = 0
    left = 0
    for case in cases:
        try:
            if deadline is not None and time.time() > deadline:
                left += 1
                where = case.family
                continue
            if case.group and case.group in dead:
                continue
            row = _measure_one(case, ctx, dead)
            if row is not None:
                writers[case.family].append(row)
                written += 1
        finally:
            advance(case)
    if left:
        ctx.notes.add(
            "budget", where, f"time budget reached: {left} rows left for a rerun of the same command (it resumes)"
        )
    return written


def _measure_one(case: Case, ctx: Context, dead: set[str]) -> dict | None:
    where = case.group or case.family
    try:
        fn = case.setup()
        timing = fn if isinstance(fn, Timing) else ctx.timer.measure(fn)
    except Unsupported as exc:
        dead.add(case.group)
        ctx.notes.add("unsupported", where, str(exc))
        return None
    except Exception as exc:  # one failing kernel must not end an hour of profiling
        if is_fatal(exc):
            raise FatalDeviceError(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        if _is_oom(exc):
            ctx.cache.clear()
            _empty_cache(ctx)
            ctx.notes.add("oom", where, f"out of memory at {case.row}")
            return None
        dead.add(case.group)
        first = str(exc).splitlines()[0] if str(exc) else ""
        ctx.notes.add(
            "error", where, f"{type(exc).__name__}: {first[:300]} [{traceback.extract_tb(exc.__traceback__)[-1].name}]"
        )
        return None
    row = dict(case.row, ms=timing.ms, ms_min=timing.ms_min)
    if case.derive:
        row.update(case.derive(timing.ms))
    return row


def _empty_cache(ctx: Context) -> None:
    if ctx.cuda:
        import torch

        torch.cuda.empty_cache()
