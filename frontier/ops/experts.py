"""Expert parallelism: how the routed tokens of a MoE layer spread over the EP ranks.

Each expert's share of the routed rows comes from a routing model (uniform, Zipf-like skew as
in `frontier.ops.routing`, or a per-expert load file). Experts are placed on ranks either as
they come (expert i on rank i // (E / ep), hot experts landing where their index puts them) or,
with EPLB, with `redundant` extra replicas of the hottest experts and a greedy balanced
placement. Every rank waits for the busiest one, so the busiest rank's rows set the MoE time.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from frontier.errors import SpecError
from frontier.ops.routing import inclusion_probabilities


@dataclass(frozen=True)
class ExpertRouting:
    skew: float = 0.0  # 0 uniform; 1.2 the reference table's hot-expert routing
    load_file: str = ""  # CSV/whitespace list of per-expert loads (any scale)
    redundant: int = 0  # EPLB: extra replicas of the hottest experts
    load_cv: float = 0.0  # batch-to-batch coefficient of variation of each expert's load

    def expert_shares(self, experts: int, top_k: int) -> np.ndarray:
        """Fraction of all routed rows (tokens x top-k) each expert receives; sums to 1."""
        if self.load_file:
            loads = _read_loads(self.load_file)
            if len(loads) != experts:
                raise SpecError(
                    f"expert_load_file {self.load_file}: {len(loads)} loads for a model with {experts} routed experts"
                )
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
        mean = total * self.rank_share
        # Binomial spread on top of the expected load: a batch fluctuates around the mean.
        rows = min(total, math.ceil(mean + math.sqrt(mean) if mean > 0 else 0))
        hottest = max(self.expert_shares) * total
        busiest = min(rows, max(1, math.ceil(hottest + 2.0 * math.sqrt(hottest))))
        # Its distinct experts (whose weights it reads) come from those rows, spread included: as
        # many tokens as would send it `rows` rows on average. In a small decode batch that is
        # where the busiest rank's time goes.
        draws = tokens * rows / mean if mean > 0 else tokens
        active = round(sum(1.0 - (1.0 - min(1.0, s * top_k)) ** draws for s in self.expert_shares))
        return rows, busiest, max(1, min(self.local_experts, rows, active))


@lru_cache(maxsize=256)
def busiest_rank(experts: int, top_k: int, ep: int, routing: ExpertRouting) -> RankLoad:
    """The rank every other waits for. Placement (EPLB's too) is built from the long-run shares,
    a stale window of loads; in each batch an expert's load strays from its share with
    coefficient of variation `load_cv`, independently, so rank r's load has mean m_r (its
    shares) and standard deviation s_r = load_cv x sqrt(sum of its shares squared), and the
    busiest of ep ranks is expected near max_r(m_r + s_r sqrt(2 ln ep)) (the Gaussian maximum)."""
    shares = routing.expert_shares(experts, top_k)
    slots = -(-(experts + routing.redundant) // ep)
    if routing.redundant == 0:
        per_rank = [shares[r * slots : (r + 1) * slots] for r in range(ep)]
    else:
        per_rank = _balanced_placement(shares, ep, slots, routing.redundant)
    spread = routing.load_cv * math.sqrt(2 * math.log(ep)) if ep > 1 else 0.0
    loads = [float(np.sum(s) + spread * math.sqrt(np.sum(np.square(s)))) for s in per_rank]
    r = int(np.argmax(loads))
    stray = loads[r] / max(float(np.sum(per_rank[r])), 1e-30)
    return RankLoad(loads[r], len(per_rank[r]), tuple(float(x) * stray for x in per_rank[r]))


def _balanced_placement(shares: np.ndarray, ep: int, slots: int, redundant: int) -> list[np.ndarray]:
    """EPLB: replicate the hottest experts (a replica splits its expert's load), then place the
    heaviest replicas first on the least-loaded rank that has a free slot."""
    replicas = np.ones(len(shares), dtype=int)
    for _ in range(redundant):
        replicas[int(np.argmax(shares / replicas))] += 1
    items = sorted(((shares[e] / replicas[e]) for e in range(len(shares)) for _ in range(replicas[e])), reverse=True)
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


# --- expert-parallel communication: what each rank sends, over which link ----------------------

FP8_SCALE_BLOCK = 128  # DeepEP's FP8 dispatch: one fp32 scale per 128 channels


@dataclass(frozen=True)
class Fabric:
    """Where the EP ranks sit: GPUs per node (NVLink domain) and the links of one GPU."""

    gpus_per_node: int = 8
    nvlink_gbps: float = 450.0  # per GPU, one direction
    network_gbps: float = 50.0  # per GPU NIC, one direction
    sm_count: int = 132


@dataclass(frozen=True)
class Destinations:
    """Expected destinations of one token under the routing model, over an EP group of
    `nodes` nodes: distinct ranks and nodes holding at least one of its top-k experts."""

    ranks: float  # distinct ranks touched (own rank included)
    nodes: float  # distinct nodes touched (own node included)
    ep: int
    node_count: int

    @property
    def remote_nodes(self) -> float:
        """Nodes other than the token's own: by symmetry its own node is touched with the
        average probability nodes / node_count."""
        return self.nodes * (self.node_count - 1) / self.node_count


def _hypergeom_miss(n: int, x: int, k: float) -> float:
    """P(k draws without replacement from n experts miss all x of them); k may be fractional
    (the mean of its floor and ceiling, weighted)."""
    lo = int(k)
    miss = [math.comb(n - x, j) / math.comb(n, j) if j <= n else 0.0 for j in (lo, lo + 1)]
    return miss[0] + (k - lo) * (miss[1] - miss[0])


@lru_cache(maxsize=256)
def destinations(experts: int, top_k: int, n_group: int, topk_group: int, ep: int, gpus_per_node: int) -> Destinations:
    """Expected ranks and nodes one token reaches, under group-limited routing as DeepSeek-V3
    trains it (its config's n_group / topk_group; 1 / 1 is plain top-k): the token picks
    `topk_group` of the `n_group` groups, uniformly, and top_k / topk_group experts in each,
    uniformly; expert e sits on rank e * ep // experts (the checkpoint's order, as SGLang and
    vLLM place experts without EPLB)."""
    per_group = experts // n_group
    k = top_k / topk_group
    node_count = max(1, -(-ep // gpus_per_node))
    rank_of = [e * ep // experts for e in range(experts)]

    def touched(unit_of) -> float:
        units = sorted(set(unit_of))
        # x[u][g]: experts of unit u in group g
        x = {u: [0] * n_group for u in units}
        for e, u in enumerate(unit_of):
            x[u][e // per_group] += 1
        subsets = list(itertools.combinations(range(n_group), topk_group))
        total = 0.0
        for u in units:
            miss = [_hypergeom_miss(per_group, xg, k) for xg in x[u]]
            total += sum(1.0 - math.prod(miss[g] for g in s) for s in subsets) / len(subsets)
        return total

    ranks = touched(rank_of)
    nodes = touched([r // gpus_per_node for r in rank_of]) if node_count > 1 else 1.0
    return Destinations(ranks, nodes, ep, node_count)


def ep_message_bytes(hidden: int, fp8: bool) -> float:
    """One token's activations on the wire: bf16, or FP8 with one fp32 scale per 128 channels."""
    return hidden * (1 + 4 / FP8_SCALE_BLOCK) if fp8 else 2.0 * hidden


def ep_traffic(
    backend: str, dest: Destinations, tokens: int, hidden: int, top_k: int, gpus_per_node: int, phase: str
) -> tuple[float, float]:
    """(NVLink bytes, NIC bytes) one rank sends for `tokens` tokens in one dispatch or combine.

    - `deepep-normal` (DeepEP's high-throughput kernels, prefill): a token crosses to each remote
      node holding one of its experts once (per-node dedup), to the GPU of its own local index
      there, which forwards it over NVLink to each other rank of that node that needs it;
      inside one node, straight over NVLink to each rank that needs it. FP8 dispatch, bf16
      combine (the reverse path).
    - `deepep-low-latency` (decode): one message per (token, expert) pair, straight to the
      expert's rank: over the NIC across nodes, NVLink inside; FP8 dispatch, bf16 combine.
    - `nccl`: an all-to-all of each token once per destination rank, bf16 both ways.
    - `allgather-reducescatter`: every rank gathers all the group's tokens (bf16) and
      reduce-scatters the outputs: a ring, (ep - 1) x its tokens through each GPU's links,
      over the NICs once the group spans nodes.
    """
    ep, nodes = dest.ep, dest.node_count
    fp8 = phase == "dispatch" and backend.startswith("deepep")
    msg = tokens * ep_message_bytes(hidden, fp8)
    local_peers = min(gpus_per_node, ep) - 1
    if backend == "deepep-normal":
        if nodes == 1:
            return msg * dest.ranks * (ep - 1) / ep, 0.0
        return msg * dest.ranks * (gpus_per_node - 1) / gpus_per_node, msg * dest.remote_nodes
    if backend == "deepep-low-latency":
        return msg * top_k * local_peers / ep, msg * top_k * (ep - local_peers - 1) / ep
    if backend == "nccl":
        return msg * dest.ranks * local_peers / ep, msg * dest.ranks * (ep - local_peers - 1) / ep
    if backend == "allgather-reducescatter":
        ring = msg * (ep - 1)
        return (ring, 0.0) if nodes == 1 else (0.0, ring)
    raise ValueError(f"unknown ep_backend {backend!r} (frontier.spec.scenario.EP_BACKENDS)")
