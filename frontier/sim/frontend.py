"""The engine's front end: the API server between a client and the scheduler.

A request crosses it on the way in before the scheduler sees it, and its first token crosses
it on the way out. Two parts:
- a latency every request sees, in parallel with the others (HTTP, the hops between the API
  server / tokenizer / detokenizer processes, streaming the first token back): `latency_ms`;
- the work vLLM's API server and SGLang's TokenizerManager do in one process, one request at a
  time (parsing, chat template, tokenisation, hand-off to the engine core): a FIFO server taking
  `serial_ms` + `us_per_token` x prompt tokens per request, so a burst of requests reaches the
  scheduler spread out, and a busy front end queues.
Both come from frontier.engine `HostTime` (fitted to the development set's TTFTs).
"""

from __future__ import annotations


class Frontend:
    def __init__(self, latency_ms: float, serial_ms: float, us_per_token: float):
        self.latency_s = latency_ms * 1e-3
        self.serial_s = serial_ms * 1e-3
        self.per_token_s = us_per_token * 1e-6
        self.free_s = 0.0

    def admit(self, now: float, prompt_tokens: int) -> float:
        """When a request sent at `now` reaches the scheduler."""
        start = max(now, self.free_s)
        self.free_s = start + self.serial_s + self.per_token_s * prompt_tokens
        return self.free_s + self.latency_s
