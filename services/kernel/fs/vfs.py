"""The VFS: mounts, path lookup, open files, and the stat a guest sees.

In a nutshell: a ``Location`` is an inode plus the canonical guest path that
reached it from the VFS root (/proc and error messages need paths, and
there are no hard-linked directories); ``current_path`` finds a directory's
path as it is now, for getcwd after an ancestor was renamed.  ``lookup``
walks a path component by component from a directory, or from the caller's
root (its chroot: absolute paths and absolute symlink targets start there,
and ``..`` stays there, as Linux's nameidata root), following symlinks as
Linux does (at most 40).  ``seen_from`` is a path as a task under another
root sees it.  An
``OpenFile`` is Linux's ``struct file``: flags and a position shared by every
fd that refers to it.

Mounts: each ``Mount`` is a filesystem (or, for a bind mount, a directory of
one) attached on a directory of its parent mount.  Lookup steps onto the top
mount covering a directory, and ``..`` at a mount's root steps back to its
mount point first, as Linux's follow_mount / follow_dotdot do.

The inode interface every filesystem implements (all methods async):

- attributes ``ino mode uid gid size nlink blocks rdev`` and ``atime mtime
  ctime`` with ``atime_ns mtime_ns ctime_ns``;
- ``read(offset, length)``, ``iterate(pos)``, ``lookup(name)`` (``..``
  included; None if absent), ``readlink()``.  ``iterate`` is an async
  iterator of lists (batches) of ``(name, ino, d_type, next)`` for the
  entries from position pos on (``.`` and ``..`` included; 0 is the start,
  next the position after the entry; positions are the filesystem's own,
  as Linux's f_pos): a listing that goes on from a position lists no
  entry that stays twice and misses none, whatever came or went meanwhile.
  A directory of any size holds the loop a bounded time: ``iterate`` and
  every other walk over a directory let the loop have a turn every
  ``DIR_STEP`` entries or so, and a change only before it changes anything;
- writing, for filesystems with ``writable = True`` (the VFS answers EROFS
  for the others and for read-only mounts, and checks permissions itself):
  ``create(name, mode, uid, gid, rdev)`` (any non-directory type in mode),
  ``mkdir(name, mode, uid, gid)``, ``symlink(name, target, uid, gid)``,
  ``link(name, inode)``, ``unlink(name)`` (EISDIR for a directory),
  ``rmdir(name)`` (ENOTDIR, ENOTEMPTY), ``rename(name, new_dir, new_name,
  flags)`` (replaces a file or an empty directory; RENAME_NOREPLACE,
  RENAME_EXCHANGE), ``write(offset, data)`` (returns bytes written, short
  when the filesystem fills up), ``truncate(size)``, ``setattr(mode=, uid=,
  gid=, atime=, mtime=)`` (times are ``(sec, nsec)``; ctime becomes now).
  Each re-checks what it changes (EEXIST, ENOENT ...), because another task
  may have run while the VFS looked names up;
- optionally ``hold()``, called for each open file of the inode; it returns
  the function to call when that open file is gone (tmpfs frees an unlinked
  file's pages then).

A filesystem has ``root``, ``statfs()`` (a dict like ext2's) and ``writable``.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import stat as S
import struct
from dataclasses import dataclass
from typing import Any

from services.kernel.core.cred import Credentials, capable, in_group
from services.kernel.core.errors import Errno
from services.kernel.fs.inode import Inode
from services.kernel.mm.filecache import FILE_CACHE, FilePages
from services.kernel.abi.fcntl import (
    MAXSYMLINKS, NAME_MAX, O_ACCMODE, O_APPEND, O_PATH, O_RDWR, O_WRONLY, PATH_MAX, R_OK, W_OK,
    X_OK)
from services.kernel.abi.capability import (
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID)
from services.kernel.abi.arch import PAGE
from services.kernel.abi.mount import MS_RDONLY, MS_RELATIME
from services.kernel.abi.stat import STATX_BASIC_STATS

DIR_STEP = 256      # directory entries looked at between two turns of the loop (~0.3 ms)



UBD_MAJOR = 98   # the block major User-Mode Linux gives its ubd disks
DEFAULT_POLLMASK = 0x145   # POLLIN|POLLOUT|POLLRDNORM|POLLWRNORM: files that never wait



def makedev(major: int, minor: int) -> int:
    return os.makedev(major, minor)


@dataclass(eq=False)
class Mount:
    """A filesystem attached to the tree (compared by identity)."""
    fs: Any                  # a filesystem with .root, .statfs()
    dev: int                 # st_dev of its inodes
    flags: int = MS_RELATIME                # MS_* flags of this mount
    fstype: bytes = b""
    source: bytes = b"none"
    root: Any = None         # the inode at its root: fs.root, or a directory for a bind mount
    point: Location | None = None           # where it is attached; None for the root mount
    root_path: bytes = b"/"  # where root is in its filesystem (a bind mount's source)
    id: int = 0              # its mount id (mountinfo), given by Vfs

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = self.fs.root

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)


@dataclass
class Location:
    mount: Mount
    inode: Any
    path: bytes              # canonical absolute guest path
    parent: Any = None       # the directory inode it was found in (fs/fsnotify.py tells it of events)

    def child(self, name: bytes, inode: Any) -> Location:
        base = self.path if self.path != b"/" else b""
        return Location(self.mount, inode, base + b"/" + name, self.inode)


class Vfs:
    def __init__(self, root: Mount):
        self.root_mount = root
        self.root = Location(root, root.root, b"/")
        self.mounts: list[Mount] = [root]
        root.id = 1
        self.mount_ids = itertools.count(2)
        self.covers: dict[tuple[Mount, Any], Mount] = {}   # (mount, its directory) -> mount on it
        self.tmpfs_pages: Any = None     # what every tmpfs draws on (mount.py: PageBudget)
        self.devtmpfs: Any = None        # the one devtmpfs, once mounted (mount.py)
        self.shm: Mount | None = None    # memfds' tmpfs, mounted nowhere (Linux's shm_mnt)

    # --- the mount table ----------------------------------------------------------
    def attach(self, m: Mount, at: Location) -> None:
        """Mount m on the directory at, on top of whatever is mounted there."""
        m.point = at
        m.id = next(self.mount_ids)
        self.covers[(at.mount, at.inode)] = m
        self.mounts.append(m)

    def detach(self, m: Mount) -> None:
        del self.covers[(m.point.mount, m.point.inode)]
        self.mounts.remove(m)

    def submounts(self, m: Mount) -> list[Mount]:
        return [c for c in self.mounts if c.point is not None and c.point.mount is m]

    def is_mountpoint(self, dir_loc: Location, inode: Any) -> bool:
        return (dir_loc.mount, inode) in self.covers

    def anon_dev(self) -> int:
        """A free anonymous device number 0:N, N from 1, for a filesystem with no disk."""
        mounts = self.mounts + [self.shm] if self.shm is not None else self.mounts
        used = {os.minor(m.dev) for m in mounts if os.major(m.dev) == 0}
        return makedev(0, next(n for n in itertools.count(1) if n not in used))

    def step_in(self, loc: Location) -> Location:
        """The root of the top mount on loc, or loc itself."""
        while (m := self.covers.get((loc.mount, loc.inode))) is not None:
            loc = Location(m, m.root, loc.path)
        return loc

    # --- path lookup ------------------------------------------------------------------
    async def lookup(self, start: Location, path: bytes, cred: Credentials, root: Location, *,
                     follow: bool = True, _depth: list[int] | None = None) -> Location:
        """Resolve path from start, or from root for an absolute path; ``..``
        never climbs above root."""
        if not path:
            raise Errno(errno.ENOENT)
        if len(path) >= PATH_MAX:
            raise Errno(errno.ENAMETOOLONG)
        links = _depth if _depth is not None else [0]
        here = root if path.startswith(b"/") else start
        parts = [p for p in path.split(b"/") if p and p != b"."]
        trailing_slash = path.endswith(b"/")
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if not S.S_ISDIR(here.inode.mode):
                raise Errno(errno.ENOTDIR)
            if not permitted(here.inode, cred, X_OK):
                raise Errno(errno.EACCES)
            if name == b"..":
                here = await self.parent(here, root)
                continue
            if len(name) > NAME_MAX:
                raise Errno(errno.ENAMETOOLONG)
            inode = await here.inode.lookup(name)
            if inode is None:
                raise Errno(errno.ENOENT)
            if S.S_ISLNK(inode.mode) and (not last or follow or trailing_slash):
                here = await self.follow_link(here, inode, cred, root, links)
                continue
            here = self.step_in(here.child(name, inode))
        if trailing_slash and not S.S_ISDIR(here.inode.mode):
            raise Errno(errno.ENOTDIR)
        return here

    async def follow_link(self, dir_loc: Location, link: Any, cred: Credentials, root: Location,
                          links: list[int]) -> Location:
        """Where the symlink link in dir_loc leads (ELOOP past 40 links in one walk)."""
        links[0] += 1
        if links[0] > MAXSYMLINKS:
            raise Errno(errno.ELOOP)
        return await self.lookup(dir_loc, await link.readlink(), cred, root, follow=True,
                                 _depth=links)

    async def lookup_parent(self, start: Location, path: bytes, cred: Credentials,
                            root: Location, *,
                            _depth: list[int] | None = None) -> tuple[Location, bytes]:
        """The directory that holds (or would hold) path's last component, and
        that name: "/" for the root, and "." or ".." as written, for the caller
        to refuse as Linux does for its call."""
        if not path:
            raise Errno(errno.ENOENT)
        if len(path) >= PATH_MAX:
            raise Errno(errno.ENAMETOOLONG)
        head, sep, name = path.rstrip(b"/").rpartition(b"/")
        if sep:
            dir_loc = await self.lookup(start, head or b"/", cred, root, _depth=_depth)
        else:
            dir_loc = root if path.startswith(b"/") else start
        if not S.S_ISDIR(dir_loc.inode.mode):
            raise Errno(errno.ENOTDIR)
        if not permitted(dir_loc.inode, cred, X_OK):
            raise Errno(errno.EACCES)
        if len(name) > NAME_MAX:
            raise Errno(errno.ENAMETOOLONG)
        return dir_loc, name or b"/"

    async def parent(self, loc: Location, root: Location) -> Location:
        """``..`` (Linux's follow_dotdot): root stays where it is; from a
        mount's root, down to its mount point first (root may be met
        there too), then up."""
        while not same_place(loc, root) and loc.inode is loc.mount.root \
                and loc.mount.point is not None:
            loc = loc.mount.point
        if same_place(loc, root) or loc.inode is loc.mount.root:
            return loc
        inode = await loc.inode.lookup(b"..")
        return self.step_in(Location(loc.mount, inode, loc.path.rsplit(b"/", 1)[0] or b"/"))

    async def current_path(self, loc: Location, root: Location) -> tuple[bytes, bool] | None:
        """loc's path as it is now (Linux's prepend_path): each name found
        again in its parent, up to root, so that a rename of an ancestor
        shows (the path a Location was reached by is not updated); and
        whether root was met on the way (if not, loc is outside it and the
        path is from the VFS root).  None if the directory has been removed."""
        names: list[bytes] = []
        while True:
            while not same_place(loc, root) and loc.inode is loc.mount.root \
                    and loc.mount.point is not None:
                loc = loc.mount.point
            at_root = same_place(loc, root)
            if at_root or loc.inode is loc.mount.root:
                return b"/" + b"/".join(reversed(names)), at_root
            if not loc.inode.nlink:
                return None
            parent = await loc.inode.lookup(b"..")
            name = await name_of(parent, loc.inode.ino)
            if name is None:
                return None
            names.append(name)
            loc = Location(loc.mount, parent, b"")

    async def is_ancestor(self, dir_loc: Location, inode: Any) -> bool:
        """Whether directory inode is dir_loc or one of its ancestors in its mount
        (rename must not move a directory under itself)."""
        here = dir_loc.inode
        while True:
            if here is inode:
                return True
            if here is dir_loc.mount.root:
                return False
            up = await here.lookup(b"..")
            if up is here:
                return False
            here = up


def same_place(a: Location, b: Location) -> bool:
    """Whether two locations are one directory of one mount (Linux's
    path_equal); by inode number, as synthetic filesystems make their
    inodes anew at each lookup."""
    return a.mount is b.mount and a.inode.ino == b.inode.ino


def seen_from(path: bytes, root: Location) -> bytes | None:
    """A canonical path (Location.path) as a task whose root is root sees
    it, or None if it is outside that root: what /proc's links and mount
    tables show, from the paths the locations were reached by."""
    if root.path == b"/" or path == root.path:
        return path if root.path == b"/" else b"/"
    if path.startswith(root.path + b"/"):
        return path[len(root.path):]
    return None


async def name_of(dir_inode: Any, ino: int) -> bytes | None:
    """A name in the directory for inode number ino, or None."""
    async with contextlib.aclosing(dir_inode.iterate(0)) as batches:
        async for batch in batches:
            for name, entry_ino, _, _ in batch:
                if entry_ino == ino and name not in (b".", b".."):
                    return name
    return None


def check_writable(loc: Location) -> None:
    if loc.mount.readonly:
        raise Errno(errno.EROFS)


def may_create(dir_loc: Location, cred: Credentials) -> None:
    """A new name in dir_loc needs a writable mount, and write and search on it."""
    check_writable(dir_loc)
    if not permitted(dir_loc.inode, cred, W_OK | X_OK):
        raise Errno(errno.EACCES)


def may_delete(dir_loc: Location, victim: Any, cred: Credentials, isdir: bool) -> None:
    """Removing a name also needs, in a sticky directory (/tmp), to own the file
    or the directory; and a directory where the call wants one (rmdir), a
    non-directory where it does not (unlink), in Linux's order of checks."""
    may_create(dir_loc, cred)
    if (dir_loc.inode.mode & S.S_ISVTX and cred.fsuid not in (victim.uid, dir_loc.inode.uid)
            and not capable(cred, CAP_FOWNER)):
        raise Errno(errno.EPERM)
    if isdir and not S.S_ISDIR(victim.mode):
        raise Errno(errno.ENOTDIR)
    if not isdir and S.S_ISDIR(victim.mode):
        raise Errno(errno.EISDIR)


