"""Routing policies: which instance of a cluster gets a new request."""

from __future__ import annotations

from typing import Protocol, Sequence

from frontier.sim.instance import Instance
from frontier.sim.request import Request


class Router(Protocol):
    def pick(self, instances: Sequence[Instance], req: Request) -> Instance: ...


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, instances: Sequence[Instance], req: Request) -> Instance:
        inst = instances[self._next % len(instances)]
        self._next += 1
        return inst


class LeastOutstanding:
    """Fewest unfinished requests (ties: the first)."""

    def pick(self, instances: Sequence[Instance], req: Request) -> Instance:
        return min(instances, key=lambda i: i.outstanding)


class LeastTokens:
    """Fewest outstanding prompt + output tokens: balances long and short requests."""

    def pick(self, instances: Sequence[Instance], req: Request) -> Instance:
        return min(instances, key=lambda i: i.outstanding_tokens)


ROUTERS = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding, "least_tokens": LeastTokens}


def make_router(name: str) -> Router:
    return ROUTERS[name]()
