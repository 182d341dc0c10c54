"""How equal-length-trained attention models transfer to ragged batches, checked on measured rows.

The tables hold equal-length batches only; a real step mixes lengths. Nobody measured the mixed
batches, but the measured rows bound them: a batch made of two measured sub-batches A and B
(same heads, same backend) is
- never faster than the slower of A and B alone (it does all of A's work and all of B's), and
- never slower than A and B run one after the other (two launches instead of one).
So for each pair of measured rows the mixed batch's prediction must fall in [max(t_A, t_B),
t_A + t_B]. `ragged_check` builds such mixes from the table (pairs of different lengths), predicts
them through the same path the simulator uses (`XGBoostFamilyModel`), and reports how many land in
the measured bracket (5 % measurement tolerance), where in the bracket they land, and how they
compare with the sum of per-sequence predictions (the one-launch-per-sequence upper bound).
For prefill with cached context (chunked prefill), which the tables never measured, it checks the
analytic sanity the model must keep: more context never predicted faster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from frontier.ops.operators import AttnDecode, AttnPrefill
from frontier.spec.hardware import GPUSpec

TOLERANCE = 0.05
MAX_PAIRS = 1500
SEED = 0


def _mix(family: str, a, b):
    """The ragged operator made of uniform rows a and b (pandas rows of the table)."""
    if family == "attn_decode":
        la, lb = a.sum_kv // a.batch, b.sum_kv // b.batch
        return AttnDecode(
            int(a.batch + b.batch),
            int(a.sum_kv + b.sum_kv),
            int(max(la, lb)),
            int(a.hq),
            int(a.hkv),
            int(a.d),
            int(a.dv),
            a.backend,
        )
    return AttnPrefill(
        int(a.num_seqs + b.num_seqs),
        int(a.sum_q + b.sum_q),
        int(a.sum_q2 + b.sum_q2),
        int(a.sum_qc + b.sum_qc),
        int(a.sum_kv + b.sum_kv),
        int(max(a.max_q, b.max_q)),
        int(max(a.max_kv, b.max_kv)),
        int(a.hq),
        int(a.hkv),
        int(a.d),
        int(a.dv),
        a.backend,
    )


def _single(family: str, row, length: int):
    if family == "attn_decode":
        return AttnDecode.uniform(1, length, int(row.hq), int(row.hkv), int(row.d), int(row.dv), row.backend)
    return AttnPrefill.uniform(1, length, int(row.hq), int(row.hkv), int(row.d), int(row.dv), row.backend)


def ragged_check(
    table: pd.DataFrame, family: str, gpu: GPUSpec, booster, floor_ms: float | None = None, grid: dict | None = None
) -> dict:
    from frontier.predict.xgb import XGBoostFamilyModel

    model = XGBoostFamilyModel.from_booster(family, gpu, booster, floor_ms, grid)
    count_col = "batch" if family == "attn_decode" else "num_seqs"
    table = table.reset_index(drop=True)
    if family == "attn_decode":
        length = (table["sum_kv"] // table["batch"]).astype(int)
    else:
        length = table["max_q"].astype(int)
    table = table.assign(
        len_=length,
        cfg_=table["hq"].astype(str)
        + "/"
        + table["hkv"].astype(str)
        + "/"
        + table["d"].astype(str)
        + "/"
        + table["backend"].astype(str),
    )
    rng = np.random.default_rng(SEED)
    pairs = []
    for _, g in table.groupby("cfg_"):
        idx = g.index.to_numpy()
        for i in idx:
            for j in idx:
                if i < j and table.at[i, "len_"] != table.at[j, "len_"]:
                    pairs.append((i, j))
    if not pairs:
        return {"checked": 0, "method": __doc__.split("\n\n")[1].replace("\n", " ")}
    pairs = [pairs[k] for k in rng.choice(len(pairs), size=min(MAX_PAIRS, len(pairs)), replace=False)]
    rows = list(table.itertuples(index=False))
    mixes = [_mix(family, rows[i], rows[j]) for i, j in pairs]
    pred = model.predict_ms(mixes)
    t_a = table["ms"].to_numpy()[[i for i, _ in pairs]]
    t_b = table["ms"].to_numpy()[[j for _, j in pairs]]
    lower, upper = np.maximum(t_a, t_b), t_a + t_b
    inside = (pred >= lower * (1 - TOLERANCE)) & (pred <= upper * (1 + TOLERANCE))
    position = (pred - lower) / np.maximum(upper - lower, 1e-12)
    # Sum of per-sequence predictions (one launch per sequence): an upper bound of the batch.
    singles = {}
    per_seq_sum = np.zeros(len(pairs))
    for k, (i, j) in enumerate(pairs):
        for r in (rows[i], rows[j]):
            key = (r.hq, r.hkv, r.d, r.dv, r.backend, r.len_)
            if key not in singles:
                singles[key] = float(model.predict_ms([_single(family, r, int(r.len_))])[0])
            per_seq_sum[k] += getattr(r, count_col) * singles[key]
    result = {
        "method": (
            "pairs of measured equal-length rows (same heads and backend, different "
            "lengths) merged into one ragged batch; its prediction must lie in the "
            "measured bracket [max(t_a, t_b), t_a + t_b] (the batch does all the work of "
            "each part, and is no slower than the two parts run back to back), "
            f"{int(TOLERANCE * 100)} % measurement tolerance"
        ),
        "checked": int(len(pairs)),
        "inside_bracket_pct": round(100.0 * float(inside.mean()), 1),
        "below_bracket_pct": round(100.0 * float((pred < lower * (1 - TOLERANCE)).mean()), 1),
        "above_bracket_pct": round(100.0 * float((pred > upper * (1 + TOLERANCE)).mean()), 1),
        "median_position_in_bracket": round(float(np.median(position)), 3),
        "median_pred_over_per_sequence_sum": round(float(np.median(pred / per_seq_sum)), 3),
        "pred_le_per_sequence_sum_pct": round(100.0 * float((pred <= per_seq_sum * 1.05).mean()), 1),
    }
    if family == "attn_prefill":
        result["context_monotone"] = _context_sweep(model, table)
    return result


def _context_sweep(model, table: pd.DataFrame) -> dict:
    """Chunked prefill: a chunk with more cached context is never predicted faster."""
    worst = 0.0
    cases = 0
    for cfg, g in table.groupby("cfg_"):
        r = g.iloc[0]
        for chunk in (64, 512, 2048):
            for seqs in (1, 4):
                ops = [
                    AttnPrefill.uniform(seqs, chunk, int(r.hq), int(r.hkv), int(r.d), int(r.dv), r.backend, context=c)
                    for c in (0, 256, 1024, 4096, 16384, 32768)
                ]
                t = model.predict_ms(ops)
                worst = max(worst, float(np.max(1.0 - t[1:] / np.maximum.accumulate(t)[:-1])))
                cases += 1
    return {"sweeps": cases, "contexts": [0, 256, 1024, 4096, 16384, 32768], "worst_drop_pct": round(100.0 * worst, 2)}
