"""Shared fixture: one CPU dry run of the whole profiler (tiny shapes), reused by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler_helpers import run_profiler


@pytest.fixture(scope="session")
def dry_run_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("profile") / "tables"
    result = run_profiler("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out
