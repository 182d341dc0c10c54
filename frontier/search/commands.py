"""Commands that deploy and measure a configuration on real GPUs, ready to paste.

Flag names are the engines' own: vLLM's engine arguments (`vllm/engine/arg_utils.py`,
`EngineArgs.add_cli_args`: --tensor-parallel-size, --pipeline-parallel-size,
--data-parallel-size, --enable-expert-parallel, --max-num-seqs, --max-num-batched-tokens,
--max-model-len, --gpu-memory-utilization, --block-size, --enable-prefix-caching, --quantization,
--kv-cache-dtype, --kv-transfer-config) and `vllm bench serve`'s (`vllm/benchmarks/serve.py`
and `datasets.py`: --dataset-name random, --random-input-len, --max-concurrency, --goodput
ttft:MS, --percentile-metrics, --save-result, --save-detailed); SGLang's server arguments
(`python/sglang/srt/server_args.py`: --tp-size, --pp-size, --dp-size, --enable-dp-attention,
--ep-size, --max-running-requests, --chunked-prefill-size, --context-length, --mem-fraction-static, --page-size,
--disable-radix-cache, --disaggregation-mode); aiperf's (`aiperf/common/config/*_config.py`:
--concurrency, --request-rate, --request-count, --warmup-request-count, --isl, --osl,
--num-dataset-entries, --extra-inputs, --streaming), as Dynamo and aiconfigurator benchmark.
"""

from __future__ import annotations

import json
import shlex

SGLANG_PORT = 30000
VLLM_PORT = 8000


def _flags(pairs: list[tuple[str, object]]) -> list[str]:
    out = []
    for flag, value in pairs:
        if value is None or value is False or value in ("", "none"):  # unset: the engine's own default
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


def _context(c: dict, auto: str | None) -> int | str | None:
    """A cluster's max_model_len as the engine's flag takes it: a token count, `auto` (-1) as
    the engine spells it (SGLang has none: it sizes requests to its pool itself), else unset."""
    value = c.get("max_model_len")
    if value in ("auto", -1):
        return auto
    return value if isinstance(value, int) and value > 0 else None


def vllm_serve(model: str, c: dict, extra: list[str] = ()) -> str:
    adp = c.get("dp_attention", 1)
    args = _flags(
        [
            ("--tensor-parallel-size", c.get("tp", 1)),
            ("--pipeline-parallel-size", c.get("pp", 1)),
            # vLLM's data parallelism: attention-DP ranks of one EP group, or dense replicas.
            ("--data-parallel-size", adp if adp > 1 else c.get("dp", 1)),
            ("--enable-expert-parallel", c.get("ep", 1) > 1),
            ("--max-num-seqs", c.get("max_num_seqs")),
            ("--max-num-batched-tokens", c.get("max_num_batched_tokens")),
            ("--max-model-len", _context(c, auto="auto")),
            ("--gpu-memory-utilization", c.get("gpu_memory_utilization")),
            ("--block-size", c.get("block_size")),
            ("--enable-prefix-caching", c.get("enable_prefix_caching")),
            ("--quantization", c.get("quantization")),
            ("--kv-cache-dtype", c.get("kv_cache_dtype")),
        ]
    )
    return shlex.join(["vllm", "serve", model, *args, *extra])


def sglang_serve(model: str, c: dict, extra: list[str] = ()) -> str:
    adp = c.get("dp_attention", 1)
    gpus = c.get("tp", 1) * adp  # with DP attention SGLang's tp-size spans every GPU of the group
    args = _flags(
        [
            ("--tp-size", gpus),
            ("--pp-size", c.get("pp", 1)),
            ("--dp-size", adp if adp > 1 else c.get("dp", 1)),
            ("--enable-dp-attention", adp > 1),
            ("--ep-size", c.get("ep") if c.get("ep", 1) > 1 else None),
            ("--max-running-requests", c.get("max_num_seqs")),
            ("--chunked-prefill-size", c.get("max_num_batched_tokens")),
            ("--context-length", _context(c, auto=None)),
            ("--mem-fraction-static", c.get("gpu_memory_utilization")),
            ("--page-size", c.get("block_size")),
            ("--disable-radix-cache", not c.get("enable_prefix_caching", False)),
            ("--quantization", c.get("quantization")),
            # SGLang names the FP8 KV cache by its format; vLLM's "fp8" is E4M3.
            ("--kv-cache-dtype", {"fp8": "fp8_e4m3"}.get(c.get("kv_cache_dtype"), c.get("kv_cache_dtype"))),
        ]
    )
    return shlex.join(["python", "-m", "sglang.launch_server", "--model-path", model, *args, *extra])


