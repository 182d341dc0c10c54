"""build_requests on traces: replay, time_scale, windows, caps, re-timing, overrides."""

from pathlib import Path

import numpy as np
import pytest

from frontier.errors import SpecError
from frontier.workload import RequestTable, TraceSpec, WorkloadSpec, build_requests, load_trace

AZURE = "simulate/traces/azure_conv.csv"
TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"  # excerpts of ../shared/traces
MOONCAKE = TRACES / "mooncake-fast25" / "conversation_trace_excerpt.jsonl"
VIDUR = TRACES / "vidur-processed" / "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"


def build(d, seed=0) -> RequestTable:
    return build_requests(WorkloadSpec.from_dict(d), np.random.default_rng(seed))


def test_plain_replay_equals_load_trace():
    t = build({"trace": {"path": AZURE}})
    ref = load_trace(AZURE)
    assert np.array_equal(t.arrival_s, ref.arrival_s)
    assert np.array_equal(t.input_tokens, ref.input_tokens)
    assert np.array_equal(t.output_tokens, ref.output_tokens)
    assert t.source == ref.source


def test_time_scale_compresses_time_and_keeps_lengths():
    ref = load_trace(AZURE)
    t = build({"trace": {"path": AZURE, "time_scale": 2}})
    assert np.allclose(t.arrival_s, ref.arrival_s / 2, rtol=0, atol=1e-12)
    assert t.rate_rps == pytest.approx(2 * ref.rate_rps)
    assert np.array_equal(t.input_tokens, ref.input_tokens)
    slow = build({"trace": {"path": AZURE, "time_scale": 0.5}})
    assert slow.arrival_s[-1] == pytest.approx(2 * ref.arrival_s[-1])
    assert t.source.endswith("11.1 req/s, time_scale 2")


def test_num_requests_keeps_the_first_n():
    ref = load_trace(AZURE)
    t = build({"trace": {"path": AZURE}, "num_requests": 100})
    assert len(t) == 100
    assert np.array_equal(t.input_tokens, ref.input_tokens[:100])
    assert np.array_equal(t.arrival_s, ref.arrival_s[:100])
    assert len(build({"trace": {"path": AZURE}, "num_requests": 10**6})) == len(ref)


def test_window_rezeroes_at_the_first_kept_request():
    ref = load_trace(AZURE)
    t = build({"trace": {"path": AZURE, "start_s": 600, "duration_s": 300}})
    keep = (ref.arrival_s >= 600) & (ref.arrival_s < 900)
    assert len(t) == keep.sum() > 1000
    assert t.arrival_s[0] == 0.0
    assert np.allclose(t.arrival_s, ref.arrival_s[keep] - ref.arrival_s[keep][0])
    assert np.array_equal(t.input_tokens, ref.input_tokens[keep])
    assert "trace window from 600 s for 300 s" in t.source


def test_window_past_the_end_is_an_error():
    with pytest.raises(
        SpecError,
        match=r"workload.trace: no requests between start_s 5000 s "
        r"and inf s; trace 'azure_conv.csv' spans 0 to 3502 s",
    ):
        build({"trace": {"path": AZURE, "start_s": 5000}})


def test_retiming_keeps_lengths_and_order_and_uses_the_process():
    ref = load_trace(AZURE)
    t = build({"trace": {"path": AZURE}, "num_requests": 2000, "arrival": {"process": "constant", "rate": 20}})
    assert np.array_equal(t.input_tokens, ref.input_tokens[:2000])
    assert np.array_equal(t.output_tokens, ref.output_tokens[:2000])
    assert np.array_equal(t.arrival_s, np.arange(2000) / 20.0)
    assert t.source == (
        "Azure LLM inference 2023 conv trace (azure_conv.csv), 2000 requests, constant 20 req/s (re-timed)"
    )
    p = build({"trace": {"path": AZURE}, "arrival": {"process": "poisson", "rate": 50}}, seed=3)
    assert len(p) == len(ref)
    assert p.rate_rps == pytest.approx(50, rel=0.03)


def test_retimed_trace_is_reproducible():
    d = {"trace": {"path": AZURE}, "num_requests": 300, "arrival": {"rate": 9}}
    assert np.array_equal(build(d, seed=5).arrival_s, build(d, seed=5).arrival_s)
    assert not np.array_equal(build(d, seed=5).arrival_s, build(d, seed=6).arrival_s)


def test_output_len_override_and_concurrency():
    ref = load_trace(AZURE)
    t = build({"trace": {"path": AZURE}, "num_requests": 50, "output_len": 16, "concurrency": 4})
    assert t.output_tokens.tolist() == [16] * 50
    assert np.array_equal(t.input_tokens, ref.input_tokens[:50])
    assert t.concurrency == 4
    assert t.source.endswith(", output fixed 16, at most 4 in flight")


def test_build_results_do_not_alias_the_cached_trace():
    t = build({"trace": {"path": AZURE}})
    t.input_tokens[0] = 99999
    t.arrival_s[1] = 0.0
    assert build({"trace": {"path": AZURE}}).input_tokens[0] == 374
    assert load_trace(AZURE).arrival_s[1] > 0


def test_mooncake_replay_keeps_prefix_blocks_unless_inputs_change():
    t = build({"trace": {"path": str(MOONCAKE)}, "num_requests": 20})
    assert t.block_tokens == 512 and len(t.prefix_blocks) == 20
    assert t.prefix_blocks[0] == tuple(range(14))
    u = build({"trace": {"path": str(MOONCAKE)}, "num_requests": 20, "input_len": 100})
    assert u.prefix_blocks is None and u.input_tokens.tolist() == [100] * 20


def test_mooncake_window_selects_blocks_of_the_same_rows():
    ref = load_trace(MOONCAKE)
    t = build({"trace": {"path": str(MOONCAKE), "start_s": 1800}, "num_requests": 5})
    first = int(np.argmax(ref.arrival_s >= 1800))
    assert t.prefix_blocks == ref.prefix_blocks[first : first + 5]
    assert np.array_equal(t.input_tokens, ref.input_tokens[first : first + 5])


def test_vidur_needs_and_takes_an_arrival_process():
    t = build(
        {"trace": {"path": str(VIDUR)}, "num_requests": 1000, "arrival": {"process": "gamma", "rate": 4, "cv": 2}}
    )
    assert len(t) == 1000 and t.input_tokens[:2].tolist() == [3772, 2015]
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s[0] == 0
    # A spec built without from_dict's checks still fails clearly at build time.
    spec = WorkloadSpec(trace=TraceSpec(path=VIDUR, format="vidur"))
    with pytest.raises(
        SpecError,
        match=r"workload.arrival: required, trace "
        r"'arxiv_summarization.*' \(vidur format\) has no "
        r"timestamps",
    ):
        build_requests(spec, np.random.default_rng(0))


def test_head():
    t = load_trace(AZURE)
    h = t.head(3)
    assert len(h) == 3 and h.input_tokens.tolist() == [374, 396, 879]
    assert h.source.endswith("(first 3)")
    assert t.head(10**6) is t
    assert len(t.head(0)) == 0


def test_request_table_rejects_inconsistent_columns():
    with pytest.raises(ValueError, match="differ in length"):
        RequestTable(np.zeros(2), np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="sorted"):
        RequestTable(np.array([1.0, 0.0]), np.ones(2), np.ones(2))
