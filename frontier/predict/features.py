"""Physics features of operators, vectorised over a list of same-family operators.

`columns(family, ops)` pulls the operators' fields into numpy arrays once; `matrix(family, cols,
gpu, axes)` turns them into the feature matrix (one row per operator, the columns named in
`FEATURES[family]`) and each operator's roofline time in ms, optionally at other values of the
family's size axes (for interpolation and the ragged-batch bounds, all in one call).
The XGBoost models predict log(ms / (roofline_ms + floor_ms)): the roofline carries the scaling
with the shape (FLOPs, bytes), the trees learn the efficiency, which varies slowly and saturates,
so predictions stay sane on shapes bigger than the table's.

Features per family
- gemm: log m, k, n; FLOPs, bytes, arithmetic intensity; compute and memory times; tile and wave
  quantisation of 128x128 and 128x256 output tiles over the SMs; dtype width.
- attn_prefill: the batch's equivalent uniform shape (count, and the length whose causal work
  equals the batch's, sqrt((2 sum_qc + sum_q2) / count)), heads, GQA group, head dims, FLOPs,
  bytes, roofline, 128-query-tile CTAs and waves, backend.
- attn_decode: batch, mean and max KV length, heads, GQA group, KV bytes, CTAs and waves, backend.
- grouped_gemm: tokens, top-k, experts, routed rows, busiest expert, active experts, mean rows per
  active expert and the imbalance (busiest / mean), FLOPs, weight bytes of the active experts,
  the busiest expert's compute time, tile waves, backend.
- elementwise: kind, tokens, width, bytes. collective: kind, link, world, size, wire bytes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from frontier.spec.hardware import GPUSpec

DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0, "int8": 1.0}
# Category codes shared by every GPU's models (a code is a number for the trees; new names get
# new codes at the end, old codes never change).
BACKENDS = (
    "flash",
    "cudnn",
    "grouped_mm",
    "loop",
    "triton",
    "fa3",
    "flashinfer",
    "cutlass",
    # the profiler's own (profiler/README.md): a separate code each, not one "other"
    "triton_paged",
    "flash_varlen",
    "sdpa_loop",
    "efficient",
    "compiled",
)
ELEMENTWISE_KINDS = (
    "embedding",
    "rmsnorm",
    "residual_add",
    "rotary",
    "silu_mul",
    "topk_gating",
    "layernorm",
    "gelu",
    "softmax",
    "sampling",
    # as the operator graph names the fused kernels the profiler times (profiler/bench/step.py)
    "add_rmsnorm",
    "kv_cache_write",
    "quant_fp8",
)
COLLECTIVE_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
LINK_CODES = ("nvlink", "network", "pcie")
ATTN_TILE = 128  # query rows per CTA in FlashAttention-style kernels

FEATURES: dict[str, list[str]] = {
    "gemm": [
        "log_m",
        "log_k",
        "log_n",
        "log_flops",
        "log_bytes",
        "log_ai",
        "log_t_compute",
        "log_t_memory",
        "log_roofline",
        "waves_128",
        "wave_eff_128",
        "waves_256",
        "wave_eff_256",
        "m_tile_eff",
        "elem_bytes",
    ],
    "attn_prefill": [
        "log_seqs",
        "log_len",
        "hq",
        "hkv",
        "group",
        "d",
        "dv",
        "log_flops",
        "log_bytes",
        "log_ai",
        "log_roofline",
        "log_ctas",
        "waves",
        "wave_eff",
        "backend",
    ],
    "attn_decode": [
        "log_batch",
        "log_len",
        "hq",
        "hkv",
        "group",
        "d",
        "dv",
        "log_bytes",
        "log_roofline",
        "log_ctas",
        "waves",
        "backend",
    ],
    "grouped_gemm": [
        "log_tokens",
        "topk",
        "log_experts",
        "log_k",
        "log_n",
        "log_rows",
        "log_max_per_expert",
        "log_active",
        "log_mean_rows",
        "imbalance",
        "log_flops",
        "log_weight_bytes",
        "log_roofline",
        "log_t_busiest",
        "waves",
        "busiest_tiles",
        "elem_bytes",
        "backend",
    ],
    "elementwise": ["kind", "log_tokens", "log_width", "log_bytes", "log_roofline"],
    "collective": ["kind", "link", "world", "log_size", "log_wire", "log_roofline"],
}


def code(name: str, vocabulary: Sequence[str]) -> float:
    try:
        return float(vocabulary.index(name))
    except ValueError:
        return float(len(vocabulary))  # "other"


def _col(ops, attr: str) -> np.ndarray:
    return np.fromiter((getattr(op, attr) for op in ops), dtype=float, count=len(ops))


def _codes(ops, attr: str, vocabulary: Sequence[str]) -> np.ndarray:
    return np.array([code(getattr(op, attr), vocabulary) for op in ops], dtype=float)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-30))


def _waves(tiles: np.ndarray, sms: int) -> tuple[np.ndarray, np.ndarray]:
    waves = tiles / sms
    return waves, tiles / (np.ceil(waves) * sms)


def _roofline_ms(flops, bytes_, peak, gpu: GPUSpec):
    t_c = flops / peak * 1e3
    t_m = bytes_ / (gpu.mem_bw_gbps * 1e9) * 1e3
    return t_c, t_m, np.maximum(np.maximum(t_c, t_m), 1e-6)


def _elem_and_peak(ops, gpu: GPUSpec) -> tuple[np.ndarray, np.ndarray]:
    dtypes = [op.dtype for op in ops]
    fp8 = gpu.fp8_tflops or gpu.bf16_tflops
    elem = np.array([DTYPE_BYTES.get(d, 2.0) for d in dtypes])
    peak = np.array([fp8 if d == "fp8" else gpu.bf16_tflops for d in dtypes]) * 1e12
    return elem, peak


# --------------------------------------------------------------------------- field extraction
def columns(family: str, ops, gpu: GPUSpec) -> dict[str, np.ndarray]:
    """The operators' fields (and derived per-operator constants) as arrays."""
    if family == "gemm":
        elem, peak = _elem_and_peak(ops, gpu)
        return {"m": _col(ops, "m"), "k": _col(ops, "k"), "n": _col(ops, "n"), "elem": elem, "peak": peak}
    if family == "attn_prefill":
        cols = {
            f: _col(ops, f)
            for f in ("num_seqs", "sum_q", "sum_q2", "sum_qc", "sum_kv", "max_q", "max_kv", "hq", "hkv", "d", "dv")
        }
        cols["backend"] = _codes(ops, "backend", BACKENDS)
        return cols
    if family == "attn_decode":
        cols = {f: _col(ops, f) for f in ("batch", "sum_kv", "max_kv", "hq", "hkv", "d", "dv")}
        cols["backend"] = _codes(ops, "backend", BACKENDS)
        return cols
    if family == "grouped_gemm":
        elem, peak = _elem_and_peak(ops, gpu)
        cols = {f: _col(ops, f) for f in ("experts", "topk", "tokens", "k", "n", "max_per_expert", "active_experts")}
        cols.update(elem=elem, peak=peak, backend=_codes(ops, "backend", BACKENDS))
        return cols
    if family == "elementwise":
        return {
            "tokens": _col(ops, "tokens"),
            "width": _col(ops, "width"),
            "bytes": np.array([op.bytes_moved(2.0) for op in ops], dtype=float),
            "kind": _codes(ops, "name", ELEMENTWISE_KINDS),
        }
    if family == "collective":
        from frontier.predict.collective import wire_bytes

        return {
            "size": _col(ops, "size_bytes"),
            "world": _col(ops, "world"),
            "wire": np.array([wire_bytes(op.kind, op.world, op.size_bytes) if op.world > 1 else 0.0 for op in ops]),
            "bw": np.array([(gpu.network_gbps if op.link == "network" else gpu.intra_node_gbps) * 1e9 for op in ops]),
            "kind": _codes(ops, "kind", COLLECTIVE_KINDS),
            "link": _codes(ops, "link", LINK_CODES),
        }
    raise KeyError(family)


