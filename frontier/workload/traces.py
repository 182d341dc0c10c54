"""Trace loaders: recorded request streams as arrival times and token lengths.

Formats (`auto` picks one from the file's extension and columns):

azure     Azure LLM inference 2023 CSV: TIMESTAMP (e.g. 2023-11-16 18:17:03.9799600),
          ContextTokens, GeneratedTokens
mooncake  Mooncake FAST'25 JSONL: timestamp (ms), input_length, output_length, hash_ids
          (ids of the prompt's 512-token blocks; equal leading ids = shared prefix)
vidur     Vidur processed CSV: num_prefill_tokens, num_decode_tokens (no timestamps, unless an
          arrived_at column in seconds is present)
burstgpt  BurstGPT CSV: Timestamp (s), Request tokens, Response tokens (rows with 0 response
          tokens are failed requests in BurstGPT and are left out, the label says how many)
sharegpt  ShareGPT JSON: a list of {"conversations": [{"from": "human", "value": ...},
          {"from": "gpt", "value": ...}, ...]}; like vLLM's ShareGPT sampler, the first turn is
          the prompt and the second the output. Token counts come from a tokenizer when
          `transformers` is installed and one is in the local Hugging Face cache
          (SHAREGPT_TOKENIZER, or $FRONTIER_TOKENIZER), else from CHARS_PER_TOKEN characters
          per token; the label says which. No timestamps.
vllm-bench  a `vllm bench serve --save-result --save-detailed` JSON: input_lens, output_lens,
          start_times (minus queue_times: when the client meant to send); failed requests
          (an error, or no output) are left out.
sglang-bench  `python -m sglang.bench_serving --output-file ... --output-details` JSONL: the last
          line holding input_lens and output_lens (SGLang records no send times).
generic   CSV or JSONL with an arrival column (seconds, or ISO date-times) named one of
          ARRIVAL_COLUMNS, an input column one of INPUT_COLUMNS and an output column one of
          OUTPUT_COLUMNS; without an arrival column the trace has lengths only.

Problems with the file (missing, unreadable, a missing column, a length < 1) are `SpecError`s
of one line that name the file and, for a bad value, its row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from frontier.errors import SpecError
from frontier.workload.requests import RequestTable

if TYPE_CHECKING:  # pandas is imported where a trace is read, not with the package
    import pandas as pd

FORMATS = ("azure", "mooncake", "vidur", "burstgpt", "sharegpt", "vllm-bench", "sglang-bench", "generic")
FILE_TYPES = (".csv", ".jsonl", ".json")
# Read whole, not as columns: benchmark results and ShareGPT conversations.
DOCUMENT_FORMATS = ("sharegpt", "vllm-bench", "sglang-bench")

ARRIVAL_COLUMNS = ("arrival_s", "arrival_time", "timestamp_s")
INPUT_COLUMNS = ("input_tokens", "input_len", "prompt_len", "input_length", "input_toks")
OUTPUT_COLUMNS = ("output_tokens", "output_len", "output_length", "output_toks")

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_COLUMNS = ("timestamp", "input_length", "output_length")
VIDUR_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")
DETAILED_ARRAYS = ("input_lens", "output_lens")
CHARS_PER_TOKEN = 4.0  # English text with a Llama/GPT BPE tokenizer, roughly
SHAREGPT_TOKENIZER = "meta-llama/Llama-3.1-8B-Instruct"
MOONCAKE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class _Columns:
    """Where a format keeps each field, and the unit of its arrival column."""

    arrival: str | None
    arrival_unit: str  # "datetime" | "ms" | "s"
    input: str
    output: str
    hash_ids: str | None = None


@dataclass(frozen=True)
class Trace:
    """A trace as read from disk, before any windowing, capping or re-timing.

    arrival_s is sorted and relative to the first request (None: the file has no timestamps).
    Treat the arrays as read-only: loaded traces are cached.
    """

    path: Path
    format: str
    label: str
    arrival_s: np.ndarray | None
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_blocks: list[tuple[int, ...]] | None
    block_tokens: int

    def __len__(self) -> int:
        return len(self.input_tokens)


# ---------------------------------------------------------------- detection


def _file_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise SpecError(
            f"{path}: unsupported trace file type '{suffix or '(none)'}'; expected one of {', '.join(FILE_TYPES)}"
        )
    return suffix


def _header(path: Path, ftype: str) -> list[str]:
    """Column names from the CSV header or the first JSONL record."""
    import pandas as pd

    if not path.is_file():
        raise SpecError(f"{path}: trace file not found")
    try:
        if ftype == ".csv":
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if ftype == ".json":
            doc = _json_document(path)
            if isinstance(doc, list):
                first = doc[0] if doc else {}
                return ["conversations"] if isinstance(first, dict) and "conversations" in first else []
            return list(doc) if isinstance(doc, dict) else []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise SpecError(f"{path} line 1: expected a JSON object per line")
                    return list(record)
    except SpecError:
        raise
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read trace header: {_first_line(e)}") from None
    raise SpecError(f"{path}: trace file is empty")


def _detect(ftype: str, cols: list[str]) -> str:
    have = set(cols)
    if ftype == ".csv" and "TIMESTAMP" in have:  # Azure's own header; a missing column is named later
        return "azure"
    if ftype == ".csv" and have.issuperset(VIDUR_COLUMNS):
        return "vidur"
    if ftype == ".csv" and have.issuperset(BURSTGPT_COLUMNS):
        return "burstgpt"
    if ftype == ".json" and "conversations" in have:
        return "sharegpt"
    if ftype == ".json" and have.issuperset(DETAILED_ARRAYS):
        return "vllm-bench"
    if ftype == ".jsonl" and have & {"backend", "completed", "output_throughput"}:
        return "sglang-bench"
    if ftype == ".json":
        return "unknown-json"
    if ftype == ".jsonl" and have.issuperset(MOONCAKE_COLUMNS):
        return "mooncake"
    return "generic"


def _found(cols: list[str]) -> str:
    shown = ", ".join(cols[:12])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > 12 else "")


def _columns(path: Path, fmt: str, cols: list[str]) -> _Columns:
    """Map a format onto this file's columns, or say which column is missing."""
    if fmt in DOCUMENT_FORMATS:
        return _Columns("start_times" if fmt == "vllm-bench" else None, "s", "input_lens", "output_lens")
    if fmt == "unknown-json":
        raise SpecError(
            f"{path}: a JSON trace must be ShareGPT (a list of conversations) or a "
            f"`vllm bench serve --save-detailed` result (input_lens, output_lens); "
            f"found keys: {_found(cols)}"
        )
    fixed = {"azure": AZURE_COLUMNS, "mooncake": MOONCAKE_COLUMNS, "vidur": VIDUR_COLUMNS, "burstgpt": BURSTGPT_COLUMNS}
    if fmt in fixed:
        for c in fixed[fmt]:
            if c not in cols:
                raise SpecError(
                    f"{path}: missing column '{c}' ({fmt} traces have columns "
                    f"{', '.join(fixed[fmt])}; found: {_found(cols)})"
                )
    if fmt == "azure":
        return _Columns("TIMESTAMP", "datetime", "ContextTokens", "GeneratedTokens")
    if fmt == "mooncake":
        return _Columns("timestamp", "ms", "input_length", "output_length", "hash_ids" if "hash_ids" in cols else None)
    if fmt == "vidur":
        return _Columns("arrived_at" if "arrived_at" in cols else None, "s", "num_prefill_tokens", "num_decode_tokens")
    if fmt == "burstgpt":
        return _Columns("Timestamp", "s", "Request tokens", "Response tokens")

    def pick(names: tuple[str, ...], what: str) -> str:
        for n in names:
            if n in cols:
                return n
        raise SpecError(f"{path}: missing {what} column; expected one of {', '.join(names)} (found: {_found(cols)})")

    arrival = next((n for n in ARRIVAL_COLUMNS if n in cols), None)
    return _Columns(arrival, "s", pick(INPUT_COLUMNS, "input-length"), pick(OUTPUT_COLUMNS, "output-length"))


