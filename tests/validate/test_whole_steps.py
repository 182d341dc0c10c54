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
    # 3.9 % and 14.1 % now (45 runs, each measurement once). The tail is MiniMax-M2.5 at TP4, whose
    # repeated measurements of one deployment disagree by up to 50 % (10.1 vs 15.5 ms on H100; its
    # H100 EP4 steps 12 % short at their measured expert-parallel speed), and SGLang 0.5.6's
    # Qwen3-235B.
    assert median <= 0.07 and p90 <= 0.25


@pytest.mark.parametrize(
    "where",
    [
        {"model": "Llama-3.1-70B", "gpu": "h200"},  # dense FP8, H200, TP1-8
        {"model": "DeepSeek", "gpu": "h200"},  # MoE + MLA, FP8 blocks
        pytest.param(
            {"model": "Qwen3-235B", "gpu": "h200"},  # MoE, FP8
            marks=pytest.mark.xfail(
                strict=True,
                reason="SGLang 0.5.6's Qwen3-235B-FP8 decode steps (TP2, 4 clients) are 15-20 % slower "
                "than the step built on SGLang 0.5.14's measured fused-MoE kernels, by a part that grows "
                "with the KV the step holds (~0.4 ms per 1,000 tokens at TP2, ~0.2 at TP4); unexplained",
            ),
        ),
        {"model": "gpt-oss", "gpu": "h100"},  # MoE, MXFP4 experts, H100
        {"model": "Kimi-K2.5", "gpu": "h200"},  # MoE + MLA, int4 experts
        {"model": "GLM-5", "gpu": "h200"},  # MoE + MLA + DeepSeek sparse attention
        # MoE + gated-DeltaNet hybrid, FP8 blocks, EP8 over the TP ranks: -6 and -13 % (its experts
        # at the engine's measured EP8 speed; 0 and -7 % on the TP twin's ratio, which reads its
        # decode-sized layers 50 % slow at 64 tokens, +10-30 % TPOT at 16-64 clients).
        {"model": "Qwen3.5", "gpu": "h200"},
    ],
)
def test_decode_steps_per_family(steps, where):
    median, _ = ape(steps, **where)
    assert median <= 0.12
