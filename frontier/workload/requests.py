"""The requests a simulation serves: one row per request, as parallel numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RequestTable:
    """Requests in arrival order.

    arrival_s      float64, seconds, sorted ascending (a trace's first request arrives at 0)
    input_tokens   int64, prompt length, >= 1
    output_tokens  int64, tokens to generate, >= 1
    prefix_blocks  per request, the ids of its prompt's `block_tokens`-token blocks (Mooncake
                   `hash_ids`): requests sharing a leading id share that prefix, so a prefix cache
                   can hit. None where the source says nothing about shared prefixes.
    block_tokens   tokens per prefix block (512 in Mooncake traces); meaningful only with
                   prefix_blocks.
    source         a human description, e.g. "Azure LLM inference 2023 conv trace, 19366 requests,
                   5.5 req/s".
    concurrency    at most this many requests in flight (a client limit like
                   `vllm bench serve --max-concurrency`); None: unlimited.
    send_gap_s     with `concurrency`: mean of the exponential gap between a client's request
                   finishing and its next one leaving (frontier.workload.spec.SEND_GAP_MS).
    warmup         the first `warmup` requests are the benchmark's warmup: not measured, and the
                   others leave only once all of them are done (WorkloadSpec.warmup_requests).
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_blocks: list[tuple[int, ...]] | None = None
    block_tokens: int = 512
    source: str = ""
    concurrency: int | None = None
    send_gap_s: float = 0.0
    warmup: int = 0

    def __post_init__(self) -> None:
        self.arrival_s = np.asarray(self.arrival_s, dtype=np.float64)
        self.input_tokens = np.asarray(self.input_tokens, dtype=np.int64)
        self.output_tokens = np.asarray(self.output_tokens, dtype=np.int64)
        n = len(self.arrival_s)
        if len(self.input_tokens) != n or len(self.output_tokens) != n:
            raise ValueError(
                f"RequestTable columns differ in length: arrival_s {n}, "
                f"input_tokens {len(self.input_tokens)}, output_tokens {len(self.output_tokens)}"
            )
        if self.prefix_blocks is not None and len(self.prefix_blocks) != n:
            raise ValueError(f"RequestTable.prefix_blocks has {len(self.prefix_blocks)} entries for {n} requests")
        if not 0 <= self.warmup < max(n, 1):
            raise ValueError(f"RequestTable.warmup: {self.warmup} of {n} requests leaves none to measure")
        if n and np.any(np.diff(self.arrival_s) < 0):
            raise ValueError("RequestTable.arrival_s must be sorted ascending")

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def duration_s(self) -> float:
        """Time from the first arrival to the last (0 for fewer than two requests)."""
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0

    @property
    def rate_rps(self) -> float:
        """Mean arrival rate in requests per second; inf when all arrive at once."""
        if len(self) < 2:
            return float("inf")
        span = self.duration_s
        return (len(self) - 1) / span if span > 0 else float("inf")

    def head(self, n: int) -> RequestTable:
        """The first n requests (all of them if there are fewer)."""
        if n < 0:
            raise ValueError(f"head(n) needs n >= 0, got {n}")
        if n >= len(self):
            return self
        return RequestTable(
            arrival_s=self.arrival_s[:n].copy(),
            input_tokens=self.input_tokens[:n].copy(),
            output_tokens=self.output_tokens[:n].copy(),
            prefix_blocks=None if self.prefix_blocks is None else self.prefix_blocks[:n],
            block_tokens=self.block_tokens,
            source=f"{self.source} (first {n})" if self.source else f"first {n} requests",
            concurrency=self.concurrency,
            send_gap_s=self.send_gap_s,
            warmup=min(self.warmup, max(n - 1, 0)),
        )
