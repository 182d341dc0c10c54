"""The engines' own kernels (dense GEMMs, fused MoE, MLA attention), where they were measured on
the GPU.

Dense GEMMs: the engine's linear layers as aiconfigurator timed them on the GPU, bf16 and FP8
(`gemm_<engine>_<release>.csv`), answer every GEMM whose dtype and (k, n) they cover: see
`DenseGemm` for why they, not the reference tables, describe a served step.

vLLM and SGLang do not run an MoE layer as the calibration's reference measured it
(`torch._grouped_mm`, one CUTLASS grouped GEMM per projection): they launch a fused MoE kernel
(vLLM: the Triton `fused_moe` of vllm/model_executor/layers/fused_moe/fused_moe.py, or Marlin
and `triton_kernels` for 4-bit weights; SGLang: its Triton `fused_moe` or DeepGEMM,
sglang/srt/layers/moe/), which sorts the routed tokens by expert (`moe_align_block_size`),
gathers them inside the GEMM and, for quantised weights, dequantises in the main loop. At
prefill sizes it reaches a smaller fraction of the tensor-core peak than the reference: in
aiconfigurator's measurements of both engines on H100 and H200, 1.2-1.8x the reference's time
for bf16 and FP8 block-scaled experts at 256+ rows per expert, 2-3x for int4 weight-only (Kimi
K2.5), while decode-sized batches agree within about 10 %.

Where a model's routed experts (hidden size, intermediate size per TP rank, experts, top-k,
precision) were measured for the engine on the GPU, its MoE layers are answered from those
measurements (`calibration/<gpu>/engine_kernels/fused_moe_<engine>_<release>.csv`): the fused
layer's time at the batch's token count, interpolated in log-log between measured counts (linear
in the tokens past the largest), in place of the two projections and the activation between
them (split 2/3 gate/up, 1/3 down by their FLOPs). The measurements route every token evenly,
so a batch of T tokens touches min(E, T x top-k) experts; a served batch routes at random and
touches fewer (frontier.ops.routing): a batch small enough to be bound by reading expert weights
takes the measured time scaled by its share of the experts the measurement touched. Where the
same experts were measured at other tensor-parallel widths only (e.g. TP1-4, not TP8), the
engine's time relative to the reference at the nearest measured width carries over to the
reference prediction at this width. An expert-parallel rank over tokens every rank holds runs the
same kernel over an expert map: where the engine was measured at that layout (aiconfigurator's
moe_tp 1 / moe_ep > 1 rows: one rank's E/ep experts at the full width) the measurement answers,
at the busiest rank's rows as if every rank had them; elsewhere it takes the engine/reference
ratio of its TP twin (all experts at width/ep, the same rows per expert: `_tensor_parallel_twin`),
which is no stand-in for the measured rank (Qwen3.5's 512 experts over 8 ranks on H200, SGLang
0.5.14, a layer: twin 0.28 ms against 0.18 measured at 64 tokens, 0.75 against 1.17 at 8,192;
on the development set its 1k / 8k-token runs' TPOT at 16-64 clients +10-30 % -> -9..+2 %).
Any other MoE layer (experts reached by an all-to-all: DeepEP's and DeepGEMM's kernels) keeps
the reference-based prediction. Where vLLM runs its experts on FlashInfer's CUTLASS MoE instead
of Triton (frontier.engine `vllm_flashinfer_cutlass_moe`: by release, expert precision and
layout on Hopper), TensorRT-LLM's measured CUTLASS MoE answers, the same runner that FlashInfer
vendors (`fused_moe_flashinfer-cutlass_<TensorRT-LLM release>.csv`, aiconfigurator's
`moe_torch_flow_cutlass` rows: `convert_cutlass_moe`); experts it has not measured keep vLLM's.

MLA prefill attention (DeepSeek-V3/R1, Kimi-K2.5: the latent expanded into per-head keys of 192
and values of 128 dims) is FlashAttention-3 at those head dims in both engines, answered from
the engine's dense FlashAttention-3 table (`DenseAttention._mla_prefill_ms`). aiconfigurator's
own `context_mla_perf` rows for SGLang 0.5.14 are not used: at 16 heads and 8,192 tokens they
take 1.99 ms, 3-4x the same kernel at 192-dim heads (0.60 ms x 320 / 384) and more than SGLang
0.5.10's whole MLA module with its projections (1.18 ms, `wideep_context_mla_perf`, same GPU);
with them InferenceMAX's DeepSeek-R1 runs on 8k prompts came out +30..+56 % on TTFT (now
+8..+31 %) and the disaggregated DeepSeek-V3 runs +49 % (now -23 %).

And MLA decode attention (the same models: one query per sequence against the cached 576-dim
latent, of which the first 512 dims are the value): the FlashAttention-3 MLA kernel as SGLang
measured it (`mla_decode_sglang_<release>.csv`, aiconfigurator's `generation_mla_perf`, bf16 KV
cache, equal-length batches) answers it by the heads of one TP rank, the batch and its mean
context, bilinear in log batch and log context. The reference attention tables were measured
with separate key and value heads; for a latent that is read once they give 1.7-2x the kernel's
time (8 heads, 64 sequences of 5,120 tokens on H200: 0.18 vs 0.11 ms). vLLM's FLASH_ATTN_MLA
backend (vllm/v1/attention/backends/mla/flashattn_mla.py) launches the same kernel: its whole
MLA decode module in aiconfigurator's `mla_generation_module_perf` (vLLM 0.24) grows with the
context as SGLang's kernel does (8 heads, 256 sequences, 2 to 8,192 tokens: +0.537 vs +0.543 ms),
so vLLM uses SGLang's table where it has none of its own.

MXFP4 experts on Hopper run OpenAI's `triton_kernels` by default; with `VLLM_MXFP4_USE_MARLIN=1`
(InferenceMAX's gpt-oss launch scripts set it, benchmarks/gptoss_fp4_h{100,200}.sh) vLLM runs
its Marlin MoE instead (vllm/model_executor/layers/quantization/mxfp4.py `get_mxfp4_backend`,
layers/fused_moe/fused_marlin_moe.py), which at prefill sizes is about half as fast: see
`MarlinMoE`.

And the gated-DeltaNet kernels of Qwen3.5's linear-attention layers (the causal convolution and
the gated delta rule, prefill and decode: `LinearAttention`): the engine's measured kernels
(`gdn_<engine>_<release>.csv`, aiconfigurator's `gdn_perf`, every Qwen3.5 size at TP1-16, one to
1,024 sequences of equal length), by the key and value heads of one TP rank: a prefill by its
sequences and their mean length (bilinear in log), a decode by its sequences (log-log). The
chunked delta rule runs the chunks of one sequence in order, so one long prompt takes longer
than as many tokens in several sequences (8,192 tokens on 8 value heads, H200: 0.32 ms as one
sequence, 0.14 ms as eight).

The tables are aiconfigurator's measured `moe_perf` rows (NVIDIA aiconfigurator 0.12, Apache-2.0;
data/<system>/moe/<engine>/<version>/moe_perf.parquet), balanced routing, tensor-parallel and
expert-parallel layouts (not both at once), converted by `convert` below: `frontier calibration
import-engine-kernels` (needs the optional `aiconfigurator` extra).
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from frontier.ops.operators import AttnDecode, AttnPrefill, Elementwise, GroupedGemm, LinearAttention, windowless
from frontier.predict.base import Predictor

FOLDER = "engine_kernels"
# aiconfigurator's moe_dtype -> the GEMM family's dtype (frontier.spec.quant.GEMM_DTYPE). Per-tensor
# FP8 experts are left out: the served FP8 MoE models (DeepSeek, Qwen3, MiniMax) are block-scaled,
# and the per-tensor rows (4-5x the block-scaled ones) time another code path.
DTYPES = {"bfloat16": "bf16", "fp8_block": "fp8", "w4a16_mxfp4": "w4a16", "int4_wo": "w4a16"}
MLA_HEAD_DIMS = (192, 128)  # DeepSeek-V3's expanded prefill heads: qk 128 + 64 rope, v 128
MLA_LATENT_DIMS = (576, 512)  # decode against the latent: kv_lora 512 + 64 rope, v = its first 512
GATE_UP_SHARE = 2.0 / 3.0  # of the fused layer's FLOPs (and time): 2 x inter x hidden of 3
COLUMNS = ["dtype", "hidden", "inter", "experts", "topk", "ep", "tokens", "ms", "moe_dtype", "kernel_source"]


def convert(df):
    """aiconfigurator moe_perf rows -> this module's table (one row per measured shape and count):
    the tensor-parallel layers (`ep` 1, `inter` per TP rank) and the expert-parallel ones without
    tensor parallelism (`ep` > 1: one rank's E/ep experts at the full width on `tokens` tokens
    every rank holds, aiconfigurator's moe_tp 1 / moe_ep > 1 rows), balanced routing."""
    import pandas as pd

    layouts = (df["moe_ep_size"] == 1) | (df["moe_tp_size"] == 1)
    rows = df[layouts & (df["distribution"] == "balanced") & df["moe_dtype"].isin(DTYPES)]
    out = pd.DataFrame(
        {
            "dtype": rows["moe_dtype"].map(DTYPES),
            "hidden": rows["hidden_size"].astype(int),
            "inter": (rows["inter_size"] // rows["moe_tp_size"]).astype(int),  # per TP rank
            "experts": rows["num_experts"].astype(int),
            "topk": rows["topk"].astype(int),
            "ep": rows["moe_ep_size"].astype(int),
            "tokens": rows["num_tokens"].astype(int),
            "ms": rows["latency"].astype(float),
            "moe_dtype": rows["moe_dtype"],
            "kernel_source": rows["kernel_source"],
        }
    )
    keys = ["dtype", "hidden", "inter", "experts", "topk", "ep", "tokens"]
    # Where a shape was timed with several kernels, the engine's usual one: the kernel most of
    # the table's rows of that precision used (e.g. SGLang's Triton fused_moe for bf16, not the
    # opt-in FlashInfer CUTLASS backend).
    usual = out.groupby("moe_dtype")["kernel_source"].agg(lambda k: k.value_counts().index[0])
    shape = keys[:-1]
    n_kernels = out.groupby(shape)["kernel_source"].transform("nunique")
    out = out[(n_kernels == 1) | (out["kernel_source"] == out["moe_dtype"].map(usual))]
    out = out.groupby(keys, as_index=False).agg(
        ms=("ms", "median"), moe_dtype=("moe_dtype", "first"), kernel_source=("kernel_source", "first")
    )
    return out[COLUMNS].sort_values(keys).reset_index(drop=True)


# FlashInfer's CUTLASS MoE, vLLM's other fused MoE (see the module docstring): the table's name in
# place of an engine's, measured in TensorRT-LLM, whose gated CUTLASS MoE runner FlashInfer ports.
CUTLASS_MOE = "flashinfer-cutlass"
CUTLASS_MOE_KERNEL = "moe_torch_flow_cutlass"
CUTLASS_MOE_DTYPES = ("bf16", "fp8")  # the experts vLLM runs on it: bf16 and block-FP8


def convert_cutlass_moe(df):
    """TensorRT-LLM's moe_perf rows -> FlashInfer CUTLASS MoE rows (`convert`'s table): its gated
    CUTLASS MoE on bf16 and block-FP8 experts, less the layouts measured slower than the same
    experts with more work per rank (`_slower_with_less_work`)."""
    rows = convert(df[df["kernel_source"] == CUTLASS_MOE_KERNEL])
    rows = rows[rows["dtype"].isin(CUTLASS_MOE_DTYPES)]
    return rows[~_slower_with_less_work(rows)].reset_index(drop=True)


def _slower_with_less_work(rows):
    """Which rows belong to a layout of some experts that takes longer (median over the shared
    token counts, by more than 5 %) than the next layout with more work per rank kept before it: a
    narrower tensor-parallel width, or more expert-parallel ranks. Less work per rank does not take
    longer; TensorRT-LLM 1.3.0rc20's bf16 rows hold 17-18 such layouts a GPU (of 170), at
    1.4-3.5x their neighbours' time (e.g. H200, hidden 5120, 16 experts, top-1: width 4096 per
    rank 3.4x width 8192), which its FP8 rows never do."""
    import pandas as pd

    faulty = pd.Series(False, index=rows.index)
    for _, shape in rows.groupby(["dtype", "hidden", "experts", "topk"]):
        for layouts in (
            [g for _, g in sorted(shape[shape["ep"] == 1].groupby("inter"), key=lambda kv: -kv[0])],
            [g for _, g in sorted(shape[shape["ep"] > 1].groupby("ep"), key=lambda kv: kv[0])],
        ):
            kept = None
            for g in layouts:
                ms = g.set_index("tokens")["ms"]
                ratio = (ms / kept).dropna() if kept is not None else pd.Series(dtype=float)
                if len(ratio) and ratio.median() > 1.05:
                    faulty[g.index] = True
                else:
                    kept = ms
    return faulty


def table_path(gpu_dir: Path, engine: str, version: str) -> Path:
    return Path(gpu_dir) / FOLDER / f"fused_moe_{engine}_{version}.csv"


class FusedMoE:
    """Measured fused-MoE layer times of one engine on one GPU, by expert shape and layout (`ep`:
    1 for tensor-parallel experts, else the expert-parallel size; a table without the column is
    all tensor-parallel)."""

    def __init__(self, rows):
        self._curves: dict[tuple, tuple[list[float], list[float]]] = {}
        self._widths: dict[tuple, list[int]] = {}  # (dtype, hidden, experts, topk) -> measured TP inters
        if "ep" not in rows:
            rows = rows.assign(ep=1)
        for key, g in rows.groupby(["dtype", "hidden", "inter", "experts", "topk", "ep"]):
            g = g.sort_values("tokens")
            self._curves[key] = ([math.log(t) for t in g["tokens"]], [math.log(m) for m in g["ms"]])
            dtype, hidden, inter, experts, topk, ep = key
            if ep == 1:
                self._widths.setdefault((dtype, hidden, experts, topk), []).append(int(inter))

    def nearest_width(self, dtype: str, hidden: int, inter: int, experts: int, topk: int) -> int | None:
        """The measured per-rank intermediate size closest (in ratio) to `inter` for the same
        experts, or None if no width of them was measured."""
        widths = self._widths.get((dtype, hidden, experts, topk))
        return None if not widths else min(widths, key=lambda w: abs(math.log(w / inter)))

    def layer_ms(
        self, dtype: str, hidden: int, inter: int, experts: int, topk: int, tokens: int, ep: int = 1
    ) -> float | None:
        """The fused layer's time for `tokens` tokens (with `ep` > 1: one rank's, its experts'
        rows of `tokens` every rank holds; `experts` counts them all), or None if the shape and
        layout were not measured."""
        curve = self._curves.get((dtype, hidden, inter, experts, topk, ep))
        return None if curve is None else _log_log(curve, max(tokens, 1))


def _log_log(curve: tuple[list[float], list[float]], x: float) -> float:
    """A measured curve (log x, log ms) at x: log-log between points, the first point's value
    below them, proportional to x past the last (the work grows, the rate stays)."""
    xs, ys = curve
    lx = math.log(x)
    if lx >= xs[-1]:
        return math.exp(ys[-1]) * x / math.exp(xs[-1])
    if lx <= xs[0]:
        return math.exp(ys[0])
    i = bisect.bisect_right(xs, lx)
    w = (lx - xs[i - 1]) / (xs[i] - xs[i - 1])
    return math.exp(ys[i - 1] + w * (ys[i] - ys[i - 1]))


class MarlinMoE:
    """vLLM's Marlin MoE kernel on MXFP4 experts, measured at other expert shapes.

    Marlin (csrc/moe/marlin_moe_wna16, called by fused_marlin_moe.py) tiles each expert's rows in
    blocks of at most 64 and dequantises the expert's 4-bit weights in the main loop of every
    block, so its speed is set by the rows each expert gets and by the layer's width, not by
    which model the experts belong to. A layer is answered from the measured Marlin layer of
    the nearest (padded) width at the same rows per expert (T x top-k / E: the measured token
    count T x k/E x E'/k'), scaled by the work: E x hidden x width (at equal rows per expert
    both the FLOPs and the weight bytes read grow with it). Below one row per expert the fixed
    costs of a call dominate and do not scale so: there the measured layer of the layer's own
    shape answers (`WithEngineKernels.ops_ms`).

    vLLM pads Marlin's MXFP4 layers (mxfp4.py `create_weights`): the intermediate size to a
    multiple of 128, the hidden size to 256 (gpt-oss: 2880 -> 3072 and 2880/tp -> 2944, 1536,
    768, 384 at TP1-8). The measurements are aiconfigurator's vLLM 0.24 Marlin rows of MXFP4
    experts (`vllm_compressedtensorsw4a4mxfp4moe_marlin...`: hidden 3584, 896 experts, top-16,
    intermediate 3072/tp at TP1-16), where Marlin reaches 190-230 TFLOPS at 8k+ tokens on H200
    against 450-560 for `triton_kernels` on gpt-oss's experts (same table)."""

    KERNEL = "marlin"

    def __init__(self, rows):
        mine = rows[rows["kernel_source"].str.contains(self.KERNEL) & (rows["moe_dtype"] == "w4a16_mxfp4")]
        if "ep" in mine:  # the tensor-parallel layers: what it transfers across widths
            mine = mine[mine["ep"] == 1]
        self._curves = {}
        for key, g in mine.groupby(["hidden", "inter", "experts", "topk"]):
            g = g.sort_values("tokens")
            self._curves[tuple(int(k) for k in key)] = (
                [math.log(t) for t in g["tokens"]],
                [math.log(m) for m in g["ms"]],
            )

    def __bool__(self) -> bool:
        return bool(self._curves)

    def layer_ms(self, hidden: int, inter: int, experts: int, topk: int, tokens: int) -> float | None:
        """The Marlin layer's time for `tokens` tokens (balanced routing), or None if no Marlin
        layer was measured."""
        if not self._curves:
            return None
        h, w = _round_up(hidden, 256), _round_up(inter, 128)
        key = min(self._curves, key=lambda k: (abs(math.log(k[1] / w)) + abs(math.log(k[0] / h)), k))
        mh, mw, me, mk = key
        measured_tokens = max(tokens, 1) * topk / experts * me / mk  # the same rows per expert
        return _log_log(self._curves[key], measured_tokens) * (experts * h * w) / (me * mh * mw)


def _round_up(x: int, to: int) -> int:
    return -(-x // to) * to


def convert_mla_decode(df):
    """aiconfigurator generation_mla_perf rows -> (heads, batch, kv, ms): bf16 KV, every sequence
    at context isl + step."""
    rows = df[df["kv_cache_dtype"] == "bfloat16"].assign(kv=lambda d: d["isl"] + d["step"])
    out = rows.groupby(["num_heads", "batch_size", "kv"], as_index=False)["latency"].median()
    out = out.rename(columns={"num_heads": "heads", "batch_size": "batch", "latency": "ms"})
    return out.sort_values(["heads", "batch", "kv"])


class MLADecode:
    """Measured MLA decode attention per head count, on a (batch, context) grid."""

    def __init__(self, rows):
        self._grids = {}
        for heads, g in rows.groupby("heads"):
            table = g.pivot_table(index="batch", columns="kv", values="ms").dropna(axis=1)
            self._grids[int(heads)] = _log_grid(table)

    def attention_ms(self, heads: int, batch: int, sum_kv: int) -> float | None:
        """The time for `batch` sequences holding `sum_kv` cached tokens in all, or None if `heads`
        was not measured. Bilinear in log batch and log mean context between measured points;
        beyond the largest batch or the longest context, linear in each (bandwidth-bound)."""
        grid = self._grids.get(heads)
        if grid is None or batch <= 0 or sum_kv <= 0:
            return None
        return _grid_ms(grid, batch, sum_kv / batch)


# aiconfigurator's gdn_perf kernel names -> (LinearAttention kernel, phase).
GDN_KERNELS = {
    "causal_conv1d_fn": ("conv", "prefill"),
    "chunk_gated_delta_rule": ("rule", "prefill"),
    "causal_conv1d_update": ("conv", "decode"),
    "fused_recurrent_gated_delta_rule_packed_decode": ("rule", "decode"),
}
GDN_HEAD_DIMS = (128, 128, 4)  # head_k_dim, head_v_dim, conv taps of every measured row (Qwen3.5)


def convert_gdn(df):
    """aiconfigurator gdn_perf rows -> (kernel, phase, k_heads, v_heads, seqs, seq_len, ms): the
    heads of one TP rank, the median over the models measured with the same heads."""
    rows = df[df["kernel_source"].isin(GDN_KERNELS)]
    dims = rows[["head_k_dim", "head_v_dim", "d_conv"]].drop_duplicates().itertuples(index=False)
    if {tuple(int(x) for x in d) for d in dims} != {GDN_HEAD_DIMS}:
        raise ValueError(f"gdn_perf rows with head dims / conv taps other than {GDN_HEAD_DIMS}")
    kernel, phase = zip(*rows["kernel_source"].map(GDN_KERNELS))
    rows = rows.assign(kernel=kernel, phase=phase)
    keys = ["kernel", "phase", "num_k_heads", "num_v_heads", "batch_size", "seq_len"]
    out = rows.groupby(keys, as_index=False)["latency"].median()
    out = out.rename(
        columns={
            "num_k_heads": "k_heads",
            "num_v_heads": "v_heads",
            "batch_size": "seqs",
            "latency": "ms",
        }
    )
    return out.sort_values(["kernel", "phase", "k_heads", "v_heads", "seqs", "seq_len"]).reset_index(drop=True)


class GDNKernels:
    """Measured gated-DeltaNet kernels of one engine on one GPU, by the heads of one TP rank."""

    def __init__(self, rows):
        self._prefill, self._decode = {}, {}
        for (kernel, phase, kh, vh), g in rows.groupby(["kernel", "phase", "k_heads", "v_heads"]):
            key = (kernel, int(kh), int(vh))
            if phase == "decode":
                g = g.sort_values("seqs")
                self._decode[key] = ([math.log(b) for b in g["seqs"]], [math.log(m) for m in g["ms"]])
                continue
            self._prefill[key] = _log_grid(g.pivot_table(index="seqs", columns="seq_len", values="ms").dropna(axis=1))

    def kernel_ms(self, op: LinearAttention) -> float | None:
        """The kernel's measured time, or None if its heads (or head dims) were not measured. A
        prefill: bilinear in log sequences and log mean length, proportional to each past the
        largest measured; a decode: log-log in the sequences."""
        if (op.head_k_dim, op.head_v_dim, op.conv_kernel) != GDN_HEAD_DIMS:
            return None
        key = (op.kernel, op.k_heads, op.v_heads)
        if op.phase == "decode":
            curve = self._decode.get(key)
            return None if curve is None else _log_log(curve, op.num_seqs)
        grid = self._prefill.get(key)
        if grid is None:
            return None
        return _grid_ms(grid, op.num_seqs, op.tokens / op.num_seqs)


def convert_dense_gemm(df, quant=None):
    """aiconfigurator gemm_perf rows -> the dense-GEMM table: one row per (dtype, m, k), one ms
    column per n (empty where not measured). The engine's bf16 GEMM and, with `quant` (its FP8
    activation-quantisation timings), its FP8 GEMM minus the quantisation the rows include (the
    step graph launches that kernel itself); k, n >= 128; each dtype's most measured kernel. Wide,
    so that a run reads its ~60,000 times quickly without pandas (`load_dense_gemm`)."""
    from frontier.predict.aiconfigurator import THIN, convert_gemm, set_aside

    rows, _ = set_aside("gemm", convert_gemm(df), quant)
    rows = rows[THIN["gemm"](rows)]
    wide = rows.pivot_table(index=["dtype", "m", "k"], columns="n", values="ms")
    wide.columns = [str(n) for n in wide.columns]
    return wide.reset_index()


class DenseGemm:
    """The engine's measured dense GEMMs (y = x w^T) on one GPU, per dtype on an (m, k, n) grid.

    aiconfigurator's collector (collector/vllm/collect_gemm.py) times vLLM's own linear layer
    (`F.linear`, i.e. cuBLAS, and CUTLASS `cutlass_scaled_mm`) as a served step runs it: replayed
    from a CUDA graph, six copies of the weight back to back (collector/helper.py
    `benchmark_with_power`). SGLang's bf16 linear is the same `F.linear`, and its GEMMs are
    answered from this table too (`load_dense_gemm`; block-scaled FP8 as per-tensor). The reference
    tables time each GEMM alone after an L2 flush that leaves the cache full of dirty lines, and
    for the small-m GEMMs of decode that is 5-13 us more per kernel on H100 (8-235 MB of
    weights, 128 shapes at m <= 64): weight streaming at 2.1-2.5 TB/s against the graph's
    2.4-2.8. FP8 is measured too, 5-35 % slower at decode sizes than the bf16 time scaled by
    its halved bytes (the roofline-scaled FP8 path)."""

    def __init__(self, rows):
        """`rows`: the wide table of `convert_dense_gemm` as columns (a DataFrame or a dict of
        sequences; numbers may be strings, a missing time empty)."""
        ns = [c for c in rows if c not in ("dtype", "m", "k")]
        dtypes = np.asarray(rows["dtype"]).astype(str)
        m, k = (np.asarray(rows[c], dtype=float) for c in ("m", "k"))
        ms = np.array([[float(x) if x != "" else np.nan for x in rows[c]] for c in ns]).T
        n_axis = np.array([float(c) for c in ns])
        order = np.argsort(n_axis)
        self._grids = {}
        for dtype in np.unique(dtypes):
            mine = dtypes == dtype
            m_axis, k_axis = np.unique(m[mine]), np.unique(k[mine])
            log_ms = np.full((len(m_axis), len(k_axis), len(n_axis)), np.nan)
            log_ms[np.searchsorted(m_axis, m[mine]), np.searchsorted(k_axis, k[mine])] = np.log(ms[mine][:, order])
            self._grids[str(dtype)] = ([np.log(m_axis), np.log(k_axis), np.log(n_axis[order])], log_ms)

    def gemm_ms(self, dtype: str, m: int, k: int, n: int) -> float | None:
        """The GEMM's time, or None where it was not measured: another dtype, k or n outside the
        measured range, or a shape missing among those it lies between. Trilinear in log m, log k
        and log n between measured shapes (exact for a time that is a power law of each); past
        the largest m, proportional to m (compute-bound)."""
        grid = self._grids.get(dtype)
        if grid is None or m <= 0:
            return None
        (ms_, ks, ns), log_ms = grid
        lk, ln = math.log(k), math.log(n)
        if not (ks[0] <= lk <= ks[-1] and ns[0] <= ln <= ns[-1]):
            return None
        lm = math.log(m)
        beyond = max(1.0, math.exp(lm - ms_[-1]))
        log_t = _interpolate(log_ms, [_bracket(ms_, min(max(lm, ms_[0]), ms_[-1])), _bracket(ks, lk), _bracket(ns, ln)])
        return None if math.isnan(log_t) else math.exp(log_t) * beyond

    def op_ms(self, op) -> float | None:
        return self.gemm_ms(op.dtype, op.m, op.k, op.n)


class EngineFamily:
    """An operator family's model: the engine's measured kernels (a table whose `op_ms(op)` is the
    time, or None where it does not hold the shape: `DenseGemm`, `DenseAttention`) where they
    hold the shape, `base` for the rest."""

    windows = True  # sliding-window attention goes to the table as it is (frontier.predict.base)

    def __init__(self, base, table, source: str):
        # `table`: the table, or a function loading it on first use.
        self.base, self._table = base, table
        self.source = f"{source}, else {base.source}"

    @property
    def table(self):
        if callable(self._table):
            self._table = self._table()
        return self._table

    def predict_ms(self, ops) -> np.ndarray:
        out = np.empty(len(ops))
        rest = []
        for i, op in enumerate(ops):
            t = self.table.op_ms(op)
            if t is None:
                rest.append(i)
            else:
                out[i] = t
        if rest:
            out[rest] = self.base.predict_ms([windowless(ops[i]) for i in rest])
        return out


# The FlashAttention-3 kernels both engines launch on Hopper, as aiconfigurator names them.
FA3_KERNELS = ("vllm_flash_attn_fa3", "fa3")


def convert_attention(df):
    """aiconfigurator context_attention_perf / generation_attention_perf rows -> the dense
    attention table of one phase: FlashAttention-3, bf16 KV cache, equal lengths, without a
    sliding window (`window` 0) and with the windows measured (128 keys: gpt-oss's); one row per
    (hq, hkv, d, window, seqs), one ms column per length: the prompt length of a prefill (`isl`,
    no cached prefix), the cached length of a decode (`isl` + `step`). Wide, as
    `convert_dense_gemm`'s, so that it is small and read without pandas."""
    rows = df[df["kernel_source"].isin(FA3_KERNELS) & (df["kv_cache_dtype"] == "bfloat16")]
    length = rows["isl"] + rows["step"] if (rows["op_name"] == "generation_attention").all() else rows["isl"]
    rows = rows.assign(length=length.astype(int))
    keys = ["num_heads", "num_key_value_heads", "head_dim", "window_size", "batch_size"]
    wide = rows.pivot_table(index=keys, columns="length", values="latency", aggfunc="median")
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.reset_index().rename(
        columns={
            "num_heads": "hq",
            "num_key_value_heads": "hkv",
            "head_dim": "d",
            "window_size": "window",
            "batch_size": "seqs",
        }
    )
    return wide


class DenseAttention:
    """The engine's measured FlashAttention-3 (GQA / MHA, one head dim for q, k and v) on one GPU,
    per heads of one TP rank on a (sequences, length) grid.

    The reference tables time PyTorch's FlashAttention-2 (`scaled_dot_product_attention`); vLLM
    (vllm_flash_attn, FA3 on Hopper) and SGLang (`fa3` backend) launch FlashAttention-3, which in
    aiconfigurator's timings on H100 runs a prefill 1.1-1.3x faster at 16 sequences of 512 and
    1.6-2.6x faster at one sequence of 4-8k tokens, a decode 0-20 % faster. A prefill batch is
    looked up at its sequences and the equal length that does its causal work, sqrt(2 x (sum
    q^2/2 + sum q c) / sequences); a decode batch at its sequences and mean cached length.
    Bilinear in log sequences and log length between measured points; past the largest length
    the time grows with the work (a prefill: the square of the length; a decode: the length),
    past the largest batch with the sequences.

    A sliding-window layer (gpt-oss: every other layer, 128 keys) takes the kernel measured with
    its window (`window` rows), whose work grows with the length only as far as the window: a
    prefill is looked up at the prompt length doing its windowed work, linear in the length past
    the table; a decode at its mean cached length, flat past the table. A window not measured
    takes the windowless kernel on what the window lets the batch see (`within_window`)."""

    def __init__(self, rows, phase: str):
        key_columns = ("hq", "hkv", "d", "window", "seqs")
        lengths = [c for c in rows if c not in key_columns]
        windows = rows["window"] if "window" in rows else ["0"] * len(rows["seqs"])  # tables before windows
        keys = list(
            zip(*(np.asarray(rows[c], dtype=float).astype(int) for c in ("hq", "hkv", "d")), (int(w) for w in windows))
        )
        seqs = np.asarray(rows["seqs"], dtype=float)
        ms = np.array([[float(x) if x not in ("", None) else np.nan for x in rows[c]] for c in lengths]).T
        length_axis = np.array([float(c) for c in lengths])
        order = np.argsort(length_axis)
        self.phase = phase
        self._grids = {}
        for key in set(keys):
            mine = np.array([k == key for k in keys])
            seq_axis = np.unique(seqs[mine])
            log_ms = np.full((len(seq_axis), len(length_axis)), np.nan)
            log_ms[np.searchsorted(seq_axis, seqs[mine])] = np.log(ms[mine][:, order])
            self._grids[key] = _grid(np.log(seq_axis), np.log(length_axis[order]), log_ms)

    def attention_ms(self, hq: int, hkv: int, d: int, seqs: int, length: float, window: int = 0) -> float | None:
        """The kernel's time for `seqs` sequences of `length`, or None where not measured."""
        grid = self._grids.get((hq, hkv, d, window))
        if grid is None or seqs <= 0 or length <= 0:
            return None
        # The work's growth with the length past the table: a prefill's square (a windowed one's
        # length), a decode's length (a windowed one's window: none).
        power = (2.0 if self.phase == "prefill" else 1.0) - (1.0 if window else 0.0)
        t = _grid_ms(grid, seqs, max(length, 1.0), power)
        return None if math.isnan(t) else t

    def op_ms(self, op) -> float | None:
        if op.backend != "flash":  # cuDNN: the reference's
            return None
        if isinstance(op, AttnPrefill) and (op.d, op.dv) == MLA_HEAD_DIMS and op.hq == op.hkv:
            return self._mla_prefill_ms(op)
        if op.d != op.dv:  # MLA decode against the latent: its own table
            return None
        if op.window and (op.hq, op.hkv, op.d, op.window) not in self._grids:
            return self.op_ms(op.within_window())
        if isinstance(op, AttnPrefill):
            return self.attention_ms(op.hq, op.hkv, op.d, op.num_seqs, _equal_length(op), op.window)
        return self.attention_ms(op.hq, op.hkv, op.d, op.batch, op.sum_kv / op.batch, op.window)

    def _mla_prefill_ms(self, op) -> float | None:
        """MLA prefill (DeepSeek-style: 192-dim queries and keys, 128-dim values, one K/V head
        per query head) on FlashAttention-3, which both engines launch for it on Hopper with the
        two head dims as they are (vLLM's FLASH_ATTN_MLA prefill pads the values only without
        FA3, v1/attention/backends/mla/common.py `_flash_attn_varlen_diff_headdims`; SGLang's fa3
        / flashinfer ragged prefill). Compute-bound, so the measured 192-dim kernel of the same
        query heads (measured at a GQA group; the K/V heads change only the reads) times the
        work's share: (192 + 128) / (2 x 192) of its two GEMMs. A head count not measured takes
        the nearest measured one's time in proportion to the heads."""
        measured = [k for k in self._grids if k[2] == op.d and not k[3]]
        if not measured:
            return None
        hq, hkv, d, _ = min(measured, key=lambda k: (abs(math.log(k[0] / op.hq)), k))
        t = self.attention_ms(hq, hkv, d, op.num_seqs, _equal_length(op))
        return None if t is None else t * op.hq / hq * (op.d + op.dv) / (2 * op.d)


def _equal_length(op: AttnPrefill) -> float:
    """The length of equal prompts, one per sequence, doing the batch's causal work per head:
    sqrt(2 x (sum q^2 / 2 + sum q c) / sequences); under a window W, whose prompt of L >= W
    tokens scores L W - W^2 / 2 pairs, (pairs per sequence + W^2 / 2) / W past it."""
    per_seq, w = op.pairs / op.num_seqs, op.window
    if w and per_seq > w * w / 2:
        return (per_seq + w * w / 2) / w
    return math.sqrt(2 * per_seq)


def _interpolate(grid: np.ndarray, cell: list[tuple[int, float]]) -> float:
    """Multilinear interpolation in `grid` within the cell given per axis as (lower index, weight
    toward the upper point), as `_bracket` finds it; NaN if a corner with weight is missing."""
    axes = [((i, 1.0 - w), (i + 1, w)) for i, w in cell]  # per axis: (index, weight) of both ends
    value = 0.0
    for corner in itertools.product(*axes):
        weight = math.prod(w for _, w in corner)
        if weight > 0:
            value += weight * float(grid[tuple(i for i, _ in corner)])
    return value


def _grid(xs: np.ndarray, ys: np.ndarray, log_ms: np.ndarray) -> tuple:
    """A measured grid (log x, log y, log ms) with, per x, its largest measured log y (the edge
    where aiconfigurator stopped measuring: its attention tables end where x times y fills the
    GPU's memory)."""
    measured = ~np.isnan(log_ms)
    last = np.where(measured.any(axis=1), measured.shape[1] - 1 - np.argmax(measured[:, ::-1], axis=1), -1)
    return xs, ys, log_ms, [float(ys[j]) if j >= 0 else float(ys[-1]) for j in last]


def _log_grid(table) -> tuple:
    """A pivoted table (index x, columns y, values ms) as a measured grid (`_grid`)."""
    return _grid(
        np.log(table.index.to_numpy(float)), np.log(table.columns.to_numpy(float)), np.log(table.to_numpy(float))
    )


def _grid_ms(grid: tuple, x: float, y: float, y_power: float = 1.0) -> float:
    """A measured grid (`_grid`) at (x, y): bilinear in log x and log y between measured points,
    the nearest measured value below the smallest; past the largest x proportional to x, past
    the largest y measured at the x it reads to y ** y_power (the work's growth, from the
    table's edge); NaN if a corner with weight was not measured."""
    xs, ys, log_ms, edge = grid
    lx, ly = math.log(x), math.log(y)
    i, w = cx = _bracket(xs, min(lx, xs[-1]))
    top = edge[i + 1] if w >= 1.0 else edge[i] if w <= 0.0 else min(edge[i], edge[i + 1])
    beyond = max(0.0, lx - xs[-1]) + y_power * max(0.0, ly - top)
    return math.exp(_interpolate(log_ms, [cx, _bracket(ys, min(ly, top))]) + beyond)


def _bracket(xs: np.ndarray, x: float) -> tuple[int, float]:
    """The grid cell holding x (clamped to the ends) and x's weight toward its upper point."""
    i = min(max(int(np.searchsorted(xs, x)) - 1, 0), len(xs) - 2)
    return i, min(max((x - xs[i]) / (xs[i + 1] - xs[i]), 0.0), 1.0)


@lru_cache(maxsize=None)
def load_fused_moe(gpu_dir: str, engine: str, cutlass: bool = False) -> FusedMoE | None:
    """The engine's measured fused-MoE layers on the GPU, from its newest measured release; with
    `cutlass`, FlashInfer's CUTLASS MoE where measured (`CUTLASS_MOE`), the engine's for experts
    it was not measured on.

    Older releases' measurements exist for some GPUs (SGLang 0.5.10, vLLM 0.19 in aiconfigurator
    0.12) but do not describe the development set's older releases better: they move SGLang
    0.5.6's Qwen3-235B decode steps closer (-11 % instead of -20 %) and SGLang 0.5.9's DeepSeek-R1
    and vLLM 0.16's Kimi-K2.5 ones away (+13 % and +38 % instead of -5 % and +7 %); SGLang 0.5.10's
    over the development set's SGLang MoE runs: Qwen3-235B's TPOT median APE 18 / 16 -> 10 / 10 %
    (TP2 / TP4), Qwen3.5's 10 -> 6 %, DeepSeek-R1's 4 -> 25 % (its decode layers 1.9x 0.5.14's)."""
    rows = _newest_table(gpu_dir, "fused_moe", engine)
    if cutlass:
        import pandas as pd

        own = _newest_table(gpu_dir, "fused_moe", CUTLASS_MOE)
        if own is not None:
            shape = ["dtype", "hidden", "experts", "topk"]
            measured = set(own[shape].itertuples(index=False, name=None))
            if rows is not None:
                rows = rows[[key not in measured for key in rows[shape].itertuples(index=False, name=None)]]
            rows = own if rows is None else pd.concat([own, rows], ignore_index=True)
    return None if rows is None else FusedMoE(rows)


@lru_cache(maxsize=None)
def load_marlin_moe(gpu_dir: str, engine: str) -> MarlinMoE | None:
    """vLLM's measured Marlin MXFP4 MoE layers on the GPU (newest release), or None."""
    rows = _newest_table(gpu_dir, "fused_moe", engine)
    return (None if rows is None else MarlinMoE(rows)) or None


@lru_cache(maxsize=None)
def load_dense_gemm(gpu_dir: str, engine: str) -> DenseGemm | None:
    """The engine's measured dense GEMMs on the GPU (newest release), else another engine's (the
    same cuBLAS bf16 GEMM; see `DenseGemm`), or None. Read without pandas: every model has
    GEMMs, and a run need not pay pandas' import for them."""
    columns = _wide_columns(gpu_dir, "gemm", engine)
    return None if columns is None else DenseGemm(columns)


@lru_cache(maxsize=None)
def load_dense_attention(gpu_dir: str, engine: str, phase: str) -> DenseAttention | None:
    """The engine's measured FlashAttention-3 of one phase (prefill | decode) on the GPU (newest
    release), else another engine's (the same kernel), or None. Read without pandas."""
    columns = _wide_columns(gpu_dir, f"attn_{phase}", engine)
    return None if columns is None else DenseAttention(columns, phase)


def _wide_columns(gpu_dir: str, kind: str, engine: str) -> dict | None:
    """The columns (name -> strings) of the engine's newest `<kind>` table, else another engine's,
    or None; read with the csv module, not pandas (the wide tables are small)."""
    import csv

    path = _newest_file(gpu_dir, kind, engine) or _newest_file(gpu_dir, kind, "*")
    if path is None:
        return None
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return dict(zip(header, zip(*reader)))


@lru_cache(maxsize=None)
def load_mla_decode(gpu_dir: str, engine: str) -> MLADecode | None:
    """The engine's measured MLA decode kernel, else another engine's (the same FlashAttention-3
    MLA kernel; see the module docstring)."""
    rows = _newest_table(gpu_dir, "mla_decode", engine)
    if rows is None:
        rows = _newest_table(gpu_dir, "mla_decode", "*")
    return None if rows is None else MLADecode(rows)


@lru_cache(maxsize=None)
def load_gdn(gpu_dir: str, engine: str) -> GDNKernels | None:
    """The engine's measured gated-DeltaNet kernels, else another engine's (the same FLA
    kernels), or None."""
    rows = _newest_table(gpu_dir, "gdn", engine)
    if rows is None:
        rows = _newest_table(gpu_dir, "gdn", "*")
    return None if rows is None else GDNKernels(rows)


@lru_cache(maxsize=None)
def _newest_table(gpu_dir: str, kind: str, engine: str):
    """The newest measured release's `<kind>_<engine>_<release>.csv` (read once; the loaders only
    read it), or None. `engine` may be a glob."""
    import pandas as pd

    path = _newest_file(gpu_dir, kind, engine)
    return None if path is None else pd.read_csv(path)


def _newest_file(gpu_dir: str, kind: str, engine: str) -> Path | None:
    files = sorted(Path(gpu_dir, FOLDER).glob(f"{kind}_{engine}_*.csv"), key=_release_of)
    return files[-1] if files else None


def _release_of(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.stem.rsplit("_", 1)[-1].split(".") if p.isdigit())


class WithEngineKernels:
    """A predictor answering MoE layers, MLA attention and gated-DeltaNet kernels from the
    engine's measured kernels where it has them, everything else from `base`."""

    def __init__(self, base, fused, engine: str, mla_decode=None, marlin=None, gdn=None, cutlass_moe=False):
        # The tables, None, or a function loading them on first use (reading them imports
        # pandas: a model without MoE layers or MLA never needs them). `marlin` given: 4-bit
        # (w4a16) MoE layers run vLLM's Marlin MoE (`MarlinMoE`). `cutlass_moe`: `fused` is
        # FlashInfer's CUTLASS MoE where measured (`load_fused_moe`).
        self.base, self._fused, self.engine, self.cutlass_moe = base, fused, engine, cutlass_moe
        self._mla_decode, self._marlin, self._gdn = mla_decode, marlin, gdn

    def _table(self, attr: str):
        """The table held in `attr`, read on first use if a loader stands there."""
        table = getattr(self, attr)
        if callable(table):
            table = table()
            setattr(self, attr, table)
        return table

    fused = property(lambda self: self._table("_fused"), doc="FusedMoE | None")
    mla_decode = property(lambda self: self._table("_mla_decode"), doc="MLADecode | None")
    marlin = property(lambda self: self._table("_marlin"), doc="MarlinMoE | None")
    gdn = property(lambda self: self._table("_gdn"), doc="GDNKernels | None")

    def __getattr__(self, name):  # sources(), model_for(), ... of the base predictor
        return getattr(self.base, name)

    def ops_ms(self, ops) -> np.ndarray:
        """The base predictor's times, with MLA decode attention and each measured MoE layer
        (gate/up, SiLU-and-mul, down, as frontier.ops.graph emits them) replaced by the engine's
        kernels: the fused MoE's 2/3 on gate/up, 1/3 on down, nothing on the activation it fuses."""
        ms = np.asarray(self.base.ops_ms(ops), dtype=float)
        if self._mla_decode is not None:
            for i, op in enumerate(ops):
                if isinstance(op, AttnDecode) and (op.d, op.dv) == MLA_LATENT_DIMS and op.hkv == 1:
                    t = self.mla_decode.attention_ms(op.hq, op.batch, op.sum_kv)
                    if t is not None:
                        ms[i] = t
        if self._gdn is not None:
            for i, op in enumerate(ops):
                if isinstance(op, LinearAttention) and self.gdn is not None:
                    t = self.gdn.kernel_ms(op)
                    if t is not None:
                        ms[i] = t
        if (self._fused is None and self._marlin is None) or not any(isinstance(op, GroupedGemm) for op in ops):
            return ms
        # Each MoE layer: measured at its width, or the engine/reference ratio of a measured twin
        # (the nearest measured width of the same experts; an expert-parallel rank's TP twin)
        # applied to the reference. `layers`: (index, twin ops or None if measured as it is).
        layers, nearby = [], []
        for i in range(len(ops) - 2):
            up, act, down = ops[i], ops[i + 1], ops[i + 2]
            if not (isinstance(up, GroupedGemm) and isinstance(down, GroupedGemm)):
                continue
            if not (isinstance(act, Elementwise) and act.name == "silu_mul"):
                continue
            width = down.k
            if up.n != 2 * width or up.k != down.n or up.tokens != down.tokens or up.dtype != down.dtype:
                continue
            # Marlin from one row per expert up (every expert read, as in the measurement's
            # balanced routing); below, a layer's time is mostly its fixed cost per call (routing,
            # block alignment, launches), which a transfer scaled by the work undercounts, and the
            # measured layer of this shape answers. At the switch the transfer is 0.6-0.75 of it:
            # Marlin's own advantage at 1-2 rows per expert, which the development set's TPOTs at
            # 32-64 clients show (gpt-oss TPOT median APE 5 %, against 6 % taking the larger of
            # the two everywhere).
            marlin = up.tokens * up.topk >= up.experts and up.dtype == "w4a16" and self._marlin is not None
            if marlin and self.marlin is not None:
                _place_layer(ms, i, up, self.marlin.layer_ms(up.k, width, up.experts, up.topk, up.tokens))
                continue
            if self._fused is None or self.fused is None:
                continue
            if up.ep > 1:  # one rank's share of the experts
                # Measured at this layout: the busiest rank's rows as if every rank had them (the
                # layer waits for it); else the engine/reference ratio of its TP twin.
                t = self.fused.layer_ms(up.dtype, up.k, width, up.experts * up.ep, up.topk, up.tokens * up.ep, up.ep)
                if t is not None:
                    _place_layer(ms, i, up, t)
                    continue
                twin = _tensor_parallel_twin(up, act, down, self.fused)
                if twin is not None:
                    layers.append((i, twin))
                    nearby += twin
                continue
            near = self.fused.nearest_width(up.dtype, up.k, width, up.experts, up.topk)
            if near is None:
                continue
            twin = None if near == width else [replace(up, n=2 * near), replace(act, width=near), replace(down, k=near)]
            layers.append((i, twin))
            nearby += twin or []
        near_ms = iter(self.base.ops_ms(nearby)) if nearby else iter(())
        for i, twin in layers:
            up = ops[i]
            if twin is None:  # measured at this width
                _place_layer(
                    ms, i, up, self.fused.layer_ms(up.dtype, up.k, ops[i + 2].k, up.experts, up.topk, up.tokens)
                )
                continue
            # The engine's time relative to the reference's for the twin (another width of the same
            # experts, or an expert-parallel rank's TP twin), applied to the reference's for this layer.
            t_up, t_down = twin[0], twin[2]
            engine = self.fused.layer_ms(t_up.dtype, t_up.k, t_down.k, t_up.experts, t_up.topk, t_up.tokens)
            reference = next(near_ms) + next(near_ms) + next(near_ms)
            if up.ep > 1:  # the rank's own routing is in the reference's time already
                t = engine / reference * float(ms[i] + ms[i + 1] + ms[i + 2])
                ms[i], ms[i + 1], ms[i + 2] = t * GATE_UP_SHARE, 0.0, t * (1.0 - GATE_UP_SHARE)
            else:
                _place_layer(ms, i, up, engine / reference * float(ms[i] + ms[i + 1] + ms[i + 2]))
        return ms

    def sources(self, families=None) -> dict[str, str]:
        out = dict(self.base.sources(families))
        if "grouped_gemm" in out and self._fused is not None:
            kernel = "FlashInfer's CUTLASS MoE (TensorRT-LLM's, measured)" if self.cutlass_moe else "fused MoE"
            out["grouped_gemm"] += f" ({self.engine}'s {kernel} where measured)"
        if "grouped_gemm" in out and self._marlin is not None:
            out["grouped_gemm"] += " (4-bit experts: Marlin MoE, measured at other expert shapes)"
        if "attn_decode" in out and self._mla_decode is not None:
            out["attn_decode"] += " (the FlashAttention-3 MLA kernel where measured)"
        if self._gdn is not None and (families is None or "linear_attention" in families):
            out["linear_attention"] = f"{self.engine}'s measured gated-DeltaNet kernels (other head shapes analytic)"
        return out


def _tensor_parallel_twin(up: GroupedGemm, act: Elementwise, down: GroupedGemm, fused: FusedMoE) -> list | None:
    """The measured tensor-parallel layer doing an expert-parallel rank's work, or None.

    With expert parallelism over tokens every rank holds (vLLM's --enable-expert-parallel at
    data-parallel size 1, SGLang's --ep-size without DP attention), the engines run the same fused
    MoE kernel as for tensor-parallel experts, over an expert map: each rank computes all of its
    E/ep experts' intermediate width for the rows routed to them (vllm/model_executor/layers/
    fused_moe/layer.py `expert_map`; sglang/srt/layers/moe/fused_moe_triton/layer.py). Its TP
    twin is all E experts at width/ep with the same rows per expert (ep x the rank's tokens):
    the same FLOPs and the same weight bytes. The engine's time for that twin over the
    reference's (balanced routing, nearest measured width) is the engine kernel's efficiency at
    this size, applied to the reference's prediction of the rank's own layer, which keeps its
    realised routing (busiest rank, experts touched)."""
    experts, width = up.experts * up.ep, down.k // up.ep
    near = fused.nearest_width(up.dtype, up.k, width, experts, up.topk)
    if near is None:
        return None
    tokens = up.tokens * up.ep
    rows = tokens * up.topk
    busiest, active = -(-rows // experts), min(experts, rows)
    twin = replace(up, experts=experts, tokens=tokens, n=2 * near, max_per_expert=busiest, active_experts=active, ep=1)
    return [
        twin,
        replace(act, tokens=rows, width=near),
        replace(twin, k=near, n=up.k),
    ]


def _place_layer(ms: np.ndarray, i: int, up: GroupedGemm, t: float) -> None:
    """A measured fused MoE layer's time `t` on the layer at ms[i:i + 3] (gate/up, SiLU-and-mul,
    down): 2/3 and 1/3 on the projections, nothing on the activation it fuses. Measured with
    balanced routing, which touches min(E, T x k) experts; a small batch reads only the weights
    of the experts it routes to."""
    t *= min(1.0, up.active_experts / min(up.experts, up.tokens * up.topk))
    ms[i], ms[i + 1], ms[i + 2] = t * GATE_UP_SHARE, 0.0, t * (1.0 - GATE_UP_SHARE)


def with_engine_kernels(
    predictor,
    gpu_name: str,
    engine: str,
    calibration_dir: Path | None = None,
    mxfp4_marlin: bool = False,
    linear_attention: bool = False,
    cutlass_moe: bool = False,
):
    """`predictor`, answering MoE layers, MLA attention and gated-DeltaNet kernels from the
    engine's measured kernels on the GPU where it has them. `mxfp4_marlin`: the MXFP4 experts run
    vLLM's Marlin MoE (`VLLM_MXFP4_USE_MARLIN=1`, or `--mxfp4-backend marlin` in newer releases).
    `cutlass_moe`: the experts run FlashInfer's CUTLASS MoE (`CUTLASS_MOE`).
    `linear_attention`: the model has gated-DeltaNet layers (their kernels' tables are used)."""
    from frontier.paths import CALIBRATION_DIR

    gpu_dir = str(Path(calibration_dir or CALIBRATION_DIR) / gpu_name)
    # Which tables exist is known from their names; they are read when a step first needs them.
    cutlass_moe = cutlass_moe and _measured(gpu_dir, "fused_moe", CUTLASS_MOE)
    fused = (cutlass_moe or _measured(gpu_dir, "fused_moe", engine)) and (
        lambda: load_fused_moe(gpu_dir, engine, cutlass_moe)
    )
    decode = _measured(gpu_dir, "mla_decode", "*") and (lambda: load_mla_decode(gpu_dir, engine))
    marlin = mxfp4_marlin and engine == "vllm" and fused and (lambda: load_marlin_moe(gpu_dir, engine))
    gdn = linear_attention and _measured(gpu_dir, "gdn", "*") and (lambda: load_gdn(gpu_dir, engine))
    if not (fused or decode or gdn):
        return predictor
    return WithEngineKernels(
        predictor, fused or None, engine, decode or None, marlin or None, gdn or None, bool(cutlass_moe)
    )


def with_engine_gemms(predictor: Predictor, gpu_name: str, engine: str, calibration_dir: Path | None = None):
    """`predictor`, answering dense GEMMs from the engine's measured GEMMs on the GPU where it has
    them (`DenseGemm`; read when a step first needs them)."""
    from frontier.paths import CALIBRATION_DIR

    gpu_dir = str(Path(calibration_dir or CALIBRATION_DIR) / gpu_name)
    if not _measured(gpu_dir, "gemm", "*") or "gemm" not in predictor.models:
        return predictor
    # SGLang's GEMMs are answered from vLLM's table (`load_dense_gemm`): the source names it.
    table_engine = engine if _measured(gpu_dir, "gemm", engine) else "vllm"
    source = f"{table_engine}'s measured GEMMs"
    gemms = EngineFamily(predictor.models["gemm"], lambda: load_dense_gemm(gpu_dir, engine), source)
    return Predictor(predictor.gpu_name, {**predictor.models, "gemm": gemms}, predictor.fallback)


def with_engine_attention(predictor: Predictor, gpu_name: str, engine: str, calibration_dir: Path | None = None):
    """`predictor`, answering dense (GQA / MHA) attention from the engine's measured
    FlashAttention-3 on the GPU where it has the heads (`DenseAttention`; read when a step first
    needs it)."""
    from frontier.paths import CALIBRATION_DIR

    gpu_dir = str(Path(calibration_dir or CALIBRATION_DIR) / gpu_name)
    models = dict(predictor.models)
    for phase in ("prefill", "decode"):
        family = f"attn_{phase}"
        if family in models and _measured(gpu_dir, family, "*"):
            table = lambda phase=phase: load_dense_attention(gpu_dir, engine, phase)  # noqa: E731
            models[family] = EngineFamily(models[family], table, f"{engine}'s measured FlashAttention-3")
    if models == predictor.models:
        return predictor
    return Predictor(predictor.gpu_name, models, predictor.fallback)


def _measured(gpu_dir: str, kind: str, engine: str) -> bool:
    return any(Path(gpu_dir, FOLDER).glob(f"{kind}_{engine}_*.csv"))
