"""Predictions from the trees' grid tables and the step model's dense tables."""

import shutil

import numpy as np
import pytest

from frontier.ops.graph import BatchStats, Parallel, attention_core
from frontier.ops.operators import AttnDecode, AttnPrefill, Gemm
from frontier.predict import load_predictor
from frontier.predict.blocks import BlockCosts, launched_ms, split
from frontier.predict.features import matrix
from frontier.predict.xgb import SHAPE_COLUMNS, GridTables, XGBoostFamilyModel
from frontier.spec.model import load_model

from .conftest import H100, H100_DIR


def random_ops(rng, n=120):
    gemm = [
        Gemm(int(m), int(k), int(nn), dt)
        for m, k, nn, dt in zip(
            rng.integers(1, 20000, n),
            rng.choice([1024, 4096, 8192], n),
            rng.choice([4096, 14336, 128256], n),
            rng.choice(["bf16", "fp8"], n),
        )
    ]
    prefill, decode = [], []
    for _ in range(n):
        k = int(rng.integers(1, 6))
        q, c = rng.integers(1, 3000, k), rng.integers(0, 5000, k) * rng.integers(0, 2, k)
        prefill.append(
            AttnPrefill(
                k,
                int(q.sum()),
                int((q * q).sum()),
                int((q * c).sum()),
                int((q + c).sum()),
                int(q.max()),
                int((q + c).max()),
                32,
                int(rng.choice([8, 32])),
                128,
                128,
                "flash",
            )
        )
        b = int(rng.integers(1, 300))
        kv = rng.integers(1, 8000, b)
        decode.append(AttnDecode(b, int(kv.sum()), int(kv.max()), 32, 8, 128, 128, "flash"))
    return {"gemm": gemm, "attn_prefill": prefill, "attn_decode": decode}


def test_tables_give_the_trees_own_numbers(h100, monkeypatch):
    """Looking the trees' answers up in their grid tables (here: cached on disk) gives the
    predictions of tables built afresh from the booster, and a table entry is the booster's
    prediction at that grid point."""
    ops = random_ops(np.random.default_rng(0))
    tabulated = {f: XGBoostFamilyModel.load(f, h100, H100_DIR / "predictors").predict_ms(o) for f, o in ops.items()}

    monkeypatch.setattr(GridTables, "load", classmethod(lambda cls, source: None))
    monkeypatch.setattr(GridTables, "save", lambda self: None)
    for family, o in ops.items():
        model = XGBoostFamilyModel.load(family, h100, H100_DIR / "predictors")
        fresh = model.predict_ms(o)  # tables built now, from the booster
        assert np.array_equal(fresh, tabulated[family])
        # and a grid point's table entry is the booster's prediction there
        t = model.tables("*")
        shape, table = next(iter(t.shapes.items()))
        axes = list(t.grid)
        at = {a: np.array([float(t.grid[a][-1])]) for a in axes}
        cols = {c: np.array([v]) for c, v in zip(SHAPE_COLUMNS[family], shape)}
        x, _ = matrix(family, cols, h100, at)
        assert float(model.booster("*").inplace_predict(x)[0]) == pytest.approx(
            float(table[(-1,) * len(axes)]), rel=1e-6
        )


def test_cached_tables_need_no_xgboost(tmp_path, h100):
    pred = tmp_path / "predictors"
    pred.mkdir()
    shutil.copy(H100_DIR / "predictors" / "attn_decode.json", pred)
    op = [AttnDecode(16, 16 * 900, 2000, 32, 8, 128, 128, "flash")]
    first = XGBoostFamilyModel.load("attn_decode", h100, pred)
    ms = first.predict_ms(op)
    assert list((pred / "cache").glob("attn_decode-*.npz"))
    again = XGBoostFamilyModel.load("attn_decode", h100, pred)
    assert again.predict_ms(op) == pytest.approx(ms, rel=0)
    assert isinstance(again.boosters["*"], type(pred))  # the model file was never read
    # A changed model file is another cache entry: the old tables are not used for it.
    (pred / "attn_decode.json").write_bytes((pred / "attn_decode.json").read_bytes() + b" ")
    assert GridTables.load(pred / "attn_decode.json") is None


def test_one_prefill_table_is_within_half_a_percent_of_the_predictor():
    model, par = load_model("llama-2-7b"), Parallel()
    predictor = load_predictor(H100)
    blocks = BlockCosts(model, par, predictor)
    rng = np.random.default_rng(1)
    for _ in range(150):
        q = int(rng.integers(1, 8192))
        c = int(rng.integers(0, 4096)) * int(rng.integers(0, 2))
        ops = attention_core(model, par, BatchStats(1, q, q * q, q * c, q + c, q, q + c), "flash", "bf16")
        exact = launched_ms(ops, predictor.ops_ms([op for op, _ in ops]), blocks.overheads, graph=False)[0]
        assert blocks.one_prefill_ms(q, c) == pytest.approx(exact, rel=5e-3)


def test_a_share_of_a_split_sequence_is_not_costed_as_a_shorter_sequence():
    # Split over 2 attention ranks, one 4,000-token prompt is half its causal work per rank, not
    # a 2,000-token prompt (a quarter of it): the one-prefill table is for whole sequences only.
    model, predictor = load_model("llama-3.1-8b"), load_predictor(H100)
    blocks = BlockCosts(model, Parallel(), predictor)
    whole = BatchStats(1, 4000, 4000 * 4000, 0, 4000, 4000, 4000)
    share = split(whole, 2)
    assert share.num_prefill == 1 and share.prefill_tokens == 2000
    half_prompt = blocks.one_prefill_ms(2000, 0)
    assert blocks.attention_ms(share, False) > 1.5 * half_prompt
    assert blocks.attention_ms(whole, False) == pytest.approx(blocks.one_prefill_ms(4000, 0))


def test_one_prefill_operator_alone_gets_the_numbers_of_a_batch(h100):
    """An attention-prefill operator asked alone takes a path of Python floats (a step with
    several prefills asks one new shape at a time); its answer is bit for bit the one the same
    operator gets among others, ragged or not, on the grid and off it."""
    model = XGBoostFamilyModel.load("attn_prefill", h100, H100_DIR / "predictors")
    ops = random_ops(np.random.default_rng(1), n=300)["attn_prefill"]
    ops += [AttnPrefill.uniform(s, q, 32, 8, 128, 128) for s, q in [(1, 1), (1, 512), (4, 2048), (64, 8000)]]
    together = model.predict_ms(ops)
    alone = np.array([model.predict_ms([op])[0] for op in ops])
    assert np.array_equal(alone, together)
    assert model._one_prefill(ops[0], model.tables(model.default)) is not None  # the path ran
