"""`frontier predict`, `frontier train`, `frontier calibration` through click."""

from __future__ import annotations

import csv
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from frontier.cli import FrontierGroup
from frontier.predict.cli import commands

from .conftest import H100


@pytest.fixture(scope="module")
def cli():
    group = FrontierGroup("frontier")
    for cmd in commands:
        group.add_command(cmd)
    return group


GOOD = {
    "gemm": "m,k,n,layer\n1,4096,6144,qkv\n4096,4096,14336,up\n",
    "attn_prefill": "batch,seq,hq,hkv,d,backend,note\n4,2048,32,8,128,cudnn,x\n1,512,32,8,128,,y\n",
    "attn_decode": "batch,kv_len,hq,hkv,d\n64,4096,32,8,128\n1,128,32,8,128\n",
    "grouped_gemm": (
        "experts,topk,tokens,k,n,skew,max_per_expert\n128,8,1024,2048,1536,1.2,1009\n128,8,1024,2048,1536,0,\n"
    ),
}
MISSING = {"gemm": "k", "attn_prefill": "hkv", "attn_decode": "kv_len", "grouped_gemm": "topk"}


@pytest.mark.parametrize("op", list(GOOD))
def test_predict_adds_pred_ms_and_keeps_every_column(op, cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(GOOD[op])
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", op, str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    df_in = pd.read_csv(src, dtype=str, keep_default_na=False)
    df_out = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df_out.columns) == list(df_in.columns) + ["pred_ms"]
    pd.testing.assert_frame_equal(df_out[df_in.columns], df_in)  # copied exactly
    assert (df_out["pred_ms"].astype(float) > 0).all()


def test_predict_prints_the_csv_without_o(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(GOOD["gemm"])
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "gemm", str(src)])
    assert res.exit_code == 0 and res.output.startswith("m,k,n,layer,pred_ms")


def test_predicted_values_match_the_table(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("batch,kv_len,hq,hkv,d,backend\n64,4096,32,8,128,flash\n")
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "attn_decode", str(src)])
    pred = float(res.output.strip().splitlines()[-1].split(",")[-1])
    assert pred == pytest.approx(0.41, rel=0.05)  # measured llama3-8b flash b64 kv4096


@pytest.mark.parametrize("op", list(MISSING))
def test_a_missing_column_is_one_clear_error(op, cli, tmp_path):
    header, *rows = GOOD[op].splitlines()
    cols = header.split(",")
    drop = cols.index(MISSING[op])
    lines = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in [header] + rows]
    src = tmp_path / "bad.csv"
    src.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", op, str(src)])
    assert res.exit_code == 2
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    assert f"missing column {MISSING[op]}" in out and f"--op {op} needs" in out


@pytest.mark.parametrize(
    "content,message",
    [
        ("m,k,n\n1,x,3\n", "row 2, column k: 'x' is not a positive integer"),
        ("m,k,n\n0,4096,4096\n", "row 2, column m"),
        ("m,k,n,dtype\n1,2,3,int4\n", "'int4' is not one of bf16 | fp16 | fp8"),
        ("m,k,n\n", "no rows to predict"),
    ],
)
def test_bad_values_are_one_clear_error(content, message, cli, tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "gemm", str(src)])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_bad_file_and_iteration_errors(cli, tmp_path):
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "gemm", str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and "input file not found" in res.output
    src = tmp_path / "it.csv"
    src.write_text("model,phase,batch\nllama-3.1-8b,decode,8\n")
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "iteration", str(src)])
    assert res.exit_code == 2 and "missing column seq_or_kv" in res.output
    src.write_text("model,phase,batch,seq_or_kv\nllama-3.1-8b,verify,8,1024\n")
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "iteration", str(src)])
    assert res.exit_code == 2 and "phase must be prefill or decode" in res.output
    src.write_text("model,phase,batch,seq_or_kv\nllama-9b,decode,8,1024\n")
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "iteration", str(src)])
    assert res.exit_code == 2 and "unknown model 'llama-9b'" in res.output


def test_iteration_is_the_whole_step(cli, tmp_path):
    from frontier.ops.graph import BatchStats, Parallel
    from frontier.predict import load_predictor
    from frontier.predict.step import BlockCosts, Sequential, StepOverheads
    from frontier.spec.model import load_model

    src, out = tmp_path / "it.csv", tmp_path / "out.csv"
    src.write_text(
        "model,phase,batch,seq_or_kv,tp,tag\n"
        "llama-3.1-8b,decode,8,1024,1,a\nllama-3.1-8b,decode,128,1024,1,b\n"
        "llama-3.1-8b,prefill,1,2048,1,c\nllama-3.1-70b,decode,8,1024,4,d\n"
    )
    res = CliRunner().invoke(cli, ["predict", "--gpu", H100, "--op", "iteration", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    ms = [float(r["pred_ms"]) for r in rows]
    assert [r["tag"] for r in rows] == ["a", "b", "c", "d"]
    # The envelope for a Llama-3.1-8B decode step on one H100 with CUDA graphs: 7-22 ms.
    assert 7 <= ms[0] <= ms[1] <= 22
    # A 2,048-token prefill is compute-bound: 2 x 8.0e9 x 2048 FLOP at 989 TFLOPS is 33 ms.
    assert 33 < ms[2] < 66
    model = load_model("llama-3.1-8b")
    direct = Sequential(BlockCosts(model, Parallel(), load_predictor(H100), StepOverheads(cpu_overhead_ms=0.0)))
    stats = BatchStats(num_decode=8, decode_sum_kv=8 * 1024, decode_max_kv=1024, num_sampled=8)
    assert ms[0] == pytest.approx(direct.step(stats).total_s * 1e3, rel=1e-5)


def test_train_command(cli, gemm_only_root):
    res = CliRunner().invoke(cli, ["train", "--gpu", H100, "--no-validate", "--calibration-dir", str(gemm_only_root)])
    assert res.exit_code == 0, res.output
    assert (gemm_only_root / H100 / "predictors" / "gemm.json").exists()
    res = CliRunner().invoke(cli, ["train", "--gpu", "h100-pcie", "--calibration-dir", str(gemm_only_root)])
    assert res.exit_code == 2 and "no calibration tables for h100-pcie" in res.output


def test_import_aiconfigurator_without_the_extra(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)
    monkeypatch.setitem(sys.modules, "aiconfigurator", None)
    res = CliRunner().invoke(cli, ["calibration", "import-aiconfigurator", "--system", "h100_sxm", "--backend", "vllm"])
    assert res.exit_code == 2 and "optional 'aiconfigurator' extra" in res.output
    assert "pip install 'aiconfigurator>=0.12'" in res.output
