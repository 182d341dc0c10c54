"""Expert-parallel dispatch and combine: bytes per link from the routing model, worked out by
hand, and times against DeepEP's published tables (github.com/deepseek-ai/DeepEP docs/legacy.md,
H800 with one 400 Gb/s CX7 NIC per GPU)."""

import math

import pytest

from frontier.ops.experts import destinations, ep_message_bytes, ep_traffic
from frontier.ops.operators import EPExchange
from frontier.predict.links import ep_exchange_ms

H = 7168  # DeepSeek-V3 hidden size
FP8 = H + H / 128 * 4  # 7392 bytes: fp8 values and one fp32 scale per 128 channels
BF16 = 2 * H


def test_group_limited_routing_reaches_about_three_nodes_at_ep32():
    # DeepSeek-V3 on 4 nodes x 8 GPUs: 8 groups of 32 experts, two groups per node, 8 experts
    # per rank. A token picks 4 of the 8 groups: a node is missed when both its groups are, with
    # probability C(6,4)/C(8,4) = 15/70. A rank's group is picked with probability 1/2, and then
    # the group's 2 draws miss its 8 experts with probability C(24,2)/C(32,2) = 276/496.
    d = destinations(256, 8, 8, 4, 32, 8)
    assert d.nodes == pytest.approx(4 * (1 - 15 / 70))  # 3.14 nodes
    assert d.remote_nodes == pytest.approx(3 * (1 - 15 / 70))  # 2.36 of them remote
    assert d.ranks == pytest.approx(32 * 0.5 * (1 - 276 / 496))  # 7.10 ranks
    # Plain top-8 of 256 over 32 ranks of 8 experts: a rank is missed by all 8 draws with
    # probability C(248,8)/C(256,8).
    plain = destinations(256, 8, 1, 1, 32, 8)
    assert plain.ranks == pytest.approx(32 * (1 - math.comb(248, 8) / math.comb(256, 8)))


def test_bytes_per_link_of_each_backend():
    d = destinations(256, 8, 8, 4, 32, 8)
    T = 1000
    # DeepEP normal: once per remote node over the NIC (fp8 out, bf16 back), then forwarded over
    # NVLink to the other ranks of each node that need it (7 of the 8 by symmetry).
    nvl, net = ep_traffic("deepep-normal", d, T, H, 8, 8, "dispatch")
    assert net == pytest.approx(T * FP8 * 3 * 55 / 70)
    assert nvl == pytest.approx(T * FP8 * d.ranks * 7 / 8)
    nvl_c, net_c = ep_traffic("deepep-normal", d, T, H, 8, 8, "combine")
    assert net_c / net == pytest.approx(BF16 / FP8)
    # DeepEP low latency: each of the 8 (token, expert) pairs straight to its rank; 24 of the 32
    # ranks are on other nodes, 7 on this node besides this GPU.
    nvl, net = ep_traffic("deepep-low-latency", d, T, H, 8, 8, "dispatch")
    assert net == pytest.approx(T * FP8 * 8 * 24 / 32) and nvl == pytest.approx(T * FP8 * 8 * 7 / 32)
    # NCCL all-to-all: once per destination rank, bf16.
    nvl, net = ep_traffic("nccl", d, T, H, 8, 8, "dispatch")
    assert net == pytest.approx(T * BF16 * d.ranks * 24 / 32) and nvl == pytest.approx(T * BF16 * d.ranks * 7 / 32)
    # All-gather / reduce-scatter ring: every rank's tokens pass every GPU, over the NICs.
    assert ep_traffic("allgather-reducescatter", d, T, H, 8, 8, "dispatch") == (0.0, pytest.approx(T * BF16 * 31))
    # One node: the normal kernels go straight over NVLink.
    one = destinations(256, 8, 8, 4, 8, 8)
    assert ep_traffic("deepep-normal", one, T, H, 8, 8, "dispatch") == (pytest.approx(T * FP8 * one.ranks * 7 / 8), 0.0)


def test_exchange_time_is_the_slower_link_plus_the_kernel_cost():
    # 44 MB over a 50 GB/s NIC at 88 %: 1 ms; 10 MB over 450 GB/s NVLink hides under it.
    op = EPExchange("deepep-low-latency", "dispatch", 10_000_000, 44_000_000, 450.0, 50.0)
    assert ep_exchange_ms(op) == pytest.approx(0.030 + 1.0)
    assert ep_exchange_ms(EPExchange("nccl", "dispatch", 0, 0, 450.0, 50.0)) == 0.0


