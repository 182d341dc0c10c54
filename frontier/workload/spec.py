"""The `workload:` section of a scenario file, validated into frozen dataclasses.

```yaml
workload:
  num_requests: 1000                        # required for synthetic; optional cap for traces
  arrival: {process: poisson, rate: 5.0}    # poisson | gamma (+ cv) | constant; rate req/s or inf
  concurrency: 64                           # optional: max requests in flight (a closed loop)
  send_gap_ms: 2                            # closed loop: mean gap before a client's next request
  input_len:  {dist: lognormal, mean: 1000, std: 600, min: 1, max: 8192}
  output_len: 200                           # shorthand for {dist: fixed, value: 200}
  prompt_pool: 100                          # optional: prompts drawn from this many distinct ones
  prompt_sampling: shuffle                  # with prompt_pool: random (default) | shuffle | sequential
  ignore_eos: true                          # requests ask for all their output tokens (default:
                                            # synthetic lengths yes, a trace's own lengths no)
  # or replay a trace (its lengths, and its timestamps unless `arrival:` re-times it):
  trace: {path: simulate/traces/azure_conv.csv, format: auto, time_scale: 1.0, start_s: 0}
```

Every error is a `SpecError` of one line naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frontier.errors import SpecError
from frontier.numbers import integer as _integer
from frontier.numbers import number as _number
from frontier.paths import REPO_ROOT

ARRIVAL_PROCESSES = ("poisson", "gamma", "constant")
LENGTH_DISTS = ("fixed", "uniform", "normal", "lognormal")
TRACE_FORMATS = ("auto", "azure", "mooncake", "vidur", "generic")

# Keys each length distribution takes (besides `dist`), and which of them are required.
_LENGTH_KEYS = {
    "fixed": (("value",), ()),
    "uniform": (("min", "max"), ()),
    "normal": (("mean", "std"), ("min", "max")),
    "lognormal": (("mean", "std"), ("min", "max")),
}


# ---------------------------------------------------------------- field checks


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _mapping(d: Any, where: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping with keys {', '.join(allowed)}, got {_fmt(d)}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise SpecError(f"{where}: unknown key {_fmt(unknown[0])}; allowed keys: {', '.join(allowed)}")
    return d


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise SpecError(f"{where}: {_fmt(value)} is not one of {', '.join(allowed)}")
    return value.strip().lower()


# ---------------------------------------------------------------- arrival


def _rate(value: Any, where: str) -> float:
    wrong = SpecError(f'{where}: {_fmt(value)} is not a rate; give requests per second > 0, or "inf" for all at t=0')
    try:
        rate = _number(value, where, allow_inf=True)
    except SpecError:
        raise wrong from None
    if rate <= 0:
        raise wrong
    return rate


@dataclass(frozen=True)
class ArrivalSpec:
    """When requests arrive: a renewal process at `rate` requests per second.

    poisson   exponential gaps (memoryless; vllm bench's default)
    gamma     gamma gaps with coefficient of variation `cv`: cv > 1 bursty, cv < 1 smoother,
              cv = 1 is poisson (vllm bench's `--burstiness b` is cv = 1/sqrt(b))
    constant  exactly 1/rate apart
    rate inf  every request arrives at t = 0 (offline batch; with `concurrency` a closed loop)
    """

    process: str = "poisson"
    rate: float = math.inf
    cv: float | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "workload.arrival") -> ArrivalSpec:
        d = _mapping(d, where, ("process", "rate", "cv"))
        process = _choice(d.get("process", "poisson"), f"{where}.process", ARRIVAL_PROCESSES)
        if "rate" not in d:
            raise SpecError(f'{where}.rate: required (requests per second, or "inf" for all at t=0)')
        rate = _rate(d["rate"], f"{where}.rate")
        cv = None
        if process == "gamma":
            if "cv" not in d:
                raise SpecError(
                    f"{where}.cv: required for process gamma (coefficient of "
                    f"variation of the gaps: >1 bursty, 1 poisson, <1 smoother)"
                )
            cv = _number(d["cv"], f"{where}.cv", positive=True, what="a coefficient of variation")
        elif "cv" in d:
            raise SpecError(f"{where}.cv: only applies to process gamma, not {process}")
        return cls(process=process, rate=rate, cv=cv)

    def describe(self) -> str:
        if math.isinf(self.rate):
            return "all at t=0"
        burst = f" (cv {self.cv:g})" if self.process == "gamma" else ""
        return f"{self.process} {self.rate:g} req/s{burst}"


# ---------------------------------------------------------------- lengths


@dataclass(frozen=True)
class LengthSpec:
    """A token-length distribution; samples are whole numbers clipped to [min, max], min >= 1.

    fixed      value
    uniform    min..max inclusive
    normal     mean, std; optional min (default 1), max (default none)
    lognormal  mean, std of the lengths themselves (not of their log); optional min, max
    """

    dist: str
    value: int | None = None
    mean: float | None = None
    std: float | None = None
    min: int = 1
    max: int | None = None

    @classmethod
    def from_value(cls, d: Any, where: str) -> LengthSpec:
        """Parse `512` (fixed) or a mapping such as `{dist: uniform, min: 1, max: 100}`."""
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            return cls(dist="fixed", value=_integer(d, where, what="a token count"))
        if not isinstance(d, dict):
            raise SpecError(
                f"{where}: expected a token count such as 512 or a mapping with "
                f"dist: one of {', '.join(LENGTH_DISTS)}; got {_fmt(d)}"
            )
        if "dist" not in d:
            raise SpecError(
                f"{where}.dist: required, one of {', '.join(LENGTH_DISTS)} (or write a plain number for a fixed length)"
            )
        dist = _choice(d["dist"], f"{where}.dist", LENGTH_DISTS)
        required, optional = _LENGTH_KEYS[dist]
        allowed = ("dist",) + required + optional
        unknown = [k for k in d if k not in allowed]
        if unknown:
            raise SpecError(
                f"{where}: key {_fmt(unknown[0])} does not apply to dist {dist}; allowed keys: {', '.join(allowed)}"
            )
        for key in required:
            if key not in d:
                raise SpecError(
                    f"{where}.{key}: required for dist {dist} (dist {dist} takes {', '.join(required + optional)})"
                )

        def count(key: str) -> int:
            return _integer(d[key], f"{where}.{key}", what="a token count")

        if dist == "fixed":
            return cls(dist=dist, value=count("value"))
        lo = count("min") if "min" in d else 1
        hi = count("max") if "max" in d else None
        if hi is not None and hi < lo:
            raise SpecError(f"{where}.max: {hi} is below min {lo}; max must be >= min")
        if dist == "uniform":
            return cls(dist=dist, min=lo, max=hi)
        mean = _number(d["mean"], f"{where}.mean", positive=True, what="a mean token count")
        std = _number(d["std"], f"{where}.std", minimum=0, what="a standard deviation")
        return cls(dist=dist, mean=mean, std=std, min=lo, max=hi)

    def describe(self) -> str:
        if self.dist == "fixed":
            return f"fixed {self.value}"
        bounds = f"[{self.min}, {self.max if self.max is not None else 'inf'}]"
        if self.dist == "uniform":
            return f"uniform {bounds}"
        return f"{self.dist}(mean {self.mean:g}, std {self.std:g}) in {bounds}"


# ---------------------------------------------------------------- trace


def resolve_trace_path(path: Any, where: str, base_dir: str | Path | None = None) -> Path:
    """A trace path as written: absolute, or relative to the scenario's folder, then the repo."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise SpecError(f"{where}: expected a file path, got {_fmt(path)}")
    p = Path(str(path).strip()).expanduser()
    candidates = [p] if p.is_absolute() else (([Path(base_dir) / p] if base_dir is not None else []) + [REPO_ROOT / p])
    for c in candidates:
        if c.is_file():
            return c.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise SpecError(f"{where}: trace file '{path}' not found (looked in {looked})")


@dataclass(frozen=True)
class TraceSpec:
    """A recorded trace to replay.

    path        the file (resolved: absolute)
    format      auto | azure | mooncake | vidur | generic (auto: from extension and columns;
                after `from_dict` always the detected one)
    time_scale  replay speed: timestamps are divided by it (2 = twice as fast)
    start_s     skip the trace's first start_s seconds (trace time, before time_scale)
    duration_s  keep only this many seconds of trace time after start_s (None: to the end)
    """

    path: Path
    format: str = "auto"
    time_scale: float = 1.0
    start_s: float = 0.0
    duration_s: float | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "workload.trace", base_dir: str | Path | None = None) -> TraceSpec:
        from frontier.workload.traces import sniff  # reads only the header / first line

        if isinstance(d, (str, Path)):
            d = {"path": d}
        d = _mapping(d, where, ("path", "format", "time_scale", "start_s", "duration_s"))
        if "path" not in d:
            raise SpecError(f"{where}.path: required (a .csv or .jsonl trace file)")
        path = resolve_trace_path(d["path"], f"{where}.path", base_dir)
        fmt = _choice(d.get("format", "auto"), f"{where}.format", TRACE_FORMATS)
        fmt, _ = sniff(path, fmt)
        time_scale = _number(d.get("time_scale", 1.0), f"{where}.time_scale", positive=True, what="a speed-up factor")
        start_s = _number(d.get("start_s", 0.0), f"{where}.start_s", minimum=0, what="a time in seconds")
        duration_s = None
        if d.get("duration_s") is not None:
            duration_s = _number(d["duration_s"], f"{where}.duration_s", positive=True, what="a duration in seconds")
        return cls(path=path, format=fmt, time_scale=time_scale, start_s=start_s, duration_s=duration_s)

    @property
    def has_timestamps(self) -> bool:
        from frontier.workload.traces import sniff

        return sniff(self.path, self.format)[1]


# ---------------------------------------------------------------- workload

# A closed-loop client (`concurrency`) sends its next request an exponential gap of this mean
# after its last one finished: the benchmark client's own work on the response and the next
# request (`vllm bench serve` and SGLang's bench_serving are one asyncio loop serving every
# stream) and the HTTP round trip. An assumption of a few milliseconds, not a measurement: it
# keeps fixed-length closed loops from staying in a lockstep the real clients drift out of.
SEND_GAP_MS = 2.0

# A pooled prompt is known to the prefix cache in blocks of this many tokens, four of vLLM's
# 16-token KV blocks: a repeated prompt recomputes its last partial 64-token block where vLLM
# recomputes its last partial 16-token one (a whole block when the prompt fills its blocks), at
# most 48 tokens more, for a quarter of the bookkeeping.
PROMPT_POOL_BLOCK_TOKENS = 64

# How a request picks its pooled prompt, as aiperf's `--dataset-sampling-strategy` names it
# (aiperf/dataset/dataset_samplers.py): `random` with replacement (aiperf up to 0.2.0, its only
# way: dataset_manager.py `random.choice`), `shuffle` every prompt once in a random order, then
# again in a new one (aiperf 0.3.0-0.8's default for synthetic prompts: a prompt repeats only
# after all the others were sent), `sequential` in order, wrapping around (0.9 on: its synthetic
# dataset's default, config/dataset/config.py `SyntheticDataset`, which a plain `--request-count
# N` sizes to N prompts).
PROMPT_SAMPLINGS = ("random", "shuffle", "sequential")


@dataclass(frozen=True)
class WorkloadSpec:
    """What clients send. Either synthetic (num_requests + arrival + input_len + output_len)
    or a trace (its lengths; its timestamps unless `arrival` re-times it; `input_len` /
    `output_len`, if given, replace the trace's lengths; `num_requests` keeps the first N).

    prompt_pool: a synthetic workload's requests draw their prompt (and its lengths) from this
    many distinct prompts, as aiperf's synthetic dataset does (`--num-dataset-entries`, 100 by
    default up to its 2026 configuration rewrite), in the order `prompt_sampling` says
    (PROMPT_SAMPLINGS; `random`, aiperf's before 0.3.0, unless set). A prompt sent again is a
    full prefix-cache hit where the engine still holds it. None: every prompt is distinct
    (`vllm bench serve`'s random dataset).

    warmup_requests: this many requests go out first, drawn like the others, and are not
    measured; the measured ones follow once every warmup response is back, so the measured phase
    starts from an idle engine whose prefix cache holds what the warmup left (aiperf
    `--warmup-request-count`, which aiconfigurator's benchmark sets to 2 x the concurrency;
    `vllm bench serve --num-warmups`). 0: none.

    ignore_eos: whether the requests ask the engine to generate all their output tokens past an
    end-of-sequence token (`vllm bench serve --ignore-eos`, which its random datasets set
    themselves in 0.14's vllm/benchmarks/serve.py; SGLang's bench_serving by default; aiperf
    `--extra-inputs ignore_eos:true`), which SGLang's admission treats apart
    (frontier.sim.scheduler.SGLangScheduler). None: yes where the workload sets the output
    lengths (synthetic, or a trace's replaced), no for a trace's own lengths, which ended on one
    (`requests_ignore_eos`)."""

    num_requests: int | None = None
    arrival: ArrivalSpec | None = None
    concurrency: int | None = None
    input_len: LengthSpec | None = None
    output_len: LengthSpec | None = None
    trace: TraceSpec | None = None
    send_gap_ms: float = SEND_GAP_MS
    prompt_pool: int | None = None
    prompt_sampling: str = "random"
    warmup_requests: int = 0
    ignore_eos: bool | None = None

    KEYS = (
        "num_requests", "arrival", "concurrency", "input_len", "output_len", "trace", "send_gap_ms", "prompt_pool",
        "prompt_sampling", "warmup_requests", "ignore_eos",
    )  # fmt: skip

    @property
    def requests_ignore_eos(self) -> bool:
        """Whether the requests ask for all their output tokens (see `ignore_eos`)."""
        return self.ignore_eos if self.ignore_eos is not None else self.trace is None or self.output_len is not None

    @classmethod
    def from_dict(cls, d: Any, where: str = "workload", base_dir: str | Path | None = None) -> WorkloadSpec:
        """Validate a `workload:` mapping. `base_dir`: the scenario file's folder, where
        relative trace paths are looked up first (then the repository root)."""
        d = _mapping(d, where, cls.KEYS)
        num = None
        if d.get("num_requests") is not None:
            num = _integer(d["num_requests"], f"{where}.num_requests", what="a number of requests")
        concurrency = None
        if d.get("concurrency") is not None:
            concurrency = _integer(d["concurrency"], f"{where}.concurrency", what="a number of requests in flight")
        arrival = ArrivalSpec.from_dict(d["arrival"], f"{where}.arrival") if d.get("arrival") is not None else None
        input_len = (
            LengthSpec.from_value(d["input_len"], f"{where}.input_len") if d.get("input_len") is not None else None
        )
        output_len = (
            LengthSpec.from_value(d["output_len"], f"{where}.output_len") if d.get("output_len") is not None else None
        )

        trace = None
        if d.get("trace") is not None:
            trace = TraceSpec.from_dict(d["trace"], f"{where}.trace", base_dir)
            if arrival is not None and trace.time_scale != 1.0:
                raise SpecError(
                    f"{where}.trace.time_scale: applies to the trace's own "
                    f"timestamps, but {where}.arrival re-times the requests; "
                    f"drop one of them (or set arrival.rate)"
                )
            if arrival is None and not trace.has_timestamps:
                raise SpecError(
                    f"{where}.arrival: required, trace '{trace.path.name}' "
                    f"({trace.format} format) has no timestamps; add e.g. "
                    f"arrival: {{process: poisson, rate: 5}}"
                )
            if not trace.has_timestamps and (trace.start_s > 0 or trace.duration_s is not None):
                raise SpecError(
                    f"{where}.trace.start_s/duration_s: trace "
                    f"'{trace.path.name}' has no timestamps to cut a window from; "
                    f"use num_requests to take the first N"
                )
        else:
            for key, val in (
                ("num_requests", num),
                ("arrival", arrival),
                ("input_len", input_len),
                ("output_len", output_len),
            ):
                if val is None:
                    raise SpecError(
                        f"{where}.{key}: required for a synthetic workload (or give {where}.trace to replay a trace)"
                    )
        prompt_pool = None
        if d.get("prompt_pool") is not None:
            prompt_pool = _integer(d["prompt_pool"], f"{where}.prompt_pool", what="a number of distinct prompts")
            if trace is not None:
                raise SpecError(
                    f"{where}.prompt_pool: applies to synthetic prompts; a trace's prompts share what its "
                    f"prefix hash ids say (drop prompt_pool or the trace)"
                )
        prompt_sampling = "random"
        if d.get("prompt_sampling") is not None:
            if prompt_pool is None:
                raise SpecError(
                    f"{where}.prompt_sampling: says how requests pick from prompt_pool, which is not set; "
                    f"add e.g. prompt_pool: 100 (aiperf's default dataset) or drop prompt_sampling"
                )
            prompt_sampling = _choice(d["prompt_sampling"], f"{where}.prompt_sampling", PROMPT_SAMPLINGS)
        warmup = 0
        if d.get("warmup_requests") is not None:
            warmup = _integer(d["warmup_requests"], f"{where}.warmup_requests", minimum=0, what="a number of requests")
        send_gap_ms = SEND_GAP_MS
        if d.get("send_gap_ms") is not None:
            send_gap_ms = _number(d["send_gap_ms"], f"{where}.send_gap_ms", minimum=0, what="a time in ms")
        ignore_eos = d.get("ignore_eos")
        if ignore_eos is not None and not isinstance(ignore_eos, bool):
            raise SpecError(f"{where}.ignore_eos: expected true or false, got {ignore_eos!r}")
        return cls(
            num_requests=num,
            arrival=arrival,
            concurrency=concurrency,
            input_len=input_len,
            output_len=output_len,
            trace=trace,
            send_gap_ms=send_gap_ms,
            prompt_pool=prompt_pool,
            prompt_sampling=prompt_sampling,
            warmup_requests=warmup,
            ignore_eos=ignore_eos,
        )
