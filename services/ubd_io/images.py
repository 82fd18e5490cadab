"""The host side of a ubd device: a plain image file, or a UML COW overlay
over a backing file that is opened read-only and never written.

Both kinds serve READ, WRITE, DISCARD, WRITE_ZEROES and FLUSH by byte
offset, from several threads at once as long as the ranges in flight do not
overlap (the request queue sees to that).  Nothing here knows what a guest
or a message is."""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading

from services.ubd_io import cow

log = logging.getLogger("ubd_io")

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
ZERO_CHUNK = 1 << 20



class _NoStep:
    """A step of tracing off: nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc) -> None:
        return None


_NO_STEP = _NoStep()


def step(_name: str) -> _NoStep:
    """A span around one step of a request's work: nothing until ubd_io's
    tracing (services/ubd_io/tracing.py) puts its own here."""
    return _NO_STEP


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
SYNC_FILE_RANGE_WRITE = 2
EARLY_WRITEBACK = 1 << 20


def zero_range(fd: int, offset: int, length: int, unmap: bool) -> None:
    """Make [offset, offset+length) of a file read as zeros: punch a hole
    (unmap, DISCARD) or zero it in place (WRITE_ZEROES), as UML's
    os_falloc_punch/os_falloc_zeroes do; where the host filesystem cannot,
    write zeros."""
    if length == 0:
        return
    mode = FALLOC_FL_KEEP_SIZE | (FALLOC_FL_PUNCH_HOLE if unmap else FALLOC_FL_ZERO_RANGE)
    if _libc.fallocate(fd, mode, offset, length) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise OSError(err, os.strerror(err))
    zeros = bytes(min(length, ZERO_CHUNK))
    end = offset + length
    while offset < end:
        offset += os.pwrite(fd, zeros[:end - offset], offset)


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    """pread that treats a short read as zeros (a sparse file's end)."""
    data = os.pread(fd, length, offset)
    return data if len(data) == length else data.ljust(length, b"\0")


class Image:
    """A plain image file: device byte n is file byte n."""

    kind = "image"

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return _pread_full(self.fd, length, offset)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        start = offset
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done
        if len(data) >= EARLY_WRITEBACK:
            # start the host's write-back now, as a disk drains its cache: a
            # FLUSH then waits only for the tail (64 MiB + fsync: 31 -> 3.5 ms)
            _libc.sync_file_range(self.fd, start, len(data), SYNC_FILE_RANGE_WRITE)

    def copy_from(self, fd: int, at: int, offset: int, length: int) -> None:
        """A write whose data is length bytes of fd at at (the journal),
        copied by the host (copy_file_range) rather than through Python."""
        end = offset + length
        while offset < end:
            try:
                done = os.copy_file_range(fd, self.fd, end - offset, at, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                done = 0
            if not done:        # not copyable here, or fd ends early: as a write
                done = min(end - offset, 1 << 20)
                Image.write(self, offset, _pread_full(fd, done, at))
            at, offset = at + done, offset + done
        if length >= EARLY_WRITEBACK:
            _libc.sync_file_range(self.fd, end - length, length, SYNC_FILE_RANGE_WRITE)

    def zero(self, offset: int, length: int, unmap: bool) -> None:
        zero_range(self.fd, offset, length, unmap)

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if not self.readonly:
            os.fsync(self.fd)
        os.close(self.fd)

    def describe(self) -> dict:
        return {"path": self.path, "size": self.size, "kind": self.kind}


class Overlay(Image):
    """A UML COW file over a backing file.

    Reads of sectors whose bit is clear come from the backing file; writes go
    to the overlay and set the bit.  The bitmap bytes that change are written
    (pwrite, no fsync) before the write is acknowledged, so a killed ubd_io
    loses no acknowledged write; FLUSH fsyncs the overlay, bitmap included.
    DISCARD and WRITE_ZEROES punch a hole in the overlay's data and set the
    bits, so the sectors read as zeros and the backing file is untouched."""

    kind = "cow"

    def __init__(self, path: str, backing: str | None = None, readonly: bool = False):
        if backing is not None and not os.path.exists(path):
            cow.create(path, backing)
            log.info("created %s as a COW overlay of %s", path, backing)
        super().__init__(path, readonly)
        try:
            self.header = cow.read_header(self.fd, path)
            self._open_backing(backing)
            h = self.header
            self.size = h.size
            self.sector = h.sectorsize
            self.bitmap = bytearray(_pread_full(self.fd, h.bitmap_len, h.bitmap_offset))
        except BaseException:
            os.close(self.fd)
            raise
        self.lock = threading.Lock()      # the in-memory bitmap and its bytes on disk

    def _open_backing(self, asked: str | None) -> None:
        h = self.header
        if asked is not None and not _same_file(asked, h.backing):
            # like UML's path_requires_switch: follow a moved backing file
            # only if it is the same image (size and mtime match)
            h.check_backing(asked)
            log.warning("%s: switching backing file from %s to %s", self.path, h.backing, asked)
            self.header = h = cow.rewrite_backing(self.fd, h, asked)
        if not os.path.exists(h.backing):
            raise cow.CowError(f"{self.path}: backing file {h.backing} (named in its COW "
                               "header) does not exist; give it as OVERLAY,BACKING")
        h.check_backing(h.backing)
        self.backing = h.backing
        self.backing_fd = os.open(h.backing, os.O_RDONLY | os.O_CLOEXEC)

    def _sectors(self, offset: int, length: int) -> tuple[int, int]:
        first = offset // self.sector
        return first, -(-(offset + length) // self.sector) - first

    def read(self, offset: int, length: int) -> bytes:
        first, count = self._sectors(offset, length)
        with self.lock:
            spans = list(cow.runs(self.bitmap, first, count))
        parts = []
        for sector, n, in_cow in spans:
            pos, size = sector * self.sector, n * self.sector
            if in_cow:
                parts.append(_pread_full(self.fd, size, self.header.data_offset + pos))
            else:
                parts.append(_pread_full(self.backing_fd, size, pos))
        skip = offset - first * self.sector
        return b"".join(parts)[skip:skip + length]

    def write(self, offset: int, data: bytes) -> None:
        first, count = self._sectors(offset, len(data))
        start = first * self.sector
        if start != offset or count * self.sector != len(data):
            # partial sectors: the rest of each comes from what the device holds now
            whole = bytearray(self.read(start, count * self.sector))
            whole[offset - start:offset - start + len(data)] = data
            data = bytes(whole)
        super().write(self.header.data_offset + start, data)
        self._mark(first, count)

    def copy_from(self, fd: int, at: int, offset: int, length: int) -> None:
        """Whole sectors, as the journal stages them."""
        super().copy_from(fd, at, self.header.data_offset + offset, length)
        self._mark(*self._sectors(offset, length))

    def zero(self, offset: int, length: int, unmap: bool) -> None:
        """Both DISCARD and WRITE_ZEROES punch the overlay: its data region is
        sparse anyway, and the set bits keep the backing's bytes out."""
        if offset % self.sector or length % self.sector:
            raise OSError(errno.EINVAL, "DISCARD/WRITE_ZEROES on an overlay must be "
                          f"{self.sector}-byte aligned")
        zero_range(self.fd, self.header.data_offset + offset, length, unmap=True)
        self._mark(*self._sectors(offset, length))

    def _mark(self, first: int, count: int) -> None:
        with step("cow bitmap"), self.lock:
            changed = cow.set_bits(self.bitmap, first, count)
            if changed:
                lo, hi = changed
                os.pwrite(self.fd, bytes(self.bitmap[lo:hi]), self.header.bitmap_offset + lo)

    def close(self) -> None:
        super().close()
        os.close(self.backing_fd)

    def describe(self) -> dict:
        in_cow = int.from_bytes(self.bitmap, "little").bit_count()
        return {**super().describe(), "backing": self.backing, "sectors_in_cow": in_cow}


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def open_image(path: str, backing: str | None = None) -> Image:
    """An overlay if path is a COW file (or backing is given), else a plain image."""
    if backing is not None:
        return Overlay(path, backing)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        overlay = cow.is_cow(fd)
    finally:
        os.close(fd)
    return Overlay(path) if overlay else Image(path)
