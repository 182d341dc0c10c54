"""Training on real table rows, predicting shapes held out of training, within the targets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frontier.predict import train as T
from frontier.predict.xgb import XGBoostFamilyModel

from .conftest import H100_DIR

# Shapes held out of training: whole weight shapes / head-length pairs / MoE projections.
HELD_OUT = {
    "gemm": ["4096x4096", "8192x14336", "5120x5120"],
    "attn_decode": ["32/8/128@2048", "16/2/128@512", "32/32/128@8192", "32/4/128@16384"],
    "attn_prefill": ["32/8/128@1024", "16/2/128@4096", "32/32/128@384", "32/4/128@12288"],
    "grouped_gemm": ["qwen3-30b-a3b/down"],
}


@pytest.mark.parametrize("family", list(HELD_OUT))
def test_held_out_shapes_within_target(family, tables, h100):
    table = T.split_backends(tables[family], family)["*"]
    data = T.family_data(table, family, h100)
    groups = T.GROUPS[family](data.frame).to_numpy()
    test = np.flatnonzero(np.isin(groups, HELD_OUT[family]))
    train = np.setdiff1d(np.arange(len(groups)), test)
    assert len(test) >= 10 and set(groups[test]) == set(HELD_OUT[family])
    booster = T.fit_booster(data.x[train], data.y[train], family, T.FEATURES[family])
    model = XGBoostFamilyModel.from_booster(
        family, h100, booster, data.floor_ms, T.make_grid(family, [data.ops[i] for i in train], h100)
    )
    pred = model.predict_ms([data.ops[i] for i in test])
    stats = T.ape_stats(pred, data.frame["ms"].to_numpy()[test])
    assert stats["median_ape"] <= T.TARGET_MEDIAN_APE and stats["p90_ape"] <= T.TARGET_P90_APE, stats


def test_group_folds_hold_whole_groups_out():
    import pandas as pd

    groups = pd.Series(["a", "a", "b", "c", "c", "c", "d", "e"])
    folds = T.group_folds(groups, n_splits=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(8))
    for f in folds:
        same_group = groups.index[groups.isin(set(groups[f]))]
        assert set(same_group) == set(f)  # a group is never split between folds


def test_committed_report_meets_the_targets():
    report = json.loads((H100_DIR / "predictors" / "report.json").read_text())
    assert report["gpu"] == "h100-sxm"
    for family in ("gemm", "attn_prefill", "attn_decode", "grouped_gemm"):
        e = report["families"][family]
        assert e["meets_target"], (family, e["median_ape"], e["p90_ape"])
        assert e["median_ape"] <= 5 and e["p90_ape"] <= 15 and e["rows"] > 100
        assert "GroupKFold" in e["validation"] and e["features"] == T.FEATURES[family]
    for family in ("attn_prefill", "attn_decode"):
        check = report["families"][family]["ragged_check"]
        assert check["checked"] >= 1000 and check["inside_bracket_pct"] >= 90
        assert "bracket" in check["method"]
    assert report["families"]["attn_prefill"]["ragged_check"]["context_monotone"]["worst_drop_pct"] <= 1.0
