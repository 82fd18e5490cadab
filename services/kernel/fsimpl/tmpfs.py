"""tmpfs: a filesystem in the kernel's memory, as Linux's shmem behaves.

In a nutshell: file data lives in 4 KiB pages held in a dict by page index,
so a hole costs nothing and a write at 4 GiB allocates one page.  The
filesystem is bounded by a size in pages (ENOSPC past it, a short write if
some pages fit) and a count of inodes, where each extra hard link counts too
(Linux 6.x's "ispace": nr_inodes times 1 KiB, which extended attributes
draw on as well, 40 bytes and their name and value each).  Attributes
(user., trusted., security.; ``fs/xattr.py`` checks who may) are also held
to ``XATTRS_MAX`` and ``XATTR_BYTES_MAX`` per inode, which Linux does not
bound: they are the kernel's memory.  Directories report 20 bytes per entry (Linux's
BOGO_DIRENT_SIZE), symlinks of 128 bytes and more take a page.

Every tmpfs of a guest also draws on one ``PageBudget`` (the guest config's
``tmpfs_limit``): its pages are the kernel's memory, and a guest may mount
as many tmpfs of any size as it likes.  The budget also knows the guest's
memory: a tmpfs mounted without size= or nr_inodes= gets half of it in
pages and as many inodes, as Linux's shmem_default_max_blocks/inodes.

A directory's listing goes by positions that stay with their names
(``Positions``), as Linux's since 6.6, and has a turn of the loop every
``DIR_STEP`` entries.

An unlinked file keeps its pages while open files hold it (``hold``); the
last release frees them.  Every method but ``iterate`` finishes without
awaiting, so each is atomic with respect to other tasks.
"""
from __future__ import annotations

import asyncio
import bisect
import errno
import logging
import stat as S
import time

from common.config import parse_size
from services.kernel.abi.arch import PAGE
from services.kernel.abi.fcntl import RENAME_EXCHANGE, RENAME_NOREPLACE
from services.kernel.core.errors import Errno
from services.kernel.fs.inode import FileSystem
from services.kernel.fs.inode import Inode as BaseInode
from services.kernel.fs.vfs import DIR_STEP, d_type, set_attrs
from services.kernel.fs.xattr import check_flags, stored_prefix

log = logging.getLogger("kernel")

DEFAULT_MEM = 128 << 20        # the memory of a tmpfs's machine when no budget tells
TMPFS_MAGIC = 0x01021994
BOGO_DIRENT_SIZE = 20
SHORT_SYMLINK_LEN = 128        # targets shorter than this live in the inode
MAX_FILE_SIZE = (1 << 63) - 1
RELATIME_SPAN = 24 * 3600      # relatime refreshes an atime older than a day
DT_DIR = 4
PIECE_NAMES = 256              # names in one piece of a directory's Positions
BOGO_INODE_SIZE = 1024         # the ispace an inode or an extra link takes (Linux's)
XATTR_OVERHEAD = 40            # ispace an attribute takes besides its name and value
XATTRS_MAX = 1024              # attributes an inode holds
XATTR_BYTES_MAX = 1 << 20      # ispace an inode's attributes take


def _now() -> tuple[int, int]:
    return divmod(time.time_ns(), 1_000_000_000)


def _xattr_space(item: tuple[bytes, bytes]) -> int:
    """The ispace an attribute (name, value) takes: Linux's simple_xattr_space."""
    return XATTR_OVERHEAD + len(item[0]) + len(item[1])


def _size(text: str) -> int:
    """A size option: a number with an optional k, m or g."""
    try:
        return parse_size(text)
    except ValueError:
        raise Errno(errno.EINVAL)


