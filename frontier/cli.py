"""`frontier`: simulate serving deployments, list models and GPUs, train and check predictors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frontier.engine import ENGINES, FRONTENDS
from frontier.errors import FrontierError
from frontier.paths import SCENARIOS_DIR
from frontier.spec.scenario import read_yaml_mapping
from frontier.workload.spec import PROMPT_SAMPLINGS

DEFAULT_SCENARIO = SCENARIOS_DIR / "llama3.1-8b-h100-chat.yaml"
# What a scenario built only from flags uses for what the flags leave out.
FLAG_DEFAULTS = {"gpu": "h100-sxm", "num_requests": 500, "rate": 4.0, "input_len": 1024, "output_len": 256}


def one_line(message: str) -> str:
    """The message on one line: characters a terminal would break or hide on (a YAML key can
    hold any) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class FrontierGroup(click.Group):
    """Turns user errors into one red line and exit code 2; tracebacks stay for bugs."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FrontierError as exc:
            Console(stderr=True).print(
                f"[bold red]error:[/] {escape(one_line(str(exc)))}", highlight=False, soft_wrap=True
            )
            sys.exit(2)
        except click.UsageError as exc:  # a bad flag: one line too, not click's three
            where = exc.ctx.command_path if exc.ctx else "frontier"
            Console(stderr=True).print(
                f"[bold red]error:[/] {escape(one_line(exc.format_message()))} (see {escape(where)} --help)",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(2)


@click.group(cls=FrontierGroup)
@click.version_option(package_name="frontier-sim")
def main() -> None:
    """Frontier: a GPU-calibrated simulator of LLM inference serving."""


def scenario_dict(path: Path | None, warn=None, **flags) -> tuple[dict, Path | None]:
    """The scenario as a dict: the file (or the default), with the flags given applied on top.

    `warn(line)`, if given, hears of flags that replace the file's workload."""
    given = {k: v for k, v in flags.items() if v is not None}
    warn = warn or (lambda line: None)
    if path is None and "model" not in given:
        path = DEFAULT_SCENARIO
    if path is not None:
        d = read_yaml_mapping(path)
        d.setdefault("name", path.stem)
    else:
        d = {"name": "cli", "gpu": FLAG_DEFAULTS["gpu"], "workload": {}}
    for key in ("model", "gpu", "seed"):
        if key in given:
            d[key] = given[key]
    dep = _section(d, "deployment")
    for key in (
        "tp",
        "pp",
        "dp",
        "max_num_seqs",
        "max_num_batched_tokens",
        "max_model_len",
        "engine",
        "engine_version",
        "frontend",
        "quantization",
        "kv_cache_dtype",
    ):
        if key in given:
            if "clusters" in dep:
                raise FrontierError(
                    f"--{key.replace('_', '-')} applies to a co-located deployment; "
                    "this scenario has clusters: edit the file instead"
                )
            dep[key] = given[key]
    wl = _section(d, "workload")
    if "trace" in given:
        for key in ("input_len", "output_len"):
            wl.pop(key, None)
        trace = Path(given["trace"]).expanduser()  # relative to where the user is, if it is there
        wl["trace"] = {"path": str(trace.resolve()) if trace.is_file() else given["trace"]}
    if "input_len" in given or "output_len" in given or (not wl and path is None):
        if "trace" in wl and "trace" not in given:
            used = [f"--{k.replace('_', '-')}" for k in ("input_len", "output_len") if k in given]
            verb = "replaces" if len(used) == 1 else "replace"
            warn(
                f"{' and '.join(used)} {verb} the scenario's trace ({_trace_name(wl['trace'])}) by a "
                "synthetic workload; give --trace too to keep the trace"
            )
        wl.pop("trace", None)
        ratio = given.get("random_range_ratio", 0.0)
        for key in ("input_len", "output_len"):
            length = given.get(key, wl.get(key, FLAG_DEFAULTS[key]))
            if ratio and isinstance(length, int):  # vllm/benchmarks/datasets.py RandomDataset
                length = {"dist": "uniform", "min": max(1, int(length * (1 - ratio))), "max": int(length * (1 + ratio))}
            wl[key] = length
    if "num_requests" in given:
        wl["num_requests"] = given["num_requests"]
    elif "trace" not in wl:
        wl.setdefault("num_requests", FLAG_DEFAULTS["num_requests"])
    if "rate" in given:
        if "trace" in wl and "arrival" not in wl:
            timing = "all at t=0" if given["rate"] == float("inf") else f"poisson, {given['rate']:g} req/s"
            warn(f"--rate re-times the trace's requests ({timing}) instead of replaying its timestamps")
        wl["arrival"] = {"process": "poisson", "rate": given["rate"]}
    elif "trace" not in wl and "arrival" not in wl:
        # As `vllm bench serve`: --max-concurrency alone means a closed loop (request rate inf).
        rate = float("inf") if "concurrency" in given else FLAG_DEFAULTS["rate"]
        wl["arrival"] = {"process": "poisson", "rate": rate}
    if "burstiness" in given:  # vLLM: gamma gaps of shape `burstiness`, i.e. cv = 1/sqrt(burstiness)
        if given["burstiness"] <= 0:
            raise FrontierError(f"--burstiness: {given['burstiness']:g} must be > 0 (1: Poisson)")
        arrival = wl.setdefault("arrival", {"process": "poisson", "rate": FLAG_DEFAULTS["rate"]})
        arrival.update(process="gamma", cv=given["burstiness"] ** -0.5)
    for key in ("concurrency", "prompt_pool", "prompt_sampling", "warmup_requests", "ignore_eos"):
        if key in given:
            wl[key] = given[key]
    return d, (path.parent if path is not None else None)


