"""WorkloadSpec + a seeded generator -> the RequestTable the simulator serves."""

from __future__ import annotations

import numpy as np

from frontier.errors import SpecError
from frontier.workload.requests import RequestTable
from frontier.workload.spec import PROMPT_POOL_BLOCK_TOKENS, WorkloadSpec
from frontier.workload.synthetic import arrival_times, sample_lengths
from frontier.workload.traces import describe_rate, read_trace


def build_requests(spec: WorkloadSpec, rng: np.random.Generator) -> RequestTable:
    """The requests of a workload. Same spec and same generator state -> same table.

    Draws from `rng` in a fixed order: arrival gaps, then input lengths, then output lengths
    (each only where the spec asks for random ones; per pooled prompt with `prompt_pool`), then
    each request's pooled prompt. The `warmup_requests` are the table's first rows, drawn with
    the others (num_requests more follow them).
    """
    table = _synthetic(spec, rng) if spec.trace is None else _replay(spec, rng)
    if spec.warmup_requests:
        if spec.warmup_requests >= len(table):
            raise SpecError(
                f"workload.warmup_requests: {spec.warmup_requests} leaves none of the workload's "
                f"{len(table)} requests to measure; use fewer"
            )
        table.warmup = spec.warmup_requests
        table.source += f", after {spec.warmup_requests} warmup requests (not measured)"
    return table


def _synthetic(spec: WorkloadSpec, rng: np.random.Generator) -> RequestTable:
    if spec.num_requests is None or spec.arrival is None or spec.input_len is None or spec.output_len is None:
        raise SpecError(
            "workload: a synthetic workload needs num_requests, arrival, input_len and output_len (or a trace)"
        )
    n = spec.num_requests + spec.warmup_requests
    arrival = arrival_times(spec.arrival, n, rng)
    if spec.prompt_pool is None:
        input_tokens = sample_lengths(spec.input_len, n, rng)
        output_tokens, blocks = sample_lengths(spec.output_len, n, rng), None
    else:
        input_tokens, output_tokens, blocks = _pooled_prompts(spec, n, rng)
    table = RequestTable(
        arrival_s=arrival,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prefix_blocks=blocks,
        block_tokens=PROMPT_POOL_BLOCK_TOKENS,
        concurrency=spec.concurrency,
        send_gap_s=spec.send_gap_ms * 1e-3,
    )
    pool = f", prompts drawn from {spec.prompt_pool} distinct ({spec.prompt_sampling})" if spec.prompt_pool else ""
    table.source = (
        f"synthetic, {spec.num_requests} requests, {spec.arrival.describe()}, "
        f"input {spec.input_len.describe()}, output {spec.output_len.describe()}{pool}" + _concurrency_note(spec)
    )
    return table