def new_owner(dir_inode: Any, cred: Credentials, mode: int) -> tuple[int, int, int]:
    """Mode, uid and gid of a new inode: a set-group-ID directory passes on its
    group (and, to directories, the bit itself)."""
    gid = cred.fsgid
    if dir_inode.mode & S.S_ISGID:
        gid = dir_inode.gid
        if S.S_ISDIR(mode):
            mode |= S.S_ISGID
    if (not S.S_ISDIR(mode) and mode & S.S_ISGID and mode & S.S_IXGRP
            and not in_group(cred, gid) and not capable(cred, CAP_FSETID)):
        mode &= ~S.S_ISGID
    return mode, cred.fsuid, gid


def sgid_to_drop(inode: Any, cred: Credentials) -> int:
    """setattr_should_drop_sgid: a set-group-ID bit that is real (group
    execute), or held by a file of a group the caller is not in (without
    CAP_FSETID), goes when its file is given away or written."""
    mode = inode.mode
    if mode & S.S_ISGID and (mode & S.S_IXGRP or not (in_group(cred, inode.gid)
                                                     or capable(cred, CAP_FSETID))):
        return S.S_ISGID
    return 0


async def remove_privs(inode: Any, cred: Credentials) -> None:
    """file_remove_privs: a write to a regular file, or a truncate, by one
    without CAP_FSETID drops its set-user-ID bit and the set-group-ID bit
    sgid_to_drop names, so that nobody can put their own code in a
    set-ID program."""
    if not S.S_ISREG(inode.mode) or not inode.mode & (S.S_ISUID | S.S_ISGID) \
            or capable(cred, CAP_FSETID):
        return
    kill = inode.mode & S.S_ISUID | sgid_to_drop(inode, cred)
    if kill:
        await inode.setattr(mode=inode.mode & ~kill & 0o7777)


