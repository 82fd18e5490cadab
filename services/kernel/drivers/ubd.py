"""The kernel's side of a ubd disk: block requests to the ubd_io service.

Requests carry byte offsets; the filesystem above caches blocks.  ubd_io is
idempotent, so a request with no answer by its deadline is simply resent
(``AsyncLink``), and one answered ``busy`` is sent again after a backoff.

Because a request may be resent or held back by a busy answer, the order
ubd_io sees is not the order of the calls: so a request here waits for every
earlier one it overlaps when either writes, and a flush waits for every
earlier write.  Callers may then issue requests concurrently and still get
the results of issuing them one by one.

Reads go through the device's cache (``DeviceCache``, as Linux caches a
block device's pages): whole 4 KiB pages read or written are kept, up to
CACHE_BYTES, least recently used dropped first.  A read of part of a page
reads all of it (once ubd_io has told the device's size), a read of a page
already being read waits for that read, and a write of part of a cached
page is merged into it: on a filesystem of 1 KiB blocks, the next block of
an inode table or a directory is then at hand (a boot asked ubd_io 43
times, now 35).  A write's data goes in when
the write is posted, as Linux reads a page under write-back from the page
cache; a DISCARD or WRITE_ZEROES drops its range when it is registered; a
read's data goes in when it completes, unless a later change to its range
is registered by then; so it always holds what ubd_io will answer once the
requests before have run.  Measured: a filesystem's cache misses on a 64
MiB file otherwise cost a ubd_io round trip each (64 KiB in 300-650 µs,
100-200 MB/s); from this cache they take tens of µs.  And a metadata block
ext2 had just written back (a bitmap, say) once waited for that write to
reach ubd_io before it could be read again: ~20 times per 64 MiB written,
the kernel idle 15% of the time.

Writes are posted, as to a disk with a write cache: ``write`` returns once
the request is registered (so every later request is ordered after it) and
runs on its own, at most POSTED_MAX or POSTED_BYTES at once; ``flush`` waits
for all of them and raises the error of any that failed since the last
flush, as Linux's fsync reports a failed write-back.  A posted write that
fails (the host's disk full, the image made immutable) is kept, as Linux
keeps a page whose write-back failed: reads see its data, a later change
to its range replaces that part of it, and it is written again at each
commit point until the disk takes it (at most RETRY_BYTES of them: past
that a failed write is dropped, and logged); so a disk that fills and
empties again ends with an image that agrees with itself.  A filesystem writing
back many runs then keeps ubd_io's workers busy instead of waiting for each
(measured in-process: 64 MiB written and synced through ext2 at 144 MB/s,
105 MB/s with each write awaited)."""
from __future__ import annotations

import asyncio
import bisect
import errno
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from common.protocol import BLOCK_MAX, Message
from common.shared_buffer import SLOT, SharedBuffer
from common.transport import AsyncLink, keep_freed_memory
from services.kernel.abi.arch import PAGE
from services.kernel.core import tracing
from services.kernel.core.errors import Errno

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.001
BACKOFF_MAX = 0.2
CACHE_BYTES = 128 << 20
READAHEAD_MIN, READAHEAD_MAX = 16 << 10, 128 << 10   # Linux's default read_ahead_kb: 128
POSTED_MAX = 32            # writes in flight before write() waits for one
POSTED_BYTES = 32 << 20
RETRY_BYTES = 64 << 20     # failed writes kept to write again (see above)
# what a disk can recover from: the host's disk full or over quota, the
# image made immutable or read-only, an I/O error (not a request refused
# as such: a device gone, an op it cannot do)
TRANSIENT = (errno.ENOSPC, errno.EDQUOT, errno.EPERM, errno.EACCES, errno.EROFS, errno.EIO)
COMMIT_POINTS = ("FLUSH", "COMMIT")
WRITES = ("WRITE", "WRITE_FRESH")   # WRITE_FRESH: blocks no committed structure holds