def _resolve(path: Path, fmt: str) -> tuple[str, str, _Columns]:
    """(format, file type, column map) from the header alone."""
    ftype = _file_type(path)
    cols = _header(path, ftype)
    if fmt == "auto":
        fmt = _detect(ftype, cols)
    elif fmt not in FORMATS:
        raise SpecError(f"{path}: trace format '{fmt}' is not one of auto, {', '.join(FORMATS)}")
    return fmt, ftype, _columns(path, fmt, cols)


def sniff(path: str | Path, fmt: str = "auto") -> tuple[str, bool]:
    """(format, has_timestamps) from the header alone; raises SpecError as loading would."""
    fmt, _, cols = _resolve(Path(path), fmt)
    return fmt, cols.arrival is not None


# ---------------------------------------------------------------- value checks


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass(frozen=True)
class _Rows:
    """Names a data row in messages: its 1-based number and its line in the file."""

    path: Path
    lines: list[int] | None = None  # JSONL: file line of each row; None: CSV (header line 1)

    def at(self, i: int) -> str:
        line = self.lines[i] if self.lines is not None else i + 2
        return f"{self.path} row {i + 1} (line {line})"


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "empty"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _tokens(df: pd.DataFrame, col: str, rows: _Rows) -> np.ndarray:
    """A token-count column as int64, every value a whole number >= 1."""
    import pandas as pd

    s = df[col]
    if pd.api.types.is_integer_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.int64)
        bad = vals < 1
    else:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | (x < 1) | (x != np.floor(x))
        vals = np.where(bad, 1, x).astype(np.int64)
    if bad.any():
        i = int(np.argmax(bad))
        raise SpecError(f"{rows.at(i)}: {col} is {_show(s.iloc[i])}; token counts must be whole numbers >= 1")
    return vals


