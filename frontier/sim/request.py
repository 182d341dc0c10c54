"""A request's state inside the simulator (mirrors a vLLM v1 request)."""

from __future__ import annotations


class Request:
    """Token accounting: `num_tokens` = prompt + generated so far; `num_computed` of them have
    their KV in the cache. A step that brings `num_computed` up to `num_tokens` samples one new
    token. Preemption by recompute sets `num_computed` back to 0."""

    __slots__ = (
        "id",
        "arrival_s",
        "prompt_tokens",
        "max_output_tokens",
        "num_output",
        "num_computed",
        "num_blocks",
        "first_token_s",
        "last_token_s",
        "finish_s",
        "preemptions",
        "instance",
        "status",
        "fail_reason",
        "prefix_blocks",
        "cached_tokens",
        "shared_units",
        "path",
        "prefill_start_s",
    )

    def __init__(
        self,
        rid: int,
        arrival_s: float,
        prompt_tokens: int,
        max_output_tokens: int,
        prefix_blocks: tuple[int, ...] | None = None,
    ):
        self.id = rid
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.max_output_tokens = max_output_tokens
        self.prefix_blocks = prefix_blocks
        self.num_output = 0
        self.num_computed = 0
        self.num_blocks = 0
        self.cached_tokens = 0  # prompt tokens served from the prefix cache
        self.shared_units: tuple[int, ...] = ()  # cached prefix units this request holds
        self.first_token_s = float("nan")
        self.prefill_start_s = float("nan")  # PD: its first prefill step began (the KV overlap window)
        self.last_token_s = float("nan")
        self.finish_s = float("nan")
        self.preemptions = 0
        self.instance = ""
        self.path = ""  # clusters visited, e.g. "prefill/0>decode/1"
        self.status = "pending"  # pending | finished | failed
        self.fail_reason = ""

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.num_output

    @property
    def remaining_new_tokens(self) -> int:
        return self.num_tokens - self.num_computed

    @property
    def is_decoding(self) -> bool:
        return self.num_output > 0 and self.remaining_new_tokens == 1

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (
            f"Request({self.id}, prompt={self.prompt_tokens}, out={self.num_output}/"
            f"{self.max_output_tokens}, computed={self.num_computed})"
        )
