"""WorkloadSpec.from_dict: the accepted shapes and a one-line SpecError for each bad input."""

import math
from pathlib import Path

import pytest
import yaml

from frontier.errors import SpecError
from frontier.paths import REPO_ROOT
from frontier.workload import ArrivalSpec, LengthSpec, TraceSpec, WorkloadSpec

VIDUR = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "traces"
    / "vidur-processed"
    / "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"
)

SYNTHETIC = {
    "num_requests": 1000,
    "arrival": {"process": "poisson", "rate": 5.0},
    "input_len": {"dist": "lognormal", "mean": 1000, "std": 600, "min": 1, "max": 8192},
    "output_len": {"dist": "fixed", "value": 200},
}


def spec_error(d, **kw) -> str:
    with pytest.raises(SpecError) as e:
        WorkloadSpec.from_dict(d, **kw)
    msg = str(e.value)
    assert "\n" not in msg, "errors are one line"
    return msg


def with_(**changes):
    d = dict(SYNTHETIC)
    d.update(changes)
    return d


# ---------------------------------------------------------------- accepted


def test_the_documented_yaml_parses():
    doc = yaml.safe_load("""
workload:
  num_requests: 1000
  arrival: {process: gamma, rate: 5.0, cv: 2.5}
  concurrency: 64
  input_len:  {dist: lognormal, mean: 1000, std: 600, min: 1, max: 8192}
  output_len: {dist: fixed, value: 200}
""")
    spec = WorkloadSpec.from_dict(doc["workload"])
    assert spec == WorkloadSpec(
        num_requests=1000,
        arrival=ArrivalSpec("gamma", 5.0, 2.5),
        concurrency=64,
        input_len=LengthSpec("lognormal", mean=1000.0, std=600.0, min=1, max=8192),
        output_len=LengthSpec("fixed", value=200),
        trace=None,
    )
    with pytest.raises(AttributeError):  # frozen
        spec.num_requests = 5


def test_shorthand_scalar_lengths_and_defaults():
    spec = WorkloadSpec.from_dict(with_(input_len=512, output_len=128.0))
    assert spec.input_len == LengthSpec("fixed", value=512)
    assert spec.output_len == LengthSpec("fixed", value=128)
    n = WorkloadSpec.from_dict(with_(input_len={"dist": "normal", "mean": 100, "std": 5}))
    assert (n.input_len.min, n.input_len.max) == (1, None)
    u = WorkloadSpec.from_dict(with_(input_len={"dist": "uniform", "min": 3, "max": 3}))
    assert (u.input_len.min, u.input_len.max) == (3, 3)


@pytest.mark.parametrize("rate", ["inf", "Inf", float("inf"), ".inf"])
def test_infinite_rate(rate):
    raw = yaml.safe_load(f"rate: {rate}")["rate"] if rate == ".inf" else rate
    spec = WorkloadSpec.from_dict(with_(arrival={"process": "poisson", "rate": raw}, concurrency=8))
    assert math.isinf(spec.arrival.rate) and spec.concurrency == 8


def test_process_defaults_to_poisson():
    assert WorkloadSpec.from_dict(with_(arrival={"rate": 2})).arrival == ArrivalSpec("poisson", 2.0)


def test_process_names_are_case_insensitive():
    assert WorkloadSpec.from_dict(with_(arrival={"process": "Constant", "rate": 2})).arrival.process == "constant"


def test_trace_relative_path_resolves_against_scenario_folder_then_repo(tmp_path):
    local = tmp_path / "my.csv"
    local.write_text("arrival_s,input_tokens,output_tokens\n0,1,1\n")
    spec = WorkloadSpec.from_dict({"trace": {"path": "my.csv"}}, base_dir=tmp_path)
    assert spec.trace.path == local.resolve()
    assert spec.trace.format == "generic"
    spec = WorkloadSpec.from_dict({"trace": {"path": "simulate/traces/azure_conv.csv"}}, base_dir=tmp_path)
    assert spec.trace.path == REPO_ROOT / "simulate" / "traces" / "azure_conv.csv"
    assert spec.trace == TraceSpec(path=spec.trace.path, format="azure", time_scale=1.0, start_s=0.0, duration_s=None)
    assert spec.num_requests is None and spec.arrival is None


def test_scenario_folder_wins_over_repo_root(tmp_path):
    (tmp_path / "simulate" / "traces").mkdir(parents=True)
    mine = tmp_path / "simulate" / "traces" / "azure_conv.csv"
    mine.write_text("arrival_s,input_tokens,output_tokens\n0,1,1\n")
    spec = WorkloadSpec.from_dict({"trace": {"path": "simulate/traces/azure_conv.csv"}}, base_dir=tmp_path)
    assert spec.trace.path == mine.resolve()


def test_trace_shorthand_path_and_options():
    spec = WorkloadSpec.from_dict(
        {"trace": "simulate/traces/azure_code.csv", "num_requests": 10, "concurrency": 4, "output_len": 16}
    )
    assert spec.trace.format == "azure" and spec.num_requests == 10
    spec = WorkloadSpec.from_dict(
        {
            "trace": {
                "path": "simulate/traces/azure_code.csv",
                "format": "azure",
                "time_scale": 2,
                "start_s": 60,
                "duration_s": 600,
            }
        }
    )
    assert (spec.trace.time_scale, spec.trace.start_s, spec.trace.duration_s) == (2.0, 60.0, 600.0)


