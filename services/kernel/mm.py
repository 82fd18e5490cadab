"""Memory system calls that need the kernel: mmap of a file.

Anonymous mappings never reach here (the filter runs them on the host).  A
file mapping is served from the page cache: userspace maps the host copy of
the inode into the task."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.errors import Errno
from services.kernel.fs import _fd
from services.kernel.vfs import InodeFile

MAP_SHARED, MAP_SHARED_VALIDATE = 0x1, 0x3
PROT_WRITE = 0x2


async def sys_mmap(t, addr, length, prot, flags, fd, offset):
    f = t.files.get(_fd(fd))
    if not isinstance(f, InodeFile) or not S.S_ISREG(f.loc.inode.mode):
        raise Errno(errno.ENODEV)
    if not f.readable:
        raise Errno(errno.EACCES)
    if flags & MAP_SHARED_VALIDATE and prot & PROT_WRITE:
        raise Errno(errno.EACCES)          # shared writable maps need a writable file
    if offset % 4096:
        raise Errno(errno.EINVAL)
    path = await t.kernel.pagecache.host_path(f.loc, offset, length)
    results = await t.kernel.run_ops(t, [{"op": "mmap", "addr": addr, "length": length,
                                          "prot": prot, "flags": flags, "path": path,
                                          "offset": offset}])
    return results[0]