def take(cols: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


def stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --------------------------------------------------------------------------- size axes
# The size axes along which predictions are interpolated between the table's grid points (the
# trees are piecewise constant: without interpolation a prediction would jump at every split).
AXES = {"gemm": ("m",), "attn_prefill": ("seqs", "length"), "attn_decode": ("batch", "length")}


def prefill_equivalent(cols: dict) -> tuple[np.ndarray, np.ndarray]:
    """(count, length) of the uniform causal batch with the same count and causal work."""
    seqs = np.maximum(cols["num_seqs"], 1)
    pairs2 = 2.0 * cols["sum_qc"] + cols["sum_q2"]
    return seqs, np.sqrt(np.maximum(pairs2 / seqs, 1.0))


def axis_values(family: str, cols: dict) -> dict[str, np.ndarray]:
    """Coordinates on the family's size axes (attention: the equivalent uniform batch)."""
    if family == "gemm":
        return {"m": cols["m"]}
    if family == "attn_prefill":
        seqs, length = prefill_equivalent(cols)
        return {"seqs": seqs, "length": length}
    if family == "attn_decode":
        batch = np.maximum(cols["batch"], 1)
        return {"batch": batch, "length": np.maximum(cols["sum_kv"] / batch, 1)}
    return {}


# --------------------------------------------------------------------------- feature matrices
def _gemm(c, gpu, axes):
    m = axes["m"] if axes else c["m"]
    k, n, elem = c["k"], c["n"], c["elem"]
    flops = 2.0 * m * k * n
    bytes_ = elem * (m * k + k * n) + 2.0 * m * n
    t_c, t_m, roof = _roofline_ms(flops, bytes_, c["peak"], gpu)
    w128, e128 = _waves(np.ceil(m / 128) * np.ceil(n / 128), gpu.sm_count)
    w256, e256 = _waves(np.ceil(m / 128) * np.ceil(n / 256), gpu.sm_count)
    m_eff = m / (np.ceil(m / 64) * 64)
    return [
        _log(m),
        _log(k),
        _log(n),
        _log(flops),
        _log(bytes_),
        _log(flops / bytes_),
        _log(t_c),
        _log(t_m),
        _log(roof),
        w128,
        e128,
        w256,
        e256,
        m_eff,
        elem,
    ], roof


def _prefill(c, gpu, axes):
    seqs, length = (axes["seqs"], axes["length"]) if axes else prefill_equivalent(c)
    hq, hkv, d, dv = c["hq"], c["hkv"], c["d"], c["dv"]
    flops = 2.0 * hq * seqs * 0.5 * length * length * (d + dv)
    bytes_ = 2.0 * seqs * length * (hq + hkv) * (d + dv)
    _, _, roof = _roofline_ms(flops, bytes_, gpu.bf16_tflops * 1e12, gpu)
    ctas = seqs * hq * np.ceil(length / ATTN_TILE)
    waves, eff = _waves(ctas, gpu.sm_count)
    return [
        _log(seqs),
        _log(length),
        hq,
        hkv,
        hq / hkv,
        d,
        dv,
        _log(flops),
        _log(bytes_),
        _log(flops / bytes_),
        _log(roof),
        _log(ctas),
        waves,
        eff,
        c["backend"],
    ], roof


def _decode(c, gpu, axes):
    if axes:
        batch, length = axes["batch"], axes["length"]
    else:
        batch = np.maximum(c["batch"], 1)
        length = np.maximum(c["sum_kv"] / batch, 1)
    hq, hkv, d, dv = c["hq"], c["hkv"], c["d"], c["dv"]
    bytes_ = 2.0 * (batch * length * hkv * (d + dv) + batch * hq * (d + dv))
    flops = 2.0 * hq * batch * length * (d + dv)
    _, _, roof = _roofline_ms(flops, bytes_, gpu.bf16_tflops * 1e12, gpu)
    ctas = batch * hkv
    return [
        _log(batch),
        _log(length),
        hq,
        hkv,
        hq / hkv,
        d,
        dv,
        _log(bytes_),
        _log(roof),
        _log(ctas),
        ctas / gpu.sm_count,
        c["backend"],
    ], roof


def _grouped(c, gpu, axes):
    tokens, topk, experts, k, n = c["tokens"], c["topk"], c["experts"], c["k"], c["n"]
    busiest = np.maximum(c["max_per_expert"], 1)
    active = np.maximum(c["active_experts"], 1)
    elem, peak = c["elem"], c["peak"]
    rows = np.maximum(tokens * topk, 1)
    mean_rows = rows / active
    flops = 2.0 * rows * k * n
    weight_bytes = elem * active * k * n
    bytes_ = weight_bytes + elem * rows * k + 2.0 * rows * n
    _, _, roof = _roofline_ms(flops, bytes_, peak, gpu)
    t_busiest = 2.0 * busiest * k * n / peak * 1e3
    waves = active * np.ceil(mean_rows / 128) * np.ceil(n / 128) / gpu.sm_count
    busiest_tiles = np.ceil(busiest / 128) * np.ceil(n / 128)
    return [
        _log(tokens),
        topk,
        _log(experts),
        _log(k),
        _log(n),
        _log(rows),
        _log(busiest),
        _log(active),
        _log(mean_rows),
        busiest / mean_rows,
        _log(flops),
        _log(weight_bytes),
        _log(roof),
        _log(t_busiest),
        waves,
        busiest_tiles,
        elem,
        c["backend"],
    ], roof


def _elementwise(c, gpu, axes):
    roof = np.maximum(c["bytes"] / (gpu.mem_bw_gbps * 1e9) * 1e3, 1e-6)
    return [c["kind"], _log(c["tokens"]), _log(c["width"]), _log(c["bytes"]), _log(roof)], roof


def _collective(c, gpu, axes):
    roof = np.maximum(c["wire"] / c["bw"] * 1e3, 1e-6)
    return [c["kind"], c["link"], c["world"], _log(c["size"]), _log(c["wire"]), _log(roof)], roof


_MATRIX = {
    "gemm": _gemm,
    "attn_prefill": _prefill,
    "attn_decode": _decode,
    "grouped_gemm": _grouped,
    "elementwise": _elementwise,
    "collective": _collective,
}


def matrix(family: str, cols: dict, gpu: GPUSpec, axes: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(feature matrix float32, roofline ms) from extracted columns, optionally at other axes."""
    feats, roof = _MATRIX[family](cols, gpu, axes)
    n = len(roof)
    x = np.empty((n, len(feats)), dtype=np.float32)
    for j, f in enumerate(feats):
        x[:, j] = f
    return x, roof


def roofline_ms(family: str, cols: dict, gpu: GPUSpec, axes: dict | None = None) -> np.ndarray:
    """The roofline time of each operator (the baseline the models scale), optionally at other axes."""
    return _MATRIX[family](cols, gpu, axes)[1]


def features(family: str, ops, gpu: GPUSpec, axes: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(feature matrix, roofline ms) of same-family operators."""
    return matrix(family, columns(family, ops, gpu), gpu, axes)


def corners(axes: dict[str, np.ndarray], grid: dict[str, list]) -> list[tuple[dict, np.ndarray]]:
    """Bracketing grid points of each operator and their log-linear interpolation weights.

    Returns [(axis values at one corner, weight of that corner per operator)]: 2 corners for one
    axis, 4 for two. Outside the grid the nearest grid point gets all the weight."""
    per_axis = []
    for name, v in axes.items():
        g = np.asarray(grid[name], dtype=float)
        lv, lg = np.log(np.maximum(v, 1e-12)), np.log(g)
        i = np.clip(np.searchsorted(lg, lv), 1, len(g) - 1) if len(g) > 1 else np.zeros(len(v), int)
        lo, hi = g[np.maximum(i - 1, 0)], g[i]
        span = np.log(hi) - np.log(lo)
        w = np.where(span > 0, (lv - np.log(lo)) / np.where(span > 0, span, 1.0), 0.0)
        per_axis.append((name, lo, hi, np.clip(w, 0.0, 1.0)))
    out = [({}, np.ones(len(next(iter(axes.values())))))]
    for name, lo, hi, w in per_axis:
        out = [({**vals, name: at}, weight * ww) for vals, weight in out for at, ww in ((lo, 1.0 - w), (hi, w))]
    return out


# --------------------------------------------------------------------------- ragged attention
def attention_bounds(family: str, cols: dict) -> tuple[dict, dict]:
    """Axis values of the two uniform batches that bound a ragged batch.

    lower: the longest sequence alone (a batch is never faster than its longest member);
    upper: every sequence padded to the longest (never slower than the padded batch).
    For an equal-length batch both equal the batch itself."""
    if family == "attn_prefill":
        max_q, max_kv = cols["max_q"], cols["max_kv"]
        longest = np.sqrt(np.maximum(2.0 * max_q * max_kv - max_q * max_q, 1.0))
        seqs = np.maximum(cols["num_seqs"], 1)
        return ({"seqs": np.ones_like(seqs), "length": longest}, {"seqs": seqs, "length": longest})
    max_kv = np.maximum(cols["max_kv"], 1)
    batch = np.maximum(cols["batch"], 1)
    return {"batch": np.ones_like(batch), "length": max_kv}, {"batch": batch, "length": max_kv}


def is_ragged(family: str, cols: dict) -> np.ndarray:
    """True where a batch is not equal-length (or carries cached context)."""
    if family == "attn_prefill":
        seqs = np.maximum(cols["num_seqs"], 1)
        return (cols["max_q"] * seqs != cols["sum_q"]) | (cols["sum_qc"] > 0) | (cols["max_kv"] != cols["max_q"])
    if family == "attn_decode":
        return cols["max_kv"] * np.maximum(cols["batch"], 1) != cols["sum_kv"]
    return np.zeros(len(next(iter(cols.values()))), dtype=bool)


def memory_floor_ms(family: str, cols: dict, gpu: GPUSpec) -> np.ndarray:
    """Bytes the batch must read (KV of every sequence, context included, Q and O) at full
    bandwidth."""
    if family == "attn_prefill":
        q_o = cols["sum_q"] * cols["hq"] * (cols["d"] + cols["dv"])
        kv = cols["sum_kv"] * cols["hkv"] * (cols["d"] + cols["dv"])
    else:
        kv = cols["sum_kv"] * cols["hkv"] * (cols["d"] + cols["dv"])
        q_o = cols["batch"] * cols["hq"] * (cols["d"] + cols["dv"])
    return 2.0 * (q_o + kv) / (gpu.mem_bw_gbps * 1e9) * 1e3


def log_target(ms: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """What the models predict: log of the time over its baseline (roofline + floor)."""
    return np.log(np.asarray(ms, dtype=float) / baseline)
