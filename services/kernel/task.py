"""A guest task: virtual pid, credentials, files, memory, signal state."""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.kernel.errors import Errno
from services.kernel.memory import GuestMemory

if TYPE_CHECKING:
    from services.kernel.service import Kernel
    from services.kernel.vfs import OpenFile, Location


@dataclass
class Credentials:
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    suid: int = 0
    sgid: int = 0
    groups: list[int] = field(default_factory=list)


class FdTable:
    """File descriptors of a task: fd -> (open file, close-on-exec)."""

    def __init__(self) -> None:
        self.fds: dict[int, tuple[OpenFile, bool]] = {}
        self.limit = 1024

    def get(self, fd: int) -> OpenFile:
        entry = self.fds.get(fd)
        if entry is None:
            raise Errno(errno.EBADF)
        return entry[0]

    def install(self, f: OpenFile, cloexec: bool = False, lowest: int = 0) -> int:
        fd = lowest
        while fd in self.fds:
            fd += 1
        if fd >= self.limit:
            raise Errno(errno.EMFILE)
        self.fds[fd] = (f, cloexec)
        return fd

    def close(self, fd: int) -> OpenFile:
        entry = self.fds.pop(fd, None)
        if entry is None:
            raise Errno(errno.EBADF)
        return entry[0]


class Task:
    """One guest thread of execution; for now every task is its own process."""

    def __init__(self, kernel: Kernel, tid: int, cred: Credentials, cwd: Location):
        self.kernel = kernel
        self.tid = tid
        self.tgid = tid
        self.ppid = 0
        self.pgid = tid
        self.sid = tid
        self.cred = cred
        self.files = FdTable()
        self.cwd = cwd
        self.umask = 0o022
        self.host_pid = 0
        self.mem: GuestMemory | None = None
        self.comm = b""
        self.exe = b""
        self.request_id = 0          # the userspace request this task is stopped in
        self.exit_status: int | None = None
        self.sigactions: dict[int, bytes] = {}
        self.sigmask = 0
        self.altstack = b"\0" * 24
        self.brk = 0

    def attach(self, host_pid: int) -> None:
        self.host_pid = host_pid
        self.mem = GuestMemory(host_pid)

    def __repr__(self) -> str:
        return f"<Task {self.tid} {self.comm.decode(errors='replace')}>"
