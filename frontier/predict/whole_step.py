"""Whole decode steps measured on a GPU against the launch constants of Frontier's step rule.

The profiler's `decode_step` table (profiler/bench/step.py) times `layers` decoder layers of a
decode batch three ways: every kernel alone, summed (`alone`); launched back to back from Python
(`eager`); replayed from a CUDA graph (`graph`). Frontier's step rule
(`frontier.predict.blocks.launched_ms`) prices a kernel inside a graph at its time alone less
`GRAPH_OVERLAP_US` (at least `GRAPH_KERNEL_FLOOR_US`) plus `StepOverheads.graph_launch_us`, and
kernels launched eagerly at the larger of their time alone and `StepOverheads.eager_launch_us`
per launch. So, per kernel of a measured chain:
- graph saving = (alone - graph) / (layers x kernels) = GRAPH_OVERLAP_US - graph_launch_us, while
  the kernels stay above the floor;
- eager time = eager / (layers x kernels) = eager_launch_us where the chain is launch-bound (it
  takes longer eagerly than its kernels alone: the GPU waits for the CPU).
`fit` turns a table into those two constants, `predicted` prices the same chains as a simulation
does (the GPU's predictors and the step rule as it stands); `frontier calibration decode-steps`
prints both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from frontier.errors import FrontierError

SHAPE = ["model", "batch", "kv", "layers", "dtype", "kernels"]
MODES = ("alone", "eager", "graph")


def load(gpu: str, calibration_dir: Path | None = None) -> pd.DataFrame:
    from frontier.paths import CALIBRATION_DIR

    path = (calibration_dir or CALIBRATION_DIR) / gpu / "tables" / "decode_step.csv"
    if not path.is_file():
        raise FrontierError(
            f"no whole-step timings for {gpu}: {path} is missing; measure them on that GPU with "
            f"`make profile GPU={gpu} OPS=decode_step`"
        )
    table = pd.read_csv(path)
    missing = [c for c in [*SHAPE, "mode", "ms"] if c not in table.columns]
    if missing:
        raise FrontierError(f"{path}: no column {', '.join(missing)} (the profiler's decode_step table has them)")
    return table


def per_kernel(table: pd.DataFrame) -> pd.DataFrame:
    """One row per measured chain (model, batch, kv) timed all three ways: the chain's ms per
    mode and, per kernel, its time alone, eagerly and the graph's saving (us)."""
    wide = table.pivot_table(index=SHAPE, columns="mode", values="ms", aggfunc="median")
    wide = wide.reindex(columns=list(MODES)).dropna().reset_index()
    calls = wide["layers"] * wide["kernels"]
    wide["alone_us"] = 1e3 * wide["alone"] / calls
    wide["eager_us"] = 1e3 * wide["eager"] / calls
    wide["graph_saving_us"] = 1e3 * (wide["alone"] - wide["graph"]) / calls
    wide["launch_bound"] = wide["eager"] > wide["alone"]
    return wide


def fit(chains: pd.DataFrame, graph_launch_us: float) -> dict:
    """GRAPH_OVERLAP_US (the median graph saving per kernel plus the gap a graph leaves between
    kernels) and eager_launch_us (the median eager time per kernel of the launch-bound chains;
    None when no chain is), with how many chains each comes from."""
    bound = chains[chains["launch_bound"]]
    return {
        "graph_overlap_us": float(np.median(chains["graph_saving_us"])) + graph_launch_us,
        "graph_chains": len(chains),
        "eager_launch_us": float(np.median(bound["eager_us"])) if len(bound) else None,
        "eager_chains": len(bound),
    }


def predicted(chains: pd.DataFrame, gpu: str, calibration_dir: Path | None = None) -> pd.DataFrame:
    """The chains as Frontier prices them on `gpu`: each model card's decode layer
    (`frontier.ops.graph.decoder_layer`) through the GPU's predictors, summed alone, with the
    step rule's graph overlap and gaps (`pred_graph`) and with its eager launch cost
    (`pred_eager`), times the layers (ms)."""
    from frontier.ops.graph import decoder_layer
    from frontier.predict import load_predictor
    from frontier.predict.blocks import StepOverheads, launched_ms
    from frontier.spec.model import load_model

    predictor, rule = load_predictor(gpu, calibration_dir), StepOverheads()
    out = []
    for row in chains.itertuples():
        ops = [(op, 1) for op in decoder_layer(load_model(row.model), int(row.batch), int(row.kv), row.dtype)]
        ms = predictor.ops_ms([op for op, _ in ops])
        alone = float(ms.sum())
        eager, graph = (launched_ms(ops, ms, rule, graph)[0] for graph in (False, True))
        out.append([row.layers * t for t in (alone, eager, graph)])
    return chains.assign(**dict(zip(["pred_alone", "pred_eager", "pred_graph"], np.array(out).T)))
