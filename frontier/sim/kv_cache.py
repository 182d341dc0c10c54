"""Paged KV-cache accounting: fixed-size blocks per instance, allocated as tokens are computed."""
from __future__ import annotations

from frontier.sim.request import Request


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.free_blocks = num_blocks
        self.peak_used = 0

    @property
    def used_blocks(self) -> int:
        return self.num_blocks - self.free_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def allocate(self, req: Request, new_tokens: int) -> bool:
        """Grow `req` to hold `num_computed + new_tokens` tokens; False if blocks run out."""
        need = self.blocks_for(req.num_computed + new_tokens) - req.num_blocks
        if need > self.free_blocks:
            return False
        if need > 0:
            self.free_blocks -= need
            req.num_blocks += need
            used = self.num_blocks - self.free_blocks
            if used > self.peak_used:
                self.peak_used = used
        return True

    def free(self, req: Request) -> None:
        self.free_blocks += req.num_blocks
        req.num_blocks = 0
