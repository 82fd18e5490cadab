"""The VFS: mounts, path lookup, open files, and the stat a guest sees.

In a nutshell: a ``Location`` is an inode plus the canonical guest path that
reached it (getcwd and /proc need paths, and there are no hard-linked
directories).  ``lookup`` walks a path component by component from the root
or a directory, following symlinks as Linux does (at most 40).  An
``OpenFile`` is Linux's ``struct file``: flags and a position shared by every
fd that refers to it.
"""
from __future__ import annotations

import errno
import os
import stat as S
import struct
from dataclasses import dataclass
from typing import Any

from services.kernel.errors import Errno
from services.kernel.task import Credentials

MAXSYMLINKS = 40
PATH_MAX = 4096
NAME_MAX = 255

O_ACCMODE = 0o3
O_WRONLY, O_RDWR = 0o1, 0o2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o100, 0o200, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
O_PATH = 0o10000000

R_OK, W_OK, X_OK = 4, 2, 1

UBD_MAJOR = 98   # the block major User-Mode Linux gives its ubd disks


def makedev(major: int, minor: int) -> int:
    return os.makedev(major, minor)


@dataclass
class Mount:
    fs: Any                  # a filesystem with .root, .statfs()
    dev: int                 # st_dev of its inodes


@dataclass
class Location:
    mount: Mount
    inode: Any
    path: bytes              # canonical absolute guest path

    def child(self, name: bytes, inode: Any) -> Location:
        base = self.path if self.path != b"/" else b""
        return Location(self.mount, inode, base + b"/" + name)


class Vfs:
    def __init__(self, root: Mount):
        self.root_mount = root
        self.root = Location(root, root.fs.root, b"/")

    async def lookup(self, start: Location, path: bytes, cred: Credentials, *,
                     follow: bool = True, _depth: list[int] | None = None) -> Location:
        """Resolve path from start (ignored for absolute paths)."""
        if not path:
            raise Errno(errno.ENOENT)
        if len(path) >= PATH_MAX:
            raise Errno(errno.ENAMETOOLONG)
        links = _depth if _depth is not None else [0]
        here = self.root if path.startswith(b"/") else start
        parts = [p for p in path.split(b"/") if p and p != b"."]
        trailing_slash = path.endswith(b"/")
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if not S.S_ISDIR(here.inode.mode):
                raise Errno(errno.ENOTDIR)
            if not permitted(here.inode, cred, X_OK):
                raise Errno(errno.EACCES)
            if name == b"..":
                here = await self.parent(here, cred)
                continue
            if len(name) > NAME_MAX:
                raise Errno(errno.ENAMETOOLONG)
            inode = await here.inode.lookup(name)
            if inode is None:
                raise Errno(errno.ENOENT)
            if S.S_ISLNK(inode.mode) and (not last or follow or trailing_slash):
                links[0] += 1
                if links[0] > MAXSYMLINKS:
                    raise Errno(errno.ELOOP)
                target = await inode.readlink()
                here = await self.lookup(here, target, cred, follow=True, _depth=links)
                continue
            here = here.child(name, inode)
        if trailing_slash and not S.S_ISDIR(here.inode.mode):
            raise Errno(errno.ENOTDIR)
        return here

    async def parent(self, loc: Location, cred: Credentials) -> Location:
        if loc.path == b"/":
            return loc
        parent_path = loc.path.rsplit(b"/", 1)[0] or b"/"
        return await self.lookup(self.root, parent_path, cred)


def permitted(inode: Any, cred: Credentials, mask: int) -> bool:
    """Unix permission check with the task's effective ids (root may do all but
    execute a file with no execute bit at all)."""
    mode = inode.mode
    if cred.euid == 0:
        return not (mask & X_OK) or S.S_ISDIR(mode) or bool(mode & 0o111)
    if cred.euid == inode.uid:
        bits = mode >> 6
    elif cred.egid == inode.gid or inode.gid in cred.groups:
        bits = mode >> 3
    else:
        bits = mode
    return (bits & mask & 7) == mask


