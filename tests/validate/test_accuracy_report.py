"""What `make accuracy` reports per run and per group (frontier.validate.accuracy)."""

import pytest

from frontier.validate.accuracy import _mean_output_tokens, closed_loop_rps, format_table, summarise


def test_a_closed_loops_requests_a_second_follow_from_its_latencies():
    # 64 clients; a request takes 200 ms to its first token and 100 more tokens at 20 ms: a
    # client's cycle is 2.2 s, so the loop completes 64 / 2.2 = 29.09 requests a second.
    assert closed_loop_rps(64, 200.0, 20.0, 101) == pytest.approx(64 / 2.2)
    # The same latencies with twice the clients: twice the requests.
    assert closed_loop_rps(128, 200.0, 20.0, 101) == pytest.approx(2 * 64 / 2.2)


def test_the_mean_output_length_is_the_workloads():
    fixed = {"workload": {"output_len": 100}}
    drawn = {"workload": {"output_len": {"dist": "uniform", "min": 820, "max": 1024}}}  # InferenceMAX's 0.8-1
    assert _mean_output_tokens(fixed) == 100.0 and _mean_output_tokens(drawn) == 922.0


def _row(engine: str, tp: int, ttft: float, tpot: float, rps: float) -> dict:
    return {
        "engine": engine,
        "model": "org/Model",
        "gpu": "h200_sxm",
        "tp": tp,
        "ttft_error_pct": ttft,
        "tpot_error_pct": tpot,
        "rps_error_pct": rps,
    }


def test_each_metric_gets_median_and_p90_absolute_error_and_median_signed_error():
    rows = [
        _row("sglang", 8, -40.0, 10.0, 2.0),
        _row("sglang", 8, 20.0, -10.0, -4.0),
        _row("sglang", 8, 10.0, 30.0, 6.0),
    ]
    rows.append({"engine": "vllm", "unexpressed": "no model card"})
    s = summarise(rows)
    (group,) = s["groups"]
    assert group["runs"] == 3 and s["all"]["runs"] == 3 and s["unexpressed"] == {"no model card": 1}
    assert group["ttft"]["median_ape_pct"] == 20.0 and group["ttft"]["bias_pct"] == 10.0
    assert group["rps"]["median_ape_pct"] == 4.0 and group["rps"]["bias_pct"] == 2.0
    assert group["tpot"]["p90_ape_pct"] == pytest.approx(26.0)  # 10, 10, 30: numpy's linear p90
    table = format_table(s)
    assert "| sglang | Model | h200_sxm | 8 | 3 | 20 % | 36 % | +10 % | 10 % | 26 % | +10 % | 4 % | +2 % |" in table
    assert "- 1 runs: no model card" in table


def test_the_report_plots_every_simulated_run(tmp_path):
    from frontier.validate.accuracy import plot_accuracy

    def run(engine, ttft, tpot, rps):
        return {
            "engine": engine,
            "ttft_error_pct": 0.0,
            **{
                f"{side}_{k}": v
                for side in ("measured", "predicted")
                for k, v in (("ttft_ms", ttft), ("tpot_ms", tpot), ("rps", rps))
            },
        }

    rows = [run("vllm", 100.0, 10.0, 5.0), run("sglang", 2000.0, 30.0, 0.5), {"engine": "vllm", "unexpressed": "why"}]
    path = plot_accuracy(rows, tmp_path / "out" / "accuracy.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_make_accuracy_writes_the_table_the_runs_and_the_plot(tmp_path):
    # One measured run (SGLang 0.5.6, Qwen3-235B-FP8, TP2, 3 clients of 1,000 / 100 tokens:
    # 240.86 ms TTFT, 15.05 ms TPOT, so 3 / (0.24086 + 99 x 0.01505) = 1.733 requests a second).
    import json

    from click.testing import CliRunner

    from frontier.cli import main

    out = tmp_path / "new" / "accuracy.json"
    res = CliRunner().invoke(
        main, ["accuracy", "--filter", "sglang_agg_1000x100_c3_tp2_epnone_2", "-j", "1", "-o", out]
    )
    assert res.exit_code == 0, res.output
    assert "| sglang | Qwen3-235B-A22B-FP8 | h200_sxm | 2 | 1 |" in res.output
    (run,) = json.loads(out.read_text())["runs"]
    assert run["measured_rps"] == pytest.approx(3 / (0.24086 + 99 * 0.01505))
    assert run["predicted_rps"] == pytest.approx(
        closed_loop_rps(3, run["predicted_ttft_ms"], run["predicted_tpot_ms"], 100)
    )
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