def _seconds(df: pd.DataFrame, cols: _Columns, rows: _Rows) -> np.ndarray:
    """The arrival column in seconds (any origin)."""
    import pandas as pd

    s = df[cols.arrival]
    numeric = None
    if cols.arrival_unit != "datetime":
        if pd.api.types.is_numeric_dtype(s.dtype):
            numeric = s
        else:  # text: numbers with a few bad cells, or date-times
            numeric = pd.to_numeric(s, errors="coerce")
            if numeric.isna().all():
                numeric = None
    if numeric is not None:
        x = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(x)
        what = "a number"
        if cols.arrival_unit == "ms":
            x = x / 1000.0
    else:
        ts = pd.to_datetime(s, format="ISO8601", errors="coerce")
        bad = ts.isna().to_numpy()
        what = "a date-time such as 2023-11-16 18:17:03.97"
        x = (ts - ts.min()).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    if bad.any():
        i = int(np.argmax(bad))
        raise SpecError(f"{rows.at(i)}: {cols.arrival} is {_show(s.iloc[i])}, not {what}")
    if numeric is not None and (x < 0).any():  # a clock before the trace started
        i = int(np.argmax(x < 0))
        raise SpecError(f"{rows.at(i)}: {cols.arrival} is {_show(s.iloc[i])}; arrival times must be >= 0")
    return x


def _blocks(df: pd.DataFrame, col: str, rows: _Rows) -> list[tuple[int, ...]]:
    out = []
    for i, ids in enumerate(df[col].tolist()):
        if not isinstance(ids, list):
            raise SpecError(f"{rows.at(i)}: {col} is {_show(ids)}; expected a list of block ids")
        out.append(tuple(ids))
    return out


def _label(path: Path, fmt: str) -> str:
    stem = path.stem.lower()
    if fmt == "azure":
        kind = "conv " if "conv" in stem else "code " if "code" in stem else ""
        family = f"Azure LLM inference 2023 {kind}trace"
    elif fmt == "mooncake":
        family = "Mooncake trace"
    elif fmt == "vidur":
        family = "Vidur trace"
    elif fmt == "burstgpt":
        family = "BurstGPT trace"
    elif fmt == "sharegpt":
        family = "ShareGPT conversations"
    elif fmt in ("vllm-bench", "sglang-bench"):
        family = f"{fmt} result"
    else:
        family = "trace"
    return f"{family} ({path.name})"


# ---------------------------------------------------------------- loading


