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
in flight that alone fill the limit.

What a host file holds is known by its name (``named``), for
/proc/PID/maps: the guest path it was last mapped by (kept up to date by
rename and unlink: ``moved``), the device and inode, for as long as the file
is there and for the last ``DEPARTED`` files gone after it (the host keeps
the maps of an unlinked file).

``MAP_SHARED`` maps are Linux's, coherent with read and write: while anyone
may map an inode shared, it has one live host file (``Live``, in
RUN_DIR/shared, named at random) that every map of the inode, shared or
private, maps, and that the inode's reads, writes and truncates go through
(``inode.live`` stands in for the inode's data methods).  Its filled chunks
are where the inode's data is; what shared writable maps change is written
back to the filesystem at msync, fsync, sync, the end of the last process
that could map it, and the halt."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.kernel.abi.arch import PAGE
from services.kernel.core.errors import Errno
from services.kernel.core.gathering import gather_all
from services.kernel.fs.vfs import Location

log = logging.getLogger("kernel")

CHUNK = 1 << 20                 # filled at a time, one per turn of the loop
FILL_AT_ONCE = 4                # chunks read from the filesystem together (an exec of a
                                # 2 MiB program waited for one chunk's reads, then the next's)
ZERO = bytes(CHUNK)
DEPARTED = 1024                 # names of unlinked host files still known


@dataclass(eq=False)
class Version:
    """One inode version's host file and how far it is filled."""
    key: str
    ident: tuple[int, int]                      # (dev, ino)
    filled: set[int] = field(default_factory=set)                      # chunk numbers
    filling: dict[int, asyncio.Future] = field(default_factory=dict)   # chunk -> its fill
    allocated: int = 0                          # st_blocks * 512 of its file
    busy: int = 0                               # map calls at work on it: not evicted
    gone: bool = False                          # unlinked
    inode: Any = None                           # the guest file (a grown map fills from it)
    path: bytes = b""                           # the guest path it was last mapped by

    @property
    def name(self) -> str:
        """Relative to the run directory: userspace opens it from the guest
        process's working directory, its jail's root (no host path in guest
        memory)."""
        return f"pagecache/{self.key}"


@dataclass(eq=False)
class Live(Version):
    """An inode's live host file while a process may map it shared: its
    filled chunks hold the inode's data, so the inode's data calls come here
    (``inode.live``) and keep the two the same.  ``lock`` orders fills,
    writes, truncates and write-backs of the inode."""
    cache: Any = None                           # the PageCache
    fd: int = -1                                # the kernel's, read-write
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0                            # processes that may map it
    writable: bool = False                      # a map could change it: write back
    retired: asyncio.Future | None = None       # set when its last holder went
    unhold: Any = None                          # the inode's open count, while live

    @property
    def name(self) -> str:
        return f"shared/{self.key}"

    async def read(self, offset: int, length: int) -> bytes:
        """The inode's bytes: the live file's where it is filled (once it is
        gone, its bytes are the inode's)."""
        end = min(self.inode.size, offset + length)
        out = bytearray()
        pos = offset
        while pos < end:
            stop = min(end, (pos // CHUNK + 1) * CHUNK)
            if pos // CHUNK in self.filled and not self.gone:
                out += os.pread(self.fd, stop - pos, pos)
            else:
                out += await self.inode.read(pos, stop - pos)
            pos = stop
        return bytes(out)

    async def write(self, offset: int, data: bytes) -> int:
        """Written to the inode, and to the live file where it is filled."""
        async with self.lock:
            n = await self.inode.write(offset, data)
            self._through(offset, memoryview(data)[:n])
            return n

    async def truncate(self, size: int) -> None:
        async with self.lock:
            await self.inode.truncate(size)
            self._through(0, b"")

    async def allocate(self, offset: int, length: int) -> None:
        async with self.lock:
            await self.inode.allocate(offset, length)
            self._through(0, b"")

    def _through(self, offset: int, data) -> None:
        """data, just written to the inode at offset, into the filled chunks;
        the live file's size follows the inode's (maps past it get SIGBUS)."""
        if self.gone:
            return
        try:
            if os.fstat(self.fd).st_size != self.inode.size:
                os.ftruncate(self.fd, self.inode.size)
            end = offset + len(data)
            pos = offset
            while pos < end:
                stop = min(end, (pos // CHUNK + 1) * CHUNK)
                if pos // CHUNK in self.filled:
                    os.pwrite(self.fd, data[pos - offset:stop - offset], pos)
                pos = stop
            self.cache._account(self, os.fstat(self.fd).st_blocks * 512, filling=False)
        except OSError as exc:     # the host's disk is full: the maps would disagree
            log.error("page cache: %s no longer follows its inode: %s", self.key, exc)
            raise Errno(errno.EIO) from None

    async def write_back(self) -> None:
        async with self.lock:
            await self._write_back()

    async def _write_back(self) -> None:
        """What maps changed in the live file, to the inode, page by page;
        mtime and ctime stamped as for a write, as Linux does at a write fault."""
        if not self.writable or self.gone:
            return
        changed = False
        for chunk in sorted(self.filled):
            start = chunk * CHUNK
            end = min(self.inode.size, start + CHUNK)
            for lo, hi in _data_in(self.fd, start, end):
                mine = os.pread(self.fd, hi - lo, lo)
                theirs = await self.inode.read(lo, hi - lo)
                for a, b in _differing_runs(mine, theirs):
                    await self.inode.write(lo + a, mine[a:b])
                    changed = True
            await asyncio.sleep(0)
        if changed:
            await self.inode.setattr(mtime=divmod(time.time_ns(), 1_000_000_000))

    async def fsync(self) -> None:
        await self.write_back()
        await self.inode.fsync()


class PageCache:
    def __init__(self, run_dir: Path, limit: int = 1 << 30):
        self.dir = Path(run_dir) / "pagecache"
        self.shared_dir = Path(run_dir) / "shared"
        for d in (self.dir, self.shared_dir):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o711)   # guest processes (another uid) open files they are named
            for stale in d.iterdir():       # an earlier kernel's, filled who knows how far
                stale.unlink()
        self.limit = limit
        self.versions: OrderedDict[str, Version] = OrderedDict()   # least recently used first
        self.current: dict[tuple[int, int], Version] = {}
        self.lives: dict[str, Live] = {}
        self.departed: OrderedDict[str, Version] = OrderedDict()   # unlinked, last first
        self.allocated = 0

    async def map(self, loc: Location, offset: int = 0, length: int | None = None,
                  holder=None, shared: bool = False, writable: bool = False
                  ) -> tuple[Version, bool]:
        """The host file a map of loc's range maps, filled that far: the
        inode's live file if it has one or the map is shared, else the
        version of its present contents.  writable: the map may change it.
        The holder process holds a live file from now on; whether that is
        new (a map that then fails lets it go: ``let_go``)."""
        inode = loc.inode
        ident = (loc.mount.dev, inode.ino)
        live = inode.live
        while live is not None and live.retired is not None:   # being written back
            await asyncio.wait([live.retired])
            live = inode.live
        if live is None and shared:
            live = self._create_live(ident, inode)
        if live is not None:
            v = live
            v.writable |= writable
        else:
            key = f"{loc.mount.dev:x}-{inode.ino}-{inode.ctime}.{inode.ctime_ns}-{inode.size}"
            v = self.versions.get(key) or self._create(key, ident, inode.size)
            self.versions.move_to_end(key)
        v.inode, v.path = inode, loc.path
        new = holder is not None and self.hold(holder, v)
        try:
            await self.fill(v, offset, length)
        except BaseException:
            if new:
                self.let_go(holder, v)
            raise
        return v, new

    async def fill(self, v: Version, offset: int, length: int | None) -> None:
        """v's file filled for a map of [offset, offset + length) (None: to
        the end) from its inode: map, and mremap growing a map."""
        inode = v.inode
        end = inode.size if length is None else min(inode.size, offset + length)
        fd = v.fd if isinstance(v, Live) else -1
        v.busy += 1
        try:
            chunks = range(offset // CHUNK, -(-end // CHUNK))
            for at in range(0, len(chunks), FILL_AT_ONCE):     # (a map may span TiBs)
                group = [c for c in chunks[at:at + FILL_AT_ONCE] if c not in v.filled]
                if group and fd < 0:
                    fd = os.open(self.dir / v.key, os.O_WRONLY | os.O_CLOEXEC)
                await gather_all([self._fill_chunk(v, inode, fd, c) for c in group])
        finally:
            v.busy -= 1
            if fd >= 0 and not isinstance(v, Live):
                os.close(fd)

    def host_maps(self, host_pid: int) -> list[tuple[bytes, list[bytes], Version | None]]:
        """The host's maps of a guest process: each line, its fields (range,
        perms, offset, dev, inode[, path]) and the version it maps, if it
        maps a page-cache file this cache still knows.  The host names one
        from the jail's root, or (a guest not confined: skas not root) by
        its host path, " (deleted)" once unlinked."""
        try:
            with open(f"/proc/{host_pid}/maps", "rb") as f:
                lines = f.read().splitlines()
        except OSError:                 # gone meanwhile
            return []
        run_dirs = (b"/", bytes(self.dir.parent) + b"/")
        out = []
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            path = parts[5].strip().removesuffix(b" (deleted)") if len(parts) > 5 else b""
            name = next((path[len(d):] for d in run_dirs if path.startswith(d)), b"")
            out.append((line, parts, self.named(name.decode(errors="replace")) if name else None))
        return out

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

    def _create_live(self, ident: tuple[int, int], inode) -> Live:
        """The inode's live file, all hole: writable by the guest uid, which
        maps it read-write, and named at random, as the shared directory is
        searchable by other uids where the run directory is (no namespaces).
        The inode's versions would go stale under it: they go."""
        old = self.current.get(ident)
        if old is not None:
            self._drop(old)
        key = os.urandom(16).hex()        # secrets.token_hex's, without its imports
        path = self.shared_dir / key
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            os.fchmod(fd, 0o666)
            os.ftruncate(fd, inode.size)
        except OSError as exc:
            os.close(fd)
            path.unlink()
            raise Errno(exc.errno or errno.EIO) from None
        live = Live(key, ident, inode=inode, cache=self, fd=fd,
                    unhold=inode.hold())                # kept while mapped
        inode.live = live
        self.lives[key] = live
        return live

    async def _fill_chunk(self, v: Version, inode, fd: int, chunk: int) -> None:
        """chunk of v's file filled, by this call or by the one filling it."""
        while chunk not in v.filled and not v.gone:
            if chunk in v.filling:              # another call fills it: wait for that
                await asyncio.wait([v.filling[chunk]])
                continue
            await self._fill(v, inode, fd, chunk)

    async def _fill(self, v: Version, inode, fd: int, chunk: int) -> None:
        """Copy one chunk into v's file, only its pages that are not all zero;
        the other calls that need it wait for this one."""
        done = v.filling[chunk] = asyncio.get_running_loop().create_future()
        try:
            if isinstance(v, Live):
                async with v.lock:      # no write between the read and the copy
                    if not v.gone:
                        await self._copy(v, inode, fd, chunk)
            else:
                await self._copy(v, inode, fd, chunk)
            await asyncio.sleep(0)              # one chunk per turn: other calls go on
        finally:
            del v.filling[chunk]
            done.set_result(None)

    async def _copy(self, v: Version, inode, fd: int, chunk: int) -> None:
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

    def _account(self, v: Version, allocated: int, filling: bool = True) -> None:
        """v's file now takes allocated bytes: evict least recently used
        versions while over the limit; v alone over it is ENOMEM, and so is
        a fill of a live file that leaves the live files over it (a write
        through one, done already, is only counted)."""
        if v.gone:
            return
        self.allocated += allocated - v.allocated
        v.allocated = allocated
        for other in list(self.versions.values()):
            if self.allocated <= self.limit:
                return
            if other is not v and not other.busy:
                self._drop(other)
        if isinstance(v, Live):
            # live files cannot be evicted (maps write them): a fill that
            # leaves them over the limit is the map's ENOMEM, or guests could
            # copy their whole disks to the host's through shared maps
            if filling and self.allocated > self.limit:
                log.warning("page cache: live files need more than pagecache_limit (%d bytes): "
                            "ENOMEM", self.limit)
                raise Errno(errno.ENOMEM)
        elif v.allocated > self.limit:
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
        self._depart(v)

    def _depart(self, v: Version) -> None:
        """v's file is unlinked; maps of it may still be there to be named."""
        self.departed[v.name] = v
        if len(self.departed) > DEPARTED:
            self.departed.popitem(last=False)

    def moved(self, dev: int, moves: list[tuple[bytes, bytes | None]]) -> None:
        """Names changed on the device dev, each (old, new) at once: a rename
        moved the path old (a file, or a directory and what is under it) to
        new, an unlink's new is None.  A map is named where its file is now,
        as Linux's d_path names it, and "(deleted)" once that name is gone."""
        known = [*self.versions.values(), *self.lives.values(), *self.departed.values()]
        changes = []
        for old, new in moves:
            for v in known:
                if v.ident[0] == dev and (v.path == old or v.path.startswith(old + b"/")):
                    changes.append((v, v.path + b" (deleted)" if new is None
                                    else new + v.path[len(old):]))
        for v, path in changes:
            v.path = path

    def named(self, name: str) -> Version | None:
        """The version whose host file is name ("pagecache/KEY" or
        "shared/KEY"), if it is still known."""
        where, _, key = name.partition("/")
        v = {"pagecache": self.versions, "shared": self.lives}.get(where, {}).get(key)
        return v if v is not None and v.name == name else self.departed.get(name)

    # Who may map a live file: each process holds the live files it mapped
    # (Process.maps), its forks inherit them, and exec and exit let them go.
    # munmap runs on the host unseen, so a process holds a file until its
    # image goes: the live file may outlast its maps, never the reverse.

    def hold(self, proc, v: Version) -> bool:
        """proc may map v from now on; whether that is new."""
        if not isinstance(v, Live) or v in proc.maps:
            return False
        proc.maps.add(v)
        v.holders += 1
        return True

    def inherit(self, parent, child) -> None:
        """A fork's child has its parent's maps."""
        for v in parent.maps:
            self.hold(child, v)

    def release(self, proc, *keep: Version) -> None:
        """proc's image is gone (exec, exit): it maps none of its live files
        but those it keeps (a new image's)."""
        for v in list(proc.maps):
            if v not in keep:
                self.let_go(proc, v)

    def let_go(self, proc, v: Version) -> None:
        """proc maps v no more; a live file no process may map any more is
        written back and goes."""
        if v not in proc.maps:
            return
        proc.maps.discard(v)
        v.holders -= 1
        if not v.holders and v.retired is None:
            loop = asyncio.get_running_loop()
            v.retired = loop.create_future()
            loop.create_task(self._retire(v)).add_done_callback(_logged)

    async def _retire(self, v: Live) -> None:
        """Its last maps are gone: what they wrote to the inode, then the file."""
        async with v.lock:
            try:
                await v._write_back()
            except Errno as exc:
                log.error("page cache: writing %s back failed: %s", v.key, exc)
            finally:
                self._unlive(v)

    def _unlive(self, v: Live) -> None:
        v.inode.live = None
        del self.lives[v.key]
        self.allocated -= v.allocated
        v.gone = True
        os.close(v.fd)
        (self.shared_dir / v.key).unlink(missing_ok=True)
        self._depart(v)
        v.unhold()
        v.retired.set_result(None)

    async def write_back_all(self) -> None:
        """sync and the halt: every live file's changes to its inode (those
        whose last holder went, once their own write-back is done)."""
        for v in list(self.lives.values()):
            if v.retired is not None:
                await asyncio.wait([v.retired])
            else:
                await v.write_back()


def _logged(task: asyncio.Task) -> None:
    """A background write-back's end: a bug is logged, not left unretrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.error("page cache: kernel bug retiring a live file", exc_info=task.exception())


def _data_runs(data: bytes):
    """The [lo, hi) runs of data's pages that are not all zero."""
    return _differing_runs(data, ZERO)


def _data_in(fd: int, start: int, end: int):
    """The [lo, hi) runs of [start, end) the host file holds data in.  Its
    holes are pages no fill, write or map store ever put bytes in (fills
    skip zero pages), so the inode is zeros there too and nothing in them
    needs writing back: a sparse 4 GiB map is compared where it has data,
    not read whole at every msync."""
    pos = start
    while pos < end:
        try:
            lo = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:            # ENXIO: no data past pos
            return
        if lo >= end:
            return
        hi = min(os.lseek(fd, lo, os.SEEK_HOLE), end)
        yield lo, hi
        pos = hi


def _differing_runs(mine: bytes, theirs: bytes):
    """The [lo, hi) runs of pages in which mine and theirs differ (theirs may
    be shorter: the rest differs)."""
    start = None
    for pos in range(0, len(mine), PAGE):
        same = mine[pos:pos + PAGE] == theirs[pos:pos + PAGE]
        if same and start is not None:
            yield start, pos
            start = None
        elif not same and start is None:
            start = pos
    if start is not None:
        yield start, len(mine)
