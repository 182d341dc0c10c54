"""Shared fixtures of the predictor tests: the committed H100 calibration and small subsets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from frontier.paths import CALIBRATION_DIR
from frontier.predict import calibration as cal
from frontier.spec.hardware import get_gpu

H100 = "h100-sxm"
H100_DIR = CALIBRATION_DIR / H100


@pytest.fixture(scope="session")
def h100():
    return get_gpu(H100)


@pytest.fixture(scope="session")
def tables():
    """The committed H100 tables (real measurements), by family."""
    return {f: cal.read_table(H100_DIR, f) for f in cal.table_families(H100_DIR)}


@pytest.fixture
def gemm_only_root(tmp_path: Path) -> Path:
    """A calibration root whose h100-sxm has only a (small, real) gemm table."""
    root = tmp_path / "calibration"
    table = cal.read_table(H100_DIR, "gemm")
    cal.write_table(table[table["name"].isin(["llama3-8b.qkv", "llama3-8b.o", "llama3-8b.down"])], root / H100, "gemm")
    return root


def copy_calibration(dst_root: Path, gpu: str = H100) -> Path:
    shutil.copytree(CALIBRATION_DIR / gpu, dst_root / gpu)
    return dst_root / gpu


def assert_predicts_measured_row(root: Path, gpu: str, family: str, shape: dict, rel: float = 0.10) -> None:
    """The one row of `root`/`gpu`'s `family` table with these column values, predicted by that
    calibration's own predictors (nothing scaled) within `rel` of its measured ms."""
    import pandas as pd

    from frontier.predict import load_predictor

    table = cal.read_table(root / gpu, family)
    sel = pd.Series(True, index=table.index)
    for col, value in shape.items():
        sel &= table[col] == value
    assert sel.sum() == 1, shape
    row = table[sel]
    op = cal.ops_from_frame(row.reset_index(drop=True), family)[0]
    predictor = load_predictor(gpu, root)
    assert predictor.sources()[family] == "xgboost"
    assert predictor.op_ms(op) == pytest.approx(float(row["ms"].iloc[0]), rel=rel)