def read_trace(path: str | Path, fmt: str = "auto") -> Trace:
    """Read and validate a trace file (cached while the file is unchanged)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise SpecError(f"{path}: trace file not found") from None
    return _read_cached(path.resolve(), fmt, st.st_mtime_ns, st.st_size)


def _read_jsonl(path: Path, wanted: list[str]) -> tuple[pd.DataFrame, _Rows]:
    """The wanted fields of a JSON-lines file (blank lines skipped; a missing field is empty)."""
    import pandas as pd

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read trace: {_first_line(e)}") from None
    lines, numbers = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            lines.append(line)
            numbers.append(lineno)
    try:  # one parse of the whole file is much faster than one per line
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = None
    if records is None or not all(isinstance(r, dict) for r in records):
        for line, lineno in zip(lines, numbers):  # find the bad line to name it
            try:
                record = json.loads(line)
            except ValueError as e:
                raise SpecError(f"{path} line {lineno}: not valid JSON ({_first_line(e)})") from None
            if not isinstance(record, dict):
                raise SpecError(f"{path} line {lineno}: expected a JSON object")
        raise SpecError(f"{path}: not valid JSON lines")  # e.g. "1, 2" inside one line
    df = pd.DataFrame({c: [r.get(c) for r in records] for c in wanted})
    return df, _Rows(path, numbers)


@lru_cache(maxsize=8)
def _read_cached(path: Path, fmt: str, _mtime_ns: int, _size: int) -> Trace:
    import pandas as pd

    fmt, ftype, cols = _resolve(path, fmt)
    if fmt in DOCUMENT_FORMATS:
        return _read_document(path, fmt)
    wanted = [c for c in (cols.arrival, cols.input, cols.output, cols.hash_ids) if c]
    dropped = ""
    if ftype == ".csv":
        try:
            df = pd.read_csv(path, usecols=wanted)
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
            raise SpecError(f"{path}: cannot parse trace: {_first_line(e)}") from None
        rows = _Rows(path)
        if fmt == "burstgpt":  # BurstGPT logs failed requests with 0 response tokens
            failed = pd.to_numeric(df[cols.output], errors="coerce") == 0
            if failed.any():
                df = df[~failed].reset_index(drop=True)
                rows = _Rows(path, [int(i) + 2 for i in np.flatnonzero(~failed.to_numpy())])
                dropped = f", {int(failed.sum())} failed requests (0 response tokens) left out"
    else:
        df, rows = _read_jsonl(path, wanted)
    if len(df) == 0:
        raise SpecError(f"{path}: trace has no requests")

    input_tokens = _tokens(df, cols.input, rows)
    output_tokens = _tokens(df, cols.output, rows)
    blocks = _blocks(df, cols.hash_ids, rows) if cols.hash_ids else None
    arrival = None
    if cols.arrival is not None:
        arrival = _seconds(df, cols, rows)
        if np.any(np.diff(arrival) < 0):
            order = np.argsort(arrival, kind="stable")
            arrival, input_tokens, output_tokens = (arrival[order], input_tokens[order], output_tokens[order])
            if blocks is not None:
                blocks = [blocks[i] for i in order]
        arrival = arrival - arrival[0]
    for a in (arrival, input_tokens, output_tokens):
        if a is not None:
            a.flags.writeable = False
    return Trace(
        path=path,
        format=fmt,
        label=_label(path, fmt) + dropped,
        arrival_s=arrival,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prefix_blocks=blocks,
        block_tokens=MOONCAKE_BLOCK_TOKENS,
    )


def _json_document(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: not valid JSON: {_first_line(e)}") from None


def _read_document(path: Path, fmt: str) -> Trace:
    """ShareGPT conversations or a benchmark result's per-request arrays."""
    arrival = None
    note = ""
    if fmt == "sharegpt":
        pairs = [
            c["conversations"]
            for c in _json_document(path)
            if isinstance(c, dict) and isinstance(c.get("conversations"), list) and len(c["conversations"]) >= 2
        ]
        if not pairs:
            raise SpecError(f"{path}: no conversation with at least two turns")
        counts, how = _token_counts(
            [str(p[0].get("value", "")) for p in pairs] + [str(p[1].get("value", "")) for p in pairs]
        )
        inp, out = np.maximum(counts[: len(pairs)], 1), np.maximum(counts[len(pairs) :], 1)
        note = f", lengths {how}"
    else:
        if fmt == "vllm-bench":
            obj = _json_document(path)
        else:
            df, _ = _read_jsonl(path, list(DETAILED_ARRAYS) + ["errors"])
            have = [i for i in range(len(df)) if isinstance(df.input_lens[i], list)]
            if not have:
                raise SpecError(
                    f"{path}: no line holds per-request input_lens and output_lens; "
                    "run sglang.bench_serving with --output-details"
                )
            obj = df.iloc[have[-1]].to_dict()
            note = f", line {have[-1] + 1} of {len(df)}" if len(df) > 1 else ""
        for key in DETAILED_ARRAYS:
            if not isinstance(obj.get(key), list):
                raise SpecError(
                    f"{path}: no per-request '{key}' array; save the benchmark with "
                    "--save-detailed (vLLM) or --output-details (SGLang)"
                )
        inp = np.array(obj["input_lens"], dtype=np.float64)
        out = np.array(obj["output_lens"], dtype=np.float64)
        if len(inp) != len(out):
            raise SpecError(f"{path}: input_lens has {len(inp)} entries, output_lens {len(out)}")
        ok = (out >= 1) & (inp >= 1)
        if isinstance(obj.get("errors"), list) and len(obj["errors"]) == len(ok):
            ok &= np.array([not e for e in obj["errors"]])
        if isinstance(obj.get("start_times"), list) and len(obj["start_times"]) == len(ok):
            start = np.array(obj["start_times"], dtype=np.float64)
            if isinstance(obj.get("queue_times"), list) and len(obj["queue_times"]) == len(ok):
                start = start - np.array(obj["queue_times"], dtype=np.float64)
            arrival = start[ok]
        if not ok.any():
            raise SpecError(f"{path}: no request of the run completed")
        if not ok.all():
            note += f", {int((~ok).sum())} failed requests left out"
        inp, out = inp[ok], out[ok]
    inp, out = inp.astype(np.int64), out.astype(np.int64)
    if arrival is not None:
        order = np.argsort(arrival, kind="stable")
        arrival, inp, out = arrival[order] - arrival[order][0], inp[order], out[order]
        arrival.flags.writeable = False
    inp.flags.writeable = out.flags.writeable = False
    return Trace(
        path=path,
        format=fmt,
        label=_label(path, fmt) + note,
        arrival_s=arrival,
        input_tokens=inp,
        output_tokens=out,
        prefix_blocks=None,
        block_tokens=MOONCAKE_BLOCK_TOKENS,
    )


