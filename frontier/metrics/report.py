"""A run's results on disk and on the terminal.

results/<run>/summary.json   the keys of `vllm bench serve --save-result` (+ `--save-detailed`
                             arrays when asked) and a `frontier` block (see metrics.vllm_result)
results/<run>/requests.csv   one row per request
results/<run>/trace.json     Chrome/Perfetto trace: one row per instance, one slice per batch
results/<run>/latency_cdf.png, timeline.png
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from frontier.metrics.serving import PERCENTILES

# A front-end queue busier than this is where latency turns steep (see frontend_notes).
FRONTEND_STEEP = 0.9


def write_results(
    result, outdir: str | Path, plots: bool = True, trace: bool = True, detailed: bool = False
) -> list[Path]:
    from frontier.metrics.vllm_result import vllm_result

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.json", out / "requests.csv"]
    write_json(vllm_result(result, detailed=detailed), written[0])
    result.requests.to_csv(written[1], index=False, float_format="%.6f")
    if trace:
        written.append(write_chrome_trace(result, out / "trace.json"))
    if plots:
        written += write_plots(result, out)
    return written


def write_json(data: dict, path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


def write_chrome_trace(result, path: Path) -> Path:
    """Batches (and transfers) as complete events; open in ui.perfetto.dev or chrome://tracing."""
    rec = result.recorder
    names = sorted({row[0] for row in rec.timeline} | {row[0] for row in rec.transfers})
    tid = {name: i + 1 for i, name in enumerate(names)}
    pid_of = {name: name.split("/")[0] for name in names}
    pids = {c: i + 1 for i, c in enumerate(sorted(set(pid_of.values())))}
    events = []
    for cluster, pid in pids.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": cluster}})
    for name, t in tid.items():
        events.append({"ph": "M", "name": "thread_name", "pid": pids[pid_of[name]], "tid": t, "args": {"name": name}})
    for inst, start, end, kind, seqs, iters, tokens in rec.timeline:
        events.append(
            {
                "ph": "X",
                "name": kind if iters == 1 else f"{kind} x{iters}",
                "cat": kind,
                "pid": pids[pid_of[inst]],
                "tid": tid[inst],
                "ts": start * 1e6,
                "dur": (end - start) * 1e6,
                "args": {"seqs": seqs, "iterations": iters, "tokens": tokens},
            }
        )
    for name, start, end, what in rec.transfers:
        events.append(
            {
                "ph": "X",
                "name": what,
                "cat": "transfer",
                "pid": pids[pid_of[name]],
                "tid": tid[name],
                "ts": start * 1e6,
                "dur": (end - start) * 1e6,
            }
        )
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}))
    return path


