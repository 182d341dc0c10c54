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
    bandwidth_gbps: float   # GB/s, one direction, of the whole sending side
    latency_us: float

    def seconds(self, nbytes: float) -> float:
        """Latency plus serialisation of `nbytes`."""
        return self.latency_us * 1e-6 + nbytes / (self.bandwidth_gbps * 1e9)


def rank_link(gpu, gpus: int, bandwidth_gbps: float | None = None,
              latency_us: float | None = None) -> Link:
    """The network link out of one model rank spread over `gpus` GPUs (tp x pp): each GPU sends
    its shard over its own NIC, so their bandwidths add up. Given values override the GPU's."""
    return Link(bandwidth_gbps or gpu.network_gbps * gpus, latency_us or gpu.network_latency_us)


def kv_transfer_s(link: Link, nbytes: float, layers: int, hide_s: float | None) -> tuple[float, float]:
    """(whole transfer, part not hidden) of a KV cache of `nbytes`.

    Sent layer by layer while the prefill runs (`hide_s` of it left to hide behind), only the
    last layer, or what outlasts the prefill, remains; `hide_s` None: sent whole afterwards."""
    total = link.seconds(nbytes)
    if hide_s is None:
        return total, total
    return total, max(total / layers, total - hide_s)


def activation_transfer_ms(link: Link, tokens: int, hidden: int, elem_bytes: float) -> float:
    """One layer's activations of `tokens` tokens from attention to FFN (or back), in ms."""
    return link.seconds(tokens * hidden * elem_bytes) * 1e3