def _token_counts(texts: list[str]) -> tuple[np.ndarray, str]:
    """Token counts from a locally cached tokenizer when transformers is installed, else
    characters / CHARS_PER_TOKEN; and how they were counted."""
    import os

    name = os.environ.get("FRONTIER_TOKENIZER", SHAREGPT_TOKENIZER)
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # not installed, or no local copy: no network is ever tried
        counts = np.array([round(len(t) / CHARS_PER_TOKEN) for t in texts], dtype=np.int64)
        return counts, f"estimated at {CHARS_PER_TOKEN:g} characters per token"
    counts = np.array([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]], dtype=np.int64)
    return counts, f"from the {name} tokenizer"


def describe_rate(table: RequestTable) -> str:
    rate = table.rate_rps
    return "all at t=0" if rate == float("inf") else f"{rate:.1f} req/s"


def load_trace(path: str | Path, fmt: str = "auto") -> RequestTable:
    """A whole trace as a RequestTable, timed by its own timestamps (relative to the first).

    A relative path is looked up in the working directory, then the repository root. A trace
    without timestamps (vidur) comes back with every arrival at t = 0 (its `source` says so);
    use `build_requests` with an `arrival:` to time it.
    """
    from frontier.workload.spec import TRACE_FORMATS, resolve_trace_path

    if fmt not in TRACE_FORMATS:
        raise SpecError(f"load_trace: format '{fmt}' is not one of {', '.join(TRACE_FORMATS)}")
    t = read_trace(resolve_trace_path(path, "trace", base_dir=Path.cwd()), fmt)
    arrival = t.arrival_s.copy() if t.arrival_s is not None else np.zeros(len(t))
    table = RequestTable(
        arrival_s=arrival,
        input_tokens=t.input_tokens.copy(),
        output_tokens=t.output_tokens.copy(),
        prefix_blocks=list(t.prefix_blocks) if t.prefix_blocks is not None else None,
        block_tokens=t.block_tokens,
    )
    note = "" if t.arrival_s is not None else " (no timestamps)"
    table.source = f"{t.label}, {len(t)} requests, {describe_rate(table)}{note}"
    return table
