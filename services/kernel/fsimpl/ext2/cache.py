"""The metadata and small-block caches."""
from __future__ import annotations

from collections import OrderedDict


class BlockCache:
    """Block contents by number, the least recently used dropped past a limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.blocks: OrderedDict[int, bytes] = OrderedDict()

    def get(self, block: int) -> bytes | None:
        data = self.blocks.get(block)
        if data is not None:
            self.blocks.move_to_end(block)
        return data

    def put(self, block: int, data: bytes) -> None:
        self.blocks[block] = data
        if len(self.blocks) > self.limit:
            self.blocks.popitem(last=False)
