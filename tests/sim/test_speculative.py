"""Speculative decoding (MTP / EAGLE / n-gram): accepted tokens per step and step times by hand."""

import pytest

from frontier.errors import SpecError
from frontier.ops.graph import BatchStats
from frontier.predict.step import SpeculativeDecoding
from frontier.spec.scenario import Speculative, scenario_from_dict

from sim_helpers import LinearStepTime, make_scenario


def test_tokens_per_step_from_per_position_acceptance():
    # Position i is reached only if every earlier draft was accepted.
    assert Speculative("mtp", 3, (0.8,)).tokens_per_step == pytest.approx(1 + 0.8 + 0.64 + 0.512)
    assert Speculative("eagle", 2, (0.9, 0.6)).tokens_per_step == pytest.approx(1 + 0.9 + 0.9 * 0.6)


def test_a_decode_step_verifies_k_plus_one_tokens_after_k_drafts():
    rule = LinearStepTime(0.010, 0.0001)
    decode = BatchStats(num_decode=4, decode_sum_kv=400, decode_max_kv=100, num_sampled=4)
    mtp = SpeculativeDecoding(rule, Speculative("mtp", 2, (0.5,)), layers=10)
    # Verify 4 x 3 = 12 tokens: 10 + 1.2 = 11.2 ms. Draft: one of the 10 layers of a 4-token
    # step (10.4 ms / 10) per draft token, two of them: 2.08 ms. E = 1 + 0.5 + 0.25 = 1.75
    # tokens per step: each credited step takes 13.28 / 1.75 ms.
    assert mtp.step(decode).total_s == pytest.approx(0.01328 / 1.75)
    ngram = SpeculativeDecoding(rule, Speculative("ngram", 2, (0.5,)), layers=10)
    assert ngram.step(decode).total_s == pytest.approx(0.0112 / 1.75)  # drafted on the host
    prefill = BatchStats(
        num_prefill=1,
        prefill_tokens=100,
        prefill_sum_q2=10_000,
        prefill_sum_kv=100,
        prefill_max_q=100,
        prefill_max_kv=100,
        num_sampled=1,
    )
    assert mtp.step(prefill).total_s == pytest.approx(0.010 + 0.01)


