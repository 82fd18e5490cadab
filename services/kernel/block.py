"""The kernel's side of a ubd disk: block requests to the ubd_io service.

Requests carry byte offsets; the filesystem above caches blocks.  ubd_io is
idempotent, so a request with no answer by its deadline is simply resent
(``AsyncLink``)."""
from __future__ import annotations

import errno

from common.transport import AsyncLink
from services.kernel.errors import Errno


class UbdDevice:
    def __init__(self, link: AsyncLink, dev: int):
        self.link = link
        self.dev = dev

    async def _request(self, op: str, offset: int, length: int, data: bytes = b"") -> bytes:
        reply = await self.link.request("block", {"dev": self.dev, "op": op, "offset": offset,
                                                  "length": length, "data": data})
        if reply.type == "error":
            raise Errno(errno.EIO)
        if reply["status"] < 0:
            raise Errno(-reply["status"])
        return reply["data"]

    async def read(self, offset: int, length: int) -> bytes:
        data = await self._request("READ", offset, length)
        if len(data) != length:
            raise Errno(errno.EIO)
        return data

    async def flush(self) -> None:
        await self._request("FLUSH", 0, 0)
