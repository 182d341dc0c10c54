"""The engine's front end (frontier.sim.frontend): a FIFO of serial work, then a latency."""

import pytest

from frontier.errors import SpecError
from frontier.sim.frontend import Frontend
from frontier.sim.run import _frontend
from frontier.spec.scenario import scenario_from_dict

from sim_helpers import LinearStepTime, make_scenario, table


def test_a_burst_leaves_the_front_end_one_request_at_a_time():
    # 6 ms serial + 2 us x 1,000 prompt tokens = 8 ms of work each, then 14 ms of latency: three
    # requests sent together reach the scheduler 8 ms apart; one sent after the front end has
    # drained waits for nothing but its own work.
    fe = Frontend(latency_ms=14.0, serial_ms=6.0, us_per_token=2.0)
    assert [fe.admit(0.0, 1000) for _ in range(3)] == pytest.approx([0.022, 0.030, 0.038])
    assert fe.admit(1.0, 1000) == pytest.approx(1.022)
    # A busy front end queues a later request behind the earlier ones' work.
    fe = Frontend(latency_ms=0.0, serial_ms=10.0, us_per_token=0.0)
    assert [fe.admit(t, 0) for t in (0.0, 0.001, 0.002)] == pytest.approx([0.010, 0.020, 0.030])
    # Two replicas, two API servers: the third request waits for the first server free.
    fe = Frontend(latency_ms=0.0, serial_ms=10.0, us_per_token=0.0, servers=2)
    assert [fe.admit(t, 0) for t in (0.0, 0.001, 0.002)] == pytest.approx([0.010, 0.011, 0.020])


def test_a_per_prompt_token_latency_delays_each_request_by_its_own_prompt_in_parallel():
    # 10 us per prompt token on top of 14 ms, no serial work: requests of 1,000 and 8,000 tokens
    # sent together arrive 24 and 94 ms later, neither waiting for the other.
    fe = Frontend(latency_ms=14.0, serial_ms=0.0, us_per_token=0.0, latency_us_per_token=10.0)
    assert [fe.admit(0.0, 8000), fe.admit(0.0, 1000)] == pytest.approx([0.094, 0.024])


def test_each_replica_has_its_own_api_server():
    sc = scenario_from_dict(
        {
            "model": "llama-3.1-8b",
            "gpu": "h100-sxm",
            "deployment": {"engine": "vllm", "dp": 8},
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1},
            },
        }
    )
    assert len(_frontend(sc, sc.clusters[0]).free_s) == 8


def _scenario(model: str, engine: str, **deployment):
    return scenario_from_dict(
        {
            "model": model,
            "gpu": "h200",
            "deployment": {"engine": engine, "tp": 4, **deployment},
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )


@pytest.mark.parametrize(
    ("model", "engine", "latency_ms", "per_token_us"),
    [
        ("llama-3.1-8b", "sglang", 25.0, 2.0),  # SGLang's front end
        ("qwen3-30b-a3b", "sglang", 160.0, 2.0),  # + the MoE models' extra
        ("qwen3-30b-a3b", "vllm", 14.0, 0.0),  # vLLM: 6 ms serial, 14 ms latency, MoE or not
    ],
)
def test_the_simulations_front_end_is_the_engines(model, engine, latency_ms, per_token_us):
    sc = _scenario(model, engine)
    fe = _frontend(sc, sc.clusters[0])
    assert fe.latency_s == pytest.approx(latency_ms * 1e-3)
    assert fe.per_token_s == pytest.approx(per_token_us * 1e-6)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_dynamos_front_end_adds_its_wait_per_prompt_token_to_either_engine(engine):
    from frontier.engine import DYNAMO_US_PER_PROMPT_TOKEN

    own, dynamo = _scenario("llama-3.1-8b", engine), _scenario("llama-3.1-8b", engine, frontend="dynamo")
    assert _frontend(own, own.clusters[0]).latency_per_token_s == 0.0
    fe = _frontend(dynamo, dynamo.clusters[0])
    assert fe.latency_per_token_s == pytest.approx(DYNAMO_US_PER_PROMPT_TOKEN * 1e-6)
    assert fe.latency_s == _frontend(own, own.clusters[0]).latency_s  # the engine's latency stays
    assert fe.per_token_s == 0.0  # Dynamo tokenises: the engine's own tokeniser has nothing to do
    shown = dynamo.describe_deployment()["clusters"][0]["engine_defaults"]["frontend_us_per_prompt_token"]
    assert shown["value"] == DYNAMO_US_PER_PROMPT_TOKEN
    with pytest.raises(SpecError, match="deployment.frontend: 'triton' is not one of engine, dynamo"):
        _scenario("llama-3.1-8b", engine, frontend="triton")


def test_sglang_request_latency_is_the_models_not_the_releases():
    # One front end for every SGLang release (the MoE extra is the models'), and the summary
    # names the figure each cluster uses.
    from frontier.engine import SGLANG_REQUEST_MS, make_engine
    from frontier.spec.hardware import get_gpu

    gpu = get_gpu("h200")
    assert {make_engine("sglang", v, gpu, 4).host.request_ms for v in ("0.4.0", "0.5.6", "")} == {SGLANG_REQUEST_MS}
    for model in ("llama-3.1-8b", "qwen3-30b-a3b"):
        sc = _scenario(model, "sglang")
        shown = sc.describe_deployment()["clusters"][0]["engine_defaults"]["request_latency_ms"]["value"]
        assert shown == pytest.approx(_frontend(sc, sc.clusters[0]).latency_s * 1e3)


def test_streamed_tokens_queue_in_the_front_end_when_they_come_faster_than_it_sends():
    # 1 ms of front-end work per streamed token; tokens arrive evenly over each span.
    fe = Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=1000.0)
    assert fe.stream("a", 0.000, 0.010, 5) == 0.0  # 5 ms of work in a 10 ms step: no queue
    assert fe.stream("a", 0.010, 0.020, 15) == pytest.approx(0.005)  # 15 ms in 10: 5 ms behind
    assert fe.stream("b", 0.010, 0.020, 8) == 0.0  # another instance streams through its own
    assert fe.stream("a", 0.020, 0.030, 8) == pytest.approx(0.003)  # 5 ms backlog + 8 - 10
    assert fe.stream("a", 0.100, 0.110, 2) == 0.0  # drained meanwhile