def test_vidur_with_arrival_is_fine():
    spec = WorkloadSpec.from_dict({"trace": {"path": str(VIDUR)}, "arrival": {"process": "poisson", "rate": 3}})
    assert spec.trace.format == "vidur" and not spec.trace.has_timestamps


# ---------------------------------------------------------------- rejected


def test_unknown_process():
    msg = spec_error(with_(arrival={"process": "poison", "rate": 5}))
    assert msg == "workload.arrival.process: 'poison' is not one of poisson, gamma, constant"


def test_unknown_dist():
    msg = spec_error(with_(input_len={"dist": "zipf", "mean": 3}))
    assert msg == "workload.input_len.dist: 'zipf' is not one of fixed, uniform, normal, lognormal"


def test_unknown_top_level_key_names_allowed_keys():
    msg = spec_error(with_(num_request=5))
    assert msg == (
        "workload: unknown key 'num_request'; allowed keys: num_requests, arrival, "
        "concurrency, input_len, output_len, trace, send_gap_ms, prompt_pool, prompt_sampling, warmup_requests, "
        "ignore_eos"
    )


def test_unknown_nested_keys():
    assert spec_error(with_(arrival={"rate": 5, "burst": 2})) == (
        "workload.arrival: unknown key 'burst'; allowed keys: process, rate, cv"
    )
    assert spec_error(with_(output_len={"dist": "fixed", "value": 3, "max": 9})) == (
        "workload.output_len: key 'max' does not apply to dist fixed; allowed keys: dist, value"
    )
    assert "allowed keys: path, format, time_scale, start_s, duration_s" in spec_error(
        {"trace": {"path": "simulate/traces/azure_conv.csv", "speed": 2}}
    )


def test_where_prefix_is_used():
    msg = spec_error(with_(arrival={"process": "x", "rate": 1}), where="scenario.yaml: workload")
    assert msg.startswith("scenario.yaml: workload.arrival.process: 'x'")


@pytest.mark.parametrize(
    "arrival, expected",
    [
        ({"process": "poisson"}, "workload.arrival.rate: required"),
        (
            {"rate": -1},
            'workload.arrival.rate: -1 is not a rate; give requests per second > 0, or "inf" for all at t=0',
        ),
        ({"rate": 0}, "workload.arrival.rate: 0 is not a rate"),
        ({"rate": "fast"}, "workload.arrival.rate: 'fast' is not a rate"),
        ({"rate": "-inf"}, "workload.arrival.rate: '-inf' is not a rate"),
        ({"rate": True}, "workload.arrival.rate: True is not a rate"),
        ({"process": "gamma", "rate": 5}, "workload.arrival.cv: required for process gamma"),
        ({"process": "gamma", "rate": 5, "cv": 0}, "workload.arrival.cv: 0 must be"),
        ({"process": "poisson", "rate": 5, "cv": 2}, "workload.arrival.cv: only applies to process gamma, not poisson"),
        (5, "workload.arrival: expected a mapping"),
    ],
)
def test_bad_arrival(arrival, expected):
    assert spec_error(with_(arrival=arrival)).startswith(expected)


@pytest.mark.parametrize(
    "length, expected",
    [
        (0, "workload.input_len: 0 must be a token count >= 1"),
        (-5, "workload.input_len: -5 must be a token count >= 1"),
        (2.5, "workload.input_len: 2.5 is not a token count"),
        ("long", "workload.input_len: expected a token count such as 512"),
        ({"mean": 5}, "workload.input_len.dist: required"),
        ({"dist": "fixed"}, "workload.input_len.value: required for dist fixed"),
        ({"dist": "uniform", "min": 5}, "workload.input_len.max: required for dist uniform"),
        ({"dist": "uniform", "min": 9, "max": 5}, "workload.input_len.max: 5 is below min 9"),
        ({"dist": "normal", "mean": 10}, "workload.input_len.std: required for dist normal"),
        ({"dist": "lognormal", "mean": 0, "std": 1}, "workload.input_len.mean: 0 must be"),
        ({"dist": "lognormal", "mean": 10, "std": -1}, "workload.input_len.std: -1 must be"),
        ({"dist": "normal", "mean": 10, "std": 1, "min": 0}, "workload.input_len.min: 0 must be"),
    ],
)
def test_bad_length(length, expected):
    assert spec_error(with_(input_len=length)).startswith(expected)


@pytest.mark.parametrize("key", ["num_requests", "arrival", "input_len", "output_len"])
def test_synthetic_needs_every_part(key):
    d = dict(SYNTHETIC)
    del d[key]
    assert spec_error(d) == (
        f"workload.{key}: required for a synthetic workload (or give workload.trace to replay a trace)"
    )


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("num_requests", 0, "workload.num_requests: 0 must be a number of requests >= 1"),
        ("num_requests", 10.5, "workload.num_requests: 10.5 is not a number of requests (a whole number >= 1)"),
        ("concurrency", 0, "workload.concurrency: 0 must be a number of requests in flight >= 1"),
    ],
)
def test_bad_counts(field, value, expected):
    assert spec_error(with_(**{field: value})) == expected


