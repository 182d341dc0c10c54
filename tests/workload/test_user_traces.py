"""Workloads users already have: BurstGPT CSV, ShareGPT JSON, a vLLM --save-detailed result and
an SGLang bench_serving JSONL with --output-details, each read by content (format auto)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frontier.errors import SpecError
from frontier.workload import WorkloadSpec, build_requests, load_trace
from frontier.workload.traces import CHARS_PER_TOKEN


def test_burstgpt_leaves_out_failed_requests(tmp_path):
    p = tmp_path / "BurstGPT_1.csv"
    p.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,Conversation log\n"
        "118,GPT-4,417,276,693,API log\n"
    )
    t = load_trace(p)
    assert t.input_tokens.tolist() == [472, 417] and t.output_tokens.tolist() == [18, 276]
    assert t.arrival_s.tolist() == [0.0, 113.0]
    assert "BurstGPT" in t.source and "1 failed requests (0 response tokens) left out" in t.source


def test_sharegpt_first_two_turns_with_a_stated_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_TOKENIZER", str(tmp_path / "no-such-tokenizer"))
    p = tmp_path / "sharegpt.json"
    p.write_text(
        json.dumps(
            [
                {
                    "id": "a",
                    "conversations": [
                        {"from": "human", "value": "x" * 40},
                        {"from": "gpt", "value": "y" * 400},
                        {"from": "human", "value": "ignored"},
                    ],
                },
                {"id": "b", "conversations": [{"from": "human", "value": "a single turn is skipped"}]},
            ]
        )
    )
    t = load_trace(p)
    assert t.input_tokens.tolist() == [40 / CHARS_PER_TOKEN] and t.output_tokens.tolist() == [400 / CHARS_PER_TOKEN]
    assert f"estimated at {CHARS_PER_TOKEN:g} characters per token" in t.source
    with pytest.raises(SpecError, match="has no timestamps"):
        WorkloadSpec.from_dict({"trace": {"path": str(p)}})
    spec = WorkloadSpec.from_dict({"trace": {"path": str(p)}, "arrival": {"rate": 2}})
    assert len(build_requests(spec, np.random.default_rng(0))) == 1


def test_vllm_detailed_result_keeps_send_times_and_drops_failures(tmp_path):
    p = tmp_path / "vllm-4qps.json"
    p.write_text(
        json.dumps(
            {
                "backend": "vllm",
                "completed": 2,
                "duration": 3.0,
                "input_lens": [100, 200, 300],
                "output_lens": [10, 0, 30],
                "start_times": [50.5, 51.0, 52.5],
                "queue_times": [0.5, 0.0, 0.0],
                "errors": ["", "timeout", ""],
            }
        )
    )
    t = load_trace(p)
    assert t.input_tokens.tolist() == [100, 300] and t.output_tokens.tolist() == [10, 30]
    assert t.arrival_s.tolist() == [0.0, 2.5]  # start 50.5 - queued 0.5 = 50.0; 52.5
    assert "1 failed requests left out" in t.source


def test_frontier_detailed_summary_is_a_replayable_workload(tmp_path):
    from click.testing import CliRunner

    from frontier.cli import main

    r = CliRunner().invoke(
        main,
        [
            "simulate",
            "--model",
            "llama-3.1-8b",
            "--input-len",
            "64",
            "--output-len",
            "8",
            "--num-requests",
            "12",
            "--rate",
            "3",
            "--save-detailed",
            "--quiet",
            "--no-plots",
            "--no-trace",
            "-o",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "summary.json").read_text())
    t = load_trace(tmp_path / "summary.json")
    assert t.input_tokens.tolist() == data["input_lens"]
    assert np.allclose(t.arrival_s, np.asarray(data["start_times"]) - data["start_times"][0])


def test_sglang_output_details_last_run(tmp_path):
    p = tmp_path / "sglang.jsonl"
    lines = [
        {"backend": "sglang", "completed": 1, "output_throughput": 1.0, "request_rate": float("inf")},
        {
            "backend": "sglang",
            "completed": 2,
            "output_throughput": 5.0,
            "input_lens": [10, 20, 30],
            "output_lens": [5, 0, 7],
            "errors": ["", "boom", ""],
        },
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    t = load_trace(p)
    assert t.input_tokens.tolist() == [10, 30] and t.output_tokens.tolist() == [5, 7]
    assert "line 2 of 2" in t.source
    p.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(SpecError, match="--output-details"):
        load_trace(p)


def test_json_that_is_neither(tmp_path):
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SpecError, match="ShareGPT .* or a `vllm bench serve --save-detailed` result"):
        load_trace(p)