class DeviceCache:
    """Whole pages of the device by page number, least recently used dropped
    past a limit."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes // PAGE
        self.pages: OrderedDict[int, bytes] = OrderedDict()

    def get(self, offset: int, length: int) -> bytes | None:
        """The range if every page it touches is cached."""
        if not length or not self.limit:
            return None
        pages = self.pages
        first = offset // PAGE
        parts = []
        for n in range(first, -(-(offset + length) // PAGE)):
            data = pages.get(n)
            if data is None:
                return None
            pages.move_to_end(n)
            parts.append(data)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        skip = offset - first * PAGE
        return data if skip == 0 and len(data) == length else data[skip:skip + length]

    def put(self, offset: int, data: bytes | list[bytes]) -> None:
        """Data now at offset (read or written; a list: in parts, in order):
        its whole pages are kept, the partial ones at either end dropped.
        Parts that are each one aligned page are kept as they are (a
        bytearray as bytes), not copied out of their join."""
        if type(data) is list:
            if offset % PAGE or {PAGE} != set(map(len, data)):
                data = b"".join(data)
            else:
                numbers = range(offset // PAGE, offset // PAGE + len(data))
                pages = self.pages
                if not pages.keys().isdisjoint(numbers):    # (re-put: to the recent end)
                    self.drop(offset, len(data) * PAGE)
                if self.limit:
                    if bytearray in set(map(type, data)):
                        data = [p if type(p) is bytes else bytes(p) for p in data]
                    pages.update(zip(numbers, data))
                    while len(pages) > self.limit:
                        pages.popitem(last=False)
                return
        end = offset + len(data)
        first = -(-offset // PAGE)
        last = end // PAGE                            # exclusive
        pages = self.pages
        # a partial page that is cached takes the new bytes in (a filesystem
        # of 1 KiB blocks writing one: its page's other blocks stay at hand)
        merged = {}
        for n in {offset // PAGE if offset % PAGE else -1, end // PAGE if end % PAGE else -1}:
            old = pages.get(n)
            if old is not None:
                lo, hi = max(offset, n * PAGE), min(end, (n + 1) * PAGE)
                merged[n] = b"".join((old[:lo - n * PAGE], data[lo - offset:hi - offset],
                                      old[hi - n * PAGE:]))
        self.drop(offset, len(data))
        if not self.limit:
            return
        view = memoryview(data)
        start = first * PAGE - offset
        pages.update(zip(range(first, last), [bytes(view[at:at + PAGE]) for at in
                                              range(start, start + (last - first) * PAGE, PAGE)]))
        pages.update(merged)
        while len(pages) > self.limit:
            pages.popitem(last=False)

    def drop(self, offset: int, length: int) -> None:
        """Forget every page the range touches."""
        pages = self.pages
        first, last = offset // PAGE, -(-(offset + length) // PAGE)
        if last - first > len(pages):
            for n in [n for n in pages if first <= n < last]:
                del pages[n]
        else:
            for n in range(first, last):
                pages.pop(n, None)


class FailedWrites:
    """Posted writes that failed, kept to write again (see the module's
    docstring): disjoint ranges, their starts sorted, so that a change, a
    read and a commit point find the ones they touch by bisection however
    many there are (a guest can cut RETRY_BYTES into 64K pieces of 1 KiB)."""

    def __init__(self):
        self.starts: list[int] = []
        self.data: dict[int, bytes] = {}
        self.bytes = 0
        self.code = 0                      # the errno of the last one kept
        self.dropped = 0                   # failed writes not kept (bytes) since all were taken

    def __bool__(self) -> bool:
        return bool(self.starts)

    def _touching(self, start: int, end: int) -> tuple[int, int]:
        """Where in starts the ranges that overlap [start, end) are: [i, j)."""
        starts = self.starts
        i = bisect.bisect_right(starts, start) - 1
        if i < 0 or starts[i] + len(self.data[starts[i]]) <= start:
            i += 1                         # (only the one before start can reach into it)
        return i, bisect.bisect_left(starts, end, lo=i)

    def trim(self, start: int, end: int) -> None:
        """[start, end) changed after them: they keep only what lies outside it."""
        i, j = self._touching(start, end)
        if i == j:
            return
        pieces = []
        for at in self.starts[i:j]:
            data = self.data.pop(at)
            self.bytes -= len(data)
            for lo, hi in ((at, min(start, at + len(data))), (max(end, at), at + len(data))):
                if lo < hi:
                    self.data[lo] = data[lo - at:hi - at]
                    self.bytes += hi - lo
                    pieces.append(lo)
        self.starts[i:j] = pieces          # (in order: a head, then a tail)

    def add(self, start: int, data: bytes, code: int) -> None:
        self.trim(start, start + len(data))
        bisect.insort(self.starts, start)
        self.data[start] = data
        self.bytes += len(data)
        self.code = code

    def overlay(self, offset: int, data: bytes) -> bytes:
        """data read from the disk at offset, with them over it: what the
        disk should hold."""
        i, j = self._touching(offset, offset + len(data))
        if i == j:
            return data
        out = bytearray(data)
        for at in self.starts[i:j]:
            kept = self.data[at]
            lo, hi = max(at, offset), min(at + len(kept), offset + len(data))
            out[lo - offset:hi - offset] = kept[lo - at:hi - at]
        return bytes(out)

    def take(self, longest: int) -> list[tuple[int, bytes]]:
        """All of them, adjacent ones joined (up to longest bytes a run),
        none kept any more."""
        runs: list[list] = []
        for at in self.starts:
            data = self.data[at]
            if runs and runs[-1][0] + runs[-1][2] == at and runs[-1][2] + len(data) <= longest:
                runs[-1][1].append(data)
                runs[-1][2] += len(data)
            else:
                runs.append([at, [data], len(data)])
        self.starts, self.data, self.bytes = [], {}, 0
        return [(at, b"".join(parts)) for at, parts, _ in runs]


class _Kept(Exception):
    """A posted write failed and its data is kept to write again: no error
    for the next flush to raise unless writing it again fails too."""


@dataclass(eq=False)
class _InFlight:
    op: str
    start: int
    end: int
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mutates(self) -> bool:
        return self.op in ("WRITE", "WRITE_FRESH", "DISCARD", "WRITE_ZEROES")

    def must_follow(self, earlier: _InFlight) -> bool:
        if self.op in COMMIT_POINTS:
            return earlier.mutates
        if earlier.op in COMMIT_POINTS:
            return self.mutates              # it belongs to the next unit
        if not (self.mutates or earlier.mutates):
            return False
        return self.start < earlier.end and earlier.start < self.end


class UbdDevice:
    def __init__(self, link: AsyncLink, dev: int, cache_bytes: int = CACHE_BYTES):
        self.link = link
        self.dev = dev
        self.size = 0                      # bytes, as ubd_io tells at boot (/sys/block)
        self.in_flight: list[_InFlight] = []
        self.busy = 0                      # busy answers so far (for status and tests)
        self.cache = DeviceCache(cache_bytes)
        keep_freed_memory()
        self.posted: dict[asyncio.Future, int] = {}     # writes running on their own: bytes
        self.posted_bytes = 0
        self.write_error: BaseException | None = None   # of a posted write, for the next flush
        self.failed = FailedWrites()       # posted writes that failed, to write again
        self.read_end = -1                 # where the last read ended: is the next sequential?
        self.window = 0                    # the read-ahead window, while reads are sequential
        self.ahead: asyncio.Future | None = None        # the read-ahead in flight
        self.ahead_range = (0, 0)
        # posted writes' data for a local ubd_io to pwrite from (common/shared_buffer.py)
        self.sharing = link.endpoint.startswith("ipc://")
        self.shared: SharedBuffer | None = None
        if self.sharing:
            try:
                self.shared = SharedBuffer()
            except OSError as exc:            # no memfd here: the data goes in the messages
                log.warning("ubd%d: no shared write buffer (%s)", dev, exc)
                self.sharing = False
        self.quarantine: list[int] = []    # its slots held until the next commit point
        self.uncommitted = 0               # bytes changed since the last commit point

    def _enter(self, op: str, offset: int, length: int) -> tuple[_InFlight, list[_InFlight]]:
        """Register a request in call order: what it must wait for.  A
        DISCARD or WRITE_ZEROES drops its range from the cache now (a WRITE
        puts its data in, ``_post``), so reads from here on see its effect."""
        me = _InFlight(op, offset, offset + length)
        earlier = [p for p in self.in_flight if me.must_follow(p)]
        self.in_flight.append(me)
        if me.mutates and self.failed:
            self.failed.trim(offset, offset + length)
        if me.mutates:
            if op != "WRITE_FRESH":            # (ubd_io's journal does not hold those)
                self.uncommitted += length
            if op not in WRITES:
                self.cache.drop(offset, length)
        return me, earlier

    async def _run(self, me: _InFlight, earlier: list[_InFlight], data: bytes = b"") -> bytes:
        op, offset, length = me.op, me.start, me.end - me.start
        try:
            for p in earlier:
                await p.done.wait()
            try:
                result = await self._send(op, offset, length, data)
            except BaseException as exc:
                if me.mutates:
                    if op in WRITES and getattr(exc, "transient", False) \
                            and self._keep_failed(me, data, exc.code):
                        raise _Kept() from exc
                    self.cache.drop(offset, length)     # what it left is unknown
                raise
            if op == "READ":
                if self.failed:
                    result = self.failed.overlay(offset, result)
                if not any(p.mutates and p.start < me.end and me.start < p.end
                           for p in self.in_flight):
                    self.cache.put(offset, result)     # unless a later change is in the cache
            return result
        finally:
            self.in_flight.remove(me)
            me.done.set()

    def _keep_failed(self, me: _InFlight, data: bytes | list[bytes], code: int) -> bool:
        """A posted write failed: keep what of it no change registered after
        it replaces (those wait for it, so they are all still in flight),
        to write again; False if it goes past the device's end or would
        pass RETRY_BYTES (it is then dropped, as before there was any
        keeping)."""
        if 0 < self.size < me.end:
            return False                         # it never will be written
        data = b"".join(data) if type(data) is list else bytes(data)
        if self.failed.bytes + len(data) > RETRY_BYTES:
            if not self.failed.dropped:        # (once: the rest are counted, and told after)
                log.error("ubd%d: a failed write of %d bytes at %d is dropped (%d bytes already "
                          "wait to be written again): the filesystem may need e2fsck",
                          self.dev, len(data), me.start, self.failed.bytes)
            self.failed.dropped += len(data)
            return False
        self.failed.add(me.start, data, code)    # (over an older failure there: newer)
        for p in self.in_flight[self.in_flight.index(me) + 1:]:
            if p.mutates:
                self.failed.trim(p.start, p.end)
        return True

    async def _request(self, op: str, offset: int, length: int, data: bytes = b"") -> bytes:
        me, earlier = self._enter(op, offset, length)
        return await self._run(me, earlier, data)

    async def _post(self, offset: int, data: bytes | list[bytes], length: int,
                    fresh: bool = False) -> None:
        """A write (of length bytes, data perhaps in parts) that runs on its
        own: ordered as if it had completed here; its failure is raised by
        the next flush.  fresh: a WRITE_FRESH (``write``)."""
        while self.posted and (len(self.posted) >= POSTED_MAX
                               or self.posted_bytes + length > POSTED_BYTES):
            await asyncio.wait(list(self.posted), return_when=asyncio.FIRST_COMPLETED)
        self._post_now(offset, data, length, fresh)

    def _post_now(self, offset: int, data: bytes | list[bytes], length: int,
                  fresh: bool = False) -> None:
        """_post's registering and starting, with no wait for room first."""
        me, earlier = self._enter("WRITE_FRESH" if fresh else "WRITE", offset, length)
        tracing.tracer.dirtied(self)    # what the next flush makes durable, for its links
        self.cache.put(offset, data)    # read from here on, as Linux reads a page under write-back
        task = asyncio.ensure_future(self._run(me, earlier, data))
        self.posted[task] = length
        self.posted_bytes += length
        task.add_done_callback(self._posted_done)

    def _posted_done(self, task: asyncio.Future) -> None:
        self.posted_bytes -= self.posted.pop(task)
        if task.cancelled() or isinstance(task.exception(), _Kept):
            return               # (kept: the commit point that writes it again says)
        if task.exception() is not None and self.write_error is None:
            self.write_error = task.exception()

    async def _send(self, op: str, offset: int, length: int,
                    data: bytes | list[bytes]) -> bytes:
        # a span's position in 512-byte sectors, as Linux's bio counts them
        with tracing.tracer.span(f"ubd {op}", {"ubd.dev": self.dev, "ubd.op": op,
                                               "ubd.sector": offset >> 9,
                                               "ubd.length": length}) as span:
            reply = None
            if op in WRITES and self.sharing:
                reply = await self._send_shared(offset, data, length, span, op == "WRITE_FRESH")
            if reply is None:
                if type(data) is list:
                    data = b"".join(data)
                reply = await self._ask("block", {"dev": self.dev, "op": op, "offset": offset,
                                                  "length": length, "data": data})
            return self._result(op, offset, length, reply)

    def _result(self, op: str, offset: int, length: int, reply: Message) -> bytes:
        """What a block request's reply says: its data, or Errno."""
        if reply.type == "error":
            log.error("ubd%d %s at %d+%d refused: %s", self.dev, op, offset, length,
                      reply["reason"])
            raise Errno(errno.EIO)
        if reply.type != "block_done":
            log.error("ubd%d %s: unexpected answer %r", self.dev, op, reply.type)
            raise Errno(errno.EIO)
        if reply["status"] < 0:
            code = -reply["status"]
            error = Errno(_block_errno(code))
            error.transient = code in TRANSIENT        # (a failed write is then kept)
            raise error
        return reply["data"]

    async def _ask(self, kind: str, body: dict) -> Message:
        """The answer to a request, sent again after a backoff while busy."""
        delay = 0.0
        traceparent = tracing.tracer.traceparent()
        while True:
            reply = await self.link.request(kind, body, traceparent=traceparent)
            if reply.type != "busy":
                return reply
            self.busy += 1
            delay = min(BACKOFF_MAX, max(delay * 2, reply["retry_ms"] / 1000, BACKOFF_FIRST))
            await asyncio.sleep(delay)

    async def _send_shared(self, offset: int, data: bytes | list[bytes],
                           length: int, span, fresh: bool) -> Message | None:
        """A WRITE with its data in the shared buffer: the answer, or None if
        no slot is free or ubd_io cannot use the buffer (it is then not
        offered again).  A slot is reused once its request is answered,
        unless a resend may have put a second copy in ubd_io's queue: then
        it waits for the next FLUSH, which ubd_io runs after every earlier
        write (else that copy could write the slot's next contents)."""
        at = self.shared.put(data)
        if at is None:
            return None
        span.set("ubd.slot", at // SLOT)
        resends, clean = self.link.resends, False
        try:
            reply = await self._ask("write_shared", {"dev": self.dev, "offset": offset,
                                                     "length": length,
                                                     "buffer": self.shared.path, "at": at,
                                                     "fresh": fresh})
            clean = self.link.resends == resends
        finally:
            if clean:
                self.shared.release(at)
            else:
                self.quarantine.append(at)
        if reply.type == "error" and self.sharing:
            log.warning("ubd%d: ubd_io cannot read the kernel's buffer (%s); sending the "
                        "data in the messages instead", self.dev, reply["reason"])
            self.sharing = False
        return None if reply.type == "error" else reply

    async def read(self, offset: int, length: int) -> bytes:
        sequential = offset == self.read_end
        self.read_end = offset + length
        start, end = self.ahead_range
        if self.ahead is not None and start <= offset and offset + length <= end:
            await asyncio.wait([self.ahead])     # what we want is on its way
        data = self.cache.get(offset, length)
        if data is None:
            # whole pages, as Linux reads a block device through its page
            # cache: the 1 KiB blocks around a filesystem's metadata block
            # are then at hand (an inode table's next, a directory's); none
            # past the end
            lo, hi = offset, offset + length
            if self.size:
                lo, hi = lo - lo % PAGE, max(min(-(-hi // PAGE) * PAGE, self.size), hi)
            reading = self._reading(lo, hi)
            if reading is not None:     # (several blocks of one page asked at once)
                await reading.done.wait()
                data = self.cache.get(offset, length)
        tracing.tracer.count("skas.pagecache.misses" if data is None else "skas.pagecache.hits")
        if data is None:
            with tracing.tracer.span("page cache miss", {"ubd.dev": self.dev,
                                                          "ubd.sector": lo >> 9,
                                                          "ubd.length": hi - lo}):
                parts = []
                for pos, n in _chunks(lo, hi - lo):
                    part = await self._request("READ", pos, n)
                    if len(part) != n:
                        raise Errno(errno.EIO)
                    parts.append(part)
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                if lo != offset or hi != offset + length:
                    data = data[offset - lo:offset - lo + length]
        self._read_ahead(offset + length if sequential else -1)
        return data

    def _reading(self, lo: int, hi: int) -> _InFlight | None:
        """A read in flight of all of lo..hi: once it is done, the cache holds
        what it read, unless a change registered since overlaps it (then
        the cache does not, and the caller asks ubd_io itself)."""
        return next((p for p in self.in_flight
                     if p.op == "READ" and p.start <= lo and hi <= p.end), None)

    def _read_ahead(self, start: int) -> None:
        """Reads that follow each other: the next window (doubling, up to
        READAHEAD_MAX) is read into the page cache in the background, one
        read-ahead at a time, as Linux's readahead; a jump resets it.  Its
        failure (past the end of the device, say) is nobody's: a read of
        that range asks again."""
        if start < 0:
            self.window = 0
            return
        if self.ahead is not None and not self.ahead.done():
            return
        self.window = min(max(2 * self.window, READAHEAD_MIN), READAHEAD_MAX)
        first = -(-start // PAGE)
        end = first + self.window // PAGE
        while first < end and first in self.cache.pages:    # what is cached already
            first += 1
        if first == end:
            return
        self.ahead_range = (first * PAGE, end * PAGE)
        self.ahead = asyncio.ensure_future(self._request("READ", first * PAGE,
                                                         (end - first) * PAGE))
        self.ahead.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def write(self, offset: int, data: bytes, fresh: bool = False) -> None:
        """Posted: returns once queued (see the module's docstring); a
        failure is raised by the next flush.  fresh: every block of the
        range was free at the filesystem's last commit point and taken
        since, so no committed structure holds it: ubd_io writes it to the
        image at once rather than staging it (its journal's commit unit
        then holds only what a crash could tear)."""
        if len(data) <= BLOCK_MAX:
            await self._post(offset, bytes(data), len(data), fresh)
            return
        view = memoryview(data)
        for pos, n in _chunks(offset, len(data)):
            await self._post(pos, bytes(view[pos - offset:pos - offset + n]), n, fresh)

    async def write_parts(self, offset: int, parts: list[bytes], fresh: bool = False) -> None:
        """write of the parts' join, without joining them where it can (ext2
        writing back its dirty blocks): they go into the shared buffer one
        by one, and into the page cache as they are.  Measured: joining the
        blocks and cutting the join into pages again cost the kernel ~7 µs
        per 64 KiB written."""
        length = sum(map(len, parts))
        if length > BLOCK_MAX:
            await self.write(offset, b"".join(parts), fresh)
        else:
            await self._post(offset, parts, length, fresh)

    def forget(self, offset: int, length: int) -> None:
        """The range's contents no longer matter to the filesystem above (it
        freed those blocks): their pages leave the cache now, as Linux drops
        a deleted file's pages, instead of when they are the least recently
        used.  Their memory then holds the next data written, not new heap:
        measured, a guest writing, deleting and writing again 64 MiB made
        the kernel grow by ~160 MiB first, a page fault per 4 KiB (~4 µs
        each on the development VM; the rounds ~20% slower meanwhile).
        A failed write there need not be written again either."""
        self.cache.drop(offset, length)
        if self.failed:
            self.failed.trim(offset, offset + length)

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
        """A commit point made durable: everything written before is on the
        host's disk when this returns; raises the first error of a write
        posted since the last commit point."""
        await self._commit_point("FLUSH")

    async def commit(self) -> None:
        """A commit point: the writes since the last one reach the image as
        one unit (ubd_io's journal); the caller's filesystem is consistent
        here.  Errors as flush's."""
        await self._commit_point("COMMIT")

    async def _commit_point(self, op: str) -> None:
        # the failed writes again, all registered before anything else can
        # be (no wait for room: nothing newer may slip in before one of them)
        for at, data in self.failed.take(BLOCK_MAX):   # through the journal (WRITE): whole
            self._post_now(at, data, len(data))          # with the unit
        held, self.quarantine = self.quarantine, []
        self.uncommitted = 0
        try:
            # its span links to the calls whose writes it waits for and makes durable
            with tracing.tracer.span(f"ubd {op.lower()}", {"ubd.dev": self.dev,
                                                          "ubd.posted": len(self.posted)},
                                     links=tracing.tracer.take(self)):
                await self._request(op, 0, 0)
        except BaseException:
            self.quarantine += held
            self.write_error = None    # this failure stands for theirs: reported once
            raise
        for at in held:
            self.shared.release(at)
        error, self.write_error = self.write_error, None
        if error is not None:
            raise error
        if self.failed:                      # written again here, and failed again
            raise Errno(self.failed.code)
        if self.failed.dropped:
            log.error("ubd%d: the disk takes writes again; %d bytes of failed writes were "
                      "dropped meanwhile: the filesystem may need e2fsck", self.dev,
                      self.failed.dropped)
            self.failed.dropped = 0


def _block_errno(code: int) -> int:
    """What a failed request is to the caller, as Linux's blk_status_to_errno
    after UML's ubd: a full host disk is ENOSPC, an op the host cannot do
    EOPNOTSUPP, anything else (an image made immutable: EPERM) EIO."""
    return code if code in (errno.ENOSPC, errno.EOPNOTSUPP) else errno.EIO


def _chunks(offset: int, length: int):
    """Split a range into requests ubd_io accepts (at most BLOCK_MAX bytes)."""
    end = offset + length
    while True:
        n = min(BLOCK_MAX, end - offset)
        yield offset, n
        offset += n
        if offset >= end:
            return
