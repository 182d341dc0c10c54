"""Calibration tables: their columns and an append-only, resumable CSV writer.

The contract (see `frontier/ops/operators.py`): the table of family F has one column per field
of F's operator dataclass, then `ms` (median) and `ms_min`; extra label columns are allowed and
ignored by the predictors. `memcpy` and `decode_step` (whole decoder layers, not one operator) have
no operator class; their columns are fixed here.

A row's *key* is the set of columns that identify the measured shape (the operator fields plus
`backend` where the family has one as a label). A rerun skips every planned row whose key is
already in the file, and rows are appended and flushed one by one, so a crash loses nothing.
"""

from __future__ import annotations

import csv
import os
from dataclasses import MISSING
from pathlib import Path

from frontier.ops.operators import OPERATOR_CLASSES, TIME_COLUMNS, table_fields

# Label and derived columns written after the contract columns (allowed extras).
EXTRA_COLUMNS = {
    "gemm": ("backend", "name", "tflops"),
    "attn_prefill": ("case", "model", "tbps"),
    "attn_decode": ("case", "page_size", "model", "tbps"),
    "grouped_gemm": ("skew", "proj", "model", "tflops"),
    "elementwise": ("backend", "model", "gbps"),
    "collective": ("backend", "algbw_gbps", "busbw_gbps"),
}

# Extras that are part of a row's identity (two backends of one shape are two rows).
EXTRA_KEYS = {"gemm": ("backend",), "collective": ("backend",)}

# Families without an operator class: (key columns, the columns after `ms` and `ms_min`).
FIXED_SCHEMAS = {
    "memcpy": (("direction", "size_bytes"), ("gbps",)),
    "decode_step": (
        ("model", "batch", "kv", "layers", "dtype", "mode"),
        ("ms_per_layer", "kernels", "attn_backend", "moe_backend"),
    ),
}


def operator_fields(family: str) -> tuple[str, ...]:
    if family in FIXED_SCHEMAS:
        return FIXED_SCHEMAS[family][0]
    return tuple(f.name for f in table_fields(OPERATOR_CLASSES[family]))


def columns(family: str) -> tuple[str, ...]:
    """All columns of a family's table, in file order."""
    if family in FIXED_SCHEMAS:
        keys, extra = FIXED_SCHEMAS[family]
        return keys + TIME_COLUMNS + extra
    return operator_fields(family) + TIME_COLUMNS + EXTRA_COLUMNS[family]


def key_columns(family: str) -> tuple[str, ...]:
    return operator_fields(family) + EXTRA_KEYS.get(family, ())


def field_defaults(family: str) -> dict[str, object]:
    if family in FIXED_SCHEMAS:
        return {}
    return {f.name: f.default for f in table_fields(OPERATOR_CLASSES[family]) if f.default is not MISSING}


def _norm(value: object) -> str:
    """One spelling per value, so 1, 1.0 and '1' from a re-read CSV compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


class TableError(Exception):
    """An existing table that cannot be appended to (written by something else)."""


class TableWriter:
    """Appends rows to one family's CSV, skipping shapes it already holds."""

    def __init__(self, family: str, directory: Path):
        self.family = family
        self.path = Path(directory) / f"{family}.csv"
        self.key_cols = key_columns(family)
        self.header = list(columns(family))
        self.defaults = field_defaults(family)
        self.keys: set[tuple[str, ...]] = set()
        self.rows_written = 0
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                header = list(reader.fieldnames or [])
                missing = [c for c in operator_fields(family) + TIME_COLUMNS if c not in header]
                if missing:
                    raise TableError(
                        f"{self.path} lacks the contract columns {missing}; move it aside "
                        f"(the profiler writes {', '.join(self.header)})"
                    )
                self.header = header  # keep the file's own column order
                for row in reader:
                    self.keys.add(self.key(row))

    def key(self, row: dict) -> tuple[str, ...]:
        return tuple(_norm(row.get(c, self.defaults.get(c, ""))) for c in self.key_cols)

    def has(self, row: dict) -> bool:
        return self.key(row) in self.keys

    def append(self, row: dict) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.header, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({c: _format(row.get(c, "")) for c in self.header})
            fh.flush()
            os.fsync(fh.fileno())
        self.keys.add(self.key(row))
        self.rows_written += 1

    def ensure_header(self) -> None:
        """Write the header of an empty table, so every family has a file with its schema."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.header)


def _format(value: object) -> object:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