class Positions:
    """A directory's names in the order they came, each at the position it
    got then, as Linux's simple_offset gives them ("." is 0, ".." 1, the
    names 2, 3 ... never reused): a listing goes on from the position after
    the last name it gave, so whatever comes and goes meanwhile, no name
    that stays is listed twice or missed.  Kept in pieces of at most PIECE_NAMES
    names, in order: a new name goes at the end, a removed one is found by
    bisection and taken out of its piece, and a listing finds where to go on
    by bisection too; nothing here walks the whole directory."""

    def __init__(self) -> None:
        self.next = 2
        self.of: dict[bytes, int] = {}          # name -> its position
        self.starts: list[int] = []             # each piece's first position
        self.pieces: list[tuple[list[int], list[bytes]]] = []   # positions and names

    def add(self, name: bytes) -> None:
        at = self.of[name] = self.next
        self.next += 1
        if not self.pieces or len(self.pieces[-1][0]) >= PIECE_NAMES:
            self.starts.append(at)
            self.pieces.append(([], []))
        positions, names = self.pieces[-1]
        positions.append(at)
        names.append(name)

    def remove(self, name: bytes) -> None:
        at = self.of.pop(name)
        p = bisect.bisect_right(self.starts, at) - 1
        positions, names = self.pieces[p]
        i = bisect.bisect_left(positions, at)
        del positions[i], names[i]
        if not positions:
            del self.starts[p], self.pieces[p]
        elif i == 0:
            self.starts[p] = positions[0]

    def after(self, at: int, n: int) -> tuple[list[int], list[bytes]]:
        """At most n names, the first at position at or after it, and their
        positions."""
        pieces = self.pieces
        p = max(bisect.bisect_right(self.starts, at) - 1, 0)
        if p >= len(pieces):
            return [], []
        positions, names = pieces[p]
        i = bisect.bisect_left(positions, at)
        positions, names = positions[i:i + n], names[i:i + n]
        p += 1
        while len(positions) < n and p < len(pieces):
            more_positions, more_names = pieces[p]
            k = n - len(positions)
            positions += more_positions[:k]
            names += more_names[:k]
            p += 1
        return positions, names


class PageBudget:
    """The pages all of one guest's tmpfs mounts may hold together, and the
    guest's memory, of which a tmpfs takes half unless told."""

    def __init__(self, limit: int, mem: int = DEFAULT_MEM):
        self.max_pages = limit // PAGE
        self.pages = 0
        self.warned = False
        self.default_pages = mem // 2 // PAGE


