"""The memory a local ubd_io reads the kernel's writes from (``write_shared``).

User-Mode Linux's ubd I/O thread shares the kernel's address space: a request
on its pipe is a pointer, and the thread pwrites straight from the kernel's
buffer.  Our ubd_io is another process, so the kernel keeps a memfd of
SLOTS slots of SLOT bytes, copies a posted write's data into a free slot,
and sends only where it is; ubd_io opens the memfd by its /proc path, read
only, and pwrites from the mapping.  Measured (64 MiB written in 64 KiB
chunks then fsync'd, in a guest): the data in the message cost the kernel
~20 µs and ubd_io ~25 µs of CPU per 64 KiB in msgpack, libzmq and socket
copies; see docs/architecture.md for what this saves.

Only for an ipc endpoint (a remote ubd_io cannot see this host's memory);
a ubd_io that cannot open the buffer answers ``error`` and the kernel sends
the data in the message from then on.  ubd_io opens nothing but a memfd of
this name, so a request cannot make it read some other file into a disk."""
from __future__ import annotations

import errno
import mmap
import os
import re

NAME = "skas-ubd-buffer"
SLOT = 1 << 20             # ext2 writes back runs of at most 1 MiB (MAX_RUN_BYTES)
SLOTS = 32                 # the posted writes the kernel keeps in flight (POSTED_MAX)
_PATH = re.compile(r"/proc/[1-9][0-9]*/fd/[0-9]+")


class SharedBuffer:
    """The kernel's side: the memfd, and which of its slots are free."""

    def __init__(self, slots: int = SLOTS, slot: int = SLOT):
        self.slot = slot
        fd = os.memfd_create(NAME, os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, slots * slot)
            self.map = mmap.mmap(fd, slots * slot)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd                # kept open for the kernel's life: path names it
        self.path = f"/proc/{os.getpid()}/fd/{fd}"
        self.free = list(range(slots))

    def put(self, data: bytes | list[bytes]) -> int | None:
        """data (a list: in parts, in order) copied into a free slot: its
        byte offset; None if none is free or data is bigger than a slot."""
        parts = data if type(data) is list else [data]
        if sum(map(len, parts)) > self.slot or not self.free:
            return None
        at = self.free.pop() * self.slot
        m = self.map
        m.seek(at)
        for part in parts:                  # (no slice or len made per part)
            m.write(part)
        return at

    def release(self, at: int) -> None:
        self.free.append(at // self.slot)


def _is_buffer(link: str) -> bool:
    return os.readlink(link).startswith(f"/memfd:{NAME} ")


class Mapped:
    """ubd_io's side: one kernel's buffer, mapped read-only."""

    def __init__(self, path: str):
        """OSError (EACCES) unless path is a /proc fd link to a skas buffer."""
        if not _PATH.fullmatch(path) or not _is_buffer(path):
            raise OSError(errno.EACCES, f"{path} is not a skas ubd buffer")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if not _is_buffer(f"/proc/self/fd/{fd}"):     # what was opened, not what was named
                raise OSError(errno.EACCES, f"{path} is not a skas ubd buffer")
            self.map = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            self.ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        self.view = memoryview(self.map)

    def data(self, at: int, length: int) -> memoryview:
        """The bytes at..at+length; ValueError if they are not all in the buffer."""
        if at < 0 or length < 0 or at + length > len(self.map):
            raise ValueError(f"bytes {at}+{length} are outside the {len(self.map)}-byte buffer")
        return self.view[at:at + length]
