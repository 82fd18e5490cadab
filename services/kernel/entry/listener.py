"""The seccomp listener: the guest calls the filter notifies reach the kernel
here, straight from the host kernel, and are answered here.

A notified caller waits inside the host kernel (``SECCOMP_RET_USER_NOTIF``)
until the listener's holder answers with a number: no ptrace stop, no
userspace turn, one wake-up each way.  Measured on the development VM, one
CPU: a guest's getppid 52 µs as a ptrace stop, 6.3 µs here.  userspace
installs the filter and takes the listener out of the stub (the guest holds
no fd); it reaches the kernel over ``FdSocket`` (SCM_RIGHTS).  The kernel
never calls ptrace: a notified call that needs a stopped task (a signal
to deliver, address-space ops) is stopped by userspace first
(service.py, ``Kernel.answer``)."""
from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import time
from pathlib import Path
from typing import Callable

from services.kernel.abi.arch import U64


log = logging.getLogger(__name__)


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


_NOTIF = struct.Struct("<QIIiIQ6Q")     # struct seccomp_notif (with its seccomp_data)
_RESP = struct.Struct("<QqiI")          # struct seccomp_notif_resp
NOTIF_RECV = _iowr(0, _NOTIF.size)
NOTIF_SEND = _iowr(1, _RESP.size)
FLAG_CONTINUE = 1                       # SECCOMP_USER_NOTIF_FLAG_CONTINUE
_EMPTY = bytes(_NOTIF.size)             # RECV wants a zeroed struct
MAX_ERRNO = 4095
BATCH = 8                               # calls taken in one turn, so other fds get theirs
SLICE = 0.01                            # nor more in one turn once this long (s) has gone


class Listener:
    """One filter's listener (a spawned stub and every process descended from it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int,
                 on_call: Callable[[Listener, int, int, int, list[int]], None]):
        self.loop = loop
        self.fd = fd
        self.on_call = on_call
        self.poll = select.poll()      # a hung-up listener reads as ready for ever
        self.poll.register(fd, select.POLLIN)
        loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        """Take the calls waiting, up to BATCH of them: a caller answered
        runs (on the guest's CPU, before the kernel goes on) and usually has
        its next call waiting by the time the kernel looks again, so this
        saves a loop turn per call (the loop's epoll_wait and its dispatch).
        Calls that cost much (a 64 KiB write through a terminal's line
        discipline) end the batch after SLICE: eight of them in one turn kept
        the loop from userspace's pings for 1.5 s on a loaded host, and
        userspace took the kernel for dead."""
        end = time.monotonic() + SLICE
        for _ in range(BATCH):
            if self.fd < 0 or time.monotonic() > end:
                return                 # closed by a call it served (halt), or out of time
            events = self.poll.poll(0)
            if not events:
                return
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                self.close()           # no guest process is left to call
                return
            buf = bytearray(_EMPTY)
            try:
                fcntl.ioctl(self.fd, NOTIF_RECV, buf)
            except OSError as exc:
                # ENOENT: the caller was interrupted or died after the wake-up
                if exc.errno not in (errno.ENOENT, errno.EINTR):
                    log.error("seccomp listener: %s", exc)
                return
            nid, pid, _flags, nr, _arch, _ip, *args = _NOTIF.unpack(buf)
            self.on_call(self, nid, pid, nr, args)

    def answer(self, nid: int, value: int) -> bool:
        """Return value from the call; False if the caller is no longer
        waiting for it (interrupted by a stop, or dead)."""
        if -MAX_ERRNO <= value < 0:
            return self._send(_RESP.pack(nid, 0, value, 0))
        value &= U64                   # as rax holds it (lseek's offsets, say)
        return self._send(_RESP.pack(nid, value - (1 << 64) if value >> 63 else value, 0, 0))

    def run_on_host(self, nid: int) -> bool:
        """Let the host run the call as it is (the kernel's ``HOST``)."""
        return self._send(_RESP.pack(nid, 0, 0, FLAG_CONTINUE))

    def _send(self, resp: bytes) -> bool:
        if self.fd < 0:
            return False               # closed at halt
        try:
            fcntl.ioctl(self.fd, NOTIF_SEND, resp)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.error("seccomp listener: answer refused: %s", exc)
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class FdSocket:
    """A datagram socket in the run directory where userspace hands the
    kernel a spawned task's listener: [task id as 8 bytes] + the fd;
    on_fd(sender's pid, task, fd)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: Path,
                 on_fd: Callable[[int, int, int], None]):
        self.loop = loop
        self.on_fd = on_fd
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC)
        path.unlink(missing_ok=True)
        self.sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        loop.add_reader(self.sock.fileno(), self._ready)

    def _ready(self) -> None:
        try:
            data, anc, _, _ = self.sock.recvmsg(16, socket.CMSG_SPACE(4) + socket.CMSG_SPACE(12),
                                                socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return
        fds, sender = [], None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [f for (f,) in struct.iter_unpack("<i", payload[:len(payload) // 4 * 4])]
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = struct.unpack("<iII", payload[:12])
        if len(data) != 8 or len(fds) != 1 or sender is None or sender[1] != os.getuid():
            log.error("fd socket: a malformed hand-over (%d bytes, %d fds, from %r): dropped",
                      len(data), len(fds), sender)
            for fd in fds:
                os.close(fd)
            return
        if os.readlink(f"/proc/self/fd/{fds[0]}") != "anon_inode:seccomp notify":
            log.error("fd socket: handed an fd that is not a seccomp listener: dropped")
            os.close(fds[0])
            return
        self.on_fd(sender[0], struct.unpack("<q", data)[0], fds[0])
