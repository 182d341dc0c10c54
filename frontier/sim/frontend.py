"""The engine's front end: the API server between a client and the scheduler.

A request crosses it on the way in before the scheduler sees it, and its first token crosses
it on the way out. Three parts:
- a latency every request sees, in parallel with the others (HTTP, the hops between the API
  server / tokenizer / detokenizer processes, streaming the first token back): `latency_ms`,
  plus `latency_us_per_token` x its prompt tokens (what a request waits behind NVIDIA Dynamo's
  front end, frontier.engine DYNAMO_US_PER_PROMPT_TOKEN);
- the work vLLM's API server and SGLang's TokenizerManager do in one process, one request at a
  time (parsing, chat template, tokenisation, hand-off to the engine core): a FIFO server taking
  `serial_ms` + `us_per_token` x prompt tokens per request, so a burst of requests reaches the
  scheduler spread out, and a busy front end queues. A cluster of `dp` replicas has `dp` of
  them (each replica its own API server), times `workers` processes each (SGLang's
  --tokenizer-worker-num), a request taking the one free first;
- the same process's work on the way out, one streamed output at a time (SGLang's
  TokenizerManager dispatching a request's new tokens to its stream): `stream_us_per_output`, one
  queue per engine instance (each server streams through its own process; `workers` processes
  share the work, SGLang's --tokenizer-worker-num). An output is a token, or with
  `stream_interval` N every N-th token of a running request besides its first and last. When the
  instance emits outputs faster than that, they queue: each reaches its client late by the
  backlog, first and last tokens alike, so a closed loop's clients send their next requests late
  and fewer requests run in the engine.
The costs come from frontier.engine `HostTime` (fitted to the development set's TTFTs), `workers`
and `stream_interval` from the deployment.

It also keeps its own load (`load`): how busy its request and output work kept it, and how late
its queue made the first tokens. A stream near 100 % busy is where latency turns steep: each
percent of per-output cost more or less moves TTFT by far more, and the engine's knobs for it
(SGLang's --tokenizer-worker-num, --stream-interval) matter more than the GPUs'.
"""

from __future__ import annotations

import heapq


class Frontend:
    def __init__(
        self,
        latency_ms: float,
        serial_ms: float,
        us_per_token: float,
        stream_us_per_output: float = 0.0,
        servers: int = 1,
        workers: int = 1,
        stream_interval: int = 1,
        latency_us_per_token: float = 0.0,
    ):
        self.latency_s = latency_ms * 1e-3
        self.latency_per_token_s = latency_us_per_token * 1e-6
        self.serial_s = serial_ms * 1e-3
        self.per_token_s = us_per_token * 1e-6
        self.free_s = [0.0] * (servers * workers)  # a heap: when each server's work so far is done
        self.stream_s = stream_us_per_output * 1e-6 / workers  # the workers' queues as one, evenly loaded
        self.stream_interval = stream_interval
        self.stream_free_s: dict[str, float] = {}  # per instance: when its tokens so far are out
        self.reset_counters()

    def reset_counters(self) -> None:
        """Count the load from now on only (a warmup's is not measured)."""
        self.request_busy_s = 0.0  # serial request work, all servers together
        self.stream_busy_s: dict[str, float] = {}  # per instance: output work
        self.first_lag_s = 0.0  # the delay the output queue added, summed over first tokens
        self.firsts = 0

    def stream(
        self, instance: str, start_s: float, end_s: float, tokens: int, firsts: int = 0, lasts: int = 0
    ) -> float:
        """How late the tokens `instance` emitted from start_s to end_s reach their clients at end_s:
        `tokens` in all, `firsts` of them first tokens, `lasts` last ones of longer outputs.

        A fluid queue: the outputs count as arriving evenly over the span and leave at one per
        `stream_us_per_output`, after the backlog left from before (a single step's outputs all
        come at its end, so its last ones may leave up to their own service time later)."""
        outputs = firsts + lasts + max(tokens - firsts - lasts, 0) / self.stream_interval
        backlog = max(0.0, self.stream_free_s.get(instance, 0.0) - start_s)
        work = outputs * self.stream_s
        lag = max(0.0, backlog + work - (end_s - start_s))
        self.stream_free_s[instance] = end_s + lag
        self.stream_busy_s[instance] = self.stream_busy_s.get(instance, 0.0) + work
        self.first_lag_s += lag * firsts
        self.firsts += firsts
        return lag

    def admit(self, now: float, prompt_tokens: int) -> float:
        """When a request sent at `now` reaches the scheduler."""
        work = self.serial_s + self.per_token_s * prompt_tokens
        done = max(now, self.free_s[0]) + work
        heapq.heapreplace(self.free_s, done)
        self.request_busy_s += work
        return done + self.latency_s + self.latency_per_token_s * prompt_tokens

    def load(self, duration_s: float) -> dict:
        """How busy the front end was over `duration_s` of measured time: its request work (the
        servers' mean), its output stream (the busiest instance's queue; None without one), and
        how late that queue made the first tokens on average (ms)."""
        duration_s = max(duration_s, 1e-12)
        return {
            "request_busy_fraction": self.request_busy_s / (duration_s * len(self.free_s)),
            "stream_busy_fraction": (
                max(self.stream_busy_s.values(), default=0.0) / duration_s if self.stream_s > 0 else None
            ),
            "first_token_stream_lag_ms": self.first_lag_s / self.firsts * 1e3 if self.firsts else None,
        }
