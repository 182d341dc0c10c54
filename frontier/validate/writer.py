"""Write a simulated run as a `vllm bench serve --save-result --save-detailed` JSON.

The file has the fields vLLM writes (setup, summary metrics, per-request arrays), so every tool
that reads vLLM results reads it, and `frontier validate` can replay it: simulate -> write ->
validate gives zero error. Engine arguments go in as `--metadata KEY=VALUE`-style top-level
string entries (tensor_parallel_size, max_num_seqs, gpu, ...), which the loader reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from frontier.metrics.vllm_result import vllm_result
from frontier.numbers import strict_json_dumps


def vllm_result_dict(
    sim_result, *, model_id: str | None = None, scenario=None, backend: str = "frontier", date: str | None = None
) -> dict[str, Any]:
    """The JSON object `vllm bench serve --save-result --save-detailed` would have written
    (`frontier.metrics.vllm_result`, without Frontier's own block: a replay's scenario is an
    approximation of the requests, which the per-request arrays give exactly)."""
    data = vllm_result(sim_result, detailed=True, model_id=model_id, scenario=scenario, backend=backend, date=date)
    data.pop("frontier", None)
    return data


def write_vllm_result(sim_result, path: str | Path, model_id: str | None = None, **kwargs) -> Path:
    """Write `vllm_result_dict(...)` to path (folders made as needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = vllm_result_dict(sim_result, model_id=model_id, **kwargs)
    path.write_text(strict_json_dumps(_plain(data)))
    return path


def _plain(value):
    """numpy scalars to Python ones, so json can write them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