# DeepEP normal kernels, 4096 tokens per rank, top-8 of 256 experts with the token's nodes as its
# groups (top-4 of them), fp8 dispatch / bf16 combine: (EP, dispatch GB/s, combine GB/s), where
# the published "bottleneck RDMA bandwidth" counts each (token, node) pair, own node included.
NORMAL = [(16, 43, 43), (32, 58, 57), (64, 51, 50)]
# Low-latency kernels, 128 tokens per rank, top-8 of 256, fp8 dispatch / bf16 combine: us.
LOW_LATENCY = [(8, 77, 114), (16, 118, 195), (32, 155, 273), (64, 173, 314), (128, 192, 369), (256, 194, 360)]
H800 = (200.0, 50.0)  # frontier's h800 spec: NVLink and NIC GB/s, one direction


@pytest.mark.parametrize("ep,dispatch_gbps,combine_gbps", NORMAL)
def test_deepep_normal_matches_the_published_bandwidth(ep, dispatch_gbps, combine_gbps):
    nodes = ep // 8
    d = destinations(256, 8, nodes, min(nodes, 4), ep, 8)
    for phase, published in (("dispatch", dispatch_gbps), ("combine", combine_gbps)):
        nvl, net = ep_traffic("deepep-normal", d, 4096, H, 8, 8, phase)
        ms = ep_exchange_ms(EPExchange("deepep-normal", phase, round(nvl), round(net), *H800))
        logical = 4096 * d.nodes * ep_message_bytes(H, phase == "dispatch")
        assert logical / ms / 1e6 == pytest.approx(published, rel=0.05)


@pytest.mark.parametrize("ep,dispatch_us,combine_us", LOW_LATENCY)
def test_deepep_low_latency_matches_the_published_latency(ep, dispatch_us, combine_us):
    d = destinations(256, 8, 1, 1, ep, 8)
    for phase, published in (("dispatch", dispatch_us), ("combine", combine_us)):
        nvl, net = ep_traffic("deepep-low-latency", d, 128, H, 8, 8, phase)
        ms = ep_exchange_ms(EPExchange("deepep-low-latency", phase, round(nvl), round(net), *H800))
        assert ms * 1e3 == pytest.approx(published, rel=0.08)


def test_batch_to_batch_load_variation_sets_the_busiest_rank():
    from frontier.ops.experts import ExpertRouting, busiest_rank

    # 256 equal experts on 32 ranks, 8 each: mean share 8/256. Each expert's load strays with
    # CV 0.5, so a rank's share has sd 0.5 x sqrt(8) / 256; the busiest of 32 ranks sits
    # sqrt(2 ln 32) sd above the mean.
    load = busiest_rank(256, 8, 32, ExpertRouting(load_cv=0.5))
    assert load.rank_share == pytest.approx(8 / 256 + 0.5 * math.sqrt(8) / 256 * math.sqrt(2 * math.log(32)))
    assert busiest_rank(256, 8, 32, ExpertRouting()).rank_share == pytest.approx(1 / 32)
    # The busiest rank also receives and returns that much more traffic: every rank waits.
    from frontier.ops.graph import Parallel, ep_exchange
    from frontier.spec.model import load_model

    model = load_model("deepseek-v3")
    par = Parallel(ep=32, dp_attention=32, ep_backend="deepep-low-latency")
    even, hot = ep_exchange(model, par, 128, "dispatch"), ep_exchange(model, par, 128, "dispatch", 1.5)
    assert hot.network_bytes == pytest.approx(1.5 * even.network_bytes, abs=1)


def test_the_busiest_rank_reads_the_experts_of_its_own_rows():
    from frontier.ops.experts import ExpertRouting, busiest_rank

    # Qwen3.5-397B on EP8: 512 equal experts, top-10, 64 per rank. Four tokens route 40 rows, 5 per
    # rank on average; the busiest batch's rank gets ceil(5 + sqrt 5) = 8. Its distinct experts
    # follow those 8 rows (as 4 x 8/5 = 6.4 tokens would send): 64 x (1 - (1 - 10/512)^6.4) = 7.6,
    # so 8 experts' weights, not the 5 (64 x (1 - (1 - 10/512)^4) = 4.9) of an average rank.
    load = busiest_rank(512, 10, 8, ExpertRouting())
    rows, busiest, active = load.rows(4, 10)
    assert (rows, busiest, active) == (8, 1, 8)
    assert 64 * (1 - (1 - 10 / 512) ** 6.4) == pytest.approx(7.59, abs=0.01)
    # Without expert parallelism every expert is on the one rank: nothing strays.
    assert busiest_rank(512, 10, 1, ExpertRouting()).rows(4, 10)[2] == round(512 * (1 - (1 - 10 / 512) ** 4))