def test_a_stream_interval_sends_first_last_and_every_nth_token_and_workers_share_the_work():
    # 1 ms per output. 40 tokens in a 10 ms step, 4 of them first tokens and 2 last ones: one
    # output each, the other 34 in outputs of 10 (SGLang --stream-interval 10): 4 + 2 + 3.4 =
    # 9.4 ms of work, no queue. Every token its own output: 40 ms, 30 ms behind; four tokenizer
    # workers share it: 10 ms, none.
    fe = Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=1000.0, stream_interval=10)
    assert fe.stream("a", 0.000, 0.010, 40, firsts=4, lasts=2) == 0.0
    # 200 tokens: 4 + 2 + 19.4 = 25.4 ms of work in 10 ms, 15.4 ms behind.
    assert fe.stream("a", 0.020, 0.030, 200, firsts=4, lasts=2) == pytest.approx(0.0154)
    every = Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=1000.0)
    assert every.stream("a", 0.000, 0.010, 40, firsts=4, lasts=2) == pytest.approx(0.030)
    shared = Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=1000.0, workers=4)
    assert shared.stream("a", 0.000, 0.010, 40, firsts=4, lasts=2) == 0.0
    # The workers tokenise too: four requests sent together leave 10 ms of serial work each at once.
    fe = Frontend(latency_ms=0.0, serial_ms=10.0, us_per_token=0.0, workers=4)
    assert [fe.admit(0.0, 0) for _ in range(5)] == pytest.approx([0.010] * 4 + [0.020])


def test_a_deployments_stream_interval_and_tokenizer_workers_reach_its_front_end():
    sc = _scenario("llama-3.1-8b", "sglang", stream_interval=50, tokenizer_workers=6)
    fe = _frontend(sc, sc.clusters[0])
    assert fe.stream_interval == 50 and fe.stream_s == pytest.approx(52e-6 / 6) and len(fe.free_s) == 6
    for field in ("stream_interval", "tokenizer_workers"):
        with pytest.raises(SpecError, match=f"deployment.{field}: must be >= 1"):
            _scenario("llama-3.1-8b", "sglang", **{field: 0})


def test_a_late_stream_delays_the_tokens_and_the_clients_next_request():
    # One client, two requests of 10 + 2 tokens, 10 ms steps, 15 ms of front-end work per
    # streamed token. Request 0: prefill 0-10 ms, its first token out 5 ms late (15 ms); decode
    # 10-20 ms, its last token 5 + 15 - 10 = 10 ms late (30 ms). The client sends request 1 at
    # 30 ms: the same again from there (first token 45 ms, done 60 ms).
    from frontier.sim.run import Simulation, _result

    requests = table([0.0, 0.0], [10, 10], [2, 2], concurrency=1)
    sim = Simulation(make_scenario(), requests, False, False, LinearStepTime(0.010, 0.0), True)
    sim.attach_frontend(Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=15000.0))
    sim.run()
    df = _result(sim, 0.0).requests
    assert list(df.arrival_s) == pytest.approx([0.0, 0.030])
    assert list(df.first_token_s) == pytest.approx([0.015, 0.045])
    assert list(df.finish_s) == pytest.approx([0.030, 0.060])


