"""Shared helpers of the simulator tests: known step times, tiny scenarios and request tables."""

import numpy as np

from frontier.ops.graph import BatchStats
from frontier.predict.step import StepTime
from frontier.spec.scenario import scenario_from_dict
from frontier.workload import RequestTable


class LinearStepTime:
    """A timing rule of known step times: base + per token + per KV token attended by decodes (s)."""

    def __init__(self, base_s=0.010, per_token_s=0.0001, per_kv_s=0.0):
        self.base_s, self.per_token_s, self.per_kv_s = base_s, per_token_s, per_kv_s
        self.calls: list[BatchStats] = []

    def step(self, stats: BatchStats) -> StepTime:
        self.calls.append(stats)
        return StepTime(self.base_s + self.per_token_s * stats.tokens + self.per_kv_s * stats.decode_sum_kv)


def make_scenario(model="llama-3.1-8b", **deployment):
    return scenario_from_dict(
        {
            "model": model,
            "gpu": "h100-sxm",
            "deployment": deployment,
            "workload": {
                "num_requests": 1,
                "input_len": 8,
                "output_len": 2,
                "arrival": {"process": "poisson", "rate": 1.0},
            },
        }
    )


def table(arrivals, prompts, outputs, concurrency=None):
    return RequestTable(np.array(arrivals, float), np.array(prompts), np.array(outputs), concurrency=concurrency)
