"""Trace loaders against the real trace files and against small hand-written ones."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from frontier.errors import SpecError
from frontier.paths import REPO_ROOT
from frontier.workload import load_trace
from frontier.workload.traces import read_trace, sniff

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"  # excerpts of ../shared/traces (NOTICE.md there)
AZURE_CONV = REPO_ROOT / "simulate" / "traces" / "azure_conv.csv"
AZURE_CODE = REPO_ROOT / "simulate" / "traces" / "azure_code.csv"
MOONCAKE_CONV = TRACES / "mooncake-fast25" / "conversation_trace_excerpt.jsonl"
VIDUR = TRACES / "vidur-processed" / "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"
VLLM_REQUESTS = TRACES / "vllm-per-request-rtx4090-llama3.1-8b" / "requests.jsonl"


# ---------------------------------------------------------------- real traces


def test_azure_conv_matches_published_statistics():
    t = load_trace(AZURE_CONV)
    assert len(t) == 19366
    assert t.input_tokens.dtype == np.int64 and t.output_tokens.dtype == np.int64
    assert t.arrival_s.dtype == np.float64
    assert t.arrival_s[0] == 0.0
    assert np.all(np.diff(t.arrival_s) >= 0)
    assert t.input_tokens.mean() == pytest.approx(1154.697, abs=0.01)
    assert t.output_tokens.mean() == pytest.approx(211.126, abs=0.01)
    # first two rows: 18:15:46.6805900 (374, 44) and 18:15:50.9951690 (396, 109)
    assert t.input_tokens[:2].tolist() == [374, 396]
    assert t.output_tokens[:2].tolist() == [44, 109]
    assert t.arrival_s[1] == pytest.approx(4.314579, abs=1e-6)
    assert t.arrival_s[-1] == pytest.approx(3501.72, abs=0.01)  # about an hour
    assert t.rate_rps == pytest.approx(5.53, abs=0.01)
    assert t.prefix_blocks is None and t.concurrency is None
    assert t.source == ("Azure LLM inference 2023 conv trace (azure_conv.csv), 19366 requests, 5.5 req/s")


def test_azure_code_trace():
    t = load_trace(AZURE_CODE)
    assert len(t) == 8819
    assert t.input_tokens.mean() == pytest.approx(2047.85, abs=0.01)
    assert t.output_tokens.mean() == pytest.approx(27.88, abs=0.01)
    assert t.rate_rps == pytest.approx(2.57, abs=0.01)


def test_shipped_azure_copy_is_the_published_file():
    # sha256 of Azure/AzurePublicDataset @ b469a11 data/AzureLLMInferenceTrace_conv.csv
    assert (
        hashlib.sha256(AZURE_CONV.read_bytes()).hexdigest()
        == "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"
    )


def test_mooncake_conversation_trace_with_prefix_blocks():
    t = load_trace(MOONCAKE_CONV)  # the first 150 requests and 20 from t = 1800 s
    assert len(t) == 170
    assert t.block_tokens == 512
    assert t.arrival_s[0] == 0.0 and np.all(np.diff(t.arrival_s) >= 0)
    assert t.arrival_s[149] == pytest.approx(54.0)  # timestamps are in ms
    assert t.arrival_s[150] == pytest.approx(1800.0) and t.arrival_s[-1] == pytest.approx(1803.0)
    assert t.input_tokens[:3].tolist() == [6758, 7322, 7236]
    assert t.output_tokens[:3].tolist() == [500, 490, 794]
    assert t.prefix_blocks[0] == tuple(range(14))
    assert t.prefix_blocks[1][:2] == (0, 14)  # shares block 0 with request 0
    blocks = np.array([len(b) for b in t.prefix_blocks])
    assert np.array_equal(blocks, -(-t.input_tokens // 512))  # one id per 512-token block
    assert t.input_tokens.mean() == pytest.approx(13917.14, abs=0.01)
    assert t.input_tokens.max() == 120633


def test_vidur_has_lengths_but_no_timestamps():
    assert sniff(VIDUR) == ("vidur", False)
    t = load_trace(VIDUR)
    assert len(t) == 1000  # the excerpt's rows
    assert t.input_tokens[:2].tolist() == [3772, 2015]
    assert t.output_tokens[:2].tolist() == [54, 156]
    assert np.all(t.arrival_s == 0)
    assert "no timestamps" in t.source


def test_vllm_request_log_reads_as_generic_jsonl():
    t = load_trace(VLLM_REQUESTS)
    assert len(t) == 300
    assert read_trace(VLLM_REQUESTS).format == "generic"
    assert t.input_tokens[:3].tolist() == [2358, 1034, 1320]
    assert t.output_tokens[:3].tolist() == [531, 769, 769]
    assert t.arrival_s[1] == pytest.approx(1787267980.3478317 - 1787267980.0827403)
    assert t.rate_rps == pytest.approx(10.3, abs=0.1)


def test_format_autodetect_and_explicit_format():
    assert sniff(AZURE_CONV) == ("azure", True)
    assert sniff(AZURE_CONV, "azure") == ("azure", True)
    with pytest.raises(SpecError, match=r"missing column 'num_prefill_tokens'"):
        sniff(AZURE_CONV, "vidur")


def test_relative_path_resolves_against_repo_root(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert len(load_trace("simulate/traces/azure_code.csv")) == 8819


# ---------------------------------------------------------------- generic files


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_generic_csv_sorted_and_relative_to_first(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,prompt_len,output_len\n12.5,10,3\n10.0,20,4\n11.0,30,5\n")
    t = load_trace(p)
    assert t.arrival_s.tolist() == [0.0, 1.0, 2.5]
    assert t.input_tokens.tolist() == [20, 30, 10]
    assert t.output_tokens.tolist() == [4, 5, 3]
    assert t.source == "trace (t.csv), 3 requests, 0.8 req/s"


def test_generic_jsonl_with_iso_timestamps(tmp_path):
    p = _write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"arrival_time": "2024-01-01T00:00:00", "input_tokens": 5, "output_tokens": 1},
            {"arrival_time": "2024-01-01T00:00:01.5", "input_tokens": 6, "output_tokens": 2},
        ],
    )
    t = load_trace(p)
    assert t.arrival_s.tolist() == [0.0, 1.5]
    assert t.input_tokens.tolist() == [5, 6]


def test_generic_lengths_only_csv(tmp_path):
    p = tmp_path / "lengths.csv"
    p.write_text("input_len,output_tokens\n100,10\n200,20\n")
    assert sniff(p) == ("generic", False)
    assert load_trace(p).input_tokens.tolist() == [100, 200]


def test_whole_number_floats_are_accepted(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("timestamp_s,input_length,output_length\n0,100.0,10\n1,200.0,20\n")
    assert load_trace(p).input_tokens.tolist() == [100, 200]


def test_loaded_trace_is_a_copy(tmp_path):
    t = load_trace(AZURE_CODE)
    t.input_tokens[0] = -5
    assert load_trace(AZURE_CODE).input_tokens[0] == 4808


# ---------------------------------------------------------------- bad files


def test_missing_file():
    with pytest.raises(SpecError, match=r"trace file 'no/such/trace.csv' not found"):
        load_trace("no/such/trace.csv")
    with pytest.raises(SpecError, match=r"not found"):
        read_trace("/no/such/trace.csv")


def test_missing_generic_input_column_names_file_and_accepted_names(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("arrival_s,tokens_in,output_tokens\n0,5,5\n")
    with pytest.raises(SpecError) as e:
        load_trace(p)
    msg = str(e.value)
    assert "bad.csv" in msg and "missing input-length column" in msg
    assert "input_tokens, input_len, prompt_len, input_length" in msg
    assert "tokens_in" in msg  # what was found
    assert "\n" not in msg


def test_missing_generic_output_column(tmp_path):
    p = _write_jsonl(tmp_path / "bad.jsonl", [{"arrival_s": 0, "input_tokens": 3}])
    with pytest.raises(
        SpecError,
        match=r"bad.jsonl: missing output-length column; expected "
        r"one of output_tokens, output_len, output_length",
    ):
        load_trace(p)


def test_missing_azure_column(tmp_path):
    p = tmp_path / "azure.csv"
    p.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,374\n")
    with pytest.raises(
        SpecError,
        match=r"azure.csv: missing column 'GeneratedTokens' "
        r"\(azure traces have columns TIMESTAMP, ContextTokens, "
        r"GeneratedTokens",
    ):
        load_trace(p, fmt="azure")


def test_negative_length_names_the_row(tmp_path):
    p = tmp_path / "neg.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,5,5\n1,6,6\n2,-3,7\n")
    with pytest.raises(
        SpecError,
        match=r"neg.csv row 3 \(line 4\): input_tokens is -3; "
        r"token counts must be whole numbers >= 1",
    ):
        load_trace(p)


def test_zero_output_length_names_the_row_in_jsonl(tmp_path):
    p = _write_jsonl(
        tmp_path / "zero.jsonl",
        [
            {"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [0]},
            {"timestamp": 5, "input_length": 5, "output_length": 0, "hash_ids": [0]},
        ],
    )
    with pytest.raises(SpecError, match=r"zero.jsonl row 2 \(line 2\): output_length is 0"):
        load_trace(p)
    # blank lines are skipped but still counted in the line number
    p.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n\n{"timestamp": 1, "input_length": 5}\n')
    with pytest.raises(SpecError, match=r"row 2 \(line 3\): output_length is empty"):
        load_trace(p)


def test_missing_value_and_fraction_are_errors(tmp_path):
    p = tmp_path / "gap.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,5,5\n1,,6\n")
    with pytest.raises(SpecError, match=r"gap.csv row 2 \(line 3\): input_tokens"):
        load_trace(p)
    p.write_text("arrival_s,input_tokens,output_tokens\n0,5.5,5\n")
    with pytest.raises(SpecError, match=r"row 1 \(line 2\): input_tokens is 5.5"):
        load_trace(p)


def test_bad_timestamp_names_the_row(tmp_path):
    p = tmp_path / "azure.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\nyesterday,396,109\n")
    with pytest.raises(SpecError, match=r"azure.csv row 2 \(line 3\): TIMESTAMP is 'yesterday'"):
        load_trace(p)
    q = tmp_path / "secs.csv"
    q.write_text("arrival_s,input_tokens,output_tokens\n0,5,5\nsoon,6,6\n")
    with pytest.raises(
        SpecError,
        match=r"secs.csv row 2 \(line 3\): arrival_s is 'soon', "
        r"not a number",
    ):
        load_trace(q)


def test_unsupported_extension_and_empty_files(tmp_path):
    p = tmp_path / "trace.parquet"
    p.write_text("x")
    with pytest.raises(
        SpecError,
        match=r"unsupported trace file type '.parquet'; expected "
        r"one of .csv, .jsonl",
    ):
        load_trace(p)
    e = tmp_path / "empty.jsonl"
    e.write_text("\n")
    with pytest.raises(SpecError, match=r"empty.jsonl: trace file is empty"):
        load_trace(e)
    h = tmp_path / "header.csv"
    h.write_text("arrival_s,input_tokens,output_tokens\n")
    with pytest.raises(SpecError, match=r"header.csv: trace has no requests"):
        load_trace(h)


def test_unknown_format_name():
    with pytest.raises(SpecError, match=r"format 'sharegpt' is not one of auto, azure"):
        load_trace(AZURE_CODE, fmt="sharegpt")


def test_malformed_jsonl(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text('{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n{"arrival_s": 1,\n')
    with pytest.raises(SpecError, match=r"broken.jsonl line 2: not valid JSON"):
        load_trace(p)


def test_cache_sees_a_rewritten_file(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,5,5\n")
    assert load_trace(p).input_tokens.tolist() == [5]
    p.write_text("arrival_s,input_tokens,output_tokens\n0,7,5\n1,8,8\n")
    assert load_trace(p).input_tokens.tolist() == [7, 8]
