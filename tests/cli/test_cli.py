"""The `frontier` CLI end to end: the README's default run, flags-only runs, flags over a file,
every bad input as one `error:` line with exit code 2, and requests that can never be served."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from frontier.cli import DEFAULT_SCENARIO, main
from frontier.paths import MODELS_DIR, SCENARIOS_DIR
from frontier.sim.run import run_scenario
from frontier.spec.hardware import all_gpus
from frontier.spec.model import available_models
from frontier.spec.scenario import load_scenario, scenario_from_dict

LATENCY_KEYS = [
    f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "median", "p90", "p99")
]
SUMMARY_KEYS = [
    "completed",
    "failed",
    "duration",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    *LATENCY_KEYS,
]
FRONTIER_KEYS = ["model", "gpu", "deployment", "predictor", "simulated_gpus", "wall_time_s"]
REQUEST_COLUMNS = ["arrival_s", "first_token_s", "finish_s", "input_tokens", "output_tokens", "preemptions"]
SCENARIO_FILES = sorted(SCENARIOS_DIR.glob("*.yaml"))
FAST = ["--quiet", "--no-plots", "--no-trace"]


def invoke(*args: str):
    # COLUMNS pins rich's width for a non-terminal (a pipe), as a user redirecting output sees.
    return CliRunner(env={"COLUMNS": "80"}).invoke(main, [str(a) for a in args])


def summary(outdir: Path) -> dict:
    return json.loads((outdir / "summary.json").read_text())


def requests_rows(outdir: Path) -> list[dict]:
    with open(outdir / "requests.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_ok(result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2, one line on stderr starting with `error:`, naming `fragments`, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def write_yaml(path: Path, d: dict) -> Path:
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def small_scenario(**over) -> dict:
    d = {
        "model": "llama-3.1-8b",
        "gpu": "h100-sxm",
        "deployment": {"tp": 1},
        "workload": {
            "num_requests": 5,
            "arrival": {"process": "poisson", "rate": 5.0},
            "input_len": 64,
            "output_len": 8,
        },
    }
    d.update(over)
    return d


def write_trace(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# ---------------------------------------------------------------- the README's default run


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "results"
    result = invoke("simulate", "--num-requests", 50, "-o", out, "--quiet")
    return result, out


def test_default_scenario_exits_0_and_prints_the_latency_table(default_run):
    result, out = default_run
    assert_ok(result)
    assert "latency (ms)" in result.stdout
    for label in ("TTFT", "TPOT", "ITL", "E2E"):
        assert label in result.stdout
    assert "50 completed, 0 failed" in result.stdout
    # The KV pool a planner sizes by, as the summary has it (vLLM's "GPU KV cache size").
    (c,) = summary(out)["frontier"]["clusters"]
    kv_line = next(line for line in result.stdout.splitlines() if line.startswith("KV cache"))
    assert f"{c['kv_tokens_per_instance']:,} tokens an instance ({c['kv_cache_gib_per_gpu']:.1f} GiB a GPU)" in kv_line
    assert c["kv_tokens_per_instance"] == c["kv_blocks_per_instance"] * 16


def test_default_summary_has_every_key(default_run):
    _, out = default_run
    s = summary(out)
    for key in SUMMARY_KEYS:
        assert key in s, key
        assert isinstance(s[key], (int, float)), key
    for key in FRONTIER_KEYS:
        assert key in s["frontier"], key
    assert s["completed"] == 50 and s["failed"] == 0
    assert s["duration"] > 0 and s["request_throughput"] == pytest.approx(50 / s["duration"])
    assert s["total_token_throughput"] > s["output_throughput"] > 0
    for metric in ("ttft", "tpot", "itl", "e2el"):
        assert 0 < s[f"median_{metric}_ms"] <= s[f"p90_{metric}_ms"] <= s[f"p99_{metric}_ms"]
    # E2E latency of a request is at least its TTFT.
    assert s["mean_e2el_ms"] >= s["mean_ttft_ms"]
    f = s["frontier"]
    default = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    assert f["model"] == default["model"] and f["gpu"] == default["gpu"]
    assert f["simulated_gpus"] == 1
    assert f["deployment"]["clusters"][0]["tp"] == default["deployment"]["tp"]
    assert set(f["predictor"]) >= {"gemm", "attn_prefill", "attn_decode"}
    assert f["wall_time_s"] > 0


def test_default_requests_csv_one_row_per_request(default_run):
    _, out = default_run
    rows = requests_rows(out)
    assert len(rows) == 50
    for col in REQUEST_COLUMNS:
        assert col in rows[0], col
    s = summary(out)
    assert sum(int(r["output_tokens"]) for r in rows) == s["total_output_tokens"]
    for r in rows:
        arrival, first, finish = float(r["arrival_s"]), float(r["first_token_s"]), float(r["finish_s"])
        assert arrival < first <= finish
        assert int(r["input_tokens"]) >= 1 and int(r["output_tokens"]) >= 1
        assert int(r["preemptions"]) >= 0
    arrivals = [float(r["arrival_s"]) for r in rows]
    assert arrivals == sorted(arrivals)


def test_default_writes_a_chrome_trace_and_the_cdf_plot(default_run):
    _, out = default_run
    trace = json.loads((out / "trace.json").read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert complete
    for e in complete:
        assert {"name", "ts", "dur", "pid", "tid"} <= set(e)
        assert e["dur"] >= 0
    png = out / "latency_cdf.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the example scenarios


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_example_scenario_loads_and_runs_capped(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    d = copy.deepcopy(yaml.safe_load(path.read_text()))
    d["workload"]["num_requests"] = 30
    capped = scenario_from_dict(d, base_dir=path.parent, name=path.stem)
    assert capped.model == scenario.model and capped.clusters == scenario.clusters
    result = run_scenario(capped, timeline=False)
    s = result.summary
    assert s["completed"] + s["failed"] == 30
    assert s["completed"] == 30, s["frontier"]["failed_reasons"]
    assert s["frontier"]["simulated_gpus"] == scenario.total_gpus


def test_the_issue_scenarios_exist():
    names = {p.stem for p in SCENARIO_FILES}
    assert "llama3.1-8b-h100-chat" in names
    assert "llama3.1-70b-tp4-azure" in names
    s = load_scenario(SCENARIOS_DIR / "llama3.1-70b-tp4-azure.yaml")
    assert s.model.name == "llama-3.1-70b" and s.clusters[0].tp == 4
    assert s.workload.trace is not None and s.workload.trace.path.name == "azure_conv.csv"


# ---------------------------------------------------------------- flags


def test_flags_only_run(tmp_path):
    result = invoke(
        "simulate",
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--tp",
        1,
        "--rate",
        5,
        "--input-len",
        512,
        "--output-len",
        64,
        "--num-requests",
        20,
        "-o",
        tmp_path,
        *FAST,
    )
    assert_ok(result)
    s = summary(tmp_path)
    assert s["completed"] == 20 and s["failed"] == 0
    assert s["total_input_tokens"] == 20 * 512
    assert s["total_output_tokens"] == 20 * 64
    assert s["frontier"]["model"] == "llama-3.1-8b" and s["frontier"]["gpu"] == "h100-sxm"
    rows = requests_rows(tmp_path)
    assert {(r["input_tokens"], r["output_tokens"]) for r in rows} == {("512", "64")}
    assert not (tmp_path / "latency_cdf.png").exists() and not (tmp_path / "trace.json").exists()


def test_num_dataset_entries_draws_prompts_from_a_pool_the_prefix_cache_serves(tmp_path):
    def hit_rate(*pool):
        out = tmp_path / str(len(pool))
        flags = ("--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--max-concurrency", 1, "--num-prompts", 20)
        result = invoke("simulate", *flags, "--input-len", 512, "--output-len", 8, *pool, "-o", out, *FAST)
        assert_ok(result)
        rate = summary(out)["frontier"]["clusters"][0]["prefix_cache_hit_rate"]
        assert (f"{rate:.0%} of prompt tokens served from the cache" in result.output) == (rate > 0)
        return rate

    # One client, 20 requests over 2 prompts: after each prompt's first send, all but its last
    # 64-token block comes from the cache (448 of 512 tokens).
    assert hit_rate("--num-dataset-entries", 2) == pytest.approx(18 * 448 / (20 * 512))
    assert hit_rate() == 0.0  # every prompt distinct, as vllm bench serve's random dataset
    # aiperf 0.3's order: each of 5 prompts once in the first 5 requests, then only repeats.
    shuffled = hit_rate("--num-dataset-entries", 5, "--dataset-sampling-strategy", "shuffle")
    assert shuffled == pytest.approx(15 * 448 / (20 * 512))


def test_aiperfs_flag_names_describe_the_same_run(tmp_path):
    # aiperf's --concurrency --request-count --isl --osl --num-dataset-entries
    # --warmup-request-count: the same requests as vllm bench serve's names for them.
    def run(name, *flags):
        out = tmp_path / name
        assert_ok(invoke("simulate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", *flags, "-o", out, *FAST))
        return summary(out)

    aiperf = run("aiperf", "--concurrency", 2, "--request-count", 6, "--isl", 300, "--osl", 5, "--num-dataset-entries", 3,
                 "--warmup-request-count", 2)  # fmt: skip
    vllm = run("vllm", "--max-concurrency", 2, "--num-prompts", 6, "--random-input-len", 300, "--random-output-len", 5,
               "--prompt-pool", 3, "--num-warmups", 2)  # fmt: skip
    assert aiperf["completed"] == 6 and aiperf["total_input_tokens"] == 6 * 300
    assert aiperf["mean_ttft_ms"] == vllm["mean_ttft_ms"] and aiperf["mean_tpot_ms"] == vllm["mean_tpot_ms"]


def test_frontend_flag_puts_dynamo_before_the_engine_and_says_so(tmp_path):
    from frontier.engine import DYNAMO_US_PER_PROMPT_TOKEN

    def ttft_ms(*frontend):
        out = tmp_path / (frontend[-1] if frontend else "own")
        flags = ("--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--max-concurrency", 1, "--num-prompts", 4)
        result = invoke("simulate", *flags, "--input-len", 1000, "--output-len", 4, *frontend, "-o", out, *FAST)
        assert_ok(result)
        assert ("behind Dynamo's front end" in result.output) == bool(frontend)
        return summary(out)["mean_ttft_ms"]

    # One client at a time: each request waits 10 us per prompt token more, nothing else changes.
    assert ttft_ms("--frontend", "dynamo") - ttft_ms() == pytest.approx(DYNAMO_US_PER_PROMPT_TOKEN * 1000 * 1e-3)


def test_flags_override_the_scenario_file(tmp_path):
    result = invoke(
        "simulate",
        DEFAULT_SCENARIO,
        "--tp",
        2,
        "--dp",
        2,
        "--max-num-seqs",
        32,
        "--num-requests",
        20,
        "--seed",
        7,
        "-o",
        tmp_path,
        *FAST,
    )
    assert_ok(result)
    s = summary(tmp_path)
    cluster = s["frontier"]["deployment"]["clusters"][0]
    assert cluster["tp"] == 2 and cluster["dp"] == 2 and cluster["max_num_seqs"] == 32
    assert s["frontier"]["simulated_gpus"] == 4
    assert s["completed"] == 20
    # Values the flags leave alone come from the file.
    default = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    assert cluster["max_num_batched_tokens"] == default["deployment"]["max_num_batched_tokens"]


def test_default_scenario_with_tp_flag(tmp_path):
    result = invoke("simulate", "--tp", 2, "--num-requests", 20, "-o", tmp_path, *FAST)
    assert_ok(result)
    assert summary(tmp_path)["frontier"]["deployment"]["clusters"][0]["tp"] == 2


def test_same_seed_same_result(tmp_path):
    args = [
        "simulate",
        "--model",
        "llama-3.1-8b",
        "--rate",
        20,
        "--input-len",
        256,
        "--output-len",
        32,
        "--num-requests",
        20,
        "--seed",
        3,
        *FAST,
    ]
    assert_ok(invoke(*args, "-o", tmp_path / "a"))
    assert_ok(invoke(*args, "-o", tmp_path / "b"))
    assert (tmp_path / "a" / "requests.csv").read_text() == (tmp_path / "b" / "requests.csv").read_text()


def test_model_from_a_config_json_path(tmp_path):
    card = yaml.safe_load((MODELS_DIR / "llama-3.1-8b.yaml").read_text())
    cfg = tmp_path / "my-llama" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(card["config"]))
    result = invoke("simulate", "--model", cfg, "--num-requests", 5, "-o", tmp_path / "out", *FAST)
    assert_ok(result)
    assert summary(tmp_path / "out")["frontier"]["model"] == "my-llama"


def test_trace_flag_relative_to_the_working_directory(tmp_path, monkeypatch):
    """`--trace my.csv` is the file in the directory the user runs frontier from."""
    monkeypatch.chdir(tmp_path)
    write_trace(tmp_path / "my.csv", "arrival_s,input_tokens,output_tokens", ["0,10,5", "0.5,20,5"])
    result = invoke("simulate", "--model", "llama-3.1-8b", "--trace", "my.csv", "-o", "out", *FAST)
    assert_ok(result)
    assert summary(tmp_path / "out")["completed"] == 2


# ---------------------------------------------------------------- listings


def test_models_lists_every_card():
    result = invoke("models")
    assert_ok(result)
    for name in available_models():
        assert name in result.stdout, name


def test_gpus_lists_every_gpu():
    result = invoke("gpus")
    assert_ok(result)
    for name in all_gpus():
        assert name in result.stdout, name
    # Which calibration each GPU has, and where the engines' own MoE kernels were measured.
    wide = CliRunner(env={"COLUMNS": "250"}).invoke(main, ["gpus"])
    rows = {line.split("│")[1].strip(): line for line in wide.stdout.splitlines() if line.count("│") > 2}
    assert "measured" in rows["h100-sxm"] and "GEMM, MoE, MLA kernels" in rows["h100-sxm"]
    assert "scaled from h100-sxm" in rows["h200"] and "GEMM, MoE, MLA kernels" in rows["h200"]
    assert "kernels" not in rows["l40s"]


# ---------------------------------------------------------------- bad input


def test_misspelt_top_level_field(tmp_path):
    d = small_scenario()
    d["deploymnt"] = d.pop("deployment")
    line = assert_user_error(invoke("simulate", write_yaml(tmp_path / "s.yaml", d), *FAST), "deploymnt", "deployment")
    assert "did you mean 'deployment'" in line


def test_misspelt_deployment_field(tmp_path):
    d = small_scenario(deployment={"max_num_seq": 4})
    line = assert_user_error(invoke("simulate", write_yaml(tmp_path / "s.yaml", d), *FAST), "deployment.max_num_seq")
    assert "did you mean 'max_num_seqs'" in line


def test_missing_model(tmp_path):
    d = small_scenario()
    del d["model"]
    assert_user_error(invoke("simulate", write_yaml(tmp_path / "s.yaml", d), *FAST), "missing required field 'model'")


def test_unknown_model_lists_the_known_ones(tmp_path):
    line = assert_user_error(invoke("simulate", "--model", "llama-9", "-o", tmp_path, *FAST), "unknown model 'llama-9'")
    for name in available_models():
        assert name in line


def test_unknown_gpu_lists_the_known_ones(tmp_path):
    line = assert_user_error(
        invoke("simulate", "--model", "llama-3.1-8b", "--gpu", "h1000", "-o", tmp_path, *FAST), "unknown GPU 'h1000'"
    )
    for name in all_gpus():
        assert name in line


def test_unknown_gpu_in_a_file(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", small_scenario(gpu="v100"))
    assert_user_error(invoke("simulate", path, *FAST), "unknown GPU 'v100'", "h100-sxm")


def test_trace_with_a_missing_column(tmp_path):
    trace = write_trace(tmp_path / "t.csv", "arrival_s,input_tokens", ["0,10", "1,20"])
    assert_user_error(
        invoke("simulate", "--model", "llama-3.1-8b", "--trace", trace, "-o", tmp_path / "out", *FAST),
        str(trace),
        "output-length column",
        "output_tokens",
    )


def test_azure_trace_with_a_missing_column(tmp_path):
    trace = write_trace(tmp_path / "t.csv", "TIMESTAMP,ContextTokens,Generated", ["2023-11-16 18:17:03.9799600,10,5"])
    d = small_scenario(workload={"trace": {"path": str(trace), "format": "azure"}})
    assert_user_error(
        invoke("simulate", write_yaml(tmp_path / "s.yaml", d), *FAST),
        str(trace),
        "missing column 'GeneratedTokens'",
        "TIMESTAMP, ContextTokens, GeneratedTokens",
    )


def test_trace_with_a_negative_length(tmp_path):
    trace = write_trace(tmp_path / "t.csv", "arrival_s,input_tokens,output_tokens", ["0,10,5", "1,-3,5"])
    assert_user_error(
        invoke("simulate", "--model", "llama-3.1-8b", "--trace", trace, "-o", tmp_path / "out", *FAST),
        "row 2",
        "input_tokens",
        "-3",
        ">= 1",
    )


def test_trace_in_a_scenario_file_with_a_negative_output(tmp_path):
    write_trace(tmp_path / "t.csv", "arrival_s,input_tokens,output_tokens", ["0,10,5", "1,10,-1"])
    d = small_scenario(workload={"trace": {"path": "t.csv"}})  # relative to the scenario's folder
    assert_user_error(
        invoke("simulate", write_yaml(tmp_path / "s.yaml", d), "-o", tmp_path / "o", *FAST), "output_tokens", "-1"
    )


def test_scenario_file_not_found(tmp_path):
    assert_user_error(invoke("simulate", tmp_path / "nope.yaml", *FAST), "scenario file not found", "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model: [llama-3.1-8b\ngpu: h100-sxm\n")
    assert_user_error(invoke("simulate", path, *FAST), "s.yaml", "not valid YAML")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- model\n- gpu\n")
    assert_user_error(invoke("simulate", path, *FAST), "expected a YAML mapping")


def test_wrong_type(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", small_scenario(deployment={"tp": "two"}))
    assert_user_error(invoke("simulate", path, *FAST), "deployment.tp", "expected an integer", "'two'")


def test_role_not_allowed(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", small_scenario(deployment={"role": "prefil"}))
    assert_user_error(
        invoke("simulate", path, *FAST), "deployment.role", "'prefil'", "mixed, prefill, decode, attention, ffn"
    )


def test_router_not_allowed(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", small_scenario(deployment={"dp": 2, "router": "random"}))
    assert_user_error(invoke("simulate", path, *FAST), "deployment.router", "round_robin")


def test_nonpositive_parallelism(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", small_scenario(deployment={"tp": 0}))
    assert_user_error(invoke("simulate", path, *FAST), "deployment.tp", ">= 1")


def test_weights_do_not_fit_says_how_much_and_which_tp_fits(tmp_path):
    line = assert_user_error(
        invoke(
            "simulate",
            "--model",
            "llama-3.1-70b",
            "--gpu",
            "h100-sxm",
            "--tp",
            1,
            "--num-requests",
            5,
            "-o",
            tmp_path,
            *FAST,
        ),
        "llama-3.1-70b",
        "does not fit",
        "h100-sxm",
        "GiB",
    )
    # 70.55e9 parameters x 2 bytes = 131.4 GiB of weights on the one GPU.
    assert "131.4 GiB" in line
    assert "tp=2" in line or "tp=4" in line


def test_unknown_config_json_path(tmp_path):
    missing = tmp_path / "nowhere" / "config.json"
    assert_user_error(
        invoke("simulate", "--model", missing, "-o", tmp_path, *FAST), "model file not found", str(missing)
    )


def test_config_json_that_is_not_json(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text("{hidden_size: 4096")
    assert_user_error(invoke("simulate", "--model", cfg, "-o", tmp_path / "o", *FAST), str(cfg), "not valid JSON")


def test_config_json_missing_a_field(tmp_path):
    card = yaml.safe_load((MODELS_DIR / "llama-3.1-8b.yaml").read_text())
    del card["config"]["num_hidden_layers"]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(card["config"]))
    assert_user_error(invoke("simulate", "--model", cfg, "-o", tmp_path / "o", *FAST), "num_hidden_layers")


def test_trace_file_not_found(tmp_path):
    assert_user_error(
        invoke("simulate", "--model", "llama-3.1-8b", "--trace", tmp_path / "no.csv", "-o", tmp_path, *FAST),
        "no.csv",
        "not found",
    )


# ---------------------------------------------------------------- requests that can never be served


def test_request_longer_than_max_model_len_fails_and_is_counted(tmp_path):
    # llama-3.1-8b: max_position_embeddings 131072.
    trace = write_trace(
        tmp_path / "t.csv",
        "arrival_s,input_tokens,output_tokens",
        ["0.0,100,8", "0.1,200000,8", "0.2,300,8", "0.3,50,8"],
    )
    result = invoke("simulate", "--model", "llama-3.1-8b", "--trace", trace, "-o", tmp_path / "out", *FAST)
    assert_ok(result)
    s = summary(tmp_path / "out")
    assert s["failed"] == 1 and s["completed"] == 3
    assert s["total_input_tokens"] == 100 + 300 + 50  # the failed request is not in the totals
    rows = requests_rows(tmp_path / "out")
    assert len(rows) == 4  # never dropped
    assert [r["status"] for r in rows] == ["finished", "failed", "finished", "finished"]
    assert "131072" in rows[1]["fail_reason"] and "200008" in rows[1]["fail_reason"]
    assert rows[1]["first_token_s"] == "" and rows[1]["finish_s"] == ""
    assert all(r["fail_reason"] == "" for r in rows if r["status"] == "finished")
    assert "1 failed" in result.stdout and "max_model_len" in result.stdout


def test_request_larger_than_the_kv_cache_fails(tmp_path):
    """Fits max_model_len but not the instance's KV blocks: failed with the block counts."""
    d = small_scenario(
        deployment={"num_gpu_blocks_override": 8},  # 8 x 16 = 128 tokens of KV
        workload={
            "trace": {
                "path": str(
                    write_trace(
                        tmp_path / "t.csv", "arrival_s,input_tokens,output_tokens", ["0,50,8", "0.1,500,8", "0.2,60,8"]
                    )
                )
            }
        },
    )
    result = invoke("simulate", write_yaml(tmp_path / "s.yaml", d), "-o", tmp_path / "out", *FAST)
    assert_ok(result)
    s = summary(tmp_path / "out")
    assert s["failed"] == 1 and s["completed"] == 2
    rows = requests_rows(tmp_path / "out")
    assert rows[1]["status"] == "failed" and "KV blocks" in rows[1]["fail_reason"]