def d_type(mode: int) -> int:
    """A dirent's d_type: Linux's DT_* are the file type bits shifted down."""
    return S.S_IFMT(mode) >> 12


def set_attrs(inode: Any, mode: int | None, uid: int | None, gid: int | None,
              atime: tuple[int, int] | None, mtime: tuple[int, int] | None) -> None:
    """setattr's changes, as every filesystem applies them (None: unchanged);
    the caller updates ctime and writes the inode."""
    if mode is not None:
        inode.mode = S.S_IFMT(inode.mode) | mode & 0o7777
    if uid is not None:
        inode.uid = uid
    if gid is not None:
        inode.gid = gid
    if atime is not None:
        inode.atime, inode.atime_ns = atime
    if mtime is not None:
        inode.mtime, inode.mtime_ns = mtime


def permitted(inode: Any, cred: Credentials, mask: int) -> bool:
    """Linux's generic_permission: the mode bits for the fs uid's class
    (owner, group, other); failing them, CAP_DAC_READ_SEARCH reads files and
    reads and searches directories, CAP_DAC_OVERRIDE does all but execute a
    file with no execute bit at all."""
    mode = inode.mode
    if cred.fsuid == inode.uid:
        bits = mode >> 6
    elif in_group(cred, inode.gid):
        bits = mode >> 3
    else:
        bits = mode
    if (bits & mask & 7) == mask:
        return True
    if (mask == R_OK or S.S_ISDIR(mode) and not mask & W_OK) \
            and capable(cred, CAP_DAC_READ_SEARCH):
        return True
    return (S.S_ISDIR(mode) or not mask & X_OK or bool(mode & 0o111)) \
        and capable(cred, CAP_DAC_OVERRIDE)


