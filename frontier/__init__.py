"""Frontier: a GPU-calibrated simulator of LLM inference serving.

    import frontier
    summary, requests = frontier.simulate(model="llama-3.1-8b", tp=1, input_len=1024, output_len=256)
    df = frontier.sweep("sweeps/llama3.1-70b-8xh100.yaml", "results/sweep")

`import frontier` stays light: the simulator loads on the first call (see frontier/api.py).
"""

__all__ = ["simulate", "sweep"]


def __getattr__(name: str):
    if name in __all__:
        from frontier import api

        return getattr(api, name)
    raise AttributeError(f"module 'frontier' has no attribute {name!r}")
