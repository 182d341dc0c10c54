"""A progress bar (rich, on a terminal) or periodic one-line reports (logs, pipes)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, every_s: float = 20.0):
        self.total = max(total, 0)
        self.done = 0
        self.label = ""
        self.every_s = every_s
        self._last = 0.0
        self._start = time.time()
        self._rich = None
        self._task = None

    def __enter__(self):
        if sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress as RichProgress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )
            except ImportError:
                return self
            self._rich = RichProgress(
                TextColumn("{task.description:14s}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._rich.__enter__()
            self._task = self._rich.add_task("profiling", total=self.total)
        return self

    def __exit__(self, *exc):
        if self._rich is not None:
            self._rich.__exit__(*exc)
        elif self.total:
            self._report(force=True)
        return False

    def describe(self, label: str) -> None:
        self.label = label
        if self._rich is not None:
            self._rich.update(self._task, description=label)
        else:
            self._report(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.update(self._task, advance=n)
        else:
            self._report()

    def _report(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        pct = 100.0 * self.done / self.total if self.total else 100.0
        print(
            f"profiler: {self.done}/{self.total} ({pct:.0f}%) {self.label} [{(now - self._start) / 60:.1f} min]",
            file=sys.stderr,
            flush=True,
        )
