"""The kernel's side of a ubd disk: block requests to the ubd_io service.

Requests carry byte offsets; the filesystem above caches blocks.  ubd_io is
idempotent, so a request with no answer by its deadline is simply resent
(``AsyncLink``), and one answered ``busy`` is sent again after a backoff.

Because a request may be resent or held back by a busy answer, the order
ubd_io sees is not the order of the calls: so a request here waits for every
earlier one it overlaps when either writes, and a flush waits for every
earlier write.  Callers may then issue requests concurrently and still get
the results of issuing them one by one."""
from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass, field

from common.protocol import BLOCK_MAX
from common.transport import AsyncLink
from services.kernel.errors import Errno

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.001
BACKOFF_MAX = 0.2


@dataclass(eq=False)
class _InFlight:
    op: str
    start: int
    end: int
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mutates(self) -> bool:
        return self.op not in ("READ", "FLUSH")

    def must_follow(self, earlier: _InFlight) -> bool:
        if self.op == "FLUSH":
            return earlier.mutates
        if earlier.op == "FLUSH" or not (self.mutates or earlier.mutates):
            return False
        return self.start < earlier.end and earlier.start < self.end


class UbdDevice:
    def __init__(self, link: AsyncLink, dev: int):
        self.link = link
        self.dev = dev
        self.in_flight: list[_InFlight] = []
        self.busy = 0                      # busy answers so far (for status and tests)

    async def _request(self, op: str, offset: int, length: int, data: bytes = b"") -> bytes:
        me = _InFlight(op, offset, offset + length)
        earlier = [p for p in self.in_flight if me.must_follow(p)]
        self.in_flight.append(me)
        try:
            for p in earlier:
                await p.done.wait()
            return await self._send(op, offset, length, data)
        finally:
            self.in_flight.remove(me)
            me.done.set()

    async def _send(self, op: str, offset: int, length: int, data: bytes) -> bytes:
        body = {"dev": self.dev, "op": op, "offset": offset, "length": length, "data": data}
        delay = 0.0
        while True:
            reply = await self.link.request("block", body)
            if reply.type != "busy":
                break
            self.busy += 1
            delay = min(BACKOFF_MAX, max(delay * 2, reply["retry_ms"] / 1000, BACKOFF_FIRST))
            await asyncio.sleep(delay)
        if reply.type == "error":
            log.error("ubd%d %s at %d+%d refused: %s", self.dev, op, offset, length,
                      reply["reason"])
            raise Errno(errno.EIO)
        if reply.type != "block_done":
            log.error("ubd%d %s: unexpected answer %r", self.dev, op, reply.type)
            raise Errno(errno.EIO)
        if reply["status"] < 0:
            raise Errno(-reply["status"])
        return reply["data"]

    async def read(self, offset: int, length: int) -> bytes:
        parts = []
        for pos, n in _chunks(offset, length):
            data = await self._request("READ", pos, n)
            if len(data) != n:
                raise Errno(errno.EIO)
            parts.append(data)
        return b"".join(parts)

    async def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        for pos, n in _chunks(offset, len(data)):
            await self._request("WRITE", pos, n, bytes(view[pos - offset:pos - offset + n]))

    async def discard(self, offset: int, length: int) -> None:
        """The range reads as zeros afterwards (ubd_io punches a hole);
        offset and length are multiples of 512."""
        for pos, n in _chunks(offset, length):
            await self._request("DISCARD", pos, n)

    async def write_zeroes(self, offset: int, length: int) -> None:
        """The range reads as zeros and stays allocated; multiples of 512."""
        for pos, n in _chunks(offset, length):
            await self._request("WRITE_ZEROES", pos, n)

    async def flush(self) -> None:
        """Everything written before is on the host's disk when this returns."""
        await self._request("FLUSH", 0, 0)


def _chunks(offset: int, length: int):
    """Split a range into requests ubd_io accepts (at most BLOCK_MAX bytes)."""
    end = offset + length
    while True:
        n = min(BLOCK_MAX, end - offset)
        yield offset, n
        offset += n
        if offset >= end:
            return