def _section(d: dict, key: str) -> dict:
    """d[key] as a mapping the flags can be applied to (an empty one if absent)."""
    value = d.get(key) or {}
    if not isinstance(value, dict):
        raise FrontierError(f"{key}: expected a mapping, got {value!r}")
    d[key] = value
    return value


def _trace_name(trace) -> str:
    path = trace.get("path") if isinstance(trace, dict) else trace
    return Path(str(path)).name


def stdout_console() -> Console:
    """Rich console for results: as wide as the tables need when stdout is a file or a pipe
    (rich assumes 80 columns there and would cut them)."""
    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=200)


def _context_length(value: str | None) -> int | str | None:
    """--max-model-len: a whole number of tokens >= 1, or auto (as vLLM takes it)."""
    if value is None or value == "auto":
        return value
    try:
        tokens = int(value)
    except ValueError:
        tokens = 0
    if tokens < 1:
        raise click.BadParameter(f"'{value}' is neither a number of tokens >= 1 nor auto")
    return tokens


def warn_line(text: str) -> None:
    Console(stderr=True).print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option("--model", help="Model card name (see `frontier models`) or path to a config.json.")
@click.option("--gpu", help="GPU name (see `frontier gpus`).")
@click.option("--tp", type=int, help="Tensor-parallel degree.")
@click.option("--pp", type=int, help="Pipeline-parallel stages.")
@click.option("--dp", type=int, help="Data-parallel instances (replicas).")
@click.option("--engine", type=click.Choice(ENGINES), help="Serving engine (scheduling, defaults).")
@click.option("--engine-version", help="Engine release whose defaults apply, e.g. 0.12.0 (default: newest).")
@click.option(
    "--frontend",
    type=click.Choice(FRONTENDS),
    help="Front end requests enter by: the engine's own API server (default) or NVIDIA Dynamo's.",
)
@click.option("--quantization", help="vLLM's --quantization: fp8, fp8_block, mxfp4, nvfp4, awq, gptq.")
@click.option("--kv-cache-dtype", help="auto | fp8.")
@click.option(
    "--num-requests",
    "--num-prompts",
    "--request-count",
    "num_requests",
    type=int,
    help="Requests to simulate (a cap for traces).",
)
@click.option(
    "--rate",
    "--request-rate",
    "rate",
    type=float,
    help="Arrival rate, requests/s (inf: all at once; the default with --max-concurrency).",
)
@click.option(
    "--burstiness", type=float, help="As vllm bench serve: gamma-distributed gaps of shape BURSTINESS (1: Poisson)."
)
@click.option(
    "--concurrency",
    "--max-concurrency",
    "concurrency",
    type=int,
    help="At most this many requests in flight: a closed loop of clients.",
)
@click.option("--input-len", "--random-input-len", "--isl", "input_len", type=int, help="Prompt tokens per request.")
@click.option("--output-len", "--random-output-len", "--osl", "output_len", type=int, help="Output tokens per request.")
@click.option(
    "--random-range-ratio",
    type=click.FloatRange(0, 1, max_open=True),
    help="As vllm bench serve: lengths uniform in [L(1-r), L(1+r)] (default 0: fixed).",
)
@click.option(
    "--prompt-pool",
    "--num-dataset-entries",
    "prompt_pool",
    type=click.IntRange(min=1),
    help="Prompts drawn from this many distinct ones, as aiperf's synthetic dataset (a repeat hits the prefix cache).",
)
@click.option(
    "--prompt-sampling",
    "--dataset-sampling-strategy",
    "prompt_sampling",
    type=click.Choice(PROMPT_SAMPLINGS),
    help="How requests pick from --prompt-pool, as aiperf: random (with replacement; default, aiperf <= 0.2), "
    "shuffle (each prompt once per pass; aiperf 0.3-0.8's default) or sequential (in order; aiperf 0.9+'s).",
)
@click.option(
    "--num-warmups",
    "--warmup-request-count",
    "warmup_requests",
    type=click.IntRange(min=0),
    help="Warmup requests sent first and not measured; the measured ones follow when all are back.",
)
@click.option(
    "--ignore-eos/--no-ignore-eos",
    "ignore_eos",
    default=None,
    help="Requests ask for all their output tokens past an EOS (vllm bench serve --ignore-eos; "
    "default: synthetic lengths yes, a trace's own lengths no); SGLang admits them apart with its radix cache off.",
)
@click.option("--trace", help="Request trace: Azure 2023 / Mooncake / CSV / JSONL file.")
@click.option("--max-num-seqs", type=int, help="Scheduler: most sequences per batch.")
@click.option("--max-num-batched-tokens", type=int, help="Scheduler: token budget per step.")
@click.option(
    "--max-model-len",
    "--context-length",
    "max_model_len",
    callback=lambda ctx, param, value: _context_length(value),
    help="Longest request served (prompt + output), or auto (vLLM: what its KV cache holds, if "
    "shorter than the model's context); default: the model's context.",
)
@click.option("--seed", type=click.IntRange(min=0), help="Random seed >= 0 (same seed, same result).")
@click.option(
    "-o",
    "--output",
    "outdir",
    type=click.Path(path_type=Path),
    help="Results folder (default results/<scenario name>).",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--no-trace", is_flag=True, help="Skip the Chrome/Perfetto trace.")
@click.option(
    "--save-detailed",
    is_flag=True,
    help="summary.json also holds per-request arrays, as `vllm bench serve --save-detailed`.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate(scenario, outdir, no_plots, no_trace, save_detailed, quiet, **flags):
    """Simulate serving SCENARIO (a YAML file; default: Llama-3.1-8B on one H100, chat trace)."""
    from frontier.metrics.report import print_summary, write_results
    from frontier.paths import check_writable_dir
    from frontier.sim.run import run_scenario
    from frontier.spec.scenario import scenario_from_dict
    from frontier.workload.build import workload_warnings

    d, base = scenario_dict(scenario, warn=warn_line, **flags)
    spec = scenario_from_dict(d, base_dir=base, name=d.get("name", "scenario"))
    out = outdir or Path("results") / spec.name
    check_writable_dir(out, "-o" if outdir else "results folder")
    for line in workload_warnings(spec.workload):
        warn_line(line)
    console = stdout_console()
    result = run_scenario(spec, progress=not quiet and console.is_terminal)
    print_summary(result, console)
    written = write_results(result, out, plots=not no_plots, trace=not no_trace, detailed=save_detailed)
    console.print(f"results: {', '.join(str(p) for p in written)}", highlight=False)
    if result.summary["completed"] == 0 and result.summary["failed"]:
        reasons = result.summary["frontier"]["failed_reasons"]
        raise FrontierError(f"no request could be served: {next(iter(reasons))}")


@main.command()
def models():
    """List the model cards with parameter counts, precision and KV-cache bytes per token."""
    from frontier.spec.model import available_models, load_model

    table = Table(title="model cards (models/*.yaml)")
    for col, just in [
        ("name", "left"),
        ("params", "right"),
        ("active", "right"),
        ("layers", "right"),
        ("attention", "left"),
        ("MoE", "left"),
        ("precision", "left"),
        ("KV/token", "right"),
        ("max len", "right"),
    ]:
        table.add_column(col, justify=just, no_wrap=col == "name")
    for name in available_models():
        m = load_model(name)
        attn = (
            f"MLA {m.num_heads}h lora {m.mla.kv_lora_rank}"
            if m.mla
            else f"GQA {m.num_heads}/{m.num_kv_heads} x {m.head_dim}"
        )
        if m.linear_attention:  # the softmax layers are the minority of a hybrid
            attn = f"{m.num_attention_layers} x {attn} + {m.linear_attention.layers} x DeltaNet"
        moe = (
            f"{m.moe.num_experts} experts top-{m.moe.top_k}"
            + (", shared" if m.moe.shared_intermediate_size else "")
            + (f", {m.moe.first_dense_layers} dense first" if m.moe.first_dense_layers else "")
            if m.moe
            else "-"
        )
        table.add_row(
            name,
            f"{m.param_count() / 1e9:.2f} B",
            f"{m.param_count(True) / 1e9:.2f} B",
            str(m.num_layers),
            attn,
            moe,
            m.precision,
            f"{m.kv_bytes_per_token / 1024:.1f} KiB",
            str(m.max_model_len),
        )
    stdout_console().print(table)


@main.command()
def gpus():
    """List the GPU and interconnect specs."""
    from frontier.paths import CALIBRATION_DIR
    from frontier.predict import calibrated_gpus
    from frontier.predict.calibration import calibration_kind
    from frontier.predict.engine_kernels import FOLDER
    from frontier.predict.scaled import nearest_calibrated
    from frontier.spec.hardware import all_gpus, get_gpu

    measured = calibrated_gpus()
    refs = [get_gpu(n) for n in measured]

    def calibration(name: str) -> str:
        if name in measured:
            kind = calibration_kind(CALIBRATION_DIR / name)  # measured | imported
        else:
            ref = nearest_calibrated(get_gpu(name), refs)
            kind = f"scaled from {ref.name}" if ref else "roofline"
        folder = CALIBRATION_DIR / name / FOLDER
        engines = sorted({f.stem.split("_")[2] for f in folder.glob("fused_moe_*.csv")})
        kinds = ["GEMM"] * any(folder.glob("gemm_*.csv")) + ["MoE"] + ["MLA"] * any(folder.glob("mla_*.csv"))
        return kind + (f" + {'/'.join(engines)} {', '.join(kinds)} kernels" if engines else "")

    table = Table(title="GPUs (frontier/spec/gpus.yaml); bandwidths per GPU, one direction")
    for col in [
        "name",
        "memory GiB",
        "HBM GB/s",
        "bf16 TFLOPS",
        "fp8 TFLOPS",
        "SMs",
        "NVLink GB/s",
        "network GB/s",
        "GPUs/node",
        "calibration",
    ]:
        table.add_column(col, justify="left" if col == "name" else "right", no_wrap=col == "name")
    for g in all_gpus().values():
        table.add_row(
            g.name,
            f"{g.memory_gib:.1f}",
            f"{g.mem_bw_gbps:.0f}",
            f"{g.bf16_tflops:.0f}",
            "-" if g.fp8_tflops is None else f"{g.fp8_tflops:.0f}",
            str(g.sm_count),
            f"{g.nvlink_gbps:.0f}",
            f"{g.network_gbps:.1f}",
            str(g.gpus_per_node),
            calibration(g.name),
        )
    stdout_console().print(table)


def _register_commands() -> None:
    """Commands that live beside their concept (predictors, validation, sweeps)."""
    from frontier.predict.cli import commands as predict_commands
    from frontier.search.cli import sweep
    from frontier.validate.accuracy import accuracy_command
    from frontier.validate.cli import validate

    for cmd in predict_commands + [validate, sweep, accuracy_command]:
        main.add_command(cmd)


_register_commands()
