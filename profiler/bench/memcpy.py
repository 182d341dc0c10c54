"""Copy bandwidth: device to device (KV-cache moves), device to host and host to device (KV
offload, swapping), with pinned host memory. `gbps` = size_bytes / time (bytes transferred,
not read + written)."""

from __future__ import annotations

from profiler.bench import est_ms
from profiler.runner import Case, Context

SIZES_FULL = tuple(2**p for p in range(16, 31))  # 64 KiB .. 1 GiB
SIZES_QUICK = tuple(2**p for p in range(16, 31, 2))  # 64 KiB, 256 KiB, .. 1 GiB
SIZES_DRY = (2**12, 2**16)


def plan(ctx: Context, specs) -> list[Case]:
    sizes = SIZES_DRY if ctx.dry_run else (SIZES_QUICK if ctx.quick else SIZES_FULL)
    cases = []
    for direction in ("d2d", "d2h", "h2d"):
        for size in sizes:
            row = {"direction": direction, "size_bytes": size}
            cases.append(
                Case(
                    family="memcpy",
                    row=row,
                    group=f"memcpy/{direction}",
                    setup=lambda d=direction, s=size: _setup(ctx, d, s),
                    derive=lambda ms, s=size: {"gbps": s / (ms * 1e6)},
                    cost_ms=est_ms(0, size * (2 if direction == "d2d" else 60)),
                )
            )
    return cases


def _setup(ctx: Context, direction: str, size: int):
    import torch

    dev = ctx.device
    pin = ctx.cuda  # pinned memory needs the CUDA driver
    device_buf = torch.empty(size, dtype=torch.uint8, device=dev)
    if direction == "d2d":
        src = torch.empty(size, dtype=torch.uint8, device=dev)
        return lambda: device_buf.copy_(src)
    host = torch.empty(size, dtype=torch.uint8, pin_memory=pin)
    if direction == "d2h":
        return lambda: host.copy_(device_buf, non_blocking=True)
    return lambda: device_buf.copy_(host, non_blocking=True)
