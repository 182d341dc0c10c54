"""The service-level objective a scenario's goodput is judged by (vLLM's --goodput targets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SLO:
    """Per-request targets for goodput; None means no target for that metric."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None
