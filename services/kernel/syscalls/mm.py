"""Memory system calls that need the kernel: mmap of a file, and the memory
calls the filter could not clear.

The filter runs anonymous mmap, munmap, mprotect, madvise and mremap on the
host when their range is plainly clear of the stub's (common/layout.py);
the others trap here, are checked exactly, and run on the host unless they
touch the stub.  A file mapping is served from the page cache: userspace
maps the host copy of the inode into the task (shared ones: the inode's
live copy, coherent with its reads and writes)."""
from __future__ import annotations

import errno
import stat as S

from common.layout import touches_stub
from common.ops import Mmap
from services.kernel.core.errors import Errno
from services.kernel.syscalls.paths import fd_arg
from services.kernel.core.answers import HOST
from services.kernel.fs.vfs import InodeFile
from services.kernel.abi.arch import PAGE
from services.kernel.abi.mman import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_SHARED,
                                      MAP_SHARED_VALIDATE,
                                      MAP_TYPE, MREMAP_FIXED, MS_ASYNC, MS_INVALIDATE, MS_SYNC,
                                      PROT_WRITE)

# arch_prctl codes that act on the caller alone (the filter allows the FS
# and GS ones): CPUID faulting and the AMX state permissions.
ARCH_LOCAL = {0x1011, 0x1012, 0x1021, 0x1022, 0x1023, 0x1024, 0x1025}


def _off_stub(addr: int, length: int, err: int = errno.ENOMEM) -> None:
    """The stub's range is not the guest's: as if nothing were mapped there."""
    if touches_stub(addr, length):
        raise Errno(err)


async def sys_mmap(t, addr, length, prot, flags, fd, offset):
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        _off_stub(addr, length)
    if flags & MAP_ANONYMOUS:
        return HOST
    f = t.files.get(fd_arg(fd))
    if not isinstance(f, InodeFile) or not S.S_ISREG(f.loc.inode.mode):
        raise Errno(errno.ENODEV)
    if not f.readable:
        raise Errno(errno.EACCES)
    shared = flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE)
    if shared and prot & PROT_WRITE and not f.writable:
        raise Errno(errno.EACCES)          # shared writable maps need a writable file
    if offset % PAGE:
        raise Errno(errno.EINVAL)
    # A shared map of a file open for writing may be made writable later
    # (mprotect), as on Linux: its host file is opened read-write too.
    writable = shared and f.writable
    cache, proc = t.kernel.pagecache, t.process
    v, new = await cache.map(f.loc, offset, length, holder=proc, shared=shared,
                             writable=writable)
    try:
        results = await t.kernel.run_ops(t, [Mmap(addr=addr, length=length, prot=prot,
                                                  flags=flags, path=v.name, write=writable,
                                                  offset=offset)])
    except BaseException:
        if new:
            cache.let_go(proc, v)
        raise
    if new and not 0 <= results[0] < 1 << 63:     # -errno: not mapped after all
        cache.let_go(proc, v)
    return results[0]


async def sys_msync(t, addr, length, flags, *_):
    """MS_SYNC writes what the process's shared maps changed back to their
    files' disks (it cannot tell which maps the range holds: all of them);
    reads see the maps' bytes at once anyway, so MS_ASYNC has nothing to do,
    as on Linux.  The host then checks the range (ENOMEM if unmapped)."""
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or addr % PAGE or (
            flags & MS_ASYNC and flags & MS_SYNC):
        raise Errno(errno.EINVAL)
    _off_stub(addr, length)
    if flags & MS_SYNC:
        synced = set()
        for v in list(t.process.maps):
            await v.write_back()
            if v.inode.fs not in synced:       # one sync of each filesystem does for all
                synced.add(v.inode.fs)
                await v.inode.fsync()
    return HOST


def sys_munmap(t, addr, length, *_):
    _off_stub(addr, length, errno.EINVAL)
    return HOST


def sys_mprotect(t, addr, length, *_):
    _off_stub(addr, length)
    return HOST


def sys_madvise(t, addr, length, *_):
    _off_stub(addr, length)
    return HOST


async def sys_mremap(t, addr, old_length, new_length, flags, new_addr, *_):
    """Growing a file map: its new part is filled in the page cache first
    (a map fills only what it maps), so it shows the file's bytes."""
    _off_stub(addr, old_length)
    if flags & MREMAP_FIXED:
        _off_stub(new_addr, new_length, errno.EINVAL)
    if new_length > old_length and t.host_pid:
        for parts, v in ((parts, v) for _, parts, v in t.kernel.pagecache.host_maps(t.host_pid)
                         if v is not None):
            lo, _, hi = parts[0].partition(b"-")
            if int(lo, 16) <= addr < int(hi, 16):
                await t.kernel.pagecache.fill(v, int(parts[2], 16) + addr - int(lo, 16),
                                              new_length)
                break
    return HOST


def sys_arch_prctl(t, code, *_):
    if code not in ARCH_LOCAL:
        raise Errno(errno.EINVAL)
    return HOST
