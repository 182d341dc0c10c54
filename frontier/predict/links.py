"""Link physics: how long bytes take to cross a link between GPUs of different instances.

One home for every transfer the simulator times outside a step's own collectives: a request's
KV cache from a prefill to a decode instance (PD disaggregation) and a layer's activations
between attention and FFN instances (AF disaggregation). Per-GPU volumes and links shared by
several transfers at once belong here too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    bandwidth_gbps: float  # GB/s, one direction, of the whole sending side
    latency_us: float

    def seconds(self, nbytes: float) -> float:
        """Latency plus serialisation of `nbytes`."""
        return self.latency_us * 1e-6 + nbytes / (self.bandwidth_gbps * 1e9)


def rank_link(gpu, gpus: int, bandwidth_gbps: float | None = None, latency_us: float | None = None) -> Link:
    """The network link out of one model rank spread over `gpus` GPUs (tp x pp): each GPU sends
    its shard over its own NIC, so their bandwidths add up. Given values override the GPU's."""
    return Link(bandwidth_gbps or gpu.network_gbps * gpus, latency_us or gpu.network_latency_us)


def kv_transfer_window(
    link: Link, nbytes: float, layers: int, now_s: float, link_free_s: float, prefill_s: tuple[float, float] | None
) -> tuple[float, float]:
    """(start, end) of a KV cache of `nbytes` crossing a link that is busy until `link_free_s`
    (transfers out of one GPU's NICs queue behind each other: the link is shared, not copied).

    Whole (`prefill_s` None): it starts when asked (`now_s`) and the link is free. Layer by layer
    (`prefill_s` = start and end of the request's own prefill): layers leave as they are
    computed, from the prefill's start once the link is free; the last one cannot leave before
    the prefill ends."""
    total = link.seconds(nbytes)
    if prefill_s is None:
        start = max(now_s, link_free_s)
        return start, start + total
    begin, end = prefill_s
    start = max(begin, link_free_s)
    return start, max(start + total, end + total / layers)


def activation_transfer_ms(link: Link, tokens: int, hidden: int, elem_bytes: float) -> float:
    """One layer's activations of `tokens` tokens from attention to FFN (or back), in ms."""
    return link.seconds(tokens * hidden * elem_bytes) * 1e3


# --- expert-parallel dispatch and combine ------------------------------------------------------
# What the libraries reach on the wire, from DeepEP's published tables (docs/legacy.md of
# github.com/deepseek-ai/DeepEP, H800 with one 400 Gb/s CX7 per GPU; checked in
# tests/predict/test_ep_links.py): its RDMA kernels move about 44 of a NIC's 50 GB/s; NVLink
# carries 153-158 of the H800's 200 GB/s between ranks directly (intranode, low-latency) and
# about 126 when the same GPU also forwards what arrives over RDMA (normal internode mode).
# Each kernel costs about 30 us beyond its bytes (the low-latency table's intercept).
NIC_EFFICIENCY = 0.88
NVLINK_EFFICIENCY = 0.78
NVLINK_FORWARDING_EFFICIENCY = 0.63
EP_KERNEL_LATENCY_US = 30.0
# DeepEP's normal kernels run on SMs taken from compute (Buffer.set_num_sms(24) in its README's
# example, as SGLang configures it); the low-latency kernels' receive hook takes none.
DEEPEP_NORMAL_SMS = 24


def ep_exchange_ms(op) -> float:
    """One dispatch or combine: NVLink and NIC transfers proceed together, the slower sets the
    time, plus the kernel's fixed cost. NCCL and the all-gather ring reach the same fractions."""
    if op.nvlink_bytes <= 0 and op.network_bytes <= 0:
        return 0.0
    forwarding = op.backend == "deepep-normal" and op.network_bytes > 0
    nvl = op.nvlink_gbps * (NVLINK_FORWARDING_EFFICIENCY if forwarding else NVLINK_EFFICIENCY)
    nvl_s = op.nvlink_bytes / (nvl * 1e9) if op.nvlink_bytes else 0.0
    net_s = op.network_bytes / (op.network_gbps * NIC_EFFICIENCY * 1e9) if op.network_bytes else 0.0
    return EP_KERNEL_LATENCY_US * 1e-3 + max(nvl_s, net_s) * 1e3


class EPExchangeModel:
    """FamilyModel of `EPExchange` operators."""

    source = "link physics (DeepEP figures)"

    def predict_ms(self, ops):
        import numpy as np

        return np.array([ep_exchange_ms(op) for op in ops], dtype=float)
