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