def _pooled_prompts(spec: WorkloadSpec, n: int, rng: np.random.Generator) -> tuple:
    """Lengths and prefix blocks of `n` requests each sending one of `spec.prompt_pool` distinct
    prompts, picked as `spec.prompt_sampling` says: a prompt's blocks are named by the prompt and
    their position, so two requests share a prefix exactly when they send the same prompt."""
    pool = spec.prompt_pool
    pool_input = sample_lengths(spec.input_len, pool, rng)
    pool_output = sample_lengths(spec.output_len, pool, rng)
    if spec.prompt_sampling == "shuffle":  # each pass over the pool in an order of its own
        picks = np.concatenate([rng.permutation(pool) for _ in range(-(-n // pool))])[:n]
    elif spec.prompt_sampling == "sequential":
        picks = np.arange(n) % pool
    else:
        picks = rng.integers(0, pool, size=n)
    stride = int(pool_input.max()) // PROMPT_POOL_BLOCK_TOKENS + 1
    prompt_blocks = [
        tuple(range(p * stride, p * stride + -(-int(tokens) // PROMPT_POOL_BLOCK_TOKENS)))
        for p, tokens in enumerate(pool_input)
    ]
    return pool_input[picks], pool_output[picks], [prompt_blocks[p] for p in picks]


def workload_warnings(spec: WorkloadSpec) -> list[str]:
    """What the workload will not do as written: a trace shorter than num_requests."""
    if spec.trace is None or spec.num_requests is None:
        return []
    have = len(_window(spec, read_trace(spec.trace.path, spec.trace.format))) - spec.warmup_requests
    if have >= spec.num_requests:
        return []
    return [
        f"workload.num_requests: {spec.num_requests} asked, but trace '{spec.trace.path.name}' "
        f"has {have} requests{' in the window' if _windowed(spec) else ''}: simulating {have}"
    ]


def _windowed(spec: WorkloadSpec) -> bool:
    return spec.trace.start_s > 0 or spec.trace.duration_s is not None


def _window(spec: WorkloadSpec, trace) -> np.ndarray:
    """Rows of the trace inside its start_s / duration_s window (all rows without one)."""
    ts, name = spec.trace, spec.trace.path.name
    rows = np.arange(len(trace))
    if _windowed(spec):
        if trace.arrival_s is None:
            raise SpecError(
                f"workload.trace.start_s/duration_s: trace '{name}' has no "
                f"timestamps to cut a window from; use num_requests instead"
            )
        end = ts.start_s + ts.duration_s if ts.duration_s is not None else np.inf
        rows = np.flatnonzero((trace.arrival_s >= ts.start_s) & (trace.arrival_s < end))
        if len(rows) == 0:
            raise SpecError(
                f"workload.trace: no requests between start_s {ts.start_s:g} s and "
                f"{end:g} s; trace '{name}' spans 0 to "
                f"{trace.arrival_s[-1]:.0f} s"
            )
    return rows


def _replay(spec: WorkloadSpec, rng: np.random.Generator) -> RequestTable:
    ts = spec.trace
    trace = read_trace(ts.path, ts.format)
    name = ts.path.name
    notes: list[str] = []

    # 1. Which rows: a window of trace time, then the first num_requests of it.
    rows = _window(spec, trace)
    if _windowed(spec):
        notes.append(
            f"trace window from {ts.start_s:g} s" + (f" for {ts.duration_s:g} s" if ts.duration_s is not None else "")
        )
    if spec.num_requests is not None:
        wanted = spec.num_requests + spec.warmup_requests
        if len(rows) < wanted:
            warmup = f" (+ {spec.warmup_requests} warmup)" if spec.warmup_requests else ""
            notes.append(f"num_requests {spec.num_requests}{warmup} capped at the trace's {len(rows)}")
        rows = rows[:wanted]
    n = len(rows)

    # 2. When: the trace's own clock (scaled), or re-timed by an arrival process.
    if spec.arrival is not None:
        arrival = arrival_times(spec.arrival, n, rng)
    elif trace.arrival_s is None:
        raise SpecError(
            f"workload.arrival: required, trace '{name}' ({trace.format} format) "
            f"has no timestamps; add e.g. arrival: {{process: poisson, rate: 5}}"
        )
    else:
        picked = trace.arrival_s[rows]
        arrival = (picked - picked[0]) / ts.time_scale
        if ts.time_scale != 1.0:
            notes.append(f"time_scale {ts.time_scale:g}")

    # 3. How long: the trace's lengths unless the spec replaces them.
    input_tokens = trace.input_tokens[rows]
    output_tokens = trace.output_tokens[rows]
    blocks = [trace.prefix_blocks[i] for i in rows] if trace.prefix_blocks is not None else None
    if spec.input_len is not None:
        input_tokens = sample_lengths(spec.input_len, n, rng)
        notes.append(f"input {spec.input_len.describe()}")
        blocks = None  # the trace's prefix blocks describe prompts we no longer send
    if spec.output_len is not None:
        output_tokens = sample_lengths(spec.output_len, n, rng)
        notes.append(f"output {spec.output_len.describe()}")

    table = RequestTable(
        arrival_s=arrival,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prefix_blocks=blocks,
        block_tokens=trace.block_tokens,
        concurrency=spec.concurrency,
        send_gap_s=spec.send_gap_ms * 1e-3,
    )
    timing = f"{spec.arrival.describe()} (re-timed)" if spec.arrival is not None else describe_rate(table)
    table.source = (
        f"{trace.label}, {n - spec.warmup_requests} requests, {timing}"
        + "".join(f", {x}" for x in notes)
        + _concurrency_note(spec)
    )
    return table


def _concurrency_note(spec: WorkloadSpec) -> str:
    return f", at most {spec.concurrency} in flight" if spec.concurrency is not None else ""
