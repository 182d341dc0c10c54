"""SGLang's published 96-H100 DeepSeek-V3 deployment (lmsys.org/blog/2025-05-05-large-scale-ep,
launch flags in sgl-project/sglang#6017), measured one side at a time: 54.5k input tokens/s per
prefill node (4 nodes, DP32 + EP32), 22.3k output tokens/s per decode node (9 nodes, DP72 +
EP72). The ready-made scenarios (simulate/deepseek-v3-*-only-h100.yaml) stay near them; the
README gives the figures Frontier prints."""

import pytest

from frontier.paths import REPO_ROOT
from frontier.sim.run import run_scenario
from frontier.spec.scenario import load_scenario


def per_node(name: str, key: str) -> float:
    scenario = load_scenario(REPO_ROOT / "simulate" / f"deepseek-v3-{name}-h100.yaml")
    cluster = run_scenario(scenario, timeline=False).summary["frontier"]["clusters"][0]
    return cluster[key] / cluster["nodes"]


def test_prefill_node_input_rate_within_a_quarter_of_sglangs():
    assert per_node("prefill-only", "steady_input_tokens_per_s") == pytest.approx(54_500, rel=0.25)


def test_decode_node_output_rate_within_a_tenth_of_sglangs():
    assert per_node("decode-only", "steady_output_tokens_per_s") == pytest.approx(22_300, rel=0.10)
