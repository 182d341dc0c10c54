"""Helpers of the profiler tests (a module of its own: `conftest` names are not unique)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_profiler(*args: str, env_extra: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "profiler", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
