"""copy_from_user / copy_to_user: guest memory by process_vm_readv/writev.

A bad guest pointer is EFAULT, never an exception that escapes a handler."""
from __future__ import annotations

import ctypes
import errno
from typing import Iterator

from services.kernel.abi.fcntl import IOV_MAX
from services.kernel.core.errors import Errno

_libc = ctypes.CDLL(None, use_errno=True)


class _iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


# No argtypes: every argument is a small int or a byref made once per
# address space, which ctypes passes as they are; converting six declared
# arguments cost ~1.5 µs of a 4-5 µs transfer (measured: 4.1-5.0 against
# 2.6-3.7 µs for a 256-byte read).
_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
for _f in (_readv, _writev):
    _f.restype = ctypes.c_ssize_t

# A bytes object made uninitialized, as C code makes one to fill before
# anyone sees it (PyBytes_FromStringAndSize(NULL, n)), and where its contents
# start: guest memory is read straight into it and written straight from a
# bytes object, without zeroing a ctypes buffer and copying every byte once
# more (with eager.py, 64 KiB cached reads went 570-625 -> 690-788 MB/s).
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
_BYTES_DATA = bytes.__basicsize__ - 1      # CPython: the header, then ob_sval

ADDR_LIMIT = 1 << 47   # user addresses end here on x86_64
MAX_STRING = 4096      # PATH_MAX
MAX_PIECE = 64 << 10   # the largest read of a string at once


class GuestMemory:
    """One guest address space, reached through its host pid."""

    def __init__(self, pid: int):
        self.pid = pid
        self._local = _iovec()
        self._remote = _iovec()
        self._local_ref = ctypes.byref(self._local)
        self._remote_ref = ctypes.byref(self._remote)

    def _xfer(self, fn, addr: int, buf: bytes, length: int) -> int:
        """Move length bytes between guest addr and buf's contents."""
        return self._move(fn, addr, id(buf) + _BYTES_DATA, length)

    def _move(self, fn, addr: int, host: int, length: int) -> int:
        """Move length bytes between guest addr and this process's address
        host: the bytes moved, fewer if the guest's range stops being
        mapped (page by page, as copy_to_user), EFAULT if none were."""
        if length == 0:
            return 0
        if addr <= 0 or addr + length > ADDR_LIMIT:
            raise Errno(errno.EFAULT)
        self._local.base = host
        self._local.len = length
        self._remote.base = addr
        self._remote.len = length
        n = fn(self.pid, self._local_ref, 1, self._remote_ref, 1, 0)
        if n < 0:
            err = ctypes.get_errno()
            raise Errno(errno.EFAULT if err in (errno.EFAULT, errno.ENOMEM, errno.EINVAL)
                        else errno.ESRCH if err == errno.ESRCH else errno.EFAULT)
        return n

    def write_some(self, addr: int, data: bytes) -> int:
        """write, but a guest buffer that stops being writable part way
        takes what fits: the bytes written (EFAULT if none)."""
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return 0
        n = self._xfer(_writev, addr, data, len(data))
        if n <= 0:
            raise Errno(errno.EFAULT)
        return n

    def write_pieces(self, addr: int, pieces: list[tuple[int, int]], length: int) -> int:
        """Copy length bytes gathered from this process's memory (pieces:
        (address, length), in order; the file cache's arena) to guest addr,
        with no Python object made for them: the bytes copied, fewer if the
        guest's buffer stops being writable part way (Linux's read returns
        that count), EFAULT if none were.  IOV_MAX pieces at a time."""
        if len(pieces) == 1:
            return self._move(_writev, addr, pieces[0][0], length)
        if addr <= 0 or addr + length > ADDR_LIMIT:
            raise Errno(errno.EFAULT)
        done = 0
        for at in range(0, len(pieces), IOV_MAX):
            batch = pieces[at:at + IOV_MAX]
            want = sum(n for _, n in batch)
            local = (_iovec * len(batch))(*batch)
            self._remote.base = addr + done
            self._remote.len = want
            n = _writev(self.pid, local, len(batch), ctypes.byref(self._remote), 1, 0)
            if n < 0:
                if done:
                    return done
                err = ctypes.get_errno()
                raise Errno(errno.ESRCH if err == errno.ESRCH else errno.EFAULT)
            done += n
            if n < want:
                break
        if not done:
            raise Errno(errno.EFAULT)
        return done

    def read(self, addr: int, length: int) -> bytes:
        if length == 0:
            return b""
        buf = _new_bytes(None, length)
        if self._xfer(_readv, addr, buf, length) != length:
            raise Errno(errno.EFAULT)
        return buf

    def read_some(self, addr: int, length: int) -> bytes:
        """As much as is readable from addr (at least one byte, or EFAULT)."""
        if length == 0:
            raise Errno(errno.EFAULT)
        buf = _new_bytes(None, length)
        n = self._xfer(_readv, addr, buf, length)
        if n <= 0:
            raise Errno(errno.EFAULT)
        return buf if n == length else buf[:n]

    def write(self, addr: int, data: bytes) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        if self._xfer(_writev, addr, data, len(data)) != len(data):
            raise Errno(errno.EFAULT)

    def read_cstr(self, addr: int, limit: int = MAX_STRING) -> bytes:
        """A NUL-terminated string; ENAMETOOLONG past limit."""
        pieces = []
        for piece, ended in self.cstr_pieces(addr, limit):
            pieces.append(piece)
            if ended:
                return b"".join(pieces)
        raise Errno(errno.ENAMETOOLONG)

    def cstr_pieces(self, addr: int, limit: int) -> Iterator[tuple[bytes, bool]]:
        """A NUL-terminated string of at most limit bytes in pieces, each with
        whether the NUL ended it: the first read is 256 bytes, each next one
        eight times the last (to 64 KiB), so a short string costs one small
        read and a long one no copy of what came before."""
        want = 256
        while limit > 0:
            chunk = self.read_some(addr, min(want, limit))
            nul = chunk.find(b"\0")
            if nul >= 0:
                yield chunk[:nul], True
                return
            yield chunk, False
            limit -= len(chunk)
            addr += len(chunk)
            want = min(want * 8, MAX_PIECE)
