"""Whole decode steps against the development set: with 4 clients or fewer and outputs at least
as long as the prompt, a run's mean TPOT is one decode step of `clients` sequences (prefills
of the next requests add under 5 %), at the mean context `isl + osl / 2`. The step model
(graph, predictors, CUDA-graph and host rules of the engine) must land near it."""

import numpy as np
import pytest

from frontier.errors import SpecError
from frontier.ops.graph import BatchStats
from frontier.sim.run import step_model_for
from frontier.spec.scenario import scenario_from_dict
from frontier.validate.accuracy import load_runs


@pytest.fixture(scope="module")
def steps():
    out = []
    for r in load_runs():
        if r.scenario is None or r.concurrency > 4 or r.osl < max(1000, r.isl):
            continue
        try:
            sc = scenario_from_dict(r.scenario)
        except SpecError:  # a deployment the engines refuse (`make accuracy` lists them)
            continue
        model, _ = step_model_for(sc, sc.clusters[0])
        b, ctx = r.concurrency, r.isl + r.osl // 2
        ms = model.step(BatchStats(num_decode=b, decode_sum_kv=b * ctx, decode_max_kv=ctx, num_sampled=b)).total_s * 1e3
        out.append({"model": r.model, "gpu": r.gpu, "precision": r.precision, "error": ms / r.tpot_ms - 1})
    return out


def ape(rows, **where):
    sel = [abs(r["error"]) for r in rows if all(w in r[k] for k, w in where.items())]
    assert sel, where
    return np.median(sel), np.percentile(sel, 90)


def test_decode_steps_within_10_percent_median(steps):
    assert len(steps) >= 40
    median, p90 = ape(steps)
    # 4.9 % and 9.1 % now (45 runs, each measurement once; 5.0 and 15.5 % before SGLang's FA3
    # decode graphs ran unsplit). The tail is MiniMax-M2.5 at TP4, whose repeated measurements of
    # one deployment disagree by up to 50 % (10.1 vs 15.5 ms on H100). (The longest sequence is
    # taken at the mean context here, which if anything understates an unsplit kernel.)
    assert median <= 0.07 and p90 <= 0.15


@pytest.mark.parametrize(
    "where",
    [
        {"model": "Llama-3.1-70B", "gpu": "h200"},  # dense FP8, H200, TP1-8
        {"model": "DeepSeek", "gpu": "h200"},  # MoE + MLA, FP8 blocks
        # MoE, FP8: SGLang 0.5.6 at TP2, 4 clients; -8, -8, -4 % with its FA3 decode graphs unsplit
        # (frontier.engine FA3_UNSPLIT_CTA_GBPS), 15-20 % short before.
        {"model": "Qwen3-235B", "gpu": "h200"},
        {"model": "gpt-oss", "gpu": "h100"},  # MoE, MXFP4 experts, H100
        {"model": "Kimi-K2.5", "gpu": "h200"},  # MoE + MLA, int4 experts
        {"model": "GLM-5", "gpu": "h200"},  # MoE + MLA + DeepSeek sparse attention
        # MoE + gated-DeltaNet hybrid, FP8 blocks, EP8 over the TP ranks: -7 and -14 % (its experts
        # at the engine's fused-MoE speed since expert-parallel layers take their TP twin's ratio;
        # 14 % median before).
        {"model": "Qwen3.5", "gpu": "h200"},
    ],
)
def test_decode_steps_per_family(steps, where):
    median, _ = ape(steps, **where)
    assert median <= 0.12
