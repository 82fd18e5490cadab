"""ubd_io's bounded request queue: requests run on a small thread pool so a
FLUSH (fsync) never holds up READs behind it, in an order that keeps every
guest-visible result what serial execution would give.  A small READ or
WRITE that waits for nothing runs at once on the service loop instead: the
hand-off to a thread and back costs about 50 µs a request here, more than
a page-cache pread or pwrite does.

Order: a request waits for every earlier one on its device that it overlaps
(by sector) when either writes; a commit point (FLUSH or COMMIT) waits for
every earlier write, DISCARD and WRITE_ZEROES on its device, and every later
one waits for it (it belongs to the next unit, services/ubd_io/journal.py);
reads never wait for a commit point.

Bound: with ``depth`` requests outstanding (running or waiting), or
QUEUED_BYTES of data, a new request is answered ``busy`` at once instead of
queued; the kernel sends it again after a backoff.

Idempotency: every request can run twice with the same result, so a resent
request is simply served again and answered again with its id (the kernel
takes the first answer).  A resend that arrives while the first copy is
still queued or running is dropped: the first copy's answer serves both.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import select
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from common.protocol import BLOCK_MAX, Message
from common.shared_buffer import Mapped
from services.ubd_io.cow import SECTOR
from services.ubd_io.journal import Journaled

log = logging.getLogger("ubd_io")

OPS = ("READ", "WRITE", "WRITE_FRESH", "FLUSH", "COMMIT", "DISCARD", "WRITE_ZEROES")
WRITES = ("WRITE", "WRITE_FRESH")
MUTATING = ("WRITE", "WRITE_FRESH", "DISCARD", "WRITE_ZEROES")
COMMIT_POINTS = ("FLUSH", "COMMIT")
WORKERS = 4
QUEUED_BYTES = 64 << 20
INLINE_MAX = 64 << 10      # READ/WRITE up to this size run on the loop when nothing blocks them
RETRY_MS = 2


@dataclass(eq=False)
class BlockRequest:
    to: bytes | None
    id: int
    dev: int
    op: str
    offset: int
    length: int
    data: bytes | memoryview                            # memoryview: in the kernel's buffer
    blockers: int = 0                                   # earlier requests still to finish
    waiters: list[BlockRequest] = field(default_factory=list)
    span: object = None                                 # its span, when the guest traces
    queued_at: int = 0                                  # (ns) for its span's queue wait

    @property
    def mutates(self) -> bool:
        return self.op in MUTATING

    @property
    def sectors(self) -> tuple[int, int]:
        return self.offset // SECTOR, -(-(self.offset + self.length) // SECTOR)

    def must_follow(self, earlier: BlockRequest) -> bool:
        if self.op in COMMIT_POINTS:
            return earlier.mutates
        if earlier.op in COMMIT_POINTS:
            return self.mutates
        if not (self.mutates or earlier.mutates):
            return False
        (lo, hi), (elo, ehi) = self.sectors, earlier.sectors
        return lo < ehi and elo < hi

    @property
    def cost(self) -> int:
        return self.length if self.op in ("READ", *WRITES) else 0


class BlockQueue:
    """Requests in flight, by device in arrival order; a worker pool runs
    them and wakes the service loop through an eventfd (``fd``)."""

    def __init__(self, images: dict[int, Journaled], depth: int):
        self.images = images
        self.depth = max(1, depth)
        self.pending: dict[int, list[BlockRequest]] = {dev: [] for dev in images}
        self.keys: set[tuple[bytes | None, int]] = set()
        self.outstanding = 0
        self.queued_bytes = 0
        self.stats = {"requests": 0, "shared": 0, "busy": 0, "duplicates": 0, "errors": 0}
        self.buffers: dict[str, Mapped] = {}
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="ubd_io")
        self.spans = None     # services/ubd_io/tracing.py's RequestSpans, when the guest traces
        # a device's failing reads, or other requests, since the last of their kind it
        # served: (errno, how many) by (dev, is a read); the first is logged, the count
        # once it serves again (a full host disk, with the kernel writing its failed
        # writes again, would otherwise log a line a request)
        self.failing: dict[tuple[int, bool], tuple[int, int]] = {}
        self.failing_lock = threading.Lock()

    def plug(self, dev: int, image: Journaled) -> None:
        """A hot-plugged disk (``disk_open``): served from now on."""
        self.images[dev] = image
        self.pending[dev] = []

    def unplug(self, dev: int) -> Journaled:
        """Stop serving dev (``disk_close``); OSError EBUSY while a request
        on it is in flight, ENXIO if it is not served."""
        if dev not in self.images:
            raise OSError(errno.ENXIO, f"ubd{dev} is not served")
        if self.pending[dev]:
            raise OSError(errno.EBUSY, f"ubd{dev} has requests in flight")
        del self.pending[dev]
        return self.images.pop(dev)

    def shared(self, path: str) -> Mapped:
        """The kernel buffer at path, mapped once (again if the path now
        names another memfd: a new kernel whose pid and fd match an old one)."""
        mapped = self.buffers.get(path)
        if mapped is None or os.stat(path).st_ino != mapped.ino:
            mapped = self.buffers[path] = Mapped(path)
        return mapped

    def fields(self, msg: Message) -> tuple[int, str, int, int, bytes | memoryview]:
        """dev, op, offset, length and data of a block or write_shared
        request; OSError or ValueError if its shared data cannot be had."""
        if msg.type == "write_shared":
            data = self.shared(msg["buffer"]).data(msg["at"], msg["length"])
            self.stats["shared"] += 1
            return (msg["dev"], "WRITE_FRESH" if msg["fresh"] else "WRITE", msg["offset"],
                    msg["length"], data)
        return msg["dev"], msg["op"], msg["offset"], msg["length"], msg["data"]

    def check(self, dev: int, op: str, offset: int, length: int, data) -> int:
        """0, or the -errno that answers a request that cannot run."""
        image = self.images.get(dev)
        if image is None:
            return -errno.ENXIO
        if op not in OPS:
            return -errno.EOPNOTSUPP
        if offset < 0 or length < 0 or length > BLOCK_MAX:
            return -errno.EINVAL
        if len(data) != (length if op in WRITES else 0):
            return -errno.EINVAL
        if op not in COMMIT_POINTS and offset + length > image.size:
            return -errno.EIO        # beyond the end of the device, as Linux answers
        return 0

    def add(self, to: bytes | None, msg: Message) -> tuple[str, dict] | None:
        """Queue a block request; or the reply to send now (an error status,
        busy, or the result of a small request run at once); None when it is
        queued or is a resend of one in flight."""
        self.stats["requests"] += 1
        try:
            fields = self.fields(msg)
        except (OSError, ValueError) as exc:
            self.stats["errors"] += 1
            log.warning("cannot use the kernel's buffer %s: %s", msg["buffer"], exc)
            return "error", {"reason": f"cannot use buffer {msg['buffer']}: {exc}"}
        status = self.check(*fields)
        if status:
            self.stats["errors"] += 1
            return "block_done", {"status": status, "data": b""}
        if (to, msg.id) in self.keys:
            self.stats["duplicates"] += 1
            return None
        req = BlockRequest(to, msg.id, *fields)
        pending = self.pending[req.dev]
        blockers = [earlier for earlier in pending if req.must_follow(earlier)]
        inline = not blockers and req.op in ("READ", *WRITES) and req.length <= INLINE_MAX
        if not inline and self.outstanding and (self.outstanding >= self.depth
                                                or self.queued_bytes + req.cost > QUEUED_BYTES):
            self.stats["busy"] += 1
            return "busy", {"outstanding": self.outstanding, "retry_ms": RETRY_MS}
        if self.spans is not None:
            self.spans.begin(msg, req, self.images[req.dev].path)
        if inline:
            status, data = self._serve(req)
            return "block_done", {"status": status, "data": data}
        for earlier in blockers:
            earlier.waiters.append(req)
        req.blockers = len(blockers)
        pending.append(req)
        self.keys.add((to, msg.id))
        self.outstanding += 1
        self.queued_bytes += req.cost
        if not req.blockers:
            self.pool.submit(self._run, req)
        return None

    def _run(self, req: BlockRequest) -> None:
        """On a worker thread: serve one request, hand the result back."""
        self.done.put((req, *self._serve(req)))
        os.eventfd_write(self.fd, 1)

    def _serve(self, req: BlockRequest) -> tuple[int, bytes]:
        if req.span is not None:
            return self.spans.serve(req, self._do, self.outstanding)
        return self._do(req)

    def _do(self, req: BlockRequest) -> tuple[int, bytes]:
        image = self.images[req.dev]
        data = b""
        try:
            if req.op == "READ":
                data = image.read(req.offset, req.length)
            elif req.op == "WRITE":
                image.write(req.offset, req.data)
            elif req.op == "WRITE_FRESH":
                image.write_fresh(req.offset, req.data)
            elif req.op in COMMIT_POINTS:
                image.commit(durable=req.op == "FLUSH")
            else:
                image.zero(req.offset, req.length, unmap=req.op == "DISCARD")
            status = 0
        except OSError as exc:
            status = -(exc.errno or errno.EIO)
            kind = (req.dev, req.op == "READ")
            with self.failing_lock:
                code, count = self.failing.get(kind, (status, 0))
                self.failing[kind] = (status, count + 1)
            if not count or code != status:
                log.error("ubd%d %s at %d+%d: %s", req.dev, req.op, req.offset, req.length, exc)
        except Exception:   # a bug must still answer the request, not hang it
            log.exception("ubd%d %s at %d+%d failed", req.dev, req.op, req.offset, req.length)
            status = -errno.EIO
        if status == 0 and self.failing:
            with self.failing_lock:
                failed = self.failing.pop((req.dev, req.op == "READ"), None)
            if failed is not None and failed[1] > 1:
                log.warning("ubd%d serves %s again: %d failed before (the last with %s)",
                            req.dev, "reads" if req.op == "READ" else "writes", failed[1],
                            os.strerror(-failed[0]))
        return status, data

    def completed(self) -> Iterator[tuple[BlockRequest, int, bytes]]:
        """The requests finished since the last call; starts what they held up."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return
        while True:
            try:
                req, status, data = self.done.get_nowait()
            except queue.Empty:
                return
            self.pending[req.dev].remove(req)
            self.keys.discard((req.to, req.id))
            self.outstanding -= 1
            self.queued_bytes -= req.cost
            for waiter in req.waiters:
                waiter.blockers -= 1
                if not waiter.blockers:
                    self.pool.submit(self._run, waiter)
            yield req, status, data

    def finish(self) -> Iterator[tuple[BlockRequest, int, bytes]]:
        """Run everything still queued to the end (at shutdown)."""
        while self.outstanding:
            select.select([self.fd], [], [])
            yield from self.completed()
        self.pool.shutdown()
