"""Device reads issued together: a file's indirect tables, its runs, a
page-cache fill's chunks.  Each would otherwise wait for the round trip to
ubd_io before the next one went out."""
from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")


async def gather_all(awaitables: list[Awaitable[T]]) -> list[T]:
    """Their results, in order, run at once; the first failure raised once
    all are done, so that none is left running, or failing unread (asyncio's
    "exception was never retrieved")."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
