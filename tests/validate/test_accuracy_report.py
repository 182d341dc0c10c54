"""What `make accuracy` reports per run and per group (frontier.validate.accuracy)."""

import pytest

from frontier.validate.accuracy import (
    _mean_output_tokens,
    closed_loop_rps,
    compare_table,
    format_table,
    moved_runs,
    steep_front_end,
    summarise,
)


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

    # Against itself with the TTFT error set 50 points off, plus a run the filter leaves out (which
    # must not count): the group's cells show the move, the run is listed as having moved, and its
    # TPOT, unchanged, shows one figure.
    old = json.loads(out.read_text())
    old["runs"][0]["ttft_error_pct"] = run["ttft_error_pct"] + 50
    old["runs"].append({**run, "id": "a run this filter leaves out", "ttft_error_pct": 900.0})
    (tmp_path / "old.json").write_text(json.dumps(old))
    res = CliRunner().invoke(
        main,
        [
            "accuracy",
            "--filter",
            "sglang_agg_1000x100_c3_tp2_epnone_2",
            "-j",
            "1",
            "-o",
            out,
            "--baseline",
            tmp_path / "old.json",
        ],
    )
    assert res.exit_code == 0, res.output
    before, after = old["runs"][0]["ttft_error_pct"], run["ttft_error_pct"]
    assert (
        f"| {abs(before):.0f} -> {abs(after):.0f} % | {before:+.0f} -> {after:+.0f} % | {abs(run['tpot_error_pct']):.0f} % |"
        in res.output
    )
    assert f"- {run['id']}: TTFT {before:+.0f} -> {after:+.0f} %" in res.output
    bad = CliRunner().invoke(main, ["accuracy", "--filter", "x", "-o", out, "--baseline", tmp_path / "none.json"])
    assert bad.exit_code != 0 and "baseline not found" in bad.output
    (tmp_path / "other.json").write_text('{"runs": [{"id": "another run", "unexpressed": "why"}]}')
    args = ["accuracy", "--filter", "sglang_agg_1000x100_c3_tp2_epnone_2", "--baseline", tmp_path / "other.json"]
    bad = CliRunner().invoke(main, [*args, "-o", tmp_path / "unwritten.json"])  # refused before simulating
    assert bad.exit_code != 0 and "holds none of these 1 runs" in bad.output
    assert not (tmp_path / "unwritten.json").exists()


def test_a_baseline_shows_each_groups_errors_before_and_after():
    before = summarise(
        [_row("sglang", 8, -40.0, 10.0, 2.0), _row("sglang", 8, 20.0, -10.0, -4.0), _row("vllm", 1, 5.0, 5.0, 0.0)]
    )
    after = summarise(
        [
            _row("sglang", 8, -10.0, 10.0, 2.0),  # TTFT: |-10|, |20|, |14| -> median 14; signed median 14
            _row("sglang", 8, 20.0, -10.0, -4.0),
            _row("sglang", 8, 14.0, 10.0, 0.0),
            _row("vllm", 2, 5.0, 5.0, 0.0),  # a group the baseline lacks: left out of the comparison
        ]
    )
    table = compare_table(before, after)
    # sglang TP8 before: TTFT |-40|, |20| -> median 30, signed median -10; TPOT 10 / -10 -> 10, 0.
    assert "| sglang | Model | h200_sxm | 8 | 2 -> 3 | 30 -> 14 % | -10 -> +14 % | 10 % | +0 -> +10 % |" in table
    assert "| vllm | Model | h200_sxm | 2 |" not in table  # not in the baseline
    assert "| **vllm** | all | | | 1 | 5 % | +5 % | 5 % | +5 % |" in table  # unchanged cells: one figure
    assert "| **all** | | | | 3 -> 4 |" in table


def test_the_runs_that_moved_most_come_first_and_still_ones_are_left_out():
    def run(rid, ttft, tpot):
        return {"id": rid, "ttft_error_pct": ttft, "tpot_error_pct": tpot}

    before = [run("a", 93.0, -18.0), run("b", 10.0, 5.0), run("c", 0.0, 0.0), {"id": "d", "unexpressed": "why"}]
    after = [run("a", 12.0, -3.0), run("b", 10.0, 25.0), run("c", 0.2, 0.0), run("new", 50.0, 0.0)]
    assert moved_runs(before, after) == [
        "a: TTFT +93 -> +12 %, TPOT -18 -> -3 %",  # moved 81 points
        "b: TTFT +10 -> +10 %, TPOT +5 -> +25 %",  # moved 20
    ]  # c moved 0.2 of a point; "new" has no baseline


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "baseline not found"),
        ("{not json", "is not an accuracy.json"),
        ('{"summary": {}}', "has no 'runs' list"),
        ('{"runs": [{"id": "a", "engine": "vllm"}]}', "run 0 has no model, gpu, tp, ttft_error_pct"),
        ('{"runs": [{"unexpressed": "why"}]}', "run 0 has no id"),
    ],
)
def test_a_bad_baseline_is_one_clear_error(tmp_path, text, message):
    from frontier.errors import FrontierError
    from frontier.validate.accuracy import read_report

    path = tmp_path / "old.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(FrontierError, match=message):
        read_report(path)


def test_runs_on_a_near_saturated_front_end_are_counted_apart():
    # Two runs streamed through a front end at 95 and 90 % busy (TTFT off by 60 and 20 %), two
    # below 90 % or without a stream (10 and 30 %): median APE 40 % against 20 %.
    rows = [_row("sglang", 8, e, 0.0, 0.0) for e in (-60.0, 20.0, 10.0, -30.0)]
    for r, busy in zip(rows, (0.95, 0.90, 0.5, None)):
        r["predicted_stream_busy_fraction"] = busy
    assert steep_front_end(rows) == (
        "2 runs stream their outputs through a front end at least 90% busy (TTFT median APE 40 %; the other 2: 20 %)"
    )
    assert steep_front_end(rows[2:]) is None
