"""`python -m profiler --dry-run --out DIR` writes every table in the contract format, and resumes."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from frontier.ops.operators import AttnDecode, AttnPrefill, Collective, Elementwise, Gemm, GroupedGemm, table_fields
from profiler import FAMILIES
from profiler.tables import FIXED_SCHEMAS

from profiler_helpers import run_profiler

pytest.importorskip("torch")

OPERATORS = {
    "gemm": Gemm,
    "attn_prefill": AttnPrefill,
    "attn_decode": AttnDecode,
    "grouped_gemm": GroupedGemm,
    "elementwise": Elementwise,
    "collective": Collective,
}


def read(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def contract(family):
    if family in FIXED_SCHEMAS:
        return list(FIXED_SCHEMAS[family][0]) + ["ms", "ms_min"]
    return [f.name for f in table_fields(OPERATORS[family])] + ["ms", "ms_min"]


@pytest.mark.parametrize("family", FAMILIES)
def test_table_has_the_contract_columns_then_labels(dry_run_dir, family):
    header, rows = read(dry_run_dir / f"{family}.csv")
    expected = contract(family)
    assert header[: len(expected)] == expected
    assert len(set(header)) == len(header)
    assert rows, f"{family}: no rows"
    for row in rows:
        assert 0 < float(row["ms_min"]) <= float(row["ms"])


@pytest.mark.parametrize("family", [f for f in FAMILIES if f in OPERATORS])
def test_rows_rebuild_their_operators(dry_run_dir, family):
    cls = OPERATORS[family]
    _, rows = read(dry_run_dir / f"{family}.csv")
    for row in rows:
        kwargs = {}
        for f in table_fields(cls):
            kwargs[f.name] = int(row[f.name]) if f.type in ("int", int) else row[f.name]
        op = cls(**kwargs)
        assert op.family == family


def test_uniform_prefill_rows_match_the_dataclass_stats(dry_run_dir):
    _, rows = read(dry_run_dir / "attn_prefill.csv")
    chunked = [r for r in rows if r["case"] == "chunked" and r["model"] == "tiny-dense"]
    assert len(chunked) == 1
    r = chunked[0]  # 2 sequences, 8 new tokens on 16 cached, 4 q heads / 2 kv heads of 16
    expected = AttnPrefill.uniform(2, 8, 4, 2, 16, context=16, backend=r["backend"])
    got = AttnPrefill(*(int(r[f.name]) for f in table_fields(AttnPrefill)[:-1]), backend=r["backend"])
    assert got == expected
    assert (expected.sum_q, expected.sum_q2, expected.sum_qc, expected.max_kv) == (16, 128, 256, 24)
    ragged = [r for r in rows if r["case"] in ("ragged", "mixed")]
    assert ragged and all(int(r["sum_q2"]) >= int(r["sum_q"]) for r in ragged)


def test_decode_rows_cover_mla_and_contiguous_kv(dry_run_dir):
    _, rows = read(dry_run_dir / "attn_decode.csv")
    mla = [r for r in rows if r["case"].startswith("mla")]
    assert mla and all((r["hkv"], r["d"], r["dv"]) == ("1", "48", "32") for r in mla if "tp2" not in r["model"])
    assert {r["batch"] for r in rows} >= {"1", "3"}


def test_grouped_gemm_routing_columns(dry_run_dir):
    _, rows = read(dry_run_dir / "grouped_gemm.csv")
    assert {r["backend"] for r in rows} >= {"grouped_mm", "loop"}
    for r in rows:
        tokens, topk, experts = int(r["tokens"]), int(r["topk"]), int(r["experts"])
        assert 1 <= int(r["active_experts"]) <= min(experts, tokens * topk)
        # the busiest expert holds at least the mean and at most one row per token
        assert tokens * topk / int(r["active_experts"]) <= int(r["max_per_expert"]) <= tokens
    assert {r["skew"] for r in rows} == {"0", "1.2"}


def test_gloo_collectives_with_two_processes(dry_run_dir):
    _, rows = read(dry_run_dir / "collective.csv")
    assert {r["kind"] for r in rows} == {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"}
    assert {(r["world"], r["backend"]) for r in rows} == {("2", "gloo")}
    for r in rows:
        algbw = int(r["size_bytes"]) / (float(r["ms"]) * 1e6)
        factor = 1.0 if r["kind"] in ("all_reduce",) else 0.5
        factor = 1.0 if r["kind"] == "send_recv" else factor
        assert float(r["busbw_gbps"]) == pytest.approx(algbw * factor, rel=1e-3)


def test_meta_json(dry_run_dir):
    meta = json.loads((dry_run_dir / "meta.json").read_text())
    for key in ("gpu_name", "sm_count", "torch", "triton", "cuda", "date", "host", "command", "method"):
        assert key in meta
    assert meta["command"].startswith("python -m profiler --dry-run --out")
    method = meta["method"]
    assert method["warmup"] >= 1 and method["reps"] >= 3 and method["l2_flush_bytes"] > 0
    assert "spin_ms" in method
    for family in FAMILIES:
        assert meta["sources"][family]["source"] == "frontier profiler"
        assert meta["sources"][family]["rows"] > 0
    assert not [n for n in meta["notes"] if n["kind"] == "error"], meta["notes"]


def test_resume_measures_only_missing_rows(dry_run_dir, tmp_path):
    out = tmp_path / "tables"
    shutil.copytree(dry_run_dir, out)
    header, rows = read(out / "gemm.csv")
    kept, dropped = rows[:-5], rows[-5:]
    with open(out / "gemm.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(kept)
    result = run_profiler("--dry-run", "--out", str(out), "--ops", "gemm,memcpy")
    assert result.returncode == 0, result.stderr[-2000:]
    _, after = read(out / "gemm.csv")
    assert after[: len(kept)] == kept  # measured rows untouched
    key = lambda r: (r["m"], r["k"], r["n"], r["dtype"], r["backend"])
    assert sorted(map(key, after[len(kept) :])) == sorted(map(key, dropped))
    _, memcpy_rows = read(out / "memcpy.csv")
    assert len(memcpy_rows) == len(read(dry_run_dir / "memcpy.csv")[1])  # nothing new
    meta = json.loads((out / "meta.json").read_text())
    assert meta["runs"][-1]["rows_written"] == {"gemm": 5, "memcpy": 0}
    assert "5 to measure" in result.stderr


def test_decode_steps_time_whole_layers_alone_and_eagerly(dry_run_dir):
    from frontier.ops.graph import decoder_layer
    from profiler.bench.step import LAYERS
    from profiler.shapes import tiny_models

    _, rows = read(dry_run_dir / "decode_step.csv")
    specs = {spec.name: spec for spec in tiny_models()}
    assert {r["model"] for r in rows} == set(specs)
    for r in rows:
        assert int(r["kernels"]) == len(decoder_layer(specs[r["model"]], int(r["batch"]), int(r["kv"])))
        assert int(r["layers"]) == LAYERS
        assert float(r["ms_per_layer"]) == pytest.approx(float(r["ms"]) / LAYERS, rel=1e-3)
    # Each (model, batch, kv) timed both ways; graph replays need a GPU, and a note says so.
    shapes = {(r["model"], r["batch"], r["kv"]) for r in rows}
    assert sorted(r["mode"] for r in rows) == sorted(["alone", "eager"] * len(shapes))
    meta = json.loads((dry_run_dir / "meta.json").read_text())
    graph = [n for n in meta["notes"] if n["where"].startswith("decode_step/") and n["where"].endswith("/graph")]
    assert graph and all(n["message"] == "CUDA graphs need a GPU" for n in graph)