def write_plots(result, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = result.requests[result.requests.status == "finished"]
    tpot = (df.e2el_s - df.ttft_s)[df.output_tokens > 1] / (df.output_tokens[df.output_tokens > 1] - 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (label, values) in zip(
        axes, [("TTFT (ms)", df.ttft_s * 1e3), ("TPOT (ms)", tpot * 1e3), ("E2E latency (s)", df.e2el_s)]
    ):
        v = np.sort(values.to_numpy())
        ax.plot(v, np.arange(1, len(v) + 1) / max(len(v), 1))
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.scenario.name}: latency CDFs ({len(df)} requests)")
    fig.tight_layout()
    cdf = out / "latency_cdf.png"
    fig.savefig(cdf, dpi=110)
    plt.close(fig)

    written = [cdf]
    rec = result.recorder
    if rec.timeline:
        tl = np.array([(s, e, seqs, tok) for _, s, e, _, seqs, _, tok in rec.timeline])
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
        order = np.argsort(tl[:, 0])
        tl = tl[order]
        bins = np.linspace(tl[0, 0], tl[-1, 1], 200)
        width = bins[1] - bins[0]
        tokens, _ = np.histogram(tl[:, 1], bins=bins, weights=tl[:, 3])
        ax1.plot(bins[:-1], tokens / width)
        ax1.set_ylabel("tokens / s")
        ax1.grid(alpha=0.3)
        ax2.step(tl[:, 0], tl[:, 2], where="post", lw=0.6)
        ax2.set_ylabel("sequences in batch")
        ax2.set_xlabel("time (s)")
        ax2.grid(alpha=0.3)
        fig.suptitle(f"{result.scenario.name}: throughput and batch size over time")
        fig.tight_layout()
        path = out / "timeline.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _seq_blocks(c: dict) -> str:
    """What vLLM's pool spends on each sequence besides its tokens (a hybrid's recurrent states, a
    sliding window)."""
    n = c.get("kv_seq_blocks")
    return (
        f"in blocks of {c['kv_block_tokens']} tokens, {n} more a sequence for its {c['kv_seq_blocks_hold']}, "
        if n
        else ""
    )


def predictor_notes(f: dict) -> list[str]:
    """One line for each way the summary's `frontier` block `f` says operators were predicted
    without a calibration of their GPU (frontier.sim.run.predictor_coverage)."""
    from frontier.predict.scaled import scaled_from

    notes = []
    if f.get("predictor_scaled"):
        refs = {gpu for s in f.get("predictor", {}).values() if (gpu := scaled_from(s))}
        notes.append(
            f"{', '.join(f['predictor_scaled'])} on {f['gpu']}: from {' and '.join(sorted(refs)) or 'another GPU'}'s "
            "calibration scaled by roofline ratios (after the engine's measured kernels, where `predictor` names them)"
        )
    if f.get("predictor_fallback"):
        notes.append(
            f"no calibration for {', '.join(f['predictor_fallback'])} on {f['gpu']}: "
            "those operators use the analytic roofline (less accurate)"
        )
    return notes


def frontend_row(load: dict | None) -> str | None:
    """The summary's front-end load (frontier.sim.frontend `Frontend.load`) in words."""
    if not load:
        return None
    parts = [f"request work {load['request_busy_fraction']:.0%} busy"]
    if load.get("stream_busy_fraction") is not None:
        parts.append(f"output stream {load['stream_busy_fraction']:.0%} busy")
        if load.get("first_token_stream_lag_ms"):
            parts[-1] += f", first tokens {load['first_token_stream_lag_ms']:.0f} ms late on average"
    return "; ".join(parts)


def frontend_notes(load: dict | None) -> list[str]:
    """A line for each front-end queue near saturation: there a few percent more or less work
    per request or output moves the latencies behind it by far more, so they are the figures to
    distrust first and the knobs to turn first."""
    if not load:
        return []
    notes = []
    if (load.get("stream_busy_fraction") or 0.0) >= FRONTEND_STEEP:
        notes.append(
            f"the front end's output stream is {load['stream_busy_fraction']:.0%} busy: TTFT and E2E latency "
            "wait in its queue and move steeply with its cost per output; SGLang spreads it over "
            "--tokenizer-worker-num processes (deployment.tokenizer_workers) and thins it with "
            "--stream-interval (deployment.stream_interval)"
        )
    if load["request_busy_fraction"] >= FRONTEND_STEEP:
        notes.append(
            f"the front end's request work is {load['request_busy_fraction']:.0%} busy: requests queue "
            "before the scheduler sees them, and TTFT moves steeply with the work per request"
        )
    return notes


def print_summary(result, console: Console | None = None) -> None:
    console = console or Console()
    s, f = result.summary, result.summary["frontier"]
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    clusters = ", ".join(
        f"{c['name']} ({c['role']}): {c['instances']} x {c['gpus'] // max(c['instances'], 1)} {c['gpu']}"
        for c in f["clusters"]
    )
    clusters = f"{f['deployment']['topology']}; {clusters}"
    head.add_row("model", f["model"])
    head.add_row("deployment", f"{clusters}; {f['simulated_gpus']} GPUs")
    engines = {
        (
            c["engine"],
            c["engine_version"] or "newest",
            c["quantization"] or f.get("precision", "checkpoint"),
            ", behind Dynamo's front end" if c.get("frontend") == "dynamo" else "",
        )
        for c in f["deployment"]["clusters"]
    }
    head.add_row("engine", "; ".join(f"{e} {v}, precision {q}{fe}" for e, v, q, fe in sorted(engines)))
    head.add_row("workload", str(f["workload"]))
    sources = sorted(set(f["predictor"].values()))
    head.add_row(
        "predictor",
        ", ".join(f"{fam}: {src}" for fam, src in f["predictor"].items()) if len(sources) > 1 else sources[0],
    )
    head.add_row("requests", f"{s['completed']} completed, {s['failed']} failed, {f['preemptions']} preemptions")
    head.add_row("duration", f"{s['duration']:.1f} s simulated in {f['wall_time_s']:.2f} s")
    head.add_row(
        "throughput",
        f"{s['request_throughput']:.2f} req/s, {s['output_throughput']:.0f} output tok/s, "
        f"{s['total_token_throughput']:.0f} total tok/s",
    )
    if s.get("request_goodput") is not None:
        head.add_row("goodput", f"{s['request_goodput']:.2f} req/s within the SLO")
    kv = [c for c in f["clusters"] if c.get("kv_tokens_per_instance")]
    if kv:
        head.add_row(
            "KV cache",
            "; ".join(
                f"{c['kv_tokens_per_instance']:,} tokens an instance ({c['kv_cache_gib_per_gpu']:.1f} GiB a GPU), "
                + _seq_blocks(c)
                + f"at most {c['peak_kv_fraction']:.0%} in use, requests up to {c['max_model_len_served']:,} tokens"
                + (f" ({c['name']})" if len(f["clusters"]) > 1 else "")
                for c in kv
            ),
        )
    cached = [c for c in f["clusters"] if c.get("prefix_cache_hit_rate")]
    if cached:
        rates = ", ".join(
            f"{c['prefix_cache_hit_rate']:.0%}" + (f" ({c['name']})" if len(f["clusters"]) > 1 else "") for c in cached
        )
        head.add_row("prefix cache", f"{rates} of prompt tokens served from the cache")
    frontend = frontend_row(f.get("frontend"))
    if frontend:
        head.add_row("front end", frontend)
    console.print(head)
    table = Table(title="latency (ms)")
    table.add_column("metric")
    for col in ["mean", "median"] + [f"p{p}" for p in PERCENTILES if p != 50]:
        table.add_column(col, justify="right")
    for metric, label in [("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E")]:
        table.add_row(
            label,
            *[f"{s[f'{k}_{metric}_ms']:.1f}" for k in ["mean", "median"] + [f"p{p}" for p in PERCENTILES if p != 50]],
        )
    console.print(table)
    clusters = f["clusters"]
    if len(clusters) > 1 or any(c.get("all_to_all_ms") or c.get("bubble_fraction") for c in clusters):
        ct = Table(title="clusters")
        cols = [
            ("cluster", "name", "{}"),
            ("role", "role", "{}"),
            ("GPUs", "gpus", "{}"),
            ("nodes", "nodes", "{}"),
            ("in tok/s", "input_tokens_per_s", "{:.0f}"),
            ("out tok/s", "output_tokens_per_s", "{:.0f}"),
            ("busy", "busy_fraction", "{:.0%}"),
            ("bubble", "bubble_fraction", "{:.0%}"),
            ("KV xfer ms", "kv_transfer_ms", "{:.2f}"),
            ("a2a ms/step", "all_to_all_ms", "{:.2f}"),
        ]
        for label, _, _ in cols:
            ct.add_column(label, justify="left" if label in ("cluster", "role") else "right")
        for c in clusters:
            ct.add_row(*["-" if c.get(key) is None else fmt.format(c[key]) for _, key, fmt in cols])
        console.print(ct)
    for note in predictor_notes(f) + frontend_notes(f.get("frontend")):
        console.print(f"[yellow]note:[/] {note}")
    for reason, count in f["failed_reasons"].items():
        console.print(f"[red]failed:[/] {count} request(s): {reason}")
    if f.get("outputs_clipped"):
        console.print(
            f"[yellow]note:[/] {f['outputs_clipped']} request(s) served fewer output tokens than asked: "
            "SGLang cuts an output its KV pool cannot hold whole (see requests.csv)"
        )
