"""memfd_create: an unlinked regular file on a tmpfs mounted nowhere (Linux's
shm_mnt), read, written, truncated and mapped as any tmpfs file, through
the page cache; its pages count against the guest's tmpfs budget."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.abi.arch import PAGE
from services.kernel.abi.fcntl import (
    MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_EXEC, MFD_NAME_MAX, O_LARGEFILE, O_RDWR)
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import InodeFile, Location, Mount
from services.kernel.fsimpl.tmpfs import Tmpfs


def _shm(vfs) -> Mount:
    if vfs.shm is None:
        budget = vfs.tmpfs_pages
        fs = Tmpfs(size=budget.max_pages * PAGE, budget=budget)
        vfs.shm = Mount(fs, vfs.anon_dev(), fstype=b"tmpfs", source=b"tmpfs")
    return vfs.shm


def sys_memfd_create(t, name_ptr, flags, *_):
    """Seals are not kept: MFD_ALLOW_SEALING is taken, F_ADD_SEALS is EINVAL;
    MFD_HUGETLB and MFD_NOEXEC_SEAL are EINVAL."""
    flags &= 0xFFFFFFFF
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC):
        raise Errno(errno.EINVAL)
    try:
        name = t.mem.read_cstr(name_ptr, MFD_NAME_MAX + 1)
    except Errno as e:
        raise Errno(errno.EINVAL) if e.code == errno.ENAMETOOLONG else e
    m = _shm(t.kernel.vfs)
    inode = m.fs.new_inode(S.S_IFREG | 0o777, t.cred.fsuid, t.cred.fsgid, None)
    inode.nlink = 0              # never had a name: it goes with its last open file
    f = InodeFile(Location(m, inode, b"/memfd:" + name + b" (deleted)"), O_RDWR | O_LARGEFILE)
    try:
        return t.files.install(f, cloexec=bool(flags & MFD_CLOEXEC))
    except Errno:
        f.release()
        raise
