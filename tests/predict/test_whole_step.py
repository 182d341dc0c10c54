"""The step rule's launch constants fitted to whole decode steps measured by the profiler."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from frontier.cli import FrontierGroup
from frontier.predict import whole_step
from frontier.predict.cli import commands

# Two chains of 4 layers x 10 kernels (40 calls), as the profiler's decode_step table has them:
# batch 1: 10 us a kernel alone, 15 us eagerly (the CPU launches slower than the GPU runs), a
# graph saves 1 us a kernel; batch 64: 50 us a kernel, the same eagerly, a graph saves 2 us.
M = ("llama-3.1-8b",)
ROWS = [
    (*M, 1, 1024, 4, "bf16", 10, "alone", 0.400),
    (*M, 1, 1024, 4, "bf16", 10, "eager", 0.600),
    (*M, 1, 1024, 4, "bf16", 10, "graph", 0.360),
    (*M, 64, 1024, 4, "bf16", 10, "alone", 2.000),
    (*M, 64, 1024, 4, "bf16", 10, "eager", 2.000),
    (*M, 64, 1024, 4, "bf16", 10, "graph", 1.920),
    (*M, 256, 1024, 4, "bf16", 10, "alone", 9.000),  # never replayed from a graph: left out
]


def table() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=[*whole_step.SHAPE, "mode", "ms"])


def test_per_kernel_times_and_the_graphs_saving():
    chains = whole_step.per_kernel(table())
    assert chains["batch"].tolist() == [1, 64]
    assert chains["alone_us"].tolist() == pytest.approx([10.0, 50.0])
    assert chains["eager_us"].tolist() == pytest.approx([15.0, 50.0])
    assert chains["graph_saving_us"].tolist() == pytest.approx([1.0, 2.0])
    assert chains["launch_bound"].tolist() == [True, False]


def test_fit_gives_the_overlap_and_the_launch_cost():
    got = whole_step.fit(whole_step.per_kernel(table()), graph_launch_us=1.0)
    assert got == {
        "graph_overlap_us": pytest.approx(2.5),
        "graph_chains": 2,
        "eager_launch_us": 15.0,
        "eager_chains": 1,
    }


def test_predicted_chains_follow_the_step_rule():
    from frontier.ops.graph import decoder_layer
    from frontier.predict import load_predictor
    from frontier.predict.blocks import StepOverheads
    from frontier.spec.model import load_model

    chains = whole_step.predicted(whole_step.per_kernel(table()), "h100-sxm")
    layer = decoder_layer(load_model("llama-3.1-8b"), 64, 1024)
    ms = load_predictor("h100-sxm").ops_ms(layer)
    assert chains["pred_alone"].iloc[1] == pytest.approx(4 * ms.sum())
    # A graph replays every kernel a little faster than alone; eagerly none runs faster.
    assert (chains["pred_graph"] < chains["pred_alone"]).all()
    assert (chains["pred_eager"] >= chains["pred_alone"]).all()
    # At one sequence a layer's ten kernels are short: eagerly at least the launch cost each.
    assert chains["pred_eager"].iloc[0] >= 4 * 10 * StepOverheads().eager_launch_us * 1e-3


def test_calibration_decode_steps_prints_the_fit(tmp_path):
    tables = tmp_path / "h100-sxm" / "tables"
    tables.mkdir(parents=True)
    table().to_csv(tables / "decode_step.csv", index=False)
    group = FrontierGroup("frontier")
    for cmd in commands:
        group.add_command(cmd)
    args = ["calibration", "decode-steps", "--gpu", "h100-sxm", "--calibration-dir", str(tmp_path)]
    result = CliRunner().invoke(group, args)
    assert result.exit_code == 0, result.output
    assert "GRAPH_OVERLAP_US: 2.50 us fitted to 2 chains (in use: 3" in result.output
    assert "eager_launch_us: 15.00 us fitted to 1 launch-bound chains (in use: 15)" in result.output
    assert "median APE of the predicted chains: alone" in result.output
    missing = CliRunner().invoke(group, [*args[:3], "h200", *args[4:]])
    assert missing.exit_code != 0
    assert "make profile GPU=h200 OPS=decode_step" in missing.output
