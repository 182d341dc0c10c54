"""The aiconfigurator importer's conversions, on hand-written rows in its perf-database format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from frontier.ops.operators import AttnDecode, AttnPrefill
from frontier.predict import aiconfigurator as aic
from frontier.predict import calibration as cal

DEV = "NVIDIA H200"
COMMON = {"framework": "VLLM", "version": "0.24.0", "device": DEV}


def gemm_rows():
    return pd.DataFrame(
        [
            {
                **COMMON,
                "op_name": "gemm",
                "kernel_source": "torch.nn.functional.linear",
                "gemm_dtype": "bfloat16",
                "m": 16,
                "n": 4096,
                "k": 4096,
                "latency": 0.021,
            },
            {
                **COMMON,
                "op_name": "gemm",
                "kernel_source": "CutlassFP8ScaledMMLinearKernel",
                "gemm_dtype": "fp8",
                "m": 16,
                "n": 4096,
                "k": 4096,
                "latency": 0.015,
            },
            {
                **COMMON,
                "op_name": "gemm",
                "kernel_source": "CutlassFP8ScaledMMLinearKernel",
                "gemm_dtype": "fp8",
                "m": 32,
                "n": 4096,
                "k": 4096,
                "latency": 0.016,
            },
            {
                **COMMON,
                "op_name": "gemm",
                "kernel_source": "DeepGemmFp8BlockScaledMMKernel",
                "gemm_dtype": "fp8",
                "m": 16,
                "n": 4096,
                "k": 4096,
                "latency": 0.030,
            },
            {
                **COMMON,
                "op_name": "gemm",
                "kernel_source": "DeepGemmFp8BlockScaledMMKernel",
                "gemm_dtype": "fp8_block",
                "m": 16,
                "n": 4096,
                "k": 4096,
                "latency": 0.019,
            },
        ]
    )


def attention_rows(op_name: str, isl: int, step: int):
    base = {
        **COMMON,
        "op_name": op_name,
        "num_heads": 32,
        "head_dim": 128,
        "beam_width": 1,
        "attn_dtype": "bfloat16",
        "isl": isl,
        "step": step,
    }
    return pd.DataFrame(
        [
            {
                **base,
                "kernel_source": "vllm_flash_attn_fa3",
                "batch_size": 4,
                "num_key_value_heads": 8,
                "kv_cache_dtype": "bfloat16",
                "window_size": 0,
                "latency": 0.2,
            },
            {
                **base,
                "kernel_source": "vllm_flash_attn_fa3",
                "batch_size": 4,
                "num_key_value_heads": 0,
                "kv_cache_dtype": "bfloat16",
                "window_size": 0,
                "latency": 0.3,
            },  # 0 KV heads = MHA
            {
                **base,
                "kernel_source": "vllm_flash_attn_fa3",
                "batch_size": 4,
                "num_key_value_heads": 8,
                "kv_cache_dtype": "fp8",
                "window_size": 0,
                "latency": 0.1,
            },
            {
                **base,
                "kernel_source": "vllm_flash_attn_fa3",
                "batch_size": 4,
                "num_key_value_heads": 8,
                "kv_cache_dtype": "bfloat16",
                "window_size": 128,
                "latency": 0.05,
            },
        ]
    )


def moe_rows():
    base = {
        **COMMON,
        "op_name": "moe",
        "hidden_size": 2048,
        "inter_size": 768,
        "topk": 8,
        "num_experts": 128,
        "moe_dtype": "bfloat16",
        "kernel_source": "vllm_unquantizedfusedmoe_triton_tritonexperts",
    }
    return pd.DataFrame(
        [
            {**base, "num_tokens": 64, "moe_tp_size": 1, "moe_ep_size": 1, "distribution": "balanced", "latency": 0.3},
            {
                **base,
                "num_tokens": 1024,
                "moe_tp_size": 2,
                "moe_ep_size": 1,
                "distribution": "power_law_1.2",
                "latency": 0.6,
            },
            {
                **base,
                "num_tokens": 64,
                "moe_tp_size": 1,
                "moe_ep_size": 8,
                "distribution": "balanced",
                "latency": 0.1,
            },  # expert parallel: skipped
            {
                **base,
                "num_tokens": 64,
                "moe_tp_size": 1,
                "moe_ep_size": 1,
                "moe_dtype": "fp8",
                "distribution": "balanced",
                "latency": 0.2,
            },  # fp8: skipped
        ]
    )


def nccl_rows():
    base = {"framework": "TRTLLM", "version": "2.29.2", "device": DEV, "kernel_source": "NCCL"}
    return pd.DataFrame(
        [
            {
                **base,
                "op_name": "all_reduce",
                "nccl_dtype": "half",
                "num_gpus": 8,
                "message_size": 1024,
                "latency": 0.0156,
            },
            {
                **base,
                "op_name": "alltoall",
                "nccl_dtype": "half",
                "num_gpus": 4,
                "message_size": 4096,
                "latency": 0.0075,
            },
            {
                **base,
                "op_name": "all_reduce",
                "nccl_dtype": "int8",
                "num_gpus": 8,
                "message_size": 1024,
                "latency": 0.0150,
            },
        ]
    )


def test_convert_gemm_keeps_each_dtypes_default_kernel():
    out = aic.convert_gemm(gemm_rows())
    assert list(out.columns[:6]) == cal.field_columns("gemm") + ["ms", "ms_min"]
    assert sorted(zip(out["dtype"], out["m"], out["ms"])) == [
        ("bf16", 16, 0.021),
        ("fp8", 16, 0.015),
        ("fp8", 32, 0.016),
    ]
    assert (out["ms_min"] == out["ms"]).all()


def test_convert_attention_prefill_and_decode():
    pre = aic.convert_context_attention(attention_rows("context_attention", 2048, 0))
    ops = cal.ops_from_frame(pre, "attn_prefill")
    assert ops == [
        AttnPrefill.uniform(4, 2048, 32, 8, 128, backend="flash"),
        AttnPrefill.uniform(4, 2048, 32, 32, 128, backend="flash"),
    ]
    assert pre["ms"].tolist() == [0.2, 0.3]
    dec = aic.convert_generation_attention(attention_rows("generation_attention", 1, 1023))
    assert cal.ops_from_frame(dec, "attn_decode")[0] == AttnDecode.uniform(4, 1024, 32, 8, 128)
    assert dec["kv_len"].tolist() == [1024, 1024]


def test_convert_moe_splits_the_fused_layer_into_two_grouped_gemms():
    out = aic.convert_moe(moe_rows())
    assert len(out) == 4  # 2 kept rows x (gate_up, down)
    first = out.iloc[:2]
    assert first["proj"].tolist() == ["gate_up", "down"]
    assert first[["k", "n"]].values.tolist() == [[2048, 1536], [768, 2048]]
    assert first["ms"].sum() == pytest.approx(0.3)  # 2/3 + 1/3 of the fused time
    assert first["ms"].iloc[0] == pytest.approx(0.2)
    assert first["max_per_expert"].iloc[0] == 4 and first["active_experts"].iloc[0] == 128
    assert first["backend"].iloc[0] == "triton"
    tp2 = out.iloc[2:]
    assert tp2["n"].iloc[0] == 2 * 384 and tp2["skew"].iloc[0] == 1.2  # TP-sharded inter
    assert tp2["max_per_expert"].iloc[0] > 900  # the hot expert


def test_convert_nccl_counts_bytes():
    out = aic.convert_nccl(nccl_rows())
    assert out[["kind", "size_bytes", "world", "link"]].values.tolist() == [
        ["all_reduce", 2048, 8, "nvlink"],
        ["all_to_all", 8192, 4, "nvlink"],
    ]


def test_import_writes_tables_and_provenance(tmp_path, monkeypatch):
    # A fake installed database (CSV content under the parquet names; read_parquet patched).
    root = tmp_path / "systems"
    files = {
        ("gemm", "vllm", "0.19.0"): ("gemm_perf.parquet", gemm_rows().head(1)),
        ("gemm", "vllm", "0.24.0"): ("gemm_perf.parquet", gemm_rows()),
        ("attention", "vllm", "0.24.0"): (
            "context_attention_perf.parquet",
            attention_rows("context_attention", 512, 0),
        ),
        ("moe", "vllm", "0.24.0"): ("moe_perf.parquet", moe_rows()),
        ("comm", "nccl", "2.29.2"): ("nccl_perf.parquet", nccl_rows()),
    }
    for (op, backend, version), (name, df) in files.items():
        d = root / "data" / "h200_sxm" / op / backend / version
        d.mkdir(parents=True)
        df.to_csv(d / name, index=False)
    quant = root / "data" / "h200_sxm" / "quantize" / "vllm" / "0.24.0"
    quant.mkdir(parents=True)
    for name, op, ms in (("scale_matrix_perf", "scale_matrix", 0.002), ("computescale_perf", "compute_scale", 0.001)):
        rows = [{**COMMON, "op_name": op, "m": m, "k": 4096, "quant_dtype": "fp8", "latency": ms} for m in (16, 32)]
        pd.DataFrame(rows).to_csv(quant / f"{name}.parquet", index=False)
    monkeypatch.setattr(aic.pd, "read_parquet", lambda path: pd.read_csv(path))
    dest = tmp_path / "calibration"
    gpu_dir = dest / "h200"
    network = "all_reduce,512,16,network,0.0465,NCCL issue NVIDIA/nccl#1244"
    (gpu_dir / "published").mkdir(parents=True)
    (gpu_dir / cal.PUBLISHED_NCCL).write_text("kind,size_bytes,world,link,ms,source\n" + network + "\n")
    done = aic.import_aiconfigurator("h200_sxm", "vllm", dest_root=dest, root=root)
    assert done["gpu"] == "h200"
    assert done["written"] == {"gemm": 3, "attn_prefill": 2, "grouped_gemm": 4, "collective": 2}
    assert done["missing"] == ["attn_decode"]
    assert done["aside"] == {"published/quant_fp8.csv": 2}
    assert pd.read_csv(gpu_dir / aic.FP8_QUANT)[["m", "scale_matrix_ms", "compute_scale_ms"]].values.tolist() == [
        [16, 0.002, 0.001],
        [32, 0.002, 0.001],
    ]
    # FP8 rows trained on as the GEMM alone: the quantisation they include (0.002 + 0.001) taken out
    gemm = cal.read_table(gpu_dir, "gemm").sort_values(["dtype", "m"])  # the newest version (0.24.0)
    assert gemm[["dtype", "m"]].values.tolist() == [["bf16", 16], ["fp8", 16], ["fp8", 32]]
    assert gemm["ms"].tolist() == pytest.approx([0.021, 0.012, 0.013])
    assert gemm["quant_ms"].tolist() == pytest.approx([0.0, 0.003, 0.003])
    # NCCL: published points beside the network figure already there, fitted, no trained table
    points = pd.read_csv(gpu_dir / cal.PUBLISHED_NCCL)
    assert sorted(points["link"]) == ["network", "nvlink", "nvlink"]
    assert not cal.table_path(gpu_dir, "collective").exists()
    meta = json.loads((gpu_dir / "meta.json").read_text())
    assert set(meta["collective_fit"]["fits"]) == {"network", "nvlink"}
    assert meta["sources"]["gemm"]["version"] == "0.24.0"
    assert meta["sources"]["gemm"]["dtypes"] == ["bf16", "fp8"]
    assert meta["sources"]["gemm"]["labels"]["kernel_source"] == {
        "bf16": "torch.nn.functional.linear",
        "fp8": "CutlassFP8ScaledMMLinearKernel",
    }
    assert "aiconfigurator" in meta["sources"]["gemm"]["provenance"]
    assert meta["device_name"] == DEV
    # importing again keeps what is there unless asked
    again = aic.import_aiconfigurator("h200_sxm", "vllm", dest_root=dest, root=root)
    assert again["written"] == {} and set(again["kept"]) == set(done["written"])


def test_without_quantisation_timings_fp8_rows_are_set_aside():
    table = aic.convert_gemm(gemm_rows())
    kept, aside = aic.set_aside("gemm", table)
    assert kept["dtype"].tolist() == ["bf16"]
    assert aside["fp8"]["ms"].tolist() == [0.015, 0.016]  # as measured, quantisation included


def test_thin_keeps_llm_shapes_and_moves_constant_labels():
    table = aic.convert_gemm(gemm_rows())
    table = pd.concat([table, table.assign(k=64)]).reset_index(drop=True)  # a 64-wide weight
    kept, labels = aic.thin("gemm", table[table["dtype"] == "fp8"])
    assert kept["k"].tolist() == [4096, 4096] and "kernel_source" not in kept.columns
    assert labels["kernel_source"] == "CutlassFP8ScaledMMLinearKernel"
    moe = aic.convert_moe(moe_rows())
    kept, _ = aic.thin("grouped_gemm", pd.concat([moe, moe.assign(tokens=48)]))
    assert sorted(set(kept["tokens"])) == sorted(set(moe["tokens"]))  # 48 is no power of two


def test_import_of_an_unknown_system_is_one_clear_error(tmp_path):
    (tmp_path / "data" / "h200_sxm").mkdir(parents=True)
    with pytest.raises(aic.FrontierError, match="no GPU spec matches"):
        aic.import_aiconfigurator("tpu_v9", "vllm", root=tmp_path, dest_root=tmp_path)
    with pytest.raises(aic.FrontierError, match="aiconfigurator has no system 'h100_sxm'"):
        aic.import_aiconfigurator("h100_sxm", "vllm", root=tmp_path, dest_root=tmp_path)