def test_only_sglang_streams_through_a_queue():
    # The simulation's front end uses the engine's figure, and the summary shows it.
    for engine, us in (("sglang", 52.0), ("vllm", 0.0)):
        sc, cluster = _first_cluster("llama-3.1-8b", engine)
        assert _frontend(sc, cluster).stream_s == pytest.approx(us * 1e-6)
        shown = sc.describe_deployment()["clusters"][0]["engine_defaults"]["stream_us_per_output"]["value"]
        assert shown == pytest.approx(us)


def _first_cluster(model: str, engine: str):
    sc = _scenario(model, engine)
    return sc, sc.clusters[0]


def test_the_front_end_counts_its_load_from_the_measured_phase_on():
    # 2 ms serial + 1 us x 1,000 prompt tokens = 3 ms of work a request, 1 ms an output. Before
    # the reset (a warmup): nothing counts. Then two requests (6 ms of work on 1 server) and, on
    # instance "a", 15 outputs in a 10 ms step (15 ms of work: 5 ms behind, two first tokens
    # each 5 ms late) and 4 outputs in the next (the 5 ms backlog and 4 ms of work fit its 10 ms:
    # no lag); instance "b" 2 outputs. Over 20 ms: requests 30 % busy, the busiest stream (a) 95 %, first tokens
    # 5 ms late on average.
    fe = Frontend(latency_ms=0.0, serial_ms=2.0, us_per_token=1.0, stream_us_per_output=1000.0)
    fe.admit(0.0, 1000)
    fe.stream("a", 0.000, 0.010, 30, firsts=3)
    fe.reset_counters()
    for _ in range(2):
        fe.admit(1.0, 1000)
    assert fe.stream("a", 1.000, 1.010, 15, firsts=2) == pytest.approx(0.005)
    assert fe.stream("a", 1.010, 1.020, 4) == pytest.approx(0.0)
    fe.stream("b", 1.000, 1.010, 2)
    assert fe.load(0.020) == pytest.approx(
        {"request_busy_fraction": 0.30, "stream_busy_fraction": 0.95, "first_token_stream_lag_ms": 5.0}
    )
    # Without an output queue (vLLM) there is no stream to report.
    plain = Frontend(latency_ms=14.0, serial_ms=6.0, us_per_token=0.0)
    plain.admit(0.0, 10)
    assert plain.load(0.060) == {
        "request_busy_fraction": pytest.approx(0.1),
        "stream_busy_fraction": None,
        "first_token_stream_lag_ms": None,
    }


def test_a_saturated_stream_is_reported_with_the_knobs_that_relieve_it():
    from frontier.metrics.report import frontend_notes, frontend_row

    load = {"request_busy_fraction": 0.07, "stream_busy_fraction": 0.95, "first_token_stream_lag_ms": 160.0}
    assert frontend_row(load) == ("request work 7% busy; output stream 95% busy, first tokens 160 ms late on average")
    (note,) = frontend_notes(load)
    assert note.startswith("the front end's output stream is 95% busy") and "--tokenizer-worker-num" in note
    calm = {"request_busy_fraction": 0.2, "stream_busy_fraction": 0.5, "first_token_stream_lag_ms": None}
    assert frontend_row(calm) == "request work 20% busy; output stream 50% busy" and frontend_notes(calm) == []
    assert frontend_notes(None) == [] and frontend_row(None) is None


def test_a_simulation_summary_carries_its_front_ends_load():
    # The late-stream case above: 15 ms of work for each of its 4 outputs over the 60 ms run,
    # each request's first token 5 ms late.
    from frontier.sim.run import Simulation, _result

    requests = table([0.0, 0.0], [10, 10], [2, 2], concurrency=1)
    sim = Simulation(make_scenario(), requests, False, False, LinearStepTime(0.010, 0.0), True)
    sim.attach_frontend(Frontend(latency_ms=0.0, serial_ms=0.0, us_per_token=0.0, stream_us_per_output=15000.0))
    sim.run()
    load = _result(sim, 0.0).summary["frontier"]["frontend"]
    assert load["stream_busy_fraction"] == pytest.approx(4 * 0.015 / 0.060)
    assert load["first_token_stream_lag_ms"] == pytest.approx(5.0)
