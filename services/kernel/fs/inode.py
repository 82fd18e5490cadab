"""What the VFS asks of an inode and of a filesystem.

ext2's, tmpfs's and procfs's inodes and filesystems derive from these, so
that an ability one of them lacks has Linux's answer here (EOPNOTSUPP,
nothing to write back) and no caller probes for it."""
from __future__ import annotations

import asyncio
import errno
from typing import Any, Callable

from services.kernel.core.errors import Errno
from services.kernel.fs.errseq import ErrSeq
from services.kernel.mm.filecache import FILE_CACHE, FilePages


def _nothing() -> None:
    pass


class Inode:
    """The attributes stat shows (ino, mode, uid, gid, nlink, size, blocks,
    rdev, and the times with their nanoseconds) are each filesystem's; the
    calls below are the ones not every filesystem has."""

    live: Any = None     # fs/pagecache.py's Live while a process may map the inode shared
    locks: Any = None    # fs/locks.py's FileLocks while it has (or had) locks
    watches: Any = None  # fs/inotify.py's watches on it, while there are any
    # mm/filecache.py's FilePages: its data as read() was given it, kept
    # where a filesystem's reads are costly (ext2: regular files); whatever
    # changes the data calls ``changed``
    pages: FilePages | None = None
    cache_reads = False  # read(2) of it goes through the file cache (fs/vfs.py read_into)
    # Linux's inode lock, for writes (fs/vfs.py write_from), made at its first
    # write: one at a time per inode, so that an O_APPEND write's end, or a
    # position shared since fork, is read and moved by one writer and not
    # overwritten by the next
    write_lock: asyncio.Lock | None = None

    def changed(self, start: int, end: int | None = None) -> None:
        """Its bytes [start, end) (None: to the end of the file) are not what
        they were: the file cache's copies of them go."""
        if self.pages is not None:
            FILE_CACHE.drop(self.pages, start, end)

    def hold(self) -> Callable[[], None]:
        """An open file keeps the inode (ext2 frees an unlinked inode at the
        last close); the call given back lets it go."""
        return _nothing

    def open_for_write(self) -> None:
        """A refusal to be opened for writing past what the mode bits say
        (sysfs's read-only attributes refuse even root: EACCES); none here."""

    async def allocate(self, offset: int, length: int) -> None:
        """fallocate mode 0."""
        raise Errno(errno.EOPNOTSUPP)

    async def fsync(self) -> None:
        """The inode's data and metadata to the disk: nothing, where nothing
        is written back."""

    # Extended attributes (fs/xattr.py checks names and permissions first):
    # where a filesystem keeps none, Linux's answers for an inode without
    # xattr handlers (procfs, pipes): EOPNOTSUPP, and an empty list.
    async def getxattr(self, name: bytes) -> bytes:
        """The value of attribute name; ENODATA if the inode has none."""
        raise Errno(errno.EOPNOTSUPP)

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        """Set name to value (XATTR_CREATE: EEXIST if set, XATTR_REPLACE:
        ENODATA if not); ctime becomes now."""
        raise Errno(errno.EOPNOTSUPP)

    async def removexattr(self, name: bytes) -> None:
        """Remove name (ENODATA if not set); ctime becomes now."""
        raise Errno(errno.EOPNOTSUPP)

    async def listxattr(self) -> list[bytes]:
        """Every attribute's name, in the filesystem's order."""
        return []


class FileSystem:
    writable = False     # whether it takes writes (the VFS says EROFS, else)
    wb_err = ErrSeq()    # its write-back errors; one that writes back has its own

    def show_options(self) -> bytes:
        """Its own options as /proc/mounts shows them after the mount's
        flags (Linux's s_op->show_options): none, unless it has some."""
        return b""

    async def sync(self) -> None:
        """Everything to the disk, ending with a FLUSH."""

    async def unmount(self) -> None:
        """The halt's last write-back, when no file is open any more."""
        await self.sync()
