"""Every bad input of issue 14, and a broad sample of those that already worked, end the same way:
exit code 2, one `error:` line on stderr naming the problem, no traceback, nothing written.
Then the quiet surprises (capped traces, flags replacing a workload, tables when piped, strict
JSON), and a property test: random scenario dicts never end in a traceback."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier.cli import main
from frontier.numbers import strict_json_dumps, strict_json_loads
from frontier.paths import MODELS_DIR

from .test_cli import FAST, assert_user_error, small_scenario, summary

DATA = Path(__file__).resolve().parents[1] / "data"
RTX4090 = DATA / "traces" / "vllm-per-request-rtx4090-llama3.1-8b"
VLLM_RESULT = Path(__file__).resolve().parents[1] / "validate" / "fixtures" / "vllm_detailed_rate4.json"
UNWRITABLE = "/proc/frontier-test/x"  # /proc takes no new folders, not even from root


# ---------------------------------------------------------------- inputs the cases write


def merged(**over) -> dict:
    """small_scenario with `deployment` / `workload` / `slo` entries merged, not replaced."""
    d = small_scenario()
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def scenario(t: Path, **over) -> list:
    path = t / "s.yaml"
    path.write_text(yaml.safe_dump(merged(**over), sort_keys=False))
    return ["simulate", path, *FAST]


def raw_scenario(t: Path, text: str) -> list:
    """A YAML file as written (for .inf, .nan and friends that safe_dump would spell otherwise)."""
    path = t / "s.yaml"
    path.write_text(text)
    return ["simulate", path, *FAST]


SMALL_WORKLOAD = "workload: {num_requests: 3, input_len: 16, output_len: 4, arrival: {process: poisson, rate: 5}}\n"


def config(t: Path, **fields) -> Path:
    cfg = dict(yaml.safe_load((MODELS_DIR / "llama-3.1-8b.yaml").read_text())["config"])
    cfg.update(fields)
    path = t / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def text_file(t: Path, name: str, text: str) -> Path:
    path = t / name
    path.write_text(text)
    return path


def vllm_result(t: Path, **fields) -> Path:
    obj = json.loads(VLLM_RESULT.read_text())
    obj.update(fields)
    return text_file(t, "result.json", json.dumps(obj))


FLAGS = ["simulate", "--model", "llama-3.1-8b", "--num-requests", "3", "--input-len", "16", "--output-len", "4", *FAST]

# id -> (arguments given the inputs folder, fragments the error line must name)
CASES = {
    # ---- issue 14: tracebacks
    "simulate -o unwritable": (lambda t: [*FLAGS, "-o", UNWRITABLE], ["-o", UNWRITABLE]),
    "simulate -o a file": (lambda t: [*FLAGS, "-o", text_file(t, "f.txt", "x")], ["f.txt", "is a file"]),
    "validate -o unwritable": (lambda t: ["validate", RTX4090, "-o", UNWRITABLE, "--no-progress"], ["-o", UNWRITABLE]),
    "validate -o a file": (lambda t: ["validate", RTX4090, "-o", text_file(t, "f.txt", "x")], ["f.txt", "is a file"]),
    "predict -o unwritable": (
        lambda t: [
            "predict",
            "--gpu",
            "h100-sxm",
            "--op",
            "gemm",
            text_file(t, "g.csv", "m,k,n\n1,4096,4096\n"),
            "-o",
            UNWRITABLE + "/p.csv",
        ],
        ["-o", UNWRITABLE],
    ),
    "predict -o a folder": (
        lambda t: [
            "predict",
            "--gpu",
            "h100-sxm",
            "--op",
            "gemm",
            text_file(t, "g.csv", "m,k,n\n1,4096,4096\n"),
            "-o",
            t,
        ],
        ["is a folder"],
    ),
    "slo not a number": (lambda t: scenario(t, slo={"ttft_ms": "fast"}), ["slo.ttft_ms", "'fast'"]),
    "slo null": (lambda t: scenario(t, slo={"ttft_ms": None}), ["slo.ttft_ms", "null"]),
    "seed -1 in the file": (lambda t: scenario(t, seed=-1), ["seed", "-1", ">= 0"]),
    "--seed -1": (lambda t: [*FLAGS, "--seed", "-1"], ["--seed", "-1"]),
    "config.json with 0 layers": (
        lambda t: [*FLAGS, "--model", config(t, num_hidden_layers=0)],
        ["num_hidden_layers", "0", ">= 1"],
    ),
    # ---- issue 14: accepted although the engine would refuse it
    "tp 3 on 32 heads": (
        lambda t: scenario(t, deployment={"tp": 3}),
        ["deployment.tp", "32 attention heads", "1, 2, 4, 8"],
    ),
    "config heads not divisible by tp": (
        lambda t: [*FLAGS, "--model", config(t, num_attention_heads=24, num_key_value_heads=8), "--tp", "16"],
        ["deployment.tp", "16", "24 attention heads"],
    ),
    "KV heads neither split nor replicated": (
        lambda t: [*FLAGS, "--model", config(t, num_attention_heads=48, num_key_value_heads=8), "--tp", "6"],
        ["deployment.tp", "6", "8 KV heads"],
    ),
    "predict iteration, heads not divisible by tp": (
        lambda t: [
            "predict",
            "--gpu",
            "h100-sxm",
            "--op",
            "iteration",
            text_file(
                t,
                "it.csv",
                f"model,phase,batch,seq_or_kv,tp\n"
                f"{config(t, num_attention_heads=24, num_key_value_heads=8)},"
                f"decode,1,100,16\n",
            ),
        ],
        ["row 2, column tp", "24 attention heads"],
    ),
    "pp 64 on 32 layers": (lambda t: scenario(t, deployment={"pp": 64}), ["deployment.pp", "64", "pp <= 32"]),
    "block_size 7": (lambda t: scenario(t, deployment={"block_size": 7}), ["deployment.block_size", "7"]),
    "block_size 8 with FlashAttention": (
        lambda t: scenario(t, deployment={"block_size": 8}),
        ["block_size", "multiple of 16"],
    ),
    "negative SLO": (lambda t: scenario(t, slo={"tpot_ms": -5}), ["slo.tpot_ms", "-5", "> 0"]),
    "name escaping results/": (lambda t: scenario(t, name="../../x"), ["name", "'../../x'"]),
    "trace with negative arrival times": (
        lambda t: [
            *FLAGS[:3],
            "--trace",
            text_file(t, "neg.csv", "arrival_s,input_tokens,output_tokens\n-3.0,10,2\n0.0,10,2\n"),
            *FAST,
        ],
        ["neg.csv row 1", "arrival_s", ">= 0"],
    ),
    "vLLM result with request_rate -5": (
        lambda t: ["validate", vllm_result(t, request_rate=-5)],
        ["result.json", "request_rate", "-5"],
    ),
    "tp 12 on 8-GPU nodes": (lambda t: scenario(t, deployment={"tp": 12}), ["deployment.tp", "12", "Valid tp"]),
    # ---- issue 14: exit 2, but with a message that hid the cause
    "chunked prefill off, budget below max_model_len": (
        lambda t: scenario(t, deployment={"enable_chunked_prefill": False, "max_num_batched_tokens": 2048}),
        ["max_num_batched_tokens", "2048", "131072", "enable_chunked_prefill"],
    ),
    "cpu_overhead_ms .inf": (
        lambda t: raw_scenario(
            t, "model: llama-3.1-8b\ngpu: h100-sxm\ndeployment: {cpu_overhead_ms: .inf}\n" + SMALL_WORKLOAD
        ),
        ["deployment.cpu_overhead_ms", "inf", "finite"],
    ),
    "cpu_overhead_ms .nan": (
        lambda t: raw_scenario(
            t, "model: llama-3.1-8b\ngpu: h100-sxm\ndeployment: {cpu_overhead_ms: .nan}\n" + SMALL_WORKLOAD
        ),
        ["deployment.cpu_overhead_ms", "nan"],
    ),
    # ---- more of the same kind
    "NaN in a config.json": (
        lambda t: [
            *FLAGS,
            "--model",
            text_file(
                t, "config.json", config(t).read_text().replace('"num_hidden_layers": 32', '"num_hidden_layers": NaN')
            ),
        ],
        ["config.json", "NaN"],
    ),
    "config.json size that is text": (
        lambda t: [*FLAGS, "--model", config(t, hidden_size="big")],
        ["hidden_size", "'big'"],
    ),
    "max_model_len beyond the model's context": (
        lambda t: scenario(t, deployment={"max_model_len": 200000}),
        ["max_model_len", "200000", "131072"],
    ),
    "fp8 weights on a GPU without fp8": (
        lambda t: scenario(t, model="deepseek-v3", gpu="a100-80gb", deployment={"tp": 8}),
        ["deepseek-v3", "fp8", "a100-80gb"],
    ),
    "slo .inf": (
        lambda t: raw_scenario(t, "model: llama-3.1-8b\ngpu: h100-sxm\nslo: {ttft_ms: .inf}\n" + SMALL_WORKLOAD),
        ["slo.ttft_ms", "finite"],
    ),
    "link bandwidth .nan": (
        lambda t: raw_scenario(
            t,
            "model: llama-3.1-8b\ngpu: h100-sxm\ndeployment:\n  kv_transfer: whole\n  links: {kv: {bandwidth_gbps: .nan}}\n"
            "  clusters: [{name: p, role: prefill}, {name: d, role: decode}]\n" + SMALL_WORKLOAD,
        ),
        ["links.kv.bandwidth_gbps", "nan"],
    ),
    "vLLM result with request_rate NaN": (lambda t: ["validate", vllm_result(t, request_rate="nan")], ["request_rate"]),
    "vLLM result with an infinite count": (
        lambda t: ["validate", vllm_result(t, failed=math.inf)],
        ["result.json", "failed", "inf", "finite"],
    ),
    "vLLM request log with a text time stamp": (
        lambda t: [
            "validate",
            text_file(
                t,
                "requests.jsonl",
                RTX4090.joinpath("requests.jsonl")
                .read_text()
                .replace('"queued_ts": ', '"queued_ts": "soon", "x": ', 1),
            ),
        ],
        ["requests.jsonl", "request 1", "queued_ts", "'soon'"],
    ),
    # ---- a sample of what already gave one line
    "misspelt field": (lambda t: scenario(t, modle="x"), ["modle", "did you mean 'model'"]),
    "misspelt deployment field": (
        lambda t: scenario(t, deployment={"max_num_seq": 4}),
        ["max_num_seq", "max_num_seqs"],
    ),
    "unknown model": (lambda t: [*FLAGS, "--model", "llama-9"], ["unknown model 'llama-9'"]),
    "unknown GPU": (lambda t: [*FLAGS, "--gpu", "h1000"], ["unknown GPU 'h1000'"]),
    "--tp 0": (lambda t: [*FLAGS, "--tp", "0"], ["deployment.tp", ">= 1"]),
    "--tp x": (lambda t: [*FLAGS, "--tp", "x"], ["--tp", "'x'"]),
    "--rate -1": (lambda t: [*FLAGS, "--rate", "-1"], ["rate", "-1"]),
    "--rate nan": (lambda t: [*FLAGS, "--rate", "nan"], ["rate", "nan"]),
    "--num-requests 0": (lambda t: [*FLAGS, "--num-requests", "0"], ["num_requests", "0"]),
    "weights that do not fit": (lambda t: scenario(t, model="llama-3.1-70b"), ["does not fit", "tp="]),
    "--max-model-len x": (lambda t: [*FLAGS, "--max-model-len", "x"], ["--max-model-len", "'x'", "auto"]),
    "max_model_len -2": (
        lambda t: scenario(t, deployment={"max_model_len": -2}),
        ["max_model_len", "auto", "-2"],
    ),
    "a token budget below max_num_seqs": (
        lambda t: scenario(t, deployment={"max_num_batched_tokens": 256}),
        ["max_num_batched_tokens", "256", "max_num_seqs 1024"],
    ),
    "a context vLLM cannot hold": (
        lambda t: [*FLAGS, "--model", "qwen3-32b", "--engine", "vllm"],
        ["vLLM would not start", "max_model_len 40960", "max_model_len <= 38880", "tp=2 holds it"],
    ),
    "invalid YAML": (lambda t: raw_scenario(t, "model: [llama\n"), ["not valid YAML"]),
    "scenario not found": (lambda t: ["simulate", t / "none.yaml", *FAST], ["not found"]),
    "trace with a missing column": (
        lambda t: [*FLAGS[:3], "--trace", text_file(t, "m.csv", "arrival_s,input_tokens\n0,10\n"), *FAST],
        ["m.csv", "output-length column"],
    ),
    "trace with a negative length": (
        lambda t: [
            *FLAGS[:3],
            "--trace",
            text_file(t, "l.csv", "arrival_s,input_tokens,output_tokens\n0,10,-2\n"),
            *FAST,
        ],
        ["l.csv row 1", "output_tokens"],
    ),
    "trace with an infinite time": (
        lambda t: [
            *FLAGS[:3],
            "--trace",
            text_file(t, "i.csv", "arrival_s,input_tokens,output_tokens\n0,10,2\ninf,10,2\n"),
            *FAST,
        ],
        ["i.csv row 2", "arrival_s"],
    ),
    "gpu_memory_utilization 1.5": (
        lambda t: scenario(t, deployment={"gpu_memory_utilization": 1.5}),
        ["gpu_memory_utilization", "(0, 1]"],
    ),
    "unknown role": (lambda t: scenario(t, deployment={"role": "boss"}), ["role", "'boss'"]),
    "predict input missing a column": (
        lambda t: ["predict", "--gpu", "h100-sxm", "--op", "gemm", text_file(t, "g.csv", "m,k\n1,2\n")],
        ["g.csv", "missing column n"],
    ),
    "validate a file that is not there": (lambda t: ["validate", t / "none.json"], ["none.json"]),
    "unknown command": (lambda t: ["simulat"], ["No such command 'simulat'"]),
}


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch):
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    make_args, fragments = CASES[case]
    args = [str(a) for a in make_args(inputs)]
    before = _tree(inputs)
    monkeypatch.chdir(work)  # default results/ would land here
    result = CliRunner().invoke(main, args)
    assert_user_error(result, *fragments)
    assert _tree(inputs) == before and not any(work.iterdir())
    assert not Path(UNWRITABLE).parent.exists()


# ---------------------------------------------------------------- said, not silent


def invoke_wide(*args) -> object:
    env = {"COLUMNS": None}  # as in a pipe with nothing set
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def test_a_trace_shorter_than_num_requests_is_said_and_counted(tmp_path):
    trace = text_file(
        tmp_path, "t.csv", "arrival_s,input_tokens,output_tokens\n" + "".join(f"{i * 0.1},20,3\n" for i in range(5))
    )
    result = invoke_wide(
        "simulate", "--model", "llama-3.1-8b", "--trace", trace, "--num-requests", "8", "-o", tmp_path / "out", *FAST
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: workload.num_requests: 8 asked, but trace 't.csv' has 5 requests: simulating 5"
    ]
    s = summary(tmp_path / "out")
    assert s["completed"] == 5
    assert (
        "5 requests" in s["frontier"]["workload"]
        and "num_requests 8 capped at the trace's 5" in s["frontier"]["workload"]
    )


def test_flags_that_replace_the_scenario_trace_are_said(tmp_path):
    result = invoke_wide("simulate", "--input-len", "16", "--num-requests", "2", "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: --input-len replaces the scenario's trace (azure_conv.csv) by a synthetic workload; "
        "give --trace too to keep the trace"
    ]
    assert summary(tmp_path / "out")["frontier"]["workload"].startswith("synthetic, 2 requests")


def test_rate_over_a_trace_says_it_re_times_it(tmp_path):
    result = invoke_wide("simulate", "--rate", "3", "--num-requests", "2", "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: --rate re-times the trace's requests (poisson, 3 req/s) instead of replaying its timestamps"
    ]


def test_tables_are_not_cut_when_the_output_is_not_a_terminal():
    result = invoke_wide("models")
    assert result.exit_code == 0
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) > 80
    assert "deepseek-v3" in result.stdout and "MLA 128h lora 512" in result.stdout


def test_summary_json_is_strict_json(tmp_path):
    # One request with one output token: no TPOT sample, a zero-length ITL list.
    d = merged(
        workload={"num_requests": 1, "input_len": 16, "output_len": 1, "arrival": {"process": "poisson", "rate": "inf"}}
    )
    path = text_file(tmp_path, "s.yaml", yaml.safe_dump(d))
    result = CliRunner().invoke(main, ["simulate", str(path), "-o", str(tmp_path / "out"), *FAST])
    assert result.exit_code == 0, result.output
    s = strict_json_loads((tmp_path / "out" / "summary.json").read_text())  # raises on NaN/Infinity
    assert s["completed"] == 1


def test_strict_json_writes_non_finite_numbers_as_null():
    assert (
        strict_json_dumps({"a": math.nan, "b": [math.inf, 1.5], "c": -math.inf})
        == '{"a": null, "b": [null, 1.5], "c": null}'
    )
    with pytest.raises(ValueError, match="Infinity is not valid JSON"):
        strict_json_loads('{"x": Infinity}')


# ---------------------------------------------------------------- random scenarios

# Junk that stays cheap: a huge count where one multiplies work (requests, replicas) would be a
# slow valid run, not a bad input.
SMALL_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
JUNK = st.one_of(SMALL_JUNK, st.integers(10**6, 10**12))
SMALL_INT = st.integers(-1, 9)
CLUSTER = st.fixed_dictionaries(
    {},
    optional={
        "tp": st.one_of(SMALL_INT, JUNK),
        "pp": st.one_of(SMALL_INT, JUNK),
        "dp": st.one_of(st.integers(0, 2), SMALL_JUNK),
        "ep": st.one_of(SMALL_INT, JUNK),
        "block_size": st.one_of(st.sampled_from([1, 7, 8, 16, 32, 512]), JUNK),
        "max_num_seqs": st.one_of(SMALL_INT, JUNK),
        "max_num_batched_tokens": st.one_of(st.integers(0, 4096), JUNK),
        "enable_chunked_prefill": st.one_of(st.booleans(), JUNK),
        "max_model_len": st.one_of(st.integers(-1, 4096), JUNK),
        "gpu_memory_utilization": st.one_of(st.floats(-0.5, 1.5), JUNK),
        "cpu_overhead_ms": st.one_of(st.floats(-1, 5), JUNK),
        "role": st.one_of(st.sampled_from(["mixed", "prefill", "decode", "attention", "ffn"]), JUNK),
        "num_gpu_blocks_override": st.one_of(st.integers(-1, 64), JUNK),
        "dp_attention": st.one_of(st.integers(0, 2), SMALL_JUNK),
        "zz_unknown": JUNK,
    },
)
WORKLOAD = st.fixed_dictionaries(
    {"num_requests": st.one_of(st.integers(-1, 3), SMALL_JUNK)},
    optional={
        "input_len": st.one_of(st.integers(-1, 64), JUNK),
        "output_len": st.one_of(st.integers(-1, 8), JUNK),
        "arrival": st.one_of(
            st.fixed_dictionaries(
                {"process": st.sampled_from(["poisson", "gamma", "nope"]), "rate": st.one_of(st.floats(-1, 50), JUNK)},
                optional={"cv": JUNK},
            ),
            JUNK,
        ),
        "concurrency": st.one_of(SMALL_INT, JUNK),
    },
)
SCENARIO = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["llama-3.1-8b", "qwen3-30b-a3b", "nope"]),
        "gpu": st.sampled_from(["h100-sxm", "l40s", "x"]),
        "workload": st.one_of(WORKLOAD, JUNK),
    },
    optional={
        "deployment": st.one_of(CLUSTER, st.fixed_dictionaries({"clusters": st.lists(CLUSTER, max_size=2)}), JUNK),
        "slo": st.one_of(st.fixed_dictionaries({}, optional={"ttft_ms": JUNK, "tpot_ms": JUNK}), JUNK),
        "seed": st.one_of(st.integers(-2, 2**70), JUNK),
        "name": st.one_of(st.sampled_from(["ok", "../x", "a/b"]), JUNK),
    },
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(d=SCENARIO)
def test_random_scenarios_never_end_in_a_traceback(d, tmp_path_factory):
    t = tmp_path_factory.mktemp("random")
    path = t / "s.yaml"
    path.write_text(yaml.safe_dump(d))
    result = CliRunner().invoke(main, ["simulate", str(path), "-o", str(t / "out"), *FAST])
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (d, result.exception)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
        if not (t / "out").exists():
            return
        # Only a run that started may leave results: then summary.json is there and strict.
    strict_json_loads((t / "out" / "summary.json").read_text())
    assert os.path.getsize(t / "out" / "requests.csv") > 0


def test_memory_plan_of_a_model_without_layers_is_one_clear_error():
    """A ModelSpec built in Python skips the config.json checks; the memory plan still says why."""
    from dataclasses import replace

    from frontier.errors import SpecError
    from frontier.spec.hardware import get_gpu
    from frontier.spec.memory import plan_memory
    from frontier.spec.model import load_model

    model = replace(load_model("llama-3.1-8b"), num_layers=0)
    with pytest.raises(SpecError, match="num_hidden_layers 0"):
        plan_memory(model, get_gpu("h100-sxm"), tp=1, pp=1)
