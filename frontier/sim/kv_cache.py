"""Paged KV-cache accounting: fixed-size blocks per instance, allocated as tokens are computed.

With prefix caching, a prompt's leading blocks are shared between requests whose prompts start
with the same content. Content is known at the granularity of the trace's prefix blocks (a
Mooncake `hash_id` names 512 prompt tokens). A cached prefix unit stays in the cache after its
last user finishes and is evicted, least recently used first (of one prompt, its tail before its
head), only when blocks run out: it counts as free until then.
"""

from __future__ import annotations

from collections import OrderedDict

from frontier.sim.request import Request


class KVHold:
    """KV blocks an instance keeps for a request it no longer runs (a prefill instance, until the
    request's KV has crossed to its decode instance)."""

    __slots__ = ("num_blocks", "shared_units")

    def __init__(self, num_blocks: int, shared_units: tuple[int, ...]):
        self.num_blocks, self.shared_units = num_blocks, shared_units


class BlockManager:
    """Every change of a block count happens here: requests' `num_blocks` and the free pool."""

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        prefix_caching: bool = False,
        prefix_unit_tokens: int = 512,
        seq_blocks: int = 0,
    ):
        self.num_blocks = num_blocks
        self.block_size = block_size
        # Blocks a sequence holds besides its tokens' from its first allocation to its end, as vLLM
        # lays out its groups (memory.KVGroups): a hybrid's recurrent states, a sliding window.
        self.seq_blocks = seq_blocks
        self.free_blocks = num_blocks  # allocatable, cached-but-unused prefix units included
        self.prefix_caching = prefix_caching
        self.unit_tokens = prefix_unit_tokens
        self.unit_blocks = -(-prefix_unit_tokens // block_size)
        self._units: OrderedDict[int, int] = OrderedDict()  # prefix id -> users (LRU order)
        self._evictable_blocks = 0
        self.reset_counters()

    def reset_counters(self) -> None:
        """Count the peak use and prefix hits from now on (the cached prefixes stay)."""
        self.peak_used = self.used_blocks
        self.prefix_hit_tokens = 0
        self.prefix_query_tokens = 0

    @property
    def used_blocks(self) -> int:
        return self.num_blocks - self.free_blocks

    def blocks_for(self, tokens: int) -> int:
        """The blocks a sequence of `tokens` (>= 1) tokens holds."""
        return -(-tokens // self.block_size) + self.seq_blocks

    def token_room(self, req: Request) -> int:
        """How many tokens the request's blocks hold."""
        return (req.num_blocks - self.seq_blocks) * self.block_size

    def take(self, blocks: int) -> None:
        """Hand out `blocks` free blocks (the caller checked they exist), evicting cached units."""
        truly_free = self.free_blocks - self._evictable_blocks
        while blocks > truly_free:
            uid = next(u for u, users in self._units.items() if users == 0)  # least recently used
            del self._units[uid]
            self._evictable_blocks -= self.unit_blocks
            truly_free += self.unit_blocks
        self.free_blocks -= blocks
        used = self.num_blocks - self.free_blocks
        if used > self.peak_used:
            self.peak_used = used

    def allocate(self, req: Request, new_tokens: int) -> bool:
        """Grow `req` to hold `num_computed + new_tokens` tokens; False if blocks run out."""
        need = self.blocks_for(req.num_computed + new_tokens) - req.num_blocks
        if need > self.free_blocks:
            return False
        if need > 0:
            self.take(need)
            req.num_blocks += need
        return True

    def grow_to_computed(self, reqs) -> None:
        """After decode iterations the scheduler planned (their blocks known to be free): each
        request holds the blocks of its `num_computed` tokens."""
        bs, used = self.block_size, 0
        for req in reqs:
            blocks = -(-req.num_computed // bs) + self.seq_blocks
            used += blocks - req.num_blocks
            req.num_blocks = blocks
        self.take(used)

    def hold(self, req: Request) -> KVHold:
        """Keep the request's blocks apart from it (it leaves; its KV stays until released)."""
        hold = KVHold(req.num_blocks, req.shared_units)
        req.num_blocks, req.shared_units = 0, ()
        return hold

    def free(self, req: Request | KVHold) -> None:
        shared = req.shared_units
        self.free_blocks += req.num_blocks - len(shared) * self.unit_blocks
        # Tail first, so a prompt's head is the last of its units to be evicted: both engines
        # keep a cached prefix's head longest (vLLM frees a request's blocks in reverse, "so that
        # the tail blocks are evicted first", v1/core/kv_cache_manager.py `free`; SGLang's radix
        # cache evicts leaves, mem_cache/radix_cache.py `evict`). A head evicted first would leave
        # the rest of the prompt cached but unreachable.
        for uid in reversed(shared):
            users = self._units[uid] - 1
            self._units[uid] = users
            if users == 0:  # stays cached, but may be evicted: it counts as free
                self.free_blocks += self.unit_blocks
                self._evictable_blocks += self.unit_blocks
                self._units.move_to_end(uid)
        req.shared_units = ()
        req.num_blocks = 0

    # --- prefix caching ----------------------------------------------------------------------
    def match_prefix(self, req: Request) -> None:
        """Start `req` after the longest cached prefix of its prompt (at least one token left)."""
        if not (self.prefix_caching and req.prefix_blocks):
            return
        units = []
        for uid in req.prefix_blocks:
            if uid not in self._units or (len(units) + 1) * self.unit_tokens >= req.prompt_tokens:
                break
            units.append(uid)
        self.prefix_query_tokens += req.prompt_tokens
        if not units:
            return
        for uid in units:
            if self._units[uid] == 0:
                self.free_blocks -= self.unit_blocks
                self._evictable_blocks -= self.unit_blocks
            self._units[uid] += 1
            self._units.move_to_end(uid)
        req.shared_units = tuple(units)
        req.num_blocks = len(units) * self.unit_blocks
        req.num_computed = req.cached_tokens = len(units) * self.unit_tokens
        self.prefix_hit_tokens += req.cached_tokens

    def register_prefix(self, req: Request) -> None:
        """After a prefill, publish the request's full prompt units not cached yet.

        Its own blocks holding them become shared (the request stays their first user)."""
        if not (self.prefix_caching and req.prefix_blocks):
            return
        full = min(len(req.prefix_blocks), req.prompt_tokens // self.unit_tokens)
        shared = list(req.shared_units)
        for uid in req.prefix_blocks[len(shared) : full]:
            if uid in self._units:
                break  # computed twice concurrently: keep this copy private
            self._units[uid] = 1
            shared.append(uid)
        req.shared_units = tuple(shared)
