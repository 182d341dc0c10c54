"""Numbers read from user input (YAML, flags, config.json, traces, result files), checked.

One home for "is this a usable number": finite unless infinity is meaningful there, a whole
number where a count is expected, and bounds named in the one-line error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from frontier.errors import SpecError


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def number(
    value: Any,
    where: str,
    *,
    minimum: float | None = None,
    positive: bool = False,
    allow_inf: bool = False,
    what: str = "a number",
) -> float:
    """A finite real (or +inf where allowed); YAML strings like "inf" and "2.5" are accepted."""
    x: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            x = None
    if x is None or math.isnan(x):
        raise SpecError(f"{where}: {_fmt(value)} is not {what}")
    if math.isinf(x) and not (allow_inf and x > 0):
        raise SpecError(f"{where}: {_fmt(value)} is not {what}; give a finite value")
    if positive and x <= 0:
        raise SpecError(f"{where}: {_fmt(value)} must be {what} > 0")
    if minimum is not None and x < minimum:
        raise SpecError(f"{where}: {_fmt(value)} must be {what} >= {minimum:g}")
    return x


def integer(value: Any, where: str, *, minimum: int = 1, what: str = "an integer") -> int:
    """A whole number >= minimum (2.0 is accepted as 2; True, 2.5, "2" and inf are not)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise SpecError(f"{where}: {_fmt(value)} is not {what} (a whole number >= {minimum})")
    if value < minimum:
        raise SpecError(f"{where}: {_fmt(value)} must be {what} >= {minimum}")
    return int(value)


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (strict JSON has no NaN or Infinity)")


def strict_json_loads(text: str) -> Any:
    """json.loads without Python's NaN / Infinity extensions (strict parsers refuse them)."""
    return json.loads(text, parse_constant=_no_constant)


def strict_json_dumps(obj: Any, **kwargs) -> str:
    """json.dumps with non-finite floats written as null, so every parser can read the file."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if hasattr(x, "dtype") and getattr(x, "ndim", None) == 0:  # numpy scalars
        return _finite(x.item())
    return x
