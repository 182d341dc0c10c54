"""Pareto frontiers on tokens/s/GPU vs tokens/s/user, and the best row under the SLO."""

from __future__ import annotations

import numpy as np
import pandas as pd

X, Y = "tokens_per_s_per_user", "tokens_per_s_per_gpu"


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good on both and better on one (maximising)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.lexsort((-y, -x))  # x descending, ties: y descending
    keep = np.zeros(len(x), dtype=bool)
    best_y = -np.inf
    for i in order:
        if y[i] > best_y:
            keep[i] = True
            best_y = y[i]
    return keep


def pareto_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated rows: those meeting the SLO first (`frontier` = "slo"), then those of
    the frontier over all rows that miss it (`frontier` = "all")."""
    if df.empty:
        return df.assign(frontier=pd.Series(dtype=str))
    ok = df[df.meets_slo.astype(bool)]
    slo_front = ok[pareto_mask(ok[X], ok[Y])].assign(frontier="slo") if len(ok) else ok.assign(frontier="slo")
    all_front = df[pareto_mask(df[X], df[Y])]
    rest = all_front[~all_front.index.isin(slo_front.index)].assign(frontier="all")
    return pd.concat([slo_front.sort_values(X), rest.sort_values(X)])


def best_row(df: pd.DataFrame) -> pd.Series | None:
    """The SLO-meeting row with the most tokens/s/GPU (ties: the most tokens/s/user)."""
    ok = df[df.meets_slo.astype(bool)]
    if ok.empty:
        return None
    return ok.sort_values([Y, X], ascending=False).iloc[0]
