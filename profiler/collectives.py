"""Collectives among the GPUs of this machine: all_reduce, all_gather, reduce_scatter,
all_to_all and send_recv (a ring: every rank sends to the next and receives from the previous),
from 1 KiB to 1 GiB, for every world size the machine has (2, 4, 8, ... up to its GPU count).

NCCL on GPUs (bf16), gloo with 2 processes on a CPU dry run (fp32). `size_bytes` follows
nccl-tests and `Collective`'s docstring: the full tensor for all_reduce, the gathered output
for all_gather, the unreduced input for reduce_scatter, what one rank sends for all_to_all and
send_recv. Each rep: barrier, then the op bracketed by CUDA events (perf_counter on CPU); the
rep's time is the slowest rank's; `ms` = median over reps, `ms_min` = fastest rep.
`busbw_gbps` uses nccl-tests' factors, so numbers compare with theirs.

Run by the profiler (torch.multiprocessing, spawn) or by hand under torchrun:
    torchrun --nproc-per-node=8 -m profiler.collectives --out calibration/h100-sxm/tables [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import statistics
from pathlib import Path

from profiler.timing import time_synchronised

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
SIZES_FULL = tuple(2**p for p in range(10, 31))  # 1 KiB .. 1 GiB
SIZES_QUICK = tuple(2**p for p in range(10, 31, 2))  # 1 KiB, 4 KiB, .. 1 GiB
SIZES_DRY = (2**10, 2**12, 2**14)
BUS_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
}
WARMUP = 3
REPS = {"full": 15, "quick": 10, "dry": 3}


def world_sizes(gpu_count: int, dry_run: bool) -> list[int]:
    if dry_run:
        return [2]
    sizes = [w for w in (2, 4, 8, 16, 32) if w <= gpu_count]
    if gpu_count >= 2 and gpu_count not in sizes:
        sizes.append(gpu_count)
    return sizes


def planned(sizes, world: int, backend: str, link: str) -> list[dict]:
    return [
        {"kind": kind, "size_bytes": size, "world": world, "link": link, "backend": backend}
        for kind in KINDS
        for size in sizes
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- one process


def _op(dist, torch, kind: str, size: int, rank: int, world: int, device, dtype):
    """The zero-argument call of one collective, inputs allocated."""
    elem = torch.tensor([], dtype=dtype).element_size()
    numel = size // elem
    if kind == "all_reduce":
        t = torch.ones(numel, device=device, dtype=dtype)
        return lambda: dist.all_reduce(t)
    if kind == "all_gather":
        out = torch.empty(numel, device=device, dtype=dtype)
        inp = torch.ones(numel // world, device=device, dtype=dtype)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        return lambda: gather(out, inp)
    if kind == "reduce_scatter":
        inp = torch.ones(numel, device=device, dtype=dtype)
        out = torch.empty(numel // world, device=device, dtype=dtype)
        scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        return lambda: scatter(out, inp)
    if kind == "all_to_all":
        inp = torch.ones(numel, device=device, dtype=dtype)
        out = torch.empty(numel, device=device, dtype=dtype)
        return lambda: dist.all_to_all_single(out, inp)
    if kind == "send_recv":
        send = torch.ones(numel, device=device, dtype=dtype)
        recv = torch.empty(numel, device=device, dtype=dtype)
        ops = [dist.P2POp(dist.isend, send, (rank + 1) % world), dist.P2POp(dist.irecv, recv, (rank - 1) % world)]

        def ring():
            for work in dist.batch_isend_irecv(ops):
                work.wait()

        return ring
    raise ValueError(f"unknown collective {kind}")


def _time(dist, torch, fn, cuda: bool, reps: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return time_synchronised(fn, cuda, reps, before=dist.barrier)


def measure_world(
    rank: int, world: int, backend: str, rows: list[dict], table_dir: str, mode: str, notes_path: str, progress=None
) -> None:
    """Body of one rank: measure `rows` (already minus the measured ones); rank 0 writes them."""
    import torch
    import torch.distributed as dist

    from profiler.tables import TableWriter

    cuda = backend == "nccl"
    if cuda:
        torch.cuda.set_device(rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
        dtype = torch.bfloat16
    else:
        torch.set_num_threads(1)
        device, dtype = torch.device("cpu"), torch.float32
    writer = TableWriter("collective", Path(table_dir)) if rank == 0 else None
    notes = []
    for row in rows:
        kind, size = row["kind"], row["size_bytes"]
        try:
            fn = _op(dist, torch, kind, size, rank, world, device, dtype)
            local = torch.tensor(_time(dist, torch, fn, cuda, REPS[mode]), dtype=torch.float64)
        except Exception as exc:  # the same on every rank (an op the backend lacks)
            notes.append(f"collective/{backend}/{kind}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            local = None
        ok = torch.tensor([0.0 if local is None else 1.0], dtype=torch.float64)
        ok = ok.to(device) if cuda else ok
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if ok.item() == 1.0:
            slowest = local.to(device) if cuda else local
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)  # a rep takes as long as its slowest rank
            times = slowest.cpu().tolist()
            if writer is not None:
                ms = statistics.median(times)
                algbw = size / (ms * 1e6)
                writer.append(
                    dict(row, ms=ms, ms_min=min(times), algbw_gbps=algbw, busbw_gbps=algbw * BUS_FACTOR[kind](world))
                )
        if progress is not None and rank == 0:
            progress.put(1)
    if rank == 0 and notes:
        with open(notes_path, "a") as fh:
            fh.write("\n".join(sorted(set(notes))) + "\n")


def _spawned(rank: int, world: int, backend: str, port: int, rows, table_dir, mode, notes_path, progress):
    import torch
    import torch.distributed as dist

    extra = {}
    if backend == "nccl":
        torch.cuda.set_device(rank)
        extra["device_id"] = torch.device("cuda", rank)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=600),
        **extra,
    )
    try:
        measure_world(rank, world, backend, rows, table_dir, mode, notes_path, progress)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_world(
    world: int, backend: str, rows: list[dict], table_dir: Path, mode: str, advance=lambda n: None
) -> list[str]:
    """Measure `rows` with `world` spawned processes; returns notes (skipped ops, failures)."""
    import torch.multiprocessing as mp

    notes_path = Path(table_dir) / f".collective-notes-{os.getpid()}-{world}.txt"
    spawn = mp.get_context("spawn")
    progress = spawn.SimpleQueue()
    ctx = mp.start_processes(
        _spawned,
        args=(world, backend, _free_port(), rows, str(table_dir), mode, str(notes_path), progress),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    notes: list[str] = []
    try:
        while not ctx.join(timeout=0.2):
            while not progress.empty():
                advance(progress.get())
    except Exception as exc:  # a rank died: keep what rank 0 wrote, say why
        notes.append(
            f"collective/{backend}/world{world}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
        )
    while not progress.empty():
        advance(progress.get())
    if notes_path.exists():
        notes += [line for line in notes_path.read_text().splitlines() if line]
        notes_path.unlink()
    return notes


# ------------------------------------------------------------------------------- torchrun


def main(argv=None) -> int:
    """Entry point under torchrun (one process per GPU, env:// rendezvous)."""
    parser = argparse.ArgumentParser(prog="python -m profiler.collectives")
    parser.add_argument("--out", required=True, help="tables folder (collective.csv is appended)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", default="nccl", choices=("nccl", "gloo"))
    args = parser.parse_args(argv)
    import torch.distributed as dist

    from profiler.tables import TableWriter

    dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=600))
    rank, world = dist.get_rank(), dist.get_world_size()
    mode = "quick" if args.quick else "full"
    sizes = SIZES_QUICK if args.quick else SIZES_FULL
    link = "nvlink" if args.backend == "nccl" else "network"
    writer = TableWriter("collective", Path(args.out))
    rows = [r for r in planned(sizes, world, args.backend, link) if not writer.has(r)]
    notes_path = str(Path(args.out) / ".collective-notes-torchrun.txt")
    measure_world(rank, world, args.backend, rows, args.out, mode, notes_path)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