def test_max_model_len_auto_serves_what_the_kv_cache_holds(tmp_path):
    """Qwen3-32B on one H100: vLLM's auto-fit takes the pool's whole blocks as the context (its
    40,960 tokens do not fit), so a request one token longer fails; the summary says so."""
    args = ["--model", "qwen3-32b", "--gpu", "h100-sxm", "--engine", "vllm", "--max-model-len", "auto", *FAST]
    trace = write_trace(tmp_path / "t.csv", "arrival_s,input_tokens,output_tokens", ["0,1000,10", "0,38870,11"])
    result = invoke("simulate", *args, "--trace", trace, "-o", tmp_path / "out")
    assert_ok(result)
    (c,) = summary(tmp_path / "out")["frontier"]["clusters"]
    assert c["max_model_len_served"] == c["kv_tokens_per_instance"] == 38880
    rows = requests_rows(tmp_path / "out")
    assert [r["status"] for r in rows] == ["finished", "failed"]
    assert rows[1]["fail_reason"] == "prompt + output = 38881 tokens exceeds max_model_len 38880"


def test_a_workload_no_request_of_which_fits_is_an_error(tmp_path):
    result = invoke(
        "simulate",
        "--model",
        "llama-3.1-8b",
        "--input-len",
        "140000",
        "--output-len",
        "10",
        "--num-requests",
        "3",
        "--quiet",
        "--no-plots",
        "-o",
        tmp_path / "out",
    )
    # The summary is printed and written (it shows the failures), then one error line, exit 2.
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "error: no request could be served: prompt + output = 140010 tokens exceeds max_model_len 131072"
    ]
    assert summary(tmp_path / "out")["failed"] == 3


def test_ignore_eos_flag_sets_whether_sglang_admits_past_its_prefill_budget(tmp_path):
    # SGLang without its radix cache, 250 prefill tokens a batch, four 100-token prompts at once:
    # requests that ignore EOS fill the first batch with three (one past the budget), others two.
    deployment = {"engine": "sglang", "enable_prefix_caching": False, "max_prefill_tokens": 250}
    path = write_yaml(tmp_path / "s.yaml", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "deployment": deployment})

    def run(flag: str) -> dict:
        out = tmp_path / flag
        flags = ("--num-prompts", 4, "--rate", "inf", "--input-len", 100, "--output-len", 2)
        assert_ok(invoke("simulate", str(path), *flags, flag, "-o", out, *FAST))
        return summary(out)

    ignore, stop = run("--ignore-eos"), run("--no-ignore-eos")
    assert ignore["frontier"]["scenario"]["workload"]["ignore_eos"] is True
    assert stop["frontier"]["scenario"]["workload"]["ignore_eos"] is False
    assert ignore["mean_ttft_ms"] < stop["mean_ttft_ms"]  # 3 first tokens after one batch, not 2