STAT = struct.Struct("<QQQIIIiQqqqQQQQQQ24x")
_STATX_TS = struct.Struct("<qI4x")
_STATX_HEAD = struct.Struct("<IIQIIIHxxQQQQ")
STATX_BASIC_STATS = 0x7FF


def pack_stat(inode: Any, dev: int) -> bytes:
    """struct stat for x86_64."""
    return STAT.pack(dev, inode.ino, inode.nlink, inode.mode, inode.uid, inode.gid, 0,
                      inode.rdev, inode.size, 4096, inode.blocks,
                      inode.atime, inode.atime_ns, inode.mtime, inode.mtime_ns,
                      inode.ctime, inode.ctime_ns)


def pack_statx(inode: Any, dev: int) -> bytes:
    """struct statx (256 bytes) with the basic stats filled in."""
    head = _STATX_HEAD.pack(STATX_BASIC_STATS, 4096, 0, inode.nlink, inode.uid, inode.gid,
                            inode.mode, inode.ino, inode.size, inode.blocks, 0)
    times = (_STATX_TS.pack(inode.atime, inode.atime_ns) + _STATX_TS.pack(0, 0)
             + _STATX_TS.pack(inode.ctime, inode.ctime_ns)
             + _STATX_TS.pack(inode.mtime, inode.mtime_ns))
    devs = struct.pack("<IIII", os.major(inode.rdev), os.minor(inode.rdev),
                       os.major(dev), os.minor(dev))
    return (head + times + devs).ljust(256, b"\0")


class OpenFile:
    """An open file description (Linux's struct file)."""

    def __init__(self, loc: Location | None, flags: int):
        self.loc = loc
        self.flags = flags
        self.pos = 0

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (0, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    def stat(self) -> bytes:
        return pack_stat(self.loc.inode, self.loc.mount.dev)

    def statx(self) -> bytes:
        return pack_statx(self.loc.inode, self.loc.mount.dev)

    async def read(self, count: int, offset: int | None = None) -> bytes:
        raise Errno(errno.EINVAL)

    async def write(self, data: bytes, offset: int | None = None) -> int:
        raise Errno(errno.EINVAL)

    def seekable_size(self) -> int:
        raise Errno(errno.ESPIPE)

    async def getdents(self, size: int) -> bytes:
        raise Errno(errno.ENOTDIR)

    def ioctl(self, task: Any, request: int, arg: int) -> int:
        raise Errno(errno.ENOTTY)


class InodeFile(OpenFile):
    """A regular file or directory of a disk filesystem."""

    def __init__(self, loc: Location, flags: int):
        super().__init__(loc, flags)
        self.dirents: list[tuple[bytes, int, int]] | None = None

    async def read(self, count: int, offset: int | None = None) -> bytes:
        inode = self.loc.inode
        if S.S_ISDIR(inode.mode):
            raise Errno(errno.EISDIR)
        at = self.pos if offset is None else offset
        data = await inode.read(at, count)
        if offset is None:
            self.pos += len(data)
        return data

    async def write(self, data: bytes, offset: int | None = None) -> int:
        raise Errno(errno.EROFS)

    def seekable_size(self) -> int:
        return self.loc.inode.size

    async def getdents(self, size: int) -> bytes:
        """linux_dirent64 records from the current position (an entry index)."""
        if not S.S_ISDIR(self.loc.inode.mode):
            raise Errno(errno.ENOTDIR)
        if self.dirents is None or self.pos == 0:
            self.dirents = await self.loc.inode.readdir()
        out = bytearray()
        while self.pos < len(self.dirents):
            name, ino, dtype = self.dirents[self.pos]
            reclen = (19 + len(name) + 1 + 7) & ~7
            if len(out) + reclen > size:
                if not out:
                    raise Errno(errno.EINVAL)
                break
            out += struct.pack("<QqHB", ino, self.pos + 1, reclen, dtype)
            out += name + b"\0" * (reclen - 19 - len(name))
            self.pos += 1
        return bytes(out)