class Tmpfs(FileSystem):
    writable = True

    def __init__(self, size: int | None = None, nr_inodes: int | None = None,
                 mode: int = 0o1777, uid: int = 0, gid: int = 0,
                 budget: PageBudget | None = None):
        self.budget = budget
        self.default_pages = budget.default_pages if budget else DEFAULT_MEM // 2 // PAGE
        self.max_pages = -(-size // PAGE) if size is not None else self.default_pages
        self.max_inodes = nr_inodes if nr_inodes is not None else self.default_pages
        self.mode, self.uid, self.gid = mode, uid, gid
        self.pages = 0
        self.inodes = 0
        self.xattr_space = 0           # ispace the attributes take (BOGO_INODE_SIZE an inode)
        self.next_ino = 1
        self.root = self.new_inode(S.S_IFDIR | mode, uid, gid, None)

    @classmethod
    def from_options(cls, options: bytes, budget: PageBudget | None = None) -> Tmpfs:
        """mount -o size=N[kmg],nr_inodes=N[kmg],mode=OCTAL,uid=N,gid=N."""
        kw: dict = {"budget": budget}
        for opt in options.decode(errors="replace").split(","):
            key, _, value = opt.partition("=")
            if not opt:
                continue
            if key in ("size", "nr_inodes") and value:
                kw[key] = _size(value)
            elif key == "mode" and value and all(c in "01234567" for c in value):
                kw[key] = int(value, 8) & 0o7777
            elif key in ("uid", "gid") and value.isdigit():
                kw[key] = int(value)
            else:
                raise Errno(errno.EINVAL)
        return cls(**kw)

    def show_options(self) -> bytes:
        """What /proc/mounts adds to the mount's flags: the options that are
        not the defaults, as Linux's shmem_show_options."""
        opts = []
        if self.max_pages != self.default_pages:
            opts.append(b"size=%dk" % (self.max_pages * PAGE >> 10))
        if self.max_inodes != self.default_pages:
            opts.append(b"nr_inodes=%d" % self.max_inodes)
        if self.mode != 0o1777:
            opts.append(b"mode=%o" % self.mode)
        opts += [b"%s=%d" % (k, v) for k, v in ((b"uid", self.uid), (b"gid", self.gid)) if v]
        return b",".join(opts)

    def statfs(self) -> dict:
        return {"bsize": PAGE, "frsize": PAGE, "blocks": self.max_pages,
                "bfree": self.max_pages - self.pages, "bavail": self.max_pages - self.pages,
                "files": self.max_inodes, "ffree": self.free_ispace() // BOGO_INODE_SIZE,
                "namelen": 255, "magic": TMPFS_MAGIC}

    # --- space --------------------------------------------------------------------
    def free_ispace(self) -> int:
        return (self.max_inodes - self.inodes) * BOGO_INODE_SIZE - self.xattr_space

    def take_inode(self) -> None:
        if self.free_ispace() < BOGO_INODE_SIZE:
            raise Errno(errno.ENOSPC)
        self.inodes += 1

    def take_page(self) -> bool:
        if self.pages >= self.max_pages:
            return False
        b = self.budget
        if b is not None:
            if b.pages >= b.max_pages:
                if not b.warned:
                    b.warned = True
                    log.warning("the guest's tmpfs mounts hold tmpfs_limit (%d MiB): ENOSPC",
                                b.max_pages * PAGE >> 20)
                return False
            b.pages += 1
        self.pages += 1
        return True

    def free_pages(self, n: int) -> None:
        self.pages -= n
        if self.budget is not None:
            self.budget.pages -= n

    def new_inode(self, mode: int, uid: int, gid: int, parent: Inode | None,
                  rdev: int = 0) -> Inode:
        self.take_inode()
        inode = Inode(self, self.next_ino, mode, uid, gid, rdev)
        self.next_ino += 1
        inode.parent = parent or inode
        return inode


class Inode(BaseInode):
    def __init__(self, fs: Tmpfs, ino: int, mode: int, uid: int, gid: int, rdev: int):
        self.fs = fs
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.is_dir = S.S_ISDIR(mode)
        self.nlink = 2 if self.is_dir else 1
        self.size = 2 * BOGO_DIRENT_SIZE if self.is_dir else 0
        self.pages: dict[int, bytearray] = {}
        self.entries: dict[bytes, Inode] = {}
        self.positions = Positions() if self.is_dir else None
        self.parent: Inode = self
        self.target = b""
        self.opens = 0
        self.forgotten = False
        self.xattrs: dict[bytes, bytes] = {}
        self.atime, self.atime_ns = self.mtime, self.mtime_ns = self.ctime, self.ctime_ns = _now()

    @property
    def blocks(self) -> int:
        """512-byte units: the pages held (a long symlink's page included)."""
        long_link = S.S_ISLNK(self.mode) and self.size >= SHORT_SYMLINK_LEN
        return (len(self.pages) + long_link) * (PAGE // 512)

    def touch(self, *fields: str) -> None:
        sec, ns = _now()
        for name in fields:
            setattr(self, name, sec)
            setattr(self, name + "_ns", ns)

    def accessed(self) -> None:
        """relatime: refresh atime if it is not after mtime or ctime, or a day old."""
        now = _now()
        at = (self.atime, self.atime_ns)
        if at <= (self.mtime, self.mtime_ns) or at <= (self.ctime, self.ctime_ns) \
                or now[0] - self.atime >= RELATIME_SPAN:
            self.atime, self.atime_ns = now

    # --- open files ---------------------------------------------------------------------
    def hold(self):
        self.opens += 1

        def unhold() -> None:
            self.opens -= 1
            self.forget_if_gone()
        return unhold

    def forget_if_gone(self) -> None:
        """The last name and the last open file are gone: give back the space."""
        if self.nlink == 0 and self.opens == 0 and not self.forgotten:
            self.forgotten = True
            self.drop_pages(0)
            self.fs.inodes -= 1
            self.fs.xattr_space -= sum(map(_xattr_space, self.xattrs.items()))
            self.xattrs = {}

    # --- file data -----------------------------------------------------------------------
    async def read(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        for index in range(offset // PAGE, (end - 1) // PAGE + 1):
            page = self.pages.get(index)
            if page is not None:
                lo, hi = max(offset, index * PAGE), min(end, (index + 1) * PAGE)
                out[lo - offset:hi - offset] = page[lo - index * PAGE:hi - index * PAGE]
        self.accessed()
        return bytes(out)

    async def write(self, offset: int, data: bytes) -> int:
        if offset + len(data) > MAX_FILE_SIZE:
            raise Errno(errno.EFBIG)
        view = memoryview(data)
        pos, end = offset, offset + len(data)
        while pos < end:
            index, start = divmod(pos, PAGE)
            page = self.pages.get(index)
            if page is None:
                if not self.fs.take_page():
                    break
                page = self.pages[index] = bytearray(PAGE)
            n = min(PAGE - start, end - pos)
            page[start:start + n] = view[pos - offset:pos - offset + n]
            pos += n
        if pos == offset:
            raise Errno(errno.ENOSPC)
        self.size = max(self.size, pos)
        self.touch("mtime", "ctime")
        return pos - offset

    def drop_pages(self, size: int) -> None:
        """Free the pages past size and zero the tail of the one it ends in."""
        first = -(-size // PAGE)
        gone = [i for i in self.pages if i >= first]
        for index in gone:
            del self.pages[index]
        self.fs.free_pages(len(gone))
        tail = self.pages.get(size // PAGE)
        if tail is not None:
            tail[size % PAGE:] = bytes(PAGE - size % PAGE)

    async def truncate(self, size: int) -> None:
        if size > MAX_FILE_SIZE:
            raise Errno(errno.EFBIG)
        if size != self.size:
            if size < self.size:
                self.drop_pages(size)
            self.size = size
            self.touch("mtime", "ctime")

    async def setattr(self, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, atime: tuple[int, int] | None = None,
                      mtime: tuple[int, int] | None = None) -> None:
        set_attrs(self, mode, uid, gid, atime, mtime)
        self.touch("ctime")

    async def readlink(self) -> bytes:
        self.accessed()
        return self.target

    # --- extended attributes ----------------------------------------------------------
    async def getxattr(self, name: bytes) -> bytes:
        stored_prefix(name)
        value = self.xattrs.get(name)
        if value is None:
            raise Errno(errno.ENODATA)
        return value

    async def listxattr(self) -> list[bytes]:
        return sorted(self.xattrs)         # Linux 6.6+ keeps them in a tree by name

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        """The new attribute's ispace is taken before the old one's is given
        back, as Linux's shmem_xattr_handler_set does."""
        stored_prefix(name)
        old = self.xattrs.get(name)
        check_flags(old is not None, flags)
        need = _xattr_space((name, value))
        mine = sum(map(_xattr_space, self.xattrs.items()))
        if (need > self.fs.free_ispace()
                or old is None and len(self.xattrs) >= XATTRS_MAX
                or mine + need - (0 if old is None else _xattr_space((name, old)))
                > XATTR_BYTES_MAX):
            raise Errno(errno.ENOSPC)
        self.fs.xattr_space += need - (0 if old is None else _xattr_space((name, old)))
        self.xattrs[name] = bytes(value)
        self.touch("ctime")

    async def removexattr(self, name: bytes) -> None:
        stored_prefix(name)
        old = self.xattrs.pop(name, None)
        if old is None:
            raise Errno(errno.ENODATA)
        self.fs.xattr_space -= _xattr_space((name, old))
        self.touch("ctime")

    # --- directories ------------------------------------------------------------------------
    async def lookup(self, name: bytes) -> Inode | None:
        if name == b".":
            return self
        if name == b"..":
            return self.parent
        return self.entries.get(name)

    async def iterate(self, pos: int):
        """The entries from position pos on (Positions), DIR_STEP at a time
        with a turn of the loop in between."""
        self.accessed()
        dots = None
        if pos < 2:
            dots = [(b".", self.ino, DT_DIR, 1), (b"..", self.parent.ino, DT_DIR, 2)][pos:]
            pos = 2
        while pos < self.positions.next or dots:
            positions, names = self.positions.after(pos, DIR_STEP)
            entries = self.entries
            batch = [(name, inode.ino, d_type(inode.mode), at + 1)
                     for at, name in zip(positions, names)
                     if (inode := entries.get(name)) is not None]
            if dots:
                batch[:0], dots = dots, None
            if batch:
                yield batch
            if len(positions) < DIR_STEP:
                return
            pos = positions[-1] + 1
            await asyncio.sleep(0)

    def _free_name(self, name: bytes) -> None:
        if not self.is_dir or self.nlink == 0:
            raise Errno(errno.ENOENT)      # a directory removed meanwhile
        if name in self.entries:
            raise Errno(errno.EEXIST)

    def _add(self, name: bytes, inode: Inode) -> None:
        self.entries[name] = inode
        self.positions.add(name)
        self.size += BOGO_DIRENT_SIZE
        if inode.is_dir:
            inode.parent = self
            self.nlink += 1
        self.touch("mtime", "ctime")

    def _remove(self, name: bytes) -> Inode:
        inode = self.entries.pop(name)
        self.positions.remove(name)
        self.size -= BOGO_DIRENT_SIZE
        if inode.is_dir:
            self.nlink -= 1
        self.touch("mtime", "ctime")
        return inode

    async def create(self, name: bytes, mode: int, uid: int, gid: int, rdev: int = 0) -> Inode:
        self._free_name(name)
        inode = self.fs.new_inode(mode, uid, gid, self, rdev)
        self._add(name, inode)
        return inode

    async def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        return await self.create(name, S.S_IFDIR | mode & 0o7777, uid, gid)

    async def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        if len(target) >= PAGE:
            raise Errno(errno.ENAMETOOLONG)
        self._free_name(name)
        if len(target) >= SHORT_SYMLINK_LEN and not self.fs.take_page():
            raise Errno(errno.ENOSPC)
        inode = self.fs.new_inode(S.S_IFLNK | 0o777, uid, gid, self)
        inode.target = target
        inode.size = len(target)
        self._add(name, inode)
        return inode

    async def link(self, name: bytes, inode: Inode) -> None:
        self._free_name(name)
        if inode.nlink == 0:
            raise Errno(errno.ENOENT)      # linkat of an fd whose file is unlinked
        self.fs.take_inode()
        inode.nlink += 1
        inode.touch("ctime")
        self._add(name, inode)

    def _unlinked(self, inode: Inode) -> None:
        """One name of inode is gone."""
        inode.touch("ctime")
        if inode.is_dir:
            inode.nlink = 0
        else:
            inode.nlink -= 1
        if inode.nlink > 0:
            self.fs.inodes -= 1            # the extra link's share
        else:
            if S.S_ISLNK(inode.mode) and inode.size >= SHORT_SYMLINK_LEN:
                self.fs.free_pages(1)
            inode.forget_if_gone()

    async def unlink(self, name: bytes) -> None:
        inode = self.entries.get(name)
        if inode is None:
            raise Errno(errno.ENOENT)
        if inode.is_dir:
            raise Errno(errno.EISDIR)
        self._unlinked(self._remove(name))

    async def rmdir(self, name: bytes) -> None:
        inode = self.entries.get(name)
        if inode is None:
            raise Errno(errno.ENOENT)
        if not inode.is_dir:
            raise Errno(errno.ENOTDIR)
        if inode.entries:
            raise Errno(errno.ENOTEMPTY)
        self._unlinked(self._remove(name))

    async def rename(self, name: bytes, new_dir: Inode, new_name: bytes, flags: int = 0) -> None:
        """Move name to new_dir/new_name, replacing what is there (a file by a
        file, an empty directory by a directory), or swap the two."""
        src = self.entries.get(name)
        if src is None or new_dir.nlink == 0:
            raise Errno(errno.ENOENT)
        dst = new_dir.entries.get(new_name)
        if flags & RENAME_EXCHANGE:
            if dst is None:
                raise Errno(errno.ENOENT)
            if src is not dst:                  # each name keeps its position, as on Linux
                self.entries[name], new_dir.entries[new_name] = dst, src
                for moved, old, new in ((src, self, new_dir), (dst, new_dir, self)):
                    if moved.is_dir and old is not new:
                        moved.parent = new
                        old.nlink -= 1
                        new.nlink += 1
                self.touch("mtime", "ctime")
                new_dir.touch("mtime", "ctime")
                src.touch("ctime")
                dst.touch("ctime")
            return
        if dst is not None:
            if flags & RENAME_NOREPLACE:
                raise Errno(errno.EEXIST)
            if dst is src:
                return                      # two names of one inode: Linux does nothing
            if src.is_dir and not dst.is_dir:
                raise Errno(errno.ENOTDIR)
            if dst.is_dir and not src.is_dir:
                raise Errno(errno.EISDIR)
            if dst.entries:
                raise Errno(errno.ENOTEMPTY)
            new_dir._unlinked(new_dir._remove(new_name))
        new_dir._add(new_name, self._remove(name))
        src.touch("ctime")
