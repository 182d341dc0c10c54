"""Calibration tables: contract columns, the reference import, meta.json provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from frontier.errors import FrontierError
from frontier.ops.operators import AttnDecode, AttnPrefill
from frontier.predict import calibration as cal

from .conftest import H100_DIR

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "h100-reference"  # copy of ../shared/h100-reference


def test_committed_tables_have_the_contract_columns(tables):
    assert set(tables) == {"gemm", "attn_prefill", "attn_decode", "grouped_gemm"}
    for family, df in tables.items():
        assert list(df.columns[: len(cal.field_columns(family)) + 2]) == cal.field_columns(family) + ["ms", "ms_min"]
        assert (df["ms"] > 0).all() and (df["ms_min"] <= df["ms"] * 1.0001).all()
    assert set(tables["grouped_gemm"]["backend"]) == {"grouped_mm", "loop"}
    assert set(tables["gemm"]["dtype"]) == {"bf16"}
    assert {"name", "tflops"} <= set(tables["gemm"].columns)  # labels kept
    assert {"heads", "batch", "seq"} <= set(tables["attn_prefill"].columns)
    assert {"model", "proj", "skew"} <= set(tables["grouped_gemm"].columns)


def test_attention_rows_are_uniform_batch_statistics(tables):
    row = (
        tables["attn_prefill"]
        .query("heads == 'llama3-8b' and batch == 4 and seq == 2048 and backend == 'cudnn'")
        .iloc[0]
    )
    expected = AttnPrefill.uniform(4, 2048, 32, 8, 128, backend="cudnn")
    assert cal.ops_from_frame(row.to_frame().T, "attn_prefill")[0] == expected
    assert row["sum_q2"] == 4 * 2048 * 2048 and row["ms"] == pytest.approx(0.27098)
    row = (
        tables["attn_decode"]
        .query("heads == 'llama3-8b' and batch == 1 and kv_len == 128 and backend == 'flash'")
        .iloc[0]
    )
    assert cal.ops_from_frame(row.to_frame().T, "attn_decode")[0] == AttnDecode.uniform(
        1, 128, 32, 8, 128, backend="flash"
    )
    assert row["ms"] == pytest.approx(0.01082)


def test_reference_import_reproduces_the_committed_calibration(tmp_path):
    out = cal.import_reference(REFERENCE, "h100-sxm", tmp_path)
    for family in ("gemm", "attn_prefill", "attn_decode", "grouped_gemm"):
        new = pd.read_csv(cal.table_path(out, family))
        old = pd.read_csv(cal.table_path(H100_DIR, family))
        pd.testing.assert_frame_equal(new, old)
        raw = pd.read_csv(REFERENCE / f"{family}.csv")
        assert len(new) == len(raw)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sm_count"] == 132 and meta["sm_clock_mhz"] == 1980
    assert meta["torch"].startswith("2.11") and meta["triton"] == "3.6.0"
    assert "L2" in meta["method"] and "median" in meta["method"]
    for family, src in meta["sources"].items():
        assert src["provenance"] == cal.REFERENCE_PROVENANCE
        assert src["path"].endswith(f"h100-reference/{family}.csv")


def test_convert_reference_on_a_hand_written_row():
    raw = pd.DataFrame(
        [
            {
                "model": "m",
                "proj": "down",
                "experts": 8,
                "topk": 2,
                "tokens": 16,
                "skew": 1.2,
                "k": 64,
                "n": 32,
                "max_per_expert": 9,
                "active_experts": 7,
                "impl": "loop",
                "ms": 0.5,
                "ms_min": 0.4,
            }
        ]
    )
    out = cal.convert_reference("grouped_gemm", raw)
    assert list(out.columns[:11]) == cal.field_columns("grouped_gemm") + ["ms", "ms_min"]
    assert out.loc[0, "backend"] == "loop" and out.loc[0, "dtype"] == "bf16"
    assert "impl" not in out.columns and out.loc[0, "skew"] == 1.2


def test_a_table_missing_a_column_is_one_clear_error(tmp_path):
    path = cal.table_path(tmp_path, "gemm")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"m": [1], "n": [2], "ms": [0.1]}).to_csv(path, index=False)
    with pytest.raises(FrontierError, match="missing column k; a gemm table needs m, k, n, ms"):
        cal.read_table(tmp_path, "gemm")


def test_meta_names_the_collective_source():
    meta = json.loads((H100_DIR / "meta.json").read_text())
    fit = meta["collective_fit"]
    assert "aiconfigurator" in " ".join(fit["sources"]) and "nccl-tests" in " ".join(fit["sources"])
    assert set(fit["fits"]) == {"nvlink", "network"}
    assert {"all_reduce", "all_to_all"} <= set(fit["fits"]["nvlink"])
    assert not cal.table_path(H100_DIR, "collective").exists()  # not measured here
