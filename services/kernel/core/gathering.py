"""Device reads issued together: a file's indirect tables, its runs, a
page-cache fill's chunks.  Each would otherwise wait for the round trip to
ubd_io before the next one went out.  A few at a time: a guest decides how
many there are (a 16 MiB read of a file it wrote a block here and there is
thousands of runs), and each request in flight is one the device's
ordering checks every later request against."""
from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")
AT_ONCE = 8             # in flight at a time (ubd_io runs 4, and reads ahead)


async def gather_all(awaitables: list[Awaitable[T]], at_once: int = AT_ONCE) -> list[T]:
    """Their results, in order, at_once of them run together at a time; the
    first failure raised once its group is done, so that none is left
    running, or failing unread (asyncio's "exception was never retrieved"),
    and those not started are closed unrun."""
    results: list[T] = []
    for at in range(0, len(awaitables), at_once):
        group = awaitables[at:at + at_once]
        if len(group) == 1:
            got = [await group[0]]
        else:
            got = await asyncio.gather(*group, return_exceptions=True)
        for r in got:
            if isinstance(r, BaseException):
                for rest in awaitables[at + at_once:]:
                    close = getattr(rest, "close", None)
                    if close is not None:
                        close()
                raise r
        results += got
    return results