def serve_commands(model: str, deployment: dict) -> dict:
    """{"engine", "serve": [commands], "notes": [...]}: one command per cluster role."""
    clusters = deployment.get("clusters", [deployment])
    engine = clusters[0].get("engine", "vllm")
    serve = sglang_serve if engine == "sglang" else vllm_serve
    notes = []
    if _behind_dynamo(deployment):
        notes.append(
            f"behind NVIDIA Dynamo: `python -m dynamo.frontend`, and each engine as a Dynamo worker "
            f"(`python -m dynamo.{engine}` with the same engine flags) instead of its own server"
        )
    if len(clusters) == 1:
        c = clusters[0]
        cmds = [serve(model, c)]
        if c.get("dp_attention", 1) > 1 and c.get("dp", 1) > 1:
            notes.append(f"run {c['dp']} replicas of this server behind a load balancer")
        return {"engine": engine, "serve": cmds, "notes": notes}
    cmds = []
    for c in clusters:
        if engine == "sglang":
            extra = ["--disaggregation-mode", c["role"]]
        else:
            extra = [
                "--kv-transfer-config",
                json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":")),
            ]
        cmds.append(serve(model, c, extra))
        notes.append(f"{c['role']}: {c.get('dp', 1)} instance(s) of the command above")
    if engine == "sglang":
        notes.append(
            "route with: python -m sglang_router.launch_router --pd-disaggregation "
            "--prefill http://PREFILL:30000 --decode http://DECODE:30000"
        )
    else:
        notes.append(
            "route prefill -> decode with a disaggregation proxy (vLLM examples/online_serving/disaggregated_serving)"
        )
    return {"engine": engine, "serve": cmds, "notes": notes}


DYNAMO_PORT = 8000  # `python -m dynamo.frontend`'s default HTTP port


def _behind_dynamo(deployment: dict | None) -> bool:
    """Whether requests enter by NVIDIA Dynamo's front end (any cluster's `frontend: dynamo`)."""
    deployment = deployment or {}
    return any(c.get("frontend") == "dynamo" for c in deployment.get("clusters", [deployment]))


def serving_port(deployment: dict | None, engine: str) -> int:
    """Where a deployment takes requests: Dynamo's front end where it stands before the engine,
    else the engine's own server."""
    if _behind_dynamo(deployment):
        return DYNAMO_PORT
    return SGLANG_PORT if engine == "sglang" else VLLM_PORT


def _mean_length(x) -> int:
    """A workload length spec's mean (fixed, uniform, normal / lognormal)."""
    if isinstance(x, dict):
        return int(x.get("value") or x.get("mean") or ((x.get("min", 1) + (x.get("max") or 1)) // 2))
    return int(x)


def bench_command(
    model: str,
    engine: str,
    port: int,
    workload: dict,
    concurrency: int | None,
    rate: float | None,
    num_prompts: int,
    slo: dict | None,
) -> str:
    """`vllm bench serve` measuring the same load point (also against an SGLang server)."""
    args = [
        "vllm",
        "bench",
        "serve",
        "--backend",
        "sglang" if engine == "sglang" else "vllm",
        "--port",
        str(port),
        "--model",
        model,
    ]
    trace = workload.get("trace")
    if trace and str((trace.get("path") if isinstance(trace, dict) else trace)).endswith(".json"):
        args += [
            "--dataset-name",
            "sharegpt",
            "--dataset-path",
            str(trace.get("path") if isinstance(trace, dict) else trace),
        ]
    else:
        args += [
            "--dataset-name",
            "random",
            "--random-input-len",
            str(_mean_length(workload.get("input_len", 1024))),
            "--random-output-len",
            str(_mean_length(workload.get("output_len", 256))),
            "--ignore-eos",
        ]
    args += ["--num-prompts", str(num_prompts), "--request-rate", "inf" if rate is None else f"{rate:g}"]
    if concurrency is not None:
        args += ["--max-concurrency", str(concurrency)]
    args += ["--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99"]
    if slo:
        args += ["--goodput", *[f"{k.removesuffix('_ms')}:{v:g}" for k, v in slo.items()]]
    args += ["--save-result", "--save-detailed"]
    return shlex.join(args)


def aiperf_command(
    model: str, port: int, workload: dict, concurrency: int | None, rate: float | None, num_prompts: int
) -> str | None:
    """`aiperf profile` measuring the same load point with synthetic prompts (None for a trace):
    its `profile_export_aiperf.json` is what `frontier validate` replays. aiperf reuses 100
    prompts unless told otherwise, so the workload's `prompt_pool` is passed as it is, with its
    `prompt_sampling` (aiperf 0.3-0.8 shuffle by default and 0.9 on go in order, where Frontier
    draws at random unless told), or every prompt made distinct (as many dataset entries as requests, warmup included)."""
    if workload.get("trace"):
        return None
    warmup = int(workload.get("warmup_requests") or 0)
    args = ["aiperf", "profile", "--model", model, "--url", f"http://localhost:{port}"]
    args += ["--endpoint-type", "chat", "--streaming"]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if rate is not None:
        args += ["--request-rate", f"{rate:g}"]
    args += ["--request-count", str(num_prompts)]
    if warmup:
        args += ["--warmup-request-count", str(warmup)]
    args += [
        "--isl",
        str(_mean_length(workload.get("input_len", 1024))),
        "--osl",
        str(_mean_length(workload.get("output_len", 256))),
        "--num-dataset-entries",
        str(workload.get("prompt_pool") or num_prompts + warmup),
    ]
    if workload.get("prompt_pool"):
        args += ["--dataset-sampling-strategy", workload.get("prompt_sampling") or "random"]
    args += ["--extra-inputs", "ignore_eos:true"]
    return shlex.join(args)
