"""Expert parallelism: how the routed tokens of a MoE layer spread over the EP ranks.

Each expert's share of the routed rows comes from a routing model (uniform, Zipf-like skew as
in `frontier.ops.routing`, or a per-expert load file). Experts are placed on ranks either as
they come (expert i on rank i // (E / ep), hot experts landing where their index puts them) or,
with EPLB, with `redundant` extra replicas of the hottest experts and a greedy balanced
placement. Every rank waits for the busiest one, so the busiest rank's rows set the MoE time.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from frontier.errors import SpecError
from frontier.ops.routing import inclusion_probabilities


@dataclass(frozen=True)
class ExpertRouting:
    skew: float = 0.0            # 0 uniform; 1.2 the reference table's hot-expert routing
    load_file: str = ""          # CSV/whitespace list of per-expert loads (any scale)
    redundant: int = 0           # EPLB: extra replicas of the hottest experts

    def expert_shares(self, experts: int, top_k: int) -> np.ndarray:
        """Fraction of all routed rows (tokens x top-k) each expert receives; sums to 1."""
        if self.load_file:
            loads = _read_loads(self.load_file)
            if len(loads) != experts:
                raise SpecError(f"expert_load_file {self.load_file}: {len(loads)} loads for a model "
                                f"with {experts} routed experts")
            return loads / loads.sum()
        p = inclusion_probabilities(experts, top_k, self.skew)
        # Hot experts sit at scattered indices, not at 0, 1, 2, ...: a fixed permutation.
        return np.random.default_rng(0).permutation(p / p.sum())


@lru_cache(maxsize=16)
def _read_loads(path: str) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise SpecError(f"expert_load_file not found: {path}")
    text = p.read_text().replace(",", " ").split()
    try:
        loads = np.array([float(x) for x in text if not x[0].isalpha()])
    except ValueError:
        raise SpecError(f"expert_load_file {path}: expected numbers, one load per expert") from None
    if len(loads) == 0 or (loads < 0).any() or loads.sum() <= 0:
        raise SpecError(f"expert_load_file {path}: loads must be non-negative and not all zero")
    return loads


@dataclass(frozen=True)
class RankLoad:
    """The busiest EP rank: its share of all routed rows, its experts and its hottest expert."""

    rank_share: float
    local_experts: int
    expert_shares: tuple[float, ...]  # of the busiest rank's experts

    def rows(self, tokens: int, top_k: int) -> tuple[int, int, int]:
        """(rows, max rows of one expert, active experts) on the busiest rank for `tokens`."""
        total = tokens * top_k
        rows = total * self.rank_share
        # Binomial spread on top of the expected load: a batch fluctuates around the mean.
        rows = min(total, math.ceil(rows + math.sqrt(rows) if rows > 0 else 0))
        hottest = max(self.expert_shares) * total
        busiest = min(rows, max(1, math.ceil(hottest + 2.0 * math.sqrt(hottest))))
        active = round(sum(1.0 - (1.0 - min(1.0, s * top_k)) ** tokens for s in self.expert_shares))
        return rows, busiest, max(1, min(self.local_experts, active))


@lru_cache(maxsize=256)
def busiest_rank(experts: int, top_k: int, ep: int, routing: ExpertRouting) -> RankLoad:
    shares = routing.expert_shares(experts, top_k)
    slots = -(-(experts + routing.redundant) // ep)
    if routing.redundant == 0:
        per_rank = [shares[r * slots:(r + 1) * slots] for r in range(ep)]
    else:
        per_rank = _balanced_placement(shares, ep, slots, routing.redundant)
    loads = [float(np.sum(s)) for s in per_rank]
    r = int(np.argmax(loads))
    return RankLoad(loads[r], len(per_rank[r]), tuple(float(x) for x in per_rank[r]))


def _balanced_placement(shares: np.ndarray, ep: int, slots: int, redundant: int) -> list[np.ndarray]:
    """EPLB: replicate the hottest experts (a replica splits its expert's load), then place the
    heaviest replicas first on the least-loaded rank that has a free slot."""
    replicas = np.ones(len(shares), dtype=int)
    for _ in range(redundant):
        replicas[int(np.argmax(shares / replicas))] += 1
    items = sorted(((shares[e] / replicas[e]) for e in range(len(shares)) for _ in range(replicas[e])),
                   reverse=True)
    heap = [(0.0, r) for r in range(ep)]
    placed: list[list[float]] = [[] for _ in range(ep)]
    for load in items:
        full = []
        while True:
            total, r = heapq.heappop(heap)
            if len(placed[r]) < slots:
                break
            full.append((total, r))
        placed[r].append(load)
        heapq.heappush(heap, (total + load, r))
        for entry in full:
            heapq.heappush(heap, entry)
    return [np.array(p) for p in placed]