def test_not_a_mapping():
    assert spec_error([1, 2]).startswith("workload: expected a mapping with keys num_requests")


def test_missing_trace_file_lists_where_it_looked(tmp_path):
    msg = spec_error({"trace": {"path": "nope.csv"}}, base_dir=tmp_path)
    assert msg == (
        f"workload.trace.path: trace file 'nope.csv' not found (looked in "
        f"{tmp_path / 'nope.csv'}, {REPO_ROOT / 'nope.csv'})"
    )


def test_trace_without_path():
    assert spec_error({"trace": {"format": "azure"}}) == ("workload.trace.path: required (a .csv or .jsonl trace file)")


def test_bad_trace_options():
    path = "simulate/traces/azure_conv.csv"
    assert spec_error({"trace": {"path": path, "format": "parquet"}}) == (
        "workload.trace.format: 'parquet' is not one of auto, azure, mooncake, vidur, generic"
    )
    assert spec_error({"trace": {"path": path, "time_scale": 0}}).startswith(
        "workload.trace.time_scale: 0 must be a speed-up factor > 0"
    )
    assert spec_error({"trace": {"path": path, "start_s": -1}}).startswith(
        "workload.trace.start_s: -1 must be a time in seconds >= 0"
    )
    assert "missing column 'num_prefill_tokens'" in spec_error({"trace": {"path": path, "format": "vidur"}})


def test_time_scale_with_retiming_is_contradictory():
    msg = spec_error({"trace": {"path": "simulate/traces/azure_conv.csv", "time_scale": 2}, "arrival": {"rate": 5}})
    assert msg.startswith("workload.trace.time_scale: applies to the trace's own timestamps")


def test_vidur_without_arrival_is_an_error():
    msg = spec_error({"trace": {"path": str(VIDUR)}})
    assert msg == (
        "workload.arrival: required, trace "
        "'arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv' (vidur format) "
        "has no timestamps; add e.g. arrival: {process: poisson, rate: 5}"
    )


def test_lengths_only_trace_cannot_be_windowed(tmp_path):
    p = tmp_path / "lengths.csv"
    p.write_text("input_tokens,output_tokens\n5,5\n")
    msg = spec_error({"trace": {"path": str(p), "start_s": 10}, "arrival": {"rate": 1}})
    assert msg.startswith("workload.trace.start_s/duration_s: trace 'lengths.csv' has no timestamps")


def test_prompt_pool_is_a_count_of_distinct_prompts_for_synthetic_workloads_only():
    assert WorkloadSpec.from_dict(with_(prompt_pool=100)).prompt_pool == 100
    assert WorkloadSpec.from_dict(SYNTHETIC).prompt_pool is None
    assert "workload.prompt_pool" in spec_error(with_(prompt_pool=0))
    msg = spec_error({"trace": "simulate/traces/azure_conv.csv", "prompt_pool": 100})
    assert msg.startswith("workload.prompt_pool: applies to synthetic prompts")


def test_prompt_sampling_is_one_of_aiperfs_strategies_and_needs_a_pool():
    assert WorkloadSpec.from_dict(with_(prompt_pool=100)).prompt_sampling == "random"
    assert WorkloadSpec.from_dict(with_(prompt_pool=100, prompt_sampling="Shuffle")).prompt_sampling == "shuffle"
    assert spec_error(with_(prompt_pool=100, prompt_sampling="lottery")) == (
        "workload.prompt_sampling: 'lottery' is not one of random, shuffle, sequential"
    )
    assert spec_error(with_(prompt_sampling="shuffle")).startswith(
        "workload.prompt_sampling: says how requests pick from prompt_pool, which is not set"
    )


def test_ignore_eos_defaults_to_whether_the_workload_sets_the_output_lengths():
    assert WorkloadSpec.from_dict(SYNTHETIC).requests_ignore_eos
    assert not WorkloadSpec.from_dict(with_(ignore_eos=False)).requests_ignore_eos
    trace = {"trace": "simulate/traces/azure_conv.csv"}
    assert not WorkloadSpec.from_dict(trace).requests_ignore_eos  # its outputs ended on an EOS
    assert WorkloadSpec.from_dict({**trace, "output_len": 100}).requests_ignore_eos
    assert spec_error(with_(ignore_eos="yes")) == "workload.ignore_eos: expected true or false, got 'yes'"


def test_a_recorded_workload_is_the_same_workload():
    from frontier.spec.scenario import scenario_from_dict
    from frontier.spec.scenario_dict import scenario_to_dict

    workload = with_(concurrency=16, prompt_pool=100, prompt_sampling="shuffle", warmup_requests=32, ignore_eos=False)
    scenario = scenario_from_dict({"model": "llama-3.1-8b", "gpu": "h100-sxm", "workload": workload})
    assert scenario_from_dict(scenario_to_dict(scenario)).workload == scenario.workload
