"""The page cache: guest file contents as host files that userspace can mmap.

One host file per inode version (KEY = dev-ino-ctime-size) in
RUN_DIR/pagecache, so that ``MAP_PRIVATE`` maps of executables share the
host's page cache across execs (DESIGN §3).

What it costs is bounded by what is mapped, not by file sizes: a version's
file is made with the inode's full size (a hole) and only the chunks of
ranges someone maps are filled, their zero pages left as holes, one chunk
per loop turn.  Versions go as soon as they are not needed: a newer version
of an inode unlinks the older ones, and the least recently used versions are
unlinked while the directory's allocated bytes are over the guest's
``pagecache_limit``.  Unlinking never hurts a guest: the host keeps a mapped
file's pages after its last name is gone.

One window is left open: a path handed out can be unlinked (by a newer
version, or by eviction) before userspace has opened it; that map then
fails with ENOENT.  It needs a concurrent write and map of one file, or maps
in flight that alone fill the limit."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from services.kernel.errors import Errno
from services.kernel.vfs import Location

log = logging.getLogger("kernel")

PAGE = 4096
CHUNK = 1 << 20                 # filled at a time, one per turn of the loop
ZERO = bytes(CHUNK)


@dataclass(eq=False)
class Version:
    """One inode version's host file and how far it is filled."""
    key: str
    ident: tuple[int, int]                      # (dev, ino)
    filled: set[int] = field(default_factory=set)                      # chunk numbers
    filling: dict[int, asyncio.Future] = field(default_factory=dict)   # chunk -> its fill
    allocated: int = 0                          # st_blocks * 512 of its file
    busy: int = 0                               # host_path calls at work on it: not evicted
    gone: bool = False                          # unlinked


class PageCache:
    def __init__(self, run_dir: Path, limit: int = 1 << 30):
        self.dir = Path(run_dir) / "pagecache"
        self.dir.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o711)   # guest processes (another uid) open files they are named
        for stale in self.dir.iterdir():       # an earlier kernel's, filled who knows how far
            stale.unlink()
        self.limit = limit
        self.versions: OrderedDict[str, Version] = OrderedDict()   # least recently used first
        self.current: dict[tuple[int, int], Version] = {}
        self.allocated = 0

    async def host_path(self, loc: Location, offset: int = 0, length: int | None = None) -> str:
        """The host file of loc's present contents, with at least
        [offset, offset + length) filled (None: to the end of the file)."""
        inode = loc.inode
        key = f"{loc.mount.dev:x}-{inode.ino}-{inode.ctime}.{inode.ctime_ns}-{inode.size}"
        v = self.versions.get(key) or self._create(key, (loc.mount.dev, inode.ino), inode.size)
        self.versions.move_to_end(key)
        end = inode.size if length is None else min(inode.size, offset + length)
        fd = -1
        v.busy += 1
        try:
            for chunk in range(offset // CHUNK, -(-end // CHUNK)):
                while chunk not in v.filled and not v.gone:
                    if chunk in v.filling:              # another call fills it: wait for that
                        await asyncio.wait([v.filling[chunk]])
                        continue
                    if fd < 0:
                        fd = os.open(self.dir / key, os.O_WRONLY | os.O_CLOEXEC)
                    await self._fill(v, inode, fd, chunk)
        finally:
            v.busy -= 1
            if fd >= 0:
                os.close(fd)
        # Relative to the run directory: userspace opens it from the guest
        # process's working directory, its jail's root (no host path in guest memory).
        return f"{self.dir.name}/{key}"

    def _create(self, key: str, ident: tuple[int, int], size: int) -> Version:
        """A new version's file, all hole; the inode's older version goes."""
        old = self.current.get(ident)
        if old is not None:
            self._drop(old)
        path = self.dir / key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)   # the guest uid reads; the kernel refills without DAC_OVERRIDE
            os.ftruncate(fd, size)
        except OSError as exc:                  # EFBIG: bigger than the host allows
            path.unlink()
            raise Errno(exc.errno or errno.EIO) from None
        finally:
            os.close(fd)
        v = self.versions[key] = self.current[ident] = Version(key, ident)
        return v

    async def _fill(self, v: Version, inode, fd: int, chunk: int) -> None:
        """Copy one chunk into v's file, only its pages that are not all zero;
        the other calls that need it wait for this one."""
        done = v.filling[chunk] = asyncio.get_running_loop().create_future()
        try:
            data = await inode.read(chunk * CHUNK, CHUNK)
            if data != ZERO[:len(data)]:
                try:
                    for lo, hi in _data_runs(data):
                        os.pwrite(fd, data[lo:hi], chunk * CHUNK + lo)
                    allocated = os.fstat(fd).st_blocks * 512
                except OSError as exc:          # the host's disk is full, say
                    raise Errno(exc.errno or errno.EIO) from None
                self._account(v, allocated)
            v.filled.add(chunk)
            await asyncio.sleep(0)              # one chunk per turn: other calls go on
        finally:
            del v.filling[chunk]
            done.set_result(None)

    def _account(self, v: Version, allocated: int) -> None:
        """v's file now takes allocated bytes: evict least recently used
        versions while over the limit; v alone over it is ENOMEM."""
        if v.gone:
            return
        self.allocated += allocated - v.allocated
        v.allocated = allocated
        for other in list(self.versions.values()):
            if self.allocated <= self.limit:
                return
            if other is not v and not other.busy:
                self._drop(other)
        if v.allocated > self.limit:
            log.warning("page cache: %s needs more than pagecache_limit (%d bytes): ENOMEM",
                        v.key, self.limit)
            self._drop(v)
            raise Errno(errno.ENOMEM)

    def _drop(self, v: Version) -> None:
        """Unlink v's file; maps of it keep their pages."""
        if v.gone:
            return
        v.gone = True
        del self.versions[v.key]
        if self.current.get(v.ident) is v:
            del self.current[v.ident]
        self.allocated -= v.allocated
        (self.dir / v.key).unlink()


def _data_runs(data: bytes):
    """The [lo, hi) runs of data's pages that are not all zero."""
    start = None
    for pos in range(0, len(data), PAGE):
        zero = data[pos:pos + PAGE] == ZERO[:min(PAGE, len(data) - pos)]
        if zero and start is not None:
            yield start, pos
            start = None
        elif not zero and start is None:
            start = pos
    if start is not None:
        yield start, len(data)
