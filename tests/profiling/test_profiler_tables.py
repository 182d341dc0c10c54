"""The table writer: contract header, append-as-you-go, resume keys, refusing foreign files."""

from __future__ import annotations

import csv

import pytest

from profiler.tables import TableError, TableWriter, columns, key_columns


def test_header_is_fields_then_times_then_labels():
    assert columns("gemm")[:6] == ("m", "k", "n", "dtype", "ms", "ms_min")
    assert columns("memcpy") == ("direction", "size_bytes", "ms", "ms_min", "gbps")
    assert key_columns("collective") == ("kind", "size_bytes", "world", "link", "backend")


def test_append_then_resume(tmp_path):
    w = TableWriter("gemm", tmp_path)
    row = {
        "m": 16,
        "k": 4096,
        "n": 6144,
        "dtype": "bf16",
        "backend": "cublas",
        "ms": 0.0123456789,
        "ms_min": 0.012,
        "name": "x.qkv",
    }
    w.append(row)
    again = TableWriter("gemm", tmp_path)
    assert again.has({"m": 16.0, "k": "4096", "n": 6144, "dtype": "bf16", "backend": "cublas"})
    assert not again.has({"m": 32, "k": 4096, "n": 6144, "dtype": "bf16", "backend": "cublas"})
    with open(tmp_path / "gemm.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["ms"] == "0.0123457" and rows[0]["name"] == "x.qkv"


def test_defaults_fill_missing_key_columns(tmp_path):
    (tmp_path / "gemm.csv").write_text("m,k,n,dtype,ms,ms_min,name\n1,4096,6144,bf16,0.03,0.029,ref\n")
    w = TableWriter("gemm", tmp_path)  # a table without `backend` (the reference import)
    assert w.header[-1] == "name"
    assert not w.has({"m": 1, "k": 4096, "n": 6144, "dtype": "bf16", "backend": "cublas"})
    w.append({"m": 2, "k": 4096, "n": 6144, "dtype": "bf16", "backend": "cublas", "ms": 1, "ms_min": 1})
    assert (tmp_path / "gemm.csv").read_text().splitlines()[-1] == "2,4096,6144,bf16,1,1,"


def test_a_table_without_the_contract_is_refused(tmp_path):
    (tmp_path / "attn_decode.csv").write_text("heads,batch,kv_len,ms\nx,1,128,0.01\n")
    with pytest.raises(TableError, match="lacks the contract columns"):
        TableWriter("attn_decode", tmp_path)