STAT = struct.Struct("<QQQIIIiQqqqqQqQqQ24x")   # times signed: before 1970 is negative
_STATX_TS = struct.Struct("<qI4x")
STATX_HEAD = struct.Struct("<IIQIIIHxxQQQQ")


def pack_stat(inode: Any, dev: int) -> bytes:
    """struct stat for x86_64."""
    return STAT.pack(dev, inode.ino, inode.nlink, inode.mode, inode.uid, inode.gid, 0,
                      inode.rdev, inode.size, 4096, inode.blocks,
                      inode.atime, inode.atime_ns, inode.mtime, inode.mtime_ns,
                      inode.ctime, inode.ctime_ns)


def pack_statx(inode: Any, dev: int) -> bytes:
    """struct statx (256 bytes) with the basic stats filled in."""
    head = STATX_HEAD.pack(STATX_BASIC_STATS, 4096, 0, inode.nlink, inode.uid, inode.gid,
                            inode.mode, inode.ino, inode.size, inode.blocks, 0)
    times = (_STATX_TS.pack(inode.atime, inode.atime_ns) + _STATX_TS.pack(0, 0)
             + _STATX_TS.pack(inode.ctime, inode.ctime_ns)
             + _STATX_TS.pack(inode.mtime, inode.mtime_ns))
    devs = struct.pack("<IIII", os.major(inode.rdev), os.minor(inode.rdev),
                       os.major(dev), os.minor(dev))
    return (head + times + devs).ljust(256, b"\0")