def speculative(spec):
    return scenario_from_dict(
        {
            "model": "deepseek-v3",
            "gpu": "h100-sxm",
            "deployment": {"tp": 8, "speculative": spec},
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )


def test_speculative_deployment_field():
    sc = speculative({"method": "mtp", "num_speculative_tokens": 2, "acceptance_rate": [0.9, 0.7]})
    assert sc.clusters[0].speculative == Speculative("mtp", 2, (0.9, 0.7))
    with pytest.raises(SpecError, match=r"speculative.acceptance_rate: one probability in \[0, 1\], or one per"):
        speculative({"num_speculative_tokens": 3, "acceptance_rate": [0.9, 0.7]})
    with pytest.raises(SpecError, match="speculative.method: 'medusa' is not one of mtp, eagle, ngram"):
        speculative({"method": "medusa"})


def drafting(engine, version, method="mtp", **deployment):
    return make_scenario(engine=engine, engine_version=version, speculative={"method": method}, **deployment)


def test_sglang_up_to_0_5_10_drafts_48_requests_without_overlap_or_mixed_chunks():
    """SGLang's `_handle_speculative_decoding` (0.4.10-0.5.10): max_running_requests 48 unless
    set, overlap scheduler off, mixed chunks off; 0.5.14's v2 workers keep the defaults."""
    sc = drafting("sglang", "0.5.6", enable_mixed_chunk=True)
    c = sc.clusters[0]
    assert (c.max_num_seqs, c.enable_mixed_chunk) == (48, False)
    assert not sc.cluster_host_overlapped(c)
    sources = {f: src for f, _, src in c.defaults_from}
    assert "_handle_speculative_decoding" in sources["max_num_seqs"]
    assert "_handle_speculative_decoding" in sources["enable_mixed_chunk"]
    assert drafting("sglang", "0.5.10.post1", max_num_seqs=64).clusters[0].max_num_seqs == 64  # set: kept
    for newer in ("0.5.14", ""):
        sc = drafting("sglang", newer)
        assert sc.clusters[0].max_num_seqs == 4096 and sc.cluster_host_overlapped(sc.clusters[0])
    plain = make_scenario(engine="sglang", engine_version="0.5.6")
    assert plain.clusters[0].max_num_seqs == 4096 and plain.cluster_host_overlapped(plain.clusters[0])


def test_sglang_drafting_admits_at_most_48_requests():
    from frontier.sim.run import simulate

    from sim_helpers import table

    def most_running(scenario) -> int:
        rule = LinearStepTime(0.01, 1e-4)
        res = simulate(scenario, table([0.0] * 60, [8] * 60, [4] * 60), step_time=rule)
        assert res.summary["completed"] == 60
        return max(s.num_prefill + s.num_decode for s in rule.calls)

    assert most_running(drafting("sglang", "0.5.6")) == 48
    assert most_running(make_scenario(engine="sglang", engine_version="0.5.6")) == 60


def test_vllm_async_scheduling_is_off_for_an_ngram_draft():
    """vllm/config/vllm.py (0.14): async scheduling only with EAGLE-kind drafts (eagle, MTP)."""
    for method, hidden in (("mtp", True), ("eagle", True), ("ngram", False)):
        sc = drafting("vllm", "0.14.0", method)
        assert sc.cluster_host_overlapped(sc.clusters[0]) is hidden


def test_sglang_reserves_2_gib_for_an_eagle_kind_draft():
    """`_handle_gpu_memory_settings` / `__post_init__` (0.4.8-0.5.10): 2 GiB more kept out of
    mem_fraction_static for the draft model's CUDA graphs; none for ngram from 0.5.3."""
    from frontier.engine import sglang_memory_defaults

    gib = 79.6
    for version, draft, less in [((0, 5, 6), "mtp", 2), ((0, 5, 6), "ngram", 0), ((0, 5, 1), "ngram", 2)]:
        plain = sglang_memory_defaults(version, gib, 8)[2]
        with_draft = sglang_memory_defaults(version, gib, 8, draft=draft)[2]
        assert with_draft == pytest.approx(plain - less / gib, abs=1e-3)
    assert sglang_memory_defaults((0, 5, 14), gib, 8, draft="mtp") == sglang_memory_defaults((0, 5, 14), gib, 8)

    def fraction(**deployment):  # on make_scenario's H100 (79.18 GiB)
        return make_scenario(engine="sglang", engine_version="0.5.6", **deployment).clusters[0].gpu_memory_utilization

    assert fraction(speculative={"method": "mtp"}) == pytest.approx(fraction() - 2 / 79.18, abs=1e-3)


def test_sglang_verifies_a_draft_in_the_graph_of_its_batch_size():
    """cuda_graph_runner.py: SGLang captures its graphs by batch size, a verify pass of B
    sequences with 1 + k tokens each replaying the next captured size's graph; a drafting
    engine's list is finer at small batches (every size to 8, every 2 to 32, every 4 to 64)."""
    from frontier.sim.run import block_costs_for

    sc = drafting("sglang", "0.5.6")  # an H100 at tp 1: graphs to 256 sequences
    blocks = block_costs_for(sc, sc.clusters[0])[0]
    assert sc.clusters[0].cuda_graph_max_bs == 256

    def verify(seqs: int) -> BatchStats:
        return BatchStats(num_decode=2 * seqs, decode_sum_kv=2 * seqs * 64, decode_max_kv=64, num_sampled=2 * seqs)

    # 9 sequences: 18 verify tokens replay the 10-sequence graph (20 tokens); 61: the 64 one.
    assert [blocks.padded_tokens(verify(b)) for b in (3, 9, 61, 200)] == [6, 20, 128, 400]
    assert blocks.uses_graph(verify(256)) and not blocks.uses_graph(verify(257))


def test_vllm_rounds_its_graph_sizes_to_a_drafting_decode_from_0_12():
    """compilation.py adjust_cudagraph_sizes_for_spec_decode (0.12 on): each capture size rounded
    up to a multiple of 1 + k, those past the largest dropped; 0.11 keeps its sizes."""
    from frontier.sim.run import block_costs_for

    def graphs(version: str, k: int) -> tuple[int, ...]:
        sc = make_scenario(
            engine="vllm", engine_version=version, max_num_seqs=8, speculative={"num_speculative_tokens": k}
        )
        return block_costs_for(sc, sc.clusters[0])[0].overheads.capture_sizes

    # 8 sequences, 2 drafts: graphs to min(2 x 8 x 3, 512) = 48 tokens from 0.13 (16 in 0.12,
    # whose ceiling does not count the drafts): 1, 2, 4, 8, 16, 24, 32, 40, 48 rounded to 3s.
    assert graphs("0.13.0", 2) == (3, 6, 9, 18, 24, 33, 42, 48)
    assert graphs("0.12.0", 2) == (3, 6, 9)  # 16 rounds to 18, past the largest
    assert graphs("0.11.0", 2) == (1, 2, 4, 8, 16)
    with pytest.raises(SpecError, match=r"cuda_graph_sizes: vLLM 0.12.0 rounds .* 3 query tokens .* largest, 2;"):
        make_scenario(
            engine="vllm", engine_version="0.12.0", cuda_graph_sizes=[1, 2], speculative={"num_speculative_tokens": 2}
        )
