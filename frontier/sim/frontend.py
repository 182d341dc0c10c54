"""The engine's front end: the API server between a client and the scheduler.

A request crosses it on the way in (HTTP, chat template, tokenisation, hand-off to the engine
core) before the scheduler sees it. vLLM's API server and SGLang's TokenizerManager each do this
in one process, one request at a time, so the front end is a single FIFO server: a burst of
requests reaches the scheduler spread out by the service times, and a busy front end queues.
Service time per request: `request_ms + request_us_per_token x prompt tokens` (frontier.engine
`HostTime`, fitted to the development set's TTFTs at low concurrency).
"""
from __future__ import annotations


class Frontend:
    def __init__(self, request_ms: float, us_per_token: float):
        self.request_s = request_ms * 1e-3
        self.per_token_s = us_per_token * 1e-6
        self.free_s = 0.0

    def admit(self, now: float, prompt_tokens: int) -> float:
        """When a request sent at `now` reaches the scheduler."""
        start = max(now, self.free_s)
        self.free_s = start + self.request_s + self.per_token_s * prompt_tokens
        return self.free_s