class OpenFile:
    """An open file description (Linux's struct file)."""

    link_name: bytes | None = None   # what /proc/PID/fd/N says, for files with no path
    owner: Any = None                # who its signals reach (sched/sigio.py's Owner), once named
    # fasync(fd, on): files that signal their readiness have one (fs/fasync.py)
    fasync: Any = None

    def __init__(self, loc: Location | None, flags: int):
        self.loc = loc
        self.flags = flags
        self.pos = 0
        self.refs = 0        # fds referring to it (services/kernel/fs/files.py)

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (0, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def inode(self) -> Any:
        """The inode the file is of (the f*xattr calls ask it): its
        location's, or, for a file with none, one of its own."""
        return self.loc.inode

    def stat(self) -> bytes:
        return pack_stat(self.loc.inode, self.loc.mount.dev)

    def statx(self) -> bytes:
        return pack_statx(self.loc.inode, self.loc.mount.dev)

    async def read(self, count: int, offset: int | None = None) -> bytes:
        raise Errno(errno.EINVAL)

    async def write(self, data: bytes, offset: int | None = None) -> int:
        raise Errno(errno.EINVAL)

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        """write of the total bytes read(skip, n) gives (guest memory), for a
        file with no way of its own (a device, an eventfd): PIECE at a time
        with the loop let go in between, so that a blocked writer holds at
        most a piece; a short or failed piece, or a signal, after some bytes
        ends it with their count."""
        done = 0
        while True:
            want = min(PIECE, total - done)
            try:
                n = await self.write(read(done, want), None if offset is None else offset + done)
                done += n
                if done == total or n < want:
                    return done
                await asyncio.sleep(0)
            except (Errno, asyncio.CancelledError):
                if not done:
                    raise
                return done

    def seekable_size(self) -> int:
        raise Errno(errno.ESPIPE)

    async def getdents(self, size: int) -> bytes:
        raise Errno(errno.ENOTDIR)

    def ioctl(self, task: Any, request: int, arg: int) -> int:
        raise Errno(errno.ENOTTY)

    def fsync(self) -> int:
        """fsync/fdatasync: files with nothing to flush (ttys, pipes) refuse it."""
        raise Errno(errno.EINVAL)

    def release(self) -> None:
        """The last fd referring to this file is closed."""

    def poll(self, table: Any = None) -> int:
        """Readiness bits (POLLIN ...); files whose readiness changes override this
        and add their wait queues to table (services/kernel/fs/poll.py)."""
        return DEFAULT_POLLMASK


WRITE_CHUNK = 16 << 20        # the most of one write held in the kernel at once
PIECE = 64 << 10              # what a device or an eventfd takes of a write at a time
_DIRENT64 = struct.Struct("<QqHB")      # linux_dirent64 up to its name
_PADS = [bytes(n) for n in range(9)]    # a name's NUL and the padding to 8 bytes


def data_of(inode: Inode):
    """Where the inode's data calls go (read, write, truncate, allocate,
    fsync): its live host file's while a process may map it shared
    (services/kernel/fs/pagecache.py), which keeps the maps coherent."""
    return inode.live or inode


class InodeFile(OpenFile):
    """A regular file or directory of a filesystem."""

    def __init__(self, loc: Location, flags: int):
        super().__init__(loc, flags)
        # getdents calls on one open directory go one at a time, each from where the
        # last stopped (Linux's f_pos_lock)
        self.listing = asyncio.Lock() if S.S_ISDIR(loc.inode.mode) else None
        self.unhold = loc.inode.hold()
        self.wb_err = loc.mount.fs.wb_err.sample()     # Linux's f_wb_err

    def release(self) -> None:
        if self.unhold is not None:
            self.unhold()
            self.unhold = None

    async def read(self, count: int, offset: int | None = None) -> bytes:
        inode = self.loc.inode
        if S.S_ISDIR(inode.mode):
            raise Errno(errno.EISDIR)
        at = self.pos if offset is None else offset
        data = await data_of(inode).read(at, count)
        if offset is None:
            self.pos += len(data)
        return data

    @property
    def cached_reads(self) -> bool:
        """Whether read_into serves it: a regular file whose filesystem keeps
        its pages (mm/filecache.py), while no live host file stands for it."""
        inode = self.loc.inode
        return inode.cache_reads and inode.live is None and S.S_ISREG(inode.mode)

    async def read_into(self, mem, addr: int, count: int, offset: int | None = None) -> int:
        """read of a file with cached_reads, straight into guest memory at
        addr: from the file cache's arena with no Python bytes made when
        every page is there, else the pages read, kept, then copied.  A
        buffer that stops being writable part way gets what fits (EFAULT if
        nothing did), and the position moves by that, as Linux's read."""
        inode = self.loc.inode
        pages = inode.pages
        if pages is None:
            pages = inode.pages = FilePages()
        at = self.pos if offset is None else offset
        end = min(inode.size, at + count)
        if at >= end:
            return 0
        pieces = FILE_CACHE.pieces(pages, at, end - at)
        if pieces is None:
            first = at - at % PAGE
            span = -(-end // PAGE) * PAGE - first
            generation = pages.generation
            data = await inode.read(first, span)
            if span <= FILE_CACHE.count * PAGE // 4:     # larger would push out the rest
                FILE_CACHE.fill(pages, first, data, generation)
            end = min(inode.size, at + count, first + len(data))
            if at >= end:
                return 0
            pieces = FILE_CACHE.pieces(pages, at, end - at)
            if pieces is None:             # not kept: changed meanwhile, or too large
                n = mem.write_some(addr, data[at - first:end - first])
                if offset is None:
                    self.pos = at + n
                return n
        n = mem.write_pieces(addr, pieces, end - at)
        if offset is None:
            self.pos = at + n
        return n

    async def write(self, data: bytes, offset: int | None = None) -> int:
        """At the position, at offset (pwrite), or at the end with O_APPEND
        (pwrite too, as on Linux, leaving the position alone)."""
        return await self.write_from(
            lambda skip, n: data if n == len(data) else data[skip:skip + n], len(data), offset)

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        """write of the total bytes read(skip, n) gives (guest memory, say),
        WRITE_CHUNK at a time under the one write lock: a guest's 2 GiB
        write never sits in the kernel's memory whole, as Linux copies it a
        page at a time.  A chunk that fails after others were written ends
        the call with their count, as on Linux."""
        inode = self.loc.inode
        if not total:
            return 0
        lock = inode.write_lock
        if lock is None:
            lock = inode.write_lock = asyncio.Lock()
        async with lock:
            if self.flags & O_APPEND:
                at = inode.size
            else:
                at = self.pos if offset is None else offset
            done = 0
            while done < total:
                want = min(WRITE_CHUNK, total - done)
                try:
                    n = await data_of(inode).write(at + done, read(done, want))
                except Errno:
                    if not done:
                        raise
                    break
                done += n
                if n < want:
                    break
            if offset is None:
                self.pos = at + done
        return done

    def seekable_size(self) -> int:
        return self.loc.inode.size

    async def fsync(self) -> int:
        """The inode's data and metadata to the disk (tmpfs has nothing to
        write); a write-back error since this file last heard of one fails
        it too, even one another caller's sync met first (fs/errseq.py)."""
        try:
            await data_of(self.loc.inode).fsync()
        finally:
            code, self.wb_err = self.loc.mount.fs.wb_err.report(self.wb_err)
        if code:
            raise Errno(code)
        return 0

    async def getdents(self, size: int) -> bytes:
        """linux_dirent64 records from the current position (the filesystem's:
        see iterate), each with the position after it as d_off.  A signal
        ends it with the entries it has, as Linux's filldir stops (or at once,
        with none: the position is where it was)."""
        if self.listing is None:
            raise Errno(errno.ENOTDIR)
        out = bytearray()
        async with self.listing:
            batches = self.loc.inode.iterate(self.pos)
            try:
                async for batch in batches:
                    for name, ino, dtype, after in batch:
                        reclen = (19 + len(name) + 1 + 7) & ~7
                        if len(out) + reclen > size:
                            if not out:
                                raise Errno(errno.EINVAL)
                            return bytes(out)
                        out += _DIRENT64.pack(ino, after, reclen, dtype)
                        out += name
                        out += _PADS[reclen - 19 - len(name)]
                        self.pos = after
            except asyncio.CancelledError:
                if not out:
                    raise
            finally:
                await batches.aclose()      # now, not when collected (cheaper than aclosing)
        return bytes(out)

