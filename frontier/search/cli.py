"""`frontier sweep SPEC.yaml` or `frontier sweep --model M --gpu G --gpus N ...`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from frontier.errors import FrontierError


def _ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FrontierError(f"{flag}: expected whole numbers separated by commas, e.g. 1,4,16; got {text!r}") from None
    if not values or min(values) < 1:
        raise FrontierError(f"{flag}: expected whole numbers >= 1 separated by commas; got {text!r}")
    return values


def _floats(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FrontierError(f"{flag}: expected numbers separated by commas, e.g. 2,4,8; got {text!r}") from None


def spec_dict_from_flags(flags: dict) -> dict:
    """A sweep file's dict from the flag form (each list flag takes comma-separated values)."""
    missing = [f"--{k.replace('_', '-')}" for k in ("model", "gpus") if flags.get(k) is None]
    if missing:
        raise FrontierError(
            f"give a sweep file, or at least {' and '.join(missing)} "
            "(e.g. --model llama-3.1-70b --gpu h100-sxm --gpus 8 --max-concurrency 1,16,64)"
        )
    load = {}
    if flags.get("max_concurrency"):
        load["concurrency"] = _ints(flags["max_concurrency"], "--max-concurrency")
    if flags.get("request_rate"):
        load["rate"] = _floats(flags["request_rate"], "--request-rate")
    gpus = [g for g in (flags.get("gpu") or "h100-sxm").split(",") if g]
    d = {
        "name": flags.get("name") or "sweep",
        "model": flags["model"],
        "gpu": gpus if len(gpus) > 1 else gpus[0],
        "gpus": flags["gpus"],
        "workload": {
            "input_len": flags.get("random_input_len") or 1024,
            "output_len": flags.get("random_output_len") or 256,
        },
        "load": load or {"concurrency": [1, 4, 16, 64, 256]},
    }
    if flags.get("num_prompts"):
        d["workload"]["num_requests"] = flags["num_prompts"]
    slo = {k: flags[k] for k in ("ttft_ms", "tpot_ms", "e2el_ms") if flags.get(k) is not None}
    if slo:
        d["slo"] = slo
    colocated = {}
    for key in ("tp", "pp"):
        if flags.get(key):
            colocated[key] = _ints(flags[key], f"--{key}")
    for key in ("max_num_seqs", "max_num_batched_tokens"):
        if flags.get(key):
            colocated[key] = _ints(flags[key], f"--{key.replace('_', '-')}")
    d["search"] = {"colocated": colocated}
    return d


@click.command("sweep")
@click.argument("spec_file", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder [default: results/sweep/<name>].",
)
@click.option("--model", help="Model card, alias (meta-llama/Llama-3.1-70B-Instruct) or config.json.")
@click.option("--gpu", help="GPU type, or several separated by commas [default: h100-sxm].")
@click.option("--gpus", type=click.IntRange(min=1), help="GPU budget: most GPUs one deployment may use.")
@click.option("--random-input-len", type=click.IntRange(min=1), help="Prompt tokens per request [1024].")
@click.option("--random-output-len", type=click.IntRange(min=1), help="Output tokens per request [256].")
@click.option("--max-concurrency", help="Load points: client concurrency levels, e.g. 1,4,16,64,256.")
@click.option("--request-rate", help="Load points: Poisson request rates in req/s, e.g. 2,4,8.")
@click.option("--num-prompts", type=click.IntRange(min=1), help="Requests per load point.")
@click.option("--ttft-ms", type=float, help="SLO: time to first token, ms.")
@click.option("--tpot-ms", type=float, help="SLO: time per output token, ms.")
@click.option("--e2el-ms", type=float, help="SLO: end-to-end latency, ms.")
@click.option("--tp", help="Tensor-parallel sizes to search, e.g. 1,2,4,8.")
@click.option("--pp", help="Pipeline-parallel sizes to search [1].")
@click.option("--max-num-seqs", help="Batch limits to search, e.g. 128,256.")
@click.option("--max-num-batched-tokens", help="Token budgets to search, e.g. 2048,8192.")
@click.option("--jobs", type=click.IntRange(min=1), help="Worker processes [default: all cores].")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run points as Ray tasks: a local Ray instance, or the cluster at "
    "ADDRESS (auto, ray://host:10001). Needs `pip install frontier-sim[ray]`.",
)
@click.option("--resume", is_flag=True, help="Keep the points already in the folder's results.csv.")
@click.option("--no-early-stop", is_flag=True, help="Run every load point, even past a clear SLO miss.")
@click.option("--no-plots", is_flag=True, help="Skip pareto.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(spec_file, outdir, jobs, ray_address, resume, no_early_stop, no_plots, quiet, **flags):
    """Search deployments for the most tokens/s/GPU under an SLO: results.csv, pareto.csv,
    pareto.png, best.json (with the `vllm serve` / SGLang, `vllm bench serve` and `aiperf profile`
    commands)."""
    from rich.console import Console

    from frontier.spec.scenario import read_yaml_mapping
    from frontier.search import run_sweep, sweep_spec_from_dict, write_outputs
    from frontier.search.report import print_sweep

    if spec_file is not None:
        d = read_yaml_mapping(spec_file, "sweep file")
        d.setdefault("name", spec_file.stem)
        base = spec_file.parent
    else:
        d, base = spec_dict_from_flags(flags), None
    if no_early_stop:
        d["early_stop"] = False
    spec = sweep_spec_from_dict(d, base_dir=base, name=d.get("name", "sweep"))
    console = Console()
    out = outdir or Path("results") / "sweep" / spec.name
    result = run_sweep(
        spec, out, jobs=jobs, ray_address=ray_address, resume=resume, progress=not quiet and console.is_terminal
    )
    written = write_outputs(result, plots=not no_plots)
    print_sweep(result, console)
    b = json.loads((out / "best.json").read_text())
    if b["best"] is None:
        console.print(f"[yellow]no configuration meets the SLO[/]; see {out / 'pareto.csv'}")
    else:
        console.print(
            f"best under the SLO: [bold]{b['best']['config']}[/] on {b['best']['gpus']} "
            f"{b['best']['gpu']} at {b['metrics']['tokens_per_s_per_gpu']:.0f} tok/s/GPU",
            highlight=False,
        )
        for cmd in b["serve_commands"]:
            console.print(f"  {cmd}", highlight=False, soft_wrap=True)
    console.print(f"results: {', '.join(str(p) for p in written)}", highlight=False)
