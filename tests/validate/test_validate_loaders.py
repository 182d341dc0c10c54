"""Loaders of measured runs, on the real fixture files and on hand-computed timelines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from frontier.errors import FrontierError
from frontier.validate.loaders import detect_kind, load_folder, load_measured

FIXTURES = Path(__file__).parent / "fixtures"
TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"  # excerpts of ../shared/traces
SGLANG = TRACES / "sglang-bench-serving-examples"
RTX4090 = TRACES / "vllm-per-request-rtx4090-llama3.1-8b"


# ---------------------------------------------------------------------------- SGLang JSONL


@pytest.mark.parametrize(
    "name, lines",
    [
        ("deepseek_dp_mla_output.jsonl", 1),
        ("llama_3_3_70b_offline_output.jsonl", 7),
        ("llama_3_3_70b_online_output.jsonl", 7),
        ("llama_405b_online_output.jsonl", 6),
    ],
)
def test_sglang_one_run_per_line(name, lines):
    runs = load_measured(SGLANG / name)
    assert len(runs) == lines
    assert all(r.kind == "sglang-bench" for r in runs)
    assert all(r.metrics_from == "file summary" and not r.has_per_request for r in runs)
    if lines > 1:
        assert [r.index for r in runs] == list(range(lines))


def test_sglang_online_values_in_vllm_names():
    runs = load_measured(SGLANG / "llama_3_3_70b_online_output.jsonl")
    r = runs[0]
    assert r.settings.request_rate == 1.0
    assert r.settings.max_concurrency is None
    assert r.settings.dataset["random_input_len"] == 1024
    assert r.settings.dataset["random_range_ratio"] == 0.0
    m = r.metrics
    assert m["median_ttft_ms"] == pytest.approx(85.74514742940664)
    assert m["median_itl_ms"] == pytest.approx(13.638956006616354)
    # SGLang's e2e_latency renamed to vLLM's e2el
    assert m["mean_e2el_ms"] == pytest.approx(7840.616212638561)
    assert m["median_e2el_ms"] == pytest.approx(7819.046192569658)
    assert m["output_throughput"] == pytest.approx(537.4142851849319)
    # this SGLang version writes no request_throughput / total throughput: from the totals
    assert m["request_throughput"] == pytest.approx(300 / 298.3675805060193)
    assert m["total_token_throughput"] == pytest.approx((152612 + 160347) / 298.3675805060193)
    assert "mean_ttft_ms" not in m  # not in this version's output: missing, not zero
    assert runs[5].settings.dataset["dataset_name"] == "sharegpt"
    assert runs[5].settings.request_rate == 4.0


def test_sglang_infinite_rate():
    (r,) = load_measured(SGLANG / "deepseek_dp_mla_output.jsonl")
    assert math.isinf(r.settings.request_rate)
    assert r.metrics["completed"] == 10000
    assert r.metrics["total_output_tokens"] == 5120000


def test_sglang_output_details_arrays(tmp_path):
    """--output-details adds per-request arrays (no send times); failed requests carry an error."""
    obj = {
        "backend": "sglang",
        "dataset_name": "random",
        "request_rate": 2.0,
        "max_concurrency": 4,
        "random_input_len": 100,
        "random_output_len": 10,
        "random_range_ratio": 0.0,
        "duration": 2.0,
        "completed": 2,
        "total_input_tokens": 30,
        "total_output_tokens": 5,
        "mean_e2e_latency_ms": 350.0,
        "median_ttft_ms": 150.0,
        "median_itl_ms": 50.0,
        "output_throughput": 2.5,
        "input_lens": [10, 20, 99],
        "output_lens": [3, 2, 0],
        "ttfts": [0.1, 0.2, 0.0],
        "itls": [[0.05, 0.05], [0.1], []],
        "generated_texts": ["abc", "de", ""],
        "errors": ["", "", "timeout"],
    }
    path = tmp_path / "sglang.jsonl"
    path.write_text(json.dumps(obj) + "\n")
    (r,) = load_measured(path)
    assert r.kind == "sglang-bench"
    assert r.failed == 1
    assert r.settings.max_concurrency == 4
    np.testing.assert_array_equal(r.input_tokens, [10, 20])
    np.testing.assert_allclose(r.e2el_s, [0.2, 0.3])  # TTFT + sum of ITLs
    assert r.arrival_s is None
    assert r.metrics_from == "per-request data"
    assert r.metrics["mean_ttft_ms"] == pytest.approx(150.0)
    assert r.metrics["mean_tpot_ms"] == pytest.approx((50 + 100) / 2)
    assert r.metrics["mean_itl_ms"] == pytest.approx((50 + 50 + 100) / 3)
    assert r.metrics["failed"] == 1


# ---------------------------------------------------------------------------- vLLM run folder


def test_vllm_request_folder_reproduces_summary_txt():
    (r,) = load_measured(RTX4090)
    assert r.kind == "vllm-requests"
    assert r.metrics["completed"] == 300 and r.failed == 0
    m = r.metrics
    # summary.txt of the source repository, "vLLM" column
    assert m["mean_ttft_ms"] == pytest.approx(65456.6, abs=0.05)
    assert m["median_ttft_ms"] == pytest.approx(60110.9, abs=0.05)
    assert m["p90_ttft_ms"] == pytest.approx(121121.7, abs=0.05)
    assert m["p99_ttft_ms"] == pytest.approx(137356.3, abs=0.05)
    assert m["mean_tpot_ms"] == pytest.approx(32.4, abs=0.05)
    assert m["median_tpot_ms"] == pytest.approx(30.8, abs=0.05)
    assert m["p99_tpot_ms"] == pytest.approx(56.0, abs=0.05)
    assert m["mean_e2el_ms"] == pytest.approx(86578.3, abs=0.05)
    assert m["median_e2el_ms"] == pytest.approx(83413.3, abs=0.05)
    assert m["p99_e2el_ms"] == pytest.approx(153627.5, abs=0.05)
    assert "mean_itl_ms" not in m  # engine timestamps have no per-token times


def test_vllm_request_folder_rows_by_hand():
    (r,) = load_measured(RTX4090 / "requests.jsonl")  # the file itself works too
    # bench-0: queued 27536.660701067, first 27537.350135653, last 27554.231018618, out 531
    assert r.ttft_s[0] == pytest.approx(27537.350135653 - 27536.660701067)
    assert r.e2el_s[0] == pytest.approx(27554.231018618 - 27536.660701067)
    assert r.tpot_s[0] == pytest.approx((27554.231018618 - 27537.350135653) / 530)
    assert r.input_tokens[0] == 2358 and r.output_tokens[0] == 531
    # bench-1 was queued 0.386902482 s after bench-0
    assert r.arrival_s[0] == 0.0
    assert r.arrival_s[1] == pytest.approx(27537.047603549 - 27536.660701067)
    assert r.metrics["total_input_tokens"] == 257239
    assert r.metrics["total_output_tokens"] == 195753


def test_vllm_request_folder_engine_args():
    (r,) = load_measured(RTX4090)
    s = r.settings
    assert s.model == "meta-llama/Llama-3.1-8B"
    assert s.gpu == "NVIDIA GeForce RTX 4090"
    assert s.num_prompts == 300
    a = s.engine_args
    assert a["tensor_parallel_size"] == 1 and a["data_parallel_size"] == 1
    assert a["max_num_seqs"] == 256 and a["max_num_batched_tokens"] == 2048
    assert a["enable_prefix_caching"] is True and a["block_size"] == 16
    assert a["gpu_memory_utilization"] == 0.9
    assert s.request_rate == pytest.approx(10.27, abs=0.01)  # ~10 req/s, observed


def _write_run_folder(folder: Path, rows: list[dict], meta: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_metric_definitions_hand_computed_timeline(tmp_path):
    """Three requests on the engine clock, every metric worked out by hand.

    r0 queued 10.0, first token 10.5, last 12.5, 5 tokens: TTFT 0.5, TPOT 2.0/4 = 0.5, E2E 2.5
    r1 queued 11.0, first token 11.2, last 11.2, 1 token:  TTFT 0.2, no TPOT,          E2E 0.2
    r2 queued 12.0, first token 13.0, last 14.0, 3 tokens: TTFT 1.0, TPOT 1.0/2 = 0.5, E2E 2.0
    duration = last token of the run - first queued = 14.0 - 10.0 = 4.0 s
    """
    rows = [
        {
            "request_id": "r0",
            "input_toks": 100,
            "output_toks": 5,
            "arrival_time": 1e9,
            "queued_ts": 10.0,
            "scheduled_ts": 10.1,
            "first_token_ts": 10.5,
            "last_token_ts": 12.5,
        },
        {
            "request_id": "r1",
            "input_toks": 200,
            "output_toks": 1,
            "arrival_time": 1e9 + 1,
            "queued_ts": 11.0,
            "scheduled_ts": 11.0,
            "first_token_ts": 11.2,
            "last_token_ts": 11.2,
        },
        {
            "request_id": "r2",
            "input_toks": 300,
            "output_toks": 3,
            "arrival_time": 1e9 + 2,
            "queued_ts": 12.0,
            "scheduled_ts": 12.5,
            "first_token_ts": 13.0,
            "last_token_ts": 14.0,
        },
    ]
    (r,) = load_measured(_write_run_folder(tmp_path / "run", rows))
    m = r.metrics
    assert m["duration"] == pytest.approx(4.0)
    assert m["completed"] == 3
    assert m["request_throughput"] == pytest.approx(3 / 4.0)
    assert m["output_throughput"] == pytest.approx(9 / 4.0)
    assert m["total_token_throughput"] == pytest.approx((600 + 9) / 4.0)
    assert m["mean_ttft_ms"] == pytest.approx((500 + 200 + 1000) / 3)
    assert m["median_ttft_ms"] == pytest.approx(500)
    assert m["mean_tpot_ms"] == pytest.approx(500)  # r1 (one token) has no TPOT
    assert m["mean_e2el_ms"] == pytest.approx((2500 + 200 + 2000) / 3)
    assert m["median_e2el_ms"] == pytest.approx(2000)
    assert m["p90_e2el_ms"] == pytest.approx(2000 + 0.8 * 500)  # linear, as np.percentile
    np.testing.assert_allclose(r.arrival_s, [0.0, 1.0, 2.0])
    assert "no meta.json" in " ".join(r.notes)


def test_request_folder_without_first_token_counts_as_failed(tmp_path):
    rows = [
        {"input_toks": 10, "output_toks": 2, "queued_ts": 0.0, "first_token_ts": 0.1, "last_token_ts": 0.3},
        {"input_toks": 10, "output_toks": 2, "queued_ts": 0.5, "first_token_ts": None, "last_token_ts": None},
    ]
    (r,) = load_measured(_write_run_folder(tmp_path / "run", rows))
    assert r.failed == 1 and r.metrics["completed"] == 1 and r.metrics["failed"] == 1


# ---------------------------------------------------------------------------- vLLM --save-result


def test_vllm_detailed_hand_computed():
    """fixtures/vllm_detailed_rate4.json, five requests (one failed):
    r0 in 10 out 4 ttft .10 itl .02 .03 .05 latency .20 -> TPOT .10/3
    r1 in 20 out 3 ttft .15 itl .04 .06     latency .25 -> TPOT .05
    r2 in 30 out 1 ttft .20                 latency .20 -> no TPOT
    r3 in 40 failed ("Bad Request")
    r4 in 50 out 2 ttft .12 itl .08         latency .20 -> TPOT .08
    duration 1.25 s."""
    (r,) = load_measured(FIXTURES / "vllm_detailed_rate4.json")
    assert r.kind == "vllm-bench" and r.metrics_from == "per-request data"
    assert r.failed == 1
    m = r.metrics
    assert m["completed"] == 4 and m["failed"] == 1
    assert m["total_input_tokens"] == 110 and m["total_output_tokens"] == 10
    assert m["request_throughput"] == pytest.approx(4 / 1.25)
    assert m["output_throughput"] == pytest.approx(10 / 1.25)
    assert m["total_token_throughput"] == pytest.approx(120 / 1.25)
    assert m["mean_ttft_ms"] == pytest.approx(142.5)
    assert m["median_ttft_ms"] == pytest.approx(135.0)
    assert m["mean_tpot_ms"] == pytest.approx((100 / 3 + 50 + 80) / 3)
    assert m["median_tpot_ms"] == pytest.approx(50.0)
    assert m["mean_itl_ms"] == pytest.approx(280 / 6)
    assert m["median_itl_ms"] == pytest.approx(45.0)
    assert m["mean_e2el_ms"] == pytest.approx(212.5)
    assert m["median_e2el_ms"] == pytest.approx(200.0)
    assert m["request_goodput"] == pytest.approx(2.4)
    # recomputed numbers agree with what vLLM itself wrote in the file
    for key in ("mean_ttft_ms", "p90_ttft_ms", "p99_tpot_ms", "p90_itl_ms", "std_e2el_ms"):
        assert m[key] == pytest.approx(r.reported[key]), key
    np.testing.assert_allclose(r.arrival_s, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(r.output_tokens, [4, 3, 1, 2])
    s = r.settings
    assert s.request_rate == 4.0 and s.max_concurrency is None and s.num_prompts == 5
    assert s.model == "meta-llama/Llama-3.1-8B-Instruct" and s.date == "20250614-101530"
    assert s.engine_args == {"tensor_parallel_size": 1}  # from --metadata tensor_parallel_size=1
    assert s.gpu == "h100-sxm"


def test_vllm_summary_only_inf_rate_and_concurrency():
    (r,) = load_measured(FIXTURES / "vllm_summary_inf_concurrency2.json")
    assert r.kind == "vllm-bench"
    assert not r.has_per_request and r.metrics_from == "file summary"
    assert math.isinf(r.settings.request_rate)
    assert r.settings.max_concurrency == 2 and r.settings.num_prompts == 6
    assert r.metrics["mean_ttft_ms"] == pytest.approx(75.0)
    assert r.metrics["p99_e2el_ms"] == pytest.approx(1369.5)
    assert r.metrics["total_input_tokens"] == 3072
    assert "request_goodput" not in r.metrics  # null in the file: no goodput was asked for


def test_vllm_legacy_goodput_colon_spelling():
    (r,) = load_measured(FIXTURES / "vllm_legacy_goodput_colon.json")
    assert r.kind == "vllm-bench"
    assert math.isinf(r.settings.request_rate)
    # no latencies array in old files: E2E = TTFT + sum(ITL): 0.40, 0.60, 1.00
    np.testing.assert_allclose(r.e2el_s, [0.4, 0.6, 1.0])
    assert r.metrics["mean_e2el_ms"] == pytest.approx(2000 / 3)
    assert r.metrics["mean_itl_ms"] == pytest.approx(r.reported["mean_itl_ms"])
    assert r.arrival_s is None  # no start_times


def test_goodput_colon_spelling_is_renamed(tmp_path):
    data = json.loads((FIXTURES / "vllm_legacy_goodput_colon.json").read_text())
    data["request_goodput:"] = 1.5
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    (r,) = load_measured(path)
    assert r.reported["request_goodput"] == 1.5
    assert r.metrics["request_goodput"] == 1.5


def test_vllm_append_result_lines(tmp_path):
    """--append-result writes one JSON object per line."""
    one = (FIXTURES / "vllm_summary_inf_concurrency2.json").read_text().strip()
    path = tmp_path / "appended.json"
    path.write_text(one + "\n" + one + "\n")
    runs = load_measured(path)
    assert [r.index for r in runs] == [0, 1]
    assert runs[1].label == "appended.json#1"


# ---------------------------------------------------------------------------- errors


def test_truncated_json_is_one_clear_line(tmp_path):
    text = (FIXTURES / "vllm_detailed_rate4.json").read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(FrontierError) as exc:
        load_measured(path)
    msg = str(exc.value)
    assert "truncated JSON" in msg and "cut.json" in msg and "\n" not in msg


def test_truncated_last_line_of_jsonl(tmp_path):
    lines = (
        (SGLANG / "llama_405b_online_output.jsonl").read_text().splitlines()
        if SGLANG.is_dir()
        else [json.dumps({"completed": 1, "duration": 1.0, "median_ttft_ms": 1.0, "random_input_len": 1})] * 2
    )
    path = tmp_path / "cut.jsonl"
    path.write_text(lines[0] + "\n" + lines[1][:40])
    with pytest.raises(FrontierError, match=r"truncated JSON \(line 2"):
        load_measured(path)


def test_foreign_json_is_one_clear_line(tmp_path):
    path = tmp_path / "package.json"
    path.write_text(json.dumps({"name": "left-pad", "version": "1.3.0"}))
    with pytest.raises(FrontierError) as exc:
        load_measured(path)
    msg = str(exc.value)
    assert "not a benchmark result" in msg and "name, version" in msg and "\n" not in msg


def test_foreign_json_array(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(FrontierError, match="JSON list, not an object"):
        load_measured(path)


def test_invalid_json_mid_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"completed": 3, "duration": oops, "mean_ttft_ms": 1}')
    with pytest.raises(FrontierError, match="invalid JSON at line 1 column"):
        load_measured(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("  \n")
    with pytest.raises(FrontierError, match="empty file"):
        load_measured(path)


def test_missing_path(tmp_path):
    with pytest.raises(FrontierError, match="no such file or folder"):
        load_measured(tmp_path / "nope.json")


def test_detect_kind():
    assert detect_kind({"completed": 1, "duration": 2, "mean_ttft_ms": 3}) == "vllm-bench"
    assert detect_kind({"completed": 1, "mean_e2e_latency_ms": 3, "median_ttft_ms": 1}) == "sglang-bench"
    assert detect_kind({"completed": 1}) is None
    assert detect_kind({"mean_ttft_ms": 1}) is None
    assert detect_kind([1]) is None


def test_folder_of_results_skips_foreign_files(tmp_path):
    for name in ("vllm_detailed_rate4.json", "vllm_summary_inf_concurrency2.json"):
        (tmp_path / name).write_text((FIXTURES / name).read_text())
    (tmp_path / "notes.json").write_text('{"hello": "world"}')
    (tmp_path / "README.md").write_text("not a result")
    runs, skipped = load_folder(tmp_path)
    assert [r.source.name for r in runs] == ["vllm_detailed_rate4.json", "vllm_summary_inf_concurrency2.json"]
    assert len(skipped) == 1 and skipped[0].startswith("notes.json")
    assert len(load_measured(tmp_path)) == 2


def test_folder_without_results(tmp_path):
    (tmp_path / "notes.json").write_text('{"hello": "world"}')
    with pytest.raises(FrontierError, match="no measured runs found"):
        load_measured(tmp_path)
