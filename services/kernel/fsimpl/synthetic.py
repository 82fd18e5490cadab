"""Generated inodes: the files, links and directories of procfs and sysfs,
whose content is made by a function when read, not stored.

A ``File`` makes its content when read from offset 0 and keeps it for the
reads that follow on the same open; a ``Dir`` has named entries (made on
lookup) and numbered ones (processes, fds) looked up and listed by number,
a piece at a time.  Each filesystem gives the inode numbers."""
from __future__ import annotations

import asyncio
import bisect
import errno
import stat as S
import time
from typing import Any, Callable

from services.kernel.core.errors import Errno
from services.kernel.fs.inode import Inode
from services.kernel.fs.vfs import DIR_STEP, d_type

NUMBERED = 256          # a directory's position for number n: NUMBERED + n


class Node(Inode):
    """What every generated inode has."""

    def __init__(self, fs: Any, ino: int, mode: int, uid: int = 0, gid: int = 0):
        self.fs = fs
        self.ino = ino
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.size = 0
        self.nlink = 2 if S.S_ISDIR(mode) else 1
        self.blocks = 0
        self.rdev = 0
        self.atime, self.atime_ns = divmod(time.time_ns(), 1_000_000_000)
        self.mtime, self.mtime_ns = self.ctime, self.ctime_ns = self.atime, self.atime_ns

    async def read(self, offset: int, length: int) -> bytes:
        raise Errno(errno.EINVAL)

    async def iterate(self, pos: int):
        raise Errno(errno.ENOTDIR)
        yield

    async def lookup(self, name: bytes) -> Any:
        return None

    async def readlink(self) -> bytes:
        raise Errno(errno.EINVAL)

    async def setattr(self, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, **times: Any) -> None:
        """Times pass unkept (O_TRUNC's touch); owners and modes are the
        filesystem's to give."""
        if (mode, uid, gid) != (None, None, None):
            raise Errno(errno.EPERM)


class File(Node):
    """Read-only: a write is EIO and O_TRUNC does nothing, as procfs files
    without a write method; refuse_writers (sysfs's) are EACCES at open."""

    def __init__(self, fs, ino, gen: Callable[[], bytes], mode: int = 0o444, uid=0, gid=0,
                 refuse_writers: bool = False):
        super().__init__(fs, ino, S.S_IFREG | mode, uid, gid)
        self.gen = gen
        self.content: bytes | None = None
        self.refuse_writers = refuse_writers

    def open_for_write(self) -> None:
        if self.refuse_writers:
            raise Errno(errno.EACCES)

    async def write(self, offset: int, data: bytes) -> int:
        raise Errno(errno.EIO)

    async def truncate(self, size: int) -> None:
        pass

    async def read(self, offset: int, length: int) -> bytes:
        if offset == 0 or self.content is None:
            self.content = self.gen()
        return self.content[offset:offset + length]


class Link(Node):
    def __init__(self, fs, ino, target: Callable[[], bytes], uid=0, gid=0):
        super().__init__(fs, ino, S.S_IFLNK | 0o777, uid, gid)
        self.target = target

    async def readlink(self) -> bytes:
        target = self.target()
        if not target:
            raise Errno(errno.ENOENT)
        return target


class Dir(Node):
    """A directory of named entries (entries(): name -> maker of the inode)
    and numbered ones after them (numbers(n, count): at most count numbers,
    the first n or more, in order; number(n): its inode, None if there is
    none).  Positions as Linux's: "." 0, ".." 1, the named entries from 2,
    number n at NUMBERED + n, so a listing goes on where it stopped while
    processes and fds come and go."""

    def __init__(self, fs, ino, entries: Callable[[], dict], parent: Any = None, mode=0o555,
                 uid=0, gid=0, numbers: Callable[[int, int], list[int]] | None = None,
                 number: Callable[[int], Any] | None = None):
        super().__init__(fs, ino, S.S_IFDIR | mode, uid, gid)
        self.entries = entries
        self.parent = parent or self
        self.numbers, self.number = numbers, number

    async def lookup(self, name: bytes) -> Any:
        if name == b".":
            return self
        if name == b"..":
            return self.parent
        if self.numbers is not None and name.isdigit() and (name == b"0" or name[:1] != b"0"):
            return self.number(int(name))
        make = self.entries().get(name)
        return make() if make is not None else None

    async def iterate(self, pos: int):
        """The entries from position pos on, the named ones in one batch, the
        numbered DIR_STEP at a time with a turn of the loop in between."""
        batch = [(b".", self.ino, d_type(S.S_IFDIR), 1),
                 (b"..", self.parent.ino, d_type(S.S_IFDIR), 2)][pos:]
        for i, (name, make) in enumerate(self.entries().items()):
            if i + 2 >= pos and (inode := make()) is not None:
                batch.append((name, inode.ino, d_type(inode.mode), i + 3))
        n = max(pos - NUMBERED, 0)
        while True:
            numbers = self.numbers(n, DIR_STEP) if self.numbers is not None else []
            for k in numbers:
                if (inode := self.number(k)) is not None:
                    batch.append((b"%d" % k, inode.ino, d_type(inode.mode), NUMBERED + k + 1))
            if batch:
                yield batch
            if len(numbers) < DIR_STEP:
                return
            batch = []
            n = numbers[-1] + 1
            await asyncio.sleep(0)


def numbers_from(numbers, n: int, count: int) -> list[int]:
    """At most count of the sorted numbers, the first n or more."""
    i = bisect.bisect_left(numbers, n)
    return numbers[i:i + count]


def tree_node(fs: Any, path: bytes, spec: Any, parent: Any, dir_mode: int = 0o555,
              file_size: int = 0) -> Node:
    """An inode of a tree given as data: a dict is a directory of its
    entries, bytes a symlink's target, a function the maker of a file's
    content.  fs.path_ino(path) numbers them.  Files with a size are
    sysfs's attributes (4096, and refusing writers)."""
    ino = fs.path_ino(path)
    if isinstance(spec, dict):
        def entries() -> dict:
            return {name: (lambda name=name, sub=sub: tree_node(
                fs, path + b"/" + name, sub, d, dir_mode, file_size)) for name, sub in spec.items()}
        d = Dir(fs, ino, entries, parent, dir_mode)
        return d
    if isinstance(spec, bytes):
        return Link(fs, ino, lambda: spec)
    f = File(fs, ino, spec, 0o444, refuse_writers=bool(file_size))
    f.size = file_size
    return f
