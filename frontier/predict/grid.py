"""Memo grids: the points at which step parts are predicted and between which they are interpolated.

Costs vary smoothly with token counts and lengths, so the step model predicts them at the
points of a geometric grid (2 % or 5 % apart) and interpolates in between: a long run then asks
the predictors for few distinct shapes. Small values (up to 64) are their own grid points.
"""

from __future__ import annotations

import math

EXACT_TOKENS = 256  # token counts up to this are costed exactly, above on a 2 % grid
_LOG: dict[float, float] = {}  # log of each grid step


def snap(x: int, step: float = 1.02) -> int:
    """Round to the nearest point of a geometric grid (within ±1 % for step 1.02)."""
    if x <= 64:
        return int(x)
    return int(round(step ** round(math.log(x, step))))


_NEIGHBOURS: dict[float, dict[int, tuple[int, int]]] = {}  # step -> x -> answer (bounded)
NEIGHBOURS_MEMO = 1 << 16


def neighbours_memo(step: float) -> dict[int, tuple[int, int]]:
    """The memo of `grid_neighbours` for one grid (the same dict for the whole process): hot
    callers look x up in it first and call `grid_neighbours` only on a miss."""
    memo = _NEIGHBOURS.get(step)
    if memo is None:
        memo = _NEIGHBOURS[step] = {}
    return memo


def grid_neighbours(x: int, step: float) -> tuple[int, int]:
    """The points of a geometric grid just below and above x (x itself when small or on it)."""
    if x <= 64:
        return int(x), int(x)
    memo = _NEIGHBOURS.get(step) or neighbours_memo(step)
    hit = memo.get(x)
    if hit is not None:  # the step model asks the same KV sums and token counts again and again
        return hit
    if len(memo) >= NEIGHBOURS_MEMO:
        memo.clear()
    log_step = _LOG.get(step) or _LOG.setdefault(step, math.log(step))
    e = math.floor(math.log(x) / log_step)  # what math.log(x, step) computes
    lo, hi = int(round(step**e)), int(round(step ** (e + 1)))
    hit = memo[x] = (x, x) if lo == x else (lo if lo <= x else x, hi if hi >= x else x)  # min, max
    return hit


def points_from(x: int, count: int, step: float = 1.02) -> list[int]:
    """x and the next grid points above it: +1 steps up to EXACT_TOKENS on the token grid
    (step 1.02), geometric beyond."""
    points, p = [], x
    while len(points) < count:
        points.append(p)
        p = p + 1 if p < EXACT_TOKENS and step == 1.02 else grid_neighbours(p + 1, step)[1]
    return points
