"""Validation: replay measured vLLM / SGLang benchmark runs (vllm bench serve, SGLang bench_serving,
aiperf, engine timestamps) and compare with the simulator.

runs = load_measured("vllm-result.json")          # -> [MeasuredRun, ...]
val = validate_run(runs[0], {"gpu": "h100-sxm"})  # replay + simulate + compare
val.comparison["mean_ttft_ms"]                    # {"measured", "predicted", "error_pct"}
"""

from frontier.validate.loaders import MeasuredRun, RunSettings, load_measured
from frontier.validate.replay import Replay, Validation, plan_replay, run_replay, validate_run
from frontier.validate.report import compare
from frontier.validate.writer import write_vllm_result

__all__ = [
    "MeasuredRun",
    "Replay",
    "RunSettings",
    "Validation",
    "compare",
    "load_measured",
    "plan_replay",
    "run_replay",
    "validate_run",
    "write_vllm_result",
]
