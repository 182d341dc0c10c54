"""`frontier train` twice on the same tables leaves report.json as it was (a clean checkout stays clean)."""

from __future__ import annotations

import pandas as pd

from frontier.predict import calibration as cal
from frontier.predict.train import train_gpu

from .conftest import H100_DIR


def test_retraining_the_same_tables_keeps_report_json(tmp_path):
    gemm = pd.read_csv(cal.table_path(H100_DIR, "gemm")).iloc[::4]  # 102 of 408 measured rows
    cal.write_table(gemm, tmp_path / "h100-sxm", "gemm")
    train_gpu("h100-sxm", calibration_dir=tmp_path, validate=False, progress=False)
    report = tmp_path / "h100-sxm" / "predictors" / "report.json"
    first = report.read_bytes()
    train_gpu("h100-sxm", calibration_dir=tmp_path, validate=False, progress=False)
    assert report.read_bytes() == first
    # Different tables, different predictors: the report is rewritten.
    cal.write_table(gemm.iloc[:60], tmp_path / "h100-sxm", "gemm")
    train_gpu("h100-sxm", calibration_dir=tmp_path, validate=False, progress=False)
    assert b'"rows": 60' in report.read_bytes()
