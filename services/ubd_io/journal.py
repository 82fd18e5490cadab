"""Writes staged in a journal until the kernel marks a commit point, then
applied to the image as one unit: a kernel killed at any moment leaves the
image as its last commit point had it (ext2 has no journal of its own).

The journal is a file next to the image's writable file (the COW file when
there is one), named ``FILE.journal``.  WRITE, DISCARD and WRITE_ZEROES are
appended to it (and acknowledged once they are in the host's page cache, as
a WRITE to the image was); reads see them through an index of the staged
sectors.  COMMIT appends a commit record, applies every staged record to
the image in order and starts the journal again; FLUSH is a COMMIT whose
image is then fsync'd.  Nothing reaches the image between two commit points.

A ubd_io killed at any moment loses nothing: the journal is in the host's
page cache.  At its next start, committed records are applied again (they
are idempotent) and the records after the last commit are kept staged, for
the kernel that wrote them; a new kernel drops them (``disk_begin``), as they
were a dead kernel's half-done work.  A journal a ubd_io is using is locked
(flock): a second ubd_io on the same image is refused.

Layout: a header block (magic, version, generation, where the records
start), then records, each a 32-byte header (kind, generation, offset,
length, CRC of the header) and, for a WRITE, its data.  A record's data is
written before its header, so a record whose header checks out is whole;
the journal ends at the first header that does not check out or is of an
older generation (the journal is reused from its start after each commit).
The host losing power is not covered: the journal is not fsync'd, so only
what a FLUSH made durable is promised then, as before."""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import zlib

from common.protocol import BLOCK_MAX
from services.ubd_io.cow import SECTOR

log = logging.getLogger("ubd_io")

FILE_MAGIC = b"SKASJNL\0"
VERSION = 1
FILE_HEADER = struct.Struct("<8sIQQ")          # magic, version, generation, records' start
RECORDS = 4096                                 # where records start after a commit
RECORD = struct.Struct("<IBxxxQQI")            # magic, kind, generation, offset, length
RECORD_MAGIC = 0x524a4b53                      # "SKJR"
HEADER = RECORD.size + 4                       # and its CRC
WRITE, ZEROES, DISCARD, COMMIT = 1, 2, 3, 4
ZERO = -1                                      # an index entry: the sector reads as zeros
JOURNAL_MAX = 1 << 30     # bytes staged before writes are refused (the kernel commits at 32 MiB)


class JournalError(Exception):
    """A journal file that cannot be used; the message says what to do."""


class JournalBusy(JournalError):
    """Another ubd_io holds the journal (its lock)."""


def journal_path(path: str) -> str:
    return path + ".journal"


