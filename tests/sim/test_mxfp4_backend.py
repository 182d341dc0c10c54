"""deployment.mxfp4_backend: vLLM's MoE kernel for MXFP4 experts (triton_kernels or Marlin)."""

import pytest

from frontier.errors import SpecError
from frontier.sim.run import block_costs_for
from frontier.spec.scenario import scenario_from_dict


def blocks(backend: str, model: str = "gpt-oss-120b"):
    sc = scenario_from_dict(
        {
            "model": model,
            "gpu": "h200",
            "deployment": {"engine": "vllm", "tp": 2, "mxfp4_backend": backend},
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )
    return block_costs_for(sc, sc.clusters[0])[0]


def test_marlin_slows_gpt_oss_prefill_moe_and_leaves_decode_steps_alone():
    auto, marlin = blocks("auto"), blocks("marlin")
    # 8,192 tokens at TP2: 64 rows per expert, where Marlin runs at 40-45 % of triton_kernels' speed.
    assert marlin.layers_ms(8192, False)[0] > 1.8 * auto.layers_ms(8192, False)[0]
    assert marlin.layers_ms(8, True) == auto.layers_ms(8, True)  # fewer rows than experts


def test_marlin_changes_nothing_for_experts_that_are_not_mxfp4():
    assert blocks("marlin", "minimax-m2.5").layers_ms(8192, False) == blocks("auto", "minimax-m2.5").layers_ms(
        8192, False
    )


def test_an_unknown_backend_is_one_clear_error():
    with pytest.raises(SpecError, match="mxfp4_backend: 'cutlass' is not one of auto, triton, marlin"):
        blocks("cutlass")
