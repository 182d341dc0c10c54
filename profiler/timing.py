"""How one operator is timed (the method of `shared/h100-reference/README.md`).

Inputs already on the device; `warmup` untimed calls; then `reps` timed calls, each preceded by
zeroing a 256 MiB buffer (flushes the L2, as between the layers of a real model) and a ~0.1 ms
spin kernel (`torch.cuda._sleep`) so the CPU's launch gap is not inside the timed interval.
CUDA events bracket the single call. Result: median (`ms`) and fastest rep (`ms_min`).

On the CPU (`--dry-run`) the structure is the same with `time.perf_counter`, a small flush
buffer and no spin.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

L2_FLUSH_BYTES = 256 * 2**20
SPIN_MS = 0.1
WARMUP = 3
REPS_FULL = 15
REPS_QUICK = 10
REPS_LONG = 5  # calls slower than LONG_CALL_MS get fewer reps (noise is small there)
LONG_CALL_MS = 20.0

DRY_FLUSH_BYTES = 4 * 2**20
DRY_WARMUP = 2
DRY_REPS = 3


@dataclass(frozen=True)
class Timing:
    ms: float
    ms_min: float
    reps: int


class Timer:
    """Times a zero-argument callable on the GPU (CUDA events) or the CPU (perf_counter)."""

    def __init__(self, device: str, reps: int, warmup: int = WARMUP):
        import torch

        self.torch = torch
        self.device = device
        self.cuda = device.startswith("cuda")
        self.warmup = warmup
        self.reps = reps
        self.flush_bytes = L2_FLUSH_BYTES if self.cuda else DRY_FLUSH_BYTES
        self.flush_buf = torch.empty(self.flush_bytes, dtype=torch.uint8, device=device)
        self.spin_cycles = self._calibrate_spin() if self.cuda else 0

    def method(self) -> dict:
        return {
            "timer": "cuda_events" if self.cuda else "perf_counter",
            "warmup": self.warmup,
            "reps": self.reps,
            "reps_long": REPS_LONG,
            "long_call_ms": LONG_CALL_MS,
            "l2_flush_bytes": self.flush_bytes,
            "spin_ms": SPIN_MS if self.cuda else 0.0,
            "spin_cycles": self.spin_cycles,
            "statistic": "ms = median of reps, ms_min = fastest rep",
        }

    def _calibrate_spin(self) -> int:
        """Cycles of `torch.cuda._sleep` that take SPIN_MS on this GPU at its running clock."""
        torch = self.torch
        probe = 1_000_000
        torch.cuda._sleep(probe)  # wake the clocks
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(3):
            start.record()
            torch.cuda._sleep(probe)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end))
        return max(1000, int(probe * SPIN_MS / max(best, 1e-6)))

    def flush(self) -> None:
        self.flush_buf.zero_()

    def measure(self, fn: Callable[[], object]) -> Timing:
        return self._measure_cuda(fn) if self.cuda else self._measure_cpu(fn)

    def _reps_for(self, first_ms: float) -> int:
        return min(self.reps, REPS_LONG) if first_ms > LONG_CALL_MS else self.reps

    def _measure_cuda(self, fn: Callable[[], object]) -> Timing:
        torch = self.torch
        probe_start, probe_end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for i in range(self.warmup):
            if i == self.warmup - 1:
                probe_start.record()
            fn()
        probe_end.record()
        probe_end.synchronize()
        reps = self._reps_for(probe_start.elapsed_time(probe_end))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self.flush_buf.zero_()
            torch.cuda._sleep(self.spin_cycles)
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        return Timing(statistics.median(times), min(times), reps)

    def _measure_cpu(self, fn: Callable[[], object]) -> Timing:
        t0 = time.perf_counter()
        for _ in range(self.warmup):
            fn()
        first_ms = (time.perf_counter() - t0) * 1e3 / max(self.warmup, 1)
        reps = self._reps_for(first_ms)
        times = []
        for _ in range(reps):
            self.flush_buf.zero_()
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return Timing(statistics.median(times), min(times), reps)


def time_synchronised(fn: Callable[[], object], cuda: bool, reps: int, before: Callable[[], object]) -> list[float]:
    """`fn` timed `reps` times (ms) with nothing hiding its launches: each rep after `before()`
    (an L2 flush, a barrier) with the GPU idle, between CUDA events (perf_counter on the CPU)."""
    import torch

    times = []
    for _ in range(reps):
        before()
        if cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times