class Journaled:
    """An image (images.Image or Overlay) with its writes staged in a
    journal until a commit point; offers the image's interface to the
    request queue, plus commit and drop_uncommitted."""

    def __init__(self, image, path: str | None = None):
        self.image = image
        self.path = image.path                   # the image's, as the queue and logs name it
        self.journal = journal_path(image.path) if path is None else path
        self.size, self.kind = image.size, image.kind
        self.lock = threading.Lock()
        try:
            self.fd = os.open(self.journal, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open the journal {self.journal} ({exc.strerror}): ubd_io "
                               "keeps uncommitted writes there, so the image's directory "
                               "must be writable") from None
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalBusy(f"{image.path} is in use by another ubd_io (its journal "
                                   f"{self.journal} is locked): stop the guest using it first") from None
            self._recover()
        except BaseException:
            os.close(self.fd)
            raise

    # --- start ----------------------------------------------------------------
    def _recover(self) -> None:
        """Apply the committed records, keep the rest staged."""
        raw = os.pread(self.fd, FILE_HEADER.size + 4, 0)
        if not raw:
            self.gen, self.start = 1, RECORDS
            self._write_header()
        else:
            self.gen, self.start = self._read_header(raw)
        self.records: list[tuple[int, int, int, int]] = []   # kind, offset, length, data at
        self.index: dict[int, int] = {}                        # sector -> data at, or ZERO
        self.committed = 0                  # records[:committed] are committed, not applied
        self.end = self.start
        self._parse()
        if self.committed:
            log.info("%s: applying %d committed records left by a ubd_io that stopped",
                     self.journal, self.committed)
            self._apply(self.committed)
            self.image.flush()
            kept = self.records[self.committed:]
            self.start = self.commit_end
            self._write_header()
            self.records, self.index, self.committed = [], {}, 0
            for rec in kept:
                self._note(*rec)
        if self.records:
            log.info("%s: %d bytes staged and not committed kept for the kernel that wrote "
                     "them", self.journal, self.end - self.start)

    def _read_header(self, raw: bytes) -> tuple[int, int]:
        if len(raw) < FILE_HEADER.size + 4:
            raise JournalError(f"{self.journal}: not a skas journal (too short); if no guest "
                               "uses the image, remove it")
        magic, version, gen, start = FILE_HEADER.unpack_from(raw)
        crc, = struct.unpack_from("<I", raw, FILE_HEADER.size)
        if magic != FILE_MAGIC or crc != zlib.crc32(raw[:FILE_HEADER.size]):
            raise JournalError(f"{self.journal}: not a skas journal (bad magic or checksum); "
                               "if no guest uses the image, remove it")
        if version != VERSION:
            raise JournalError(f"{self.journal}: journal version {version}, this ubd_io "
                               f"reads {VERSION}")
        if not RECORDS <= start <= max(RECORDS, os.fstat(self.fd).st_size):
            raise JournalError(f"{self.journal}: its records start at {start}, outside it")
        return gen, start

    def _write_header(self) -> None:
        head = FILE_HEADER.pack(FILE_MAGIC, VERSION, self.gen, self.start)
        os.pwrite(self.fd, head + struct.pack("<I", zlib.crc32(head)), 0)

    def _parse(self) -> None:
        """Read the records from start while they check out; the rest is a
        torn or an older generation's tail, dropped."""
        pos, file_end = self.start, os.fstat(self.fd).st_size
        while pos + HEADER <= file_end:
            raw = os.pread(self.fd, HEADER, pos)
            magic, kind, gen, offset, length = RECORD.unpack_from(raw)
            crc, = struct.unpack_from("<I", raw, RECORD.size)
            if (magic != RECORD_MAGIC or crc != zlib.crc32(raw[:RECORD.size]) or gen != self.gen
                    or kind not in (WRITE, ZEROES, DISCARD, COMMIT) or length > BLOCK_MAX
                    or offset + length > self.size + SECTOR
                    or pos + HEADER + (length if kind == WRITE else 0) > file_end):
                break
            pos += HEADER
            if kind == COMMIT:
                self.committed, self.commit_end = len(self.records), pos
            else:
                self._note(kind, offset, length, pos)
                pos += length if kind == WRITE else 0
        self.end = pos

    # --- staging ----------------------------------------------------------------
    def _note(self, kind: int, offset: int, length: int, at: int) -> None:
        self.records.append((kind, offset, length, at))
        first = offset // SECTOR
        if kind == WRITE:
            self.index.update(zip(range(first, first + length // SECTOR),
                                  range(at, at + length, SECTOR)))
        else:
            self.index.update(dict.fromkeys(range(first, first + length // SECTOR), ZERO))

    def _append(self, kind: int, offset: int, data: bytes | memoryview, length: int) -> None:
        with self.lock:
            pos = self.end
            if pos + HEADER + len(data) > JOURNAL_MAX:
                raise OSError(errno.ENOSPC, f"{self.end - self.start} bytes staged since the "
                              "last commit: the journal is full")
            if data:
                _pwrite_all(self.fd, data, pos + HEADER)
            head = RECORD.pack(RECORD_MAGIC, kind, self.gen, offset, length)
            os.pwrite(self.fd, head + struct.pack("<I", zlib.crc32(head)), pos)
            self.end = pos + HEADER + len(data)
            self._note(kind, offset, length, pos + HEADER)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        first, last = offset // SECTOR, -(-(offset + len(data)) // SECTOR)
        start = first * SECTOR
        if start != offset or (last - first) * SECTOR != len(data):
            # partial sectors: the rest of each from what the device holds now
            whole = bytearray(self.read(start, (last - first) * SECTOR))
            whole[offset - start:offset - start + len(data)] = data
            data = whole
        self._append(WRITE, start, data, len(data))

    def write_fresh(self, offset: int, data: bytes | memoryview) -> None:
        """WRITE_FRESH: sectors no committed structure holds (the kernel's
        filesystem took them since its last commit point from ones free at
        it), written to the image at once: a crash leaves them where nothing
        points.  Staged like any write if a record of this unit touches them
        (its apply at the commit would come after, and win), or if it is not
        of whole sectors."""
        first, last = offset // SECTOR, -(-(offset + len(data)) // SECTOR)
        with self.lock:
            staged = offset % SECTOR or len(data) % SECTOR or (
                self.index and self._hits(first, last))
        if staged:
            self.write(offset, data)
        else:
            self.image.write(offset, data)

    def zero(self, offset: int, length: int, unmap: bool) -> None:
        """DISCARD and WRITE_ZEROES, of whole sectors as Linux's block layer
        sends them."""
        if offset % SECTOR or length % SECTOR:
            raise OSError(errno.EINVAL, f"DISCARD/WRITE_ZEROES must be {SECTOR}-byte aligned")
        if length:
            self._append(DISCARD if unmap else ZEROES, offset, b"", length)

    def read(self, offset: int, length: int) -> bytes:
        with self.lock:
            if self.index:
                first, last = offset // SECTOR, -(-(offset + length) // SECTOR)
                hits = self._hits(first, last)
                if hits:
                    return self._overlaid(offset, length, first, last, hits)
        return self.image.read(offset, length)

    def _hits(self, first: int, last: int) -> list[tuple[int, int]]:
        index = self.index
        if len(index) < last - first:
            return sorted((s, at) for s, at in index.items() if first <= s < last)
        return [(s, index[s]) for s in range(first, last) if s in index]

    def _overlaid(self, offset: int, length: int, first: int, last: int,
                  hits: list[tuple[int, int]]) -> bytes:
        """The image's sectors with the staged ones over them, a run of
        sectors staged one after the other in one pread."""
        whole = bytearray(self.image.read(first * SECTOR, (last - first) * SECTOR))
        i = 0
        while i < len(hits):
            sector, at = hits[i]
            j = i + 1
            while (j < len(hits) and hits[j][0] == sector + j - i
                   and (at == ZERO) == (hits[j][1] == ZERO)
                   and (at == ZERO or hits[j][1] == at + (j - i) * SECTOR)):
                j += 1
            n = (j - i) * SECTOR
            pos = (sector - first) * SECTOR
            whole[pos:pos + n] = bytes(n) if at == ZERO else _pread_exact(self.fd, n, at)
            i = j
        skip = offset - first * SECTOR
        return bytes(whole[skip:skip + length])

    # --- commit points -------------------------------------------------------------
    def commit(self, durable: bool) -> None:
        """A commit point: everything staged applied to the image as one unit
        (and fsync'd, durable); the journal then starts again.  If applying
        fails, the records stay committed and staged, applied again at the
        next commit point or start."""
        with self.lock:
            if self.records:
                head = RECORD.pack(RECORD_MAGIC, COMMIT, self.gen, 0, 0)
                os.pwrite(self.fd, head + struct.pack("<I", zlib.crc32(head)), self.end)
                self.end += HEADER
                self.committed = len(self.records)
                self._apply(self.committed)
            if durable:
                self.image.flush()
            if self.records:
                self._restart()

    def _apply(self, count: int) -> None:
        for kind, offset, length, at in self.records[:count]:
            length = min(length, self.size - offset)      # a last partial sector
            if kind == WRITE:
                self.image.copy_from(self.fd, at, offset, length)
            else:
                self.image.zero(offset, length, unmap=kind == DISCARD)

    def _restart(self) -> None:
        """An empty journal of the next generation (an older one's records
        no longer count)."""
        self.gen += 1
        self.start = self.end = RECORDS
        self._write_header()
        self.records, self.index, self.committed = [], {}, 0

    def drop_uncommitted(self) -> int:
        """A new kernel starts: what a dead one staged after its last commit
        point is dropped (committed records are applied first); the bytes
        dropped."""
        with self.lock:
            if self.committed:
                self._apply(self.committed)
            dropped = sum(HEADER + (r[2] if r[0] == WRITE else 0)
                          for r in self.records[self.committed:])
            if self.records:
                self._restart()
            return dropped

    def close(self) -> None:
        """The uncommitted records stay in the journal for a ubd_io started
        again while the kernel lives."""
        self.image.close()
        os.close(self.fd)

    def describe(self) -> dict:
        return {**self.image.describe(), "journal": self.journal,
                "staged_bytes": self.end - self.start}


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(errno.EIO, f"journal read short at {offset}")
    return data
