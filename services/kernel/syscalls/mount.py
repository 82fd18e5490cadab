"""Mounts: mount(2) and umount2(2), and the filesystems mounted at boot.

The mount table itself lives in the VFS (``Vfs.attach``/``detach``); this
module decides what may be mounted where.  Every mount is private (there is
one mount namespace and no propagation), so the propagation flags succeed
and change nothing."""
from __future__ import annotations

import errno
import logging
import stat as S

from services.kernel.core.cred import capable
from services.kernel.drivers.mem import populate_dev
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.procfs import ProcFs
from services.kernel.fsimpl.tmpfs import PageBudget, Tmpfs
from services.kernel.syscalls.paths import resolve
from services.kernel.sched.task import Credentials
from services.kernel.fs.vfs import Mount, Vfs
from services.kernel.abi.fcntl import AT_FDCWD
from services.kernel.abi.capability import CAP_SYS_ADMIN
from services.kernel.abi.mount import (
    MNT_DETACH, MNT_FORCE, MS_BIND, MS_MGC_MSK, MS_MGC_VAL, MS_MOVE, MS_NOATIME, MS_NODEV,
    MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME, MS_REMOUNT, MS_STRICTATIME,
    UMOUNT_NOFOLLOW)

log = logging.getLogger("kernel")

MS_PROPAGATION = (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20)   # unbindable private slave shared

FILESYSTEMS = {b"tmpfs": Tmpfs.from_options, b"proc": ProcFs.from_options}
MAX_MOUNTS = 100_000       # Linux's fs.mount-max: each mount is the kernel's memory

# path, mode, flags, and what fills it (b"proc": a procfs instead of a tmpfs): the mounts every guest boots with
# (no tmpfs over the image's /tmp: a guest writing 100 MiB there would fill
# the kernel's memory where Linux writes the disk; --tmpfs /tmp asks for one)
BOOT_MOUNTS = [(b"/dev", 0o755, MS_NOSUID, populate_dev),
               (b"/run", 0o755, MS_NOSUID | MS_NODEV, None),
               (b"/proc", 0o555, MS_NOSUID | MS_NODEV | MS_NOEXEC, b"proc")]


def mount_flags(flags: int) -> int:
    """The per-mount flags a mount(2) asks for; relatime unless told otherwise."""
    kept = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    return kept if flags & (MS_NOATIME | MS_STRICTATIME) else kept | MS_RELATIME


async def boot_vfs(root_fs, dev: int, fstype: bytes, read_only: bool = False,
                   tmpfs_limit: int = 1 << 30) -> Vfs:
    """The root filesystem (read-only if asked or if it cannot be written), a tmpfs on
    /dev (with the device nodes) and /run, and proc on /proc, where the disk
    has those directories."""
    ro = 0 if root_fs.writable and not read_only else MS_RDONLY
    vfs = Vfs(Mount(root_fs, dev, MS_RELATIME | ro, fstype, b"/dev/root"))
    vfs.tmpfs_pages = PageBudget(tmpfs_limit)
    for path, mode, flags, populate in BOOT_MOUNTS:
        try:
            at = await vfs.lookup(vfs.root, path, Credentials())
        except Errno as exc:
            log.warning("no %s on the root filesystem (%s): not mounting a tmpfs there",
                        path.decode(), errno.errorcode.get(exc.code, exc.code))
            continue
        if populate == b"proc":
            vfs.attach(Mount(ProcFs(), vfs.anon_dev(), MS_RELATIME | flags, b"proc", b"proc"), at)
            continue
        fs = Tmpfs(mode=mode, budget=vfs.tmpfs_pages)
        if populate is not None:
            await populate(fs.root)
        vfs.attach(Mount(fs, vfs.anon_dev(), MS_RELATIME | flags, b"tmpfs", b"tmpfs"), at)
    return vfs


async def mount_tmpfs(vfs: Vfs, path: bytes, size: int | None) -> None:
    """A tmpfs the guest's config asks for (--tmpfs PATH[:SIZE]), mode 1777
    as Linux's tmpfs starts, on a directory the image has (ENOENT, ENOTDIR)."""
    at = await vfs.lookup(vfs.root, path, Credentials())
    if not S.S_ISDIR(at.inode.mode):
        raise Errno(errno.ENOTDIR)
    fs = Tmpfs(**({"size": size} if size else {}), budget=vfs.tmpfs_pages)
    vfs.attach(Mount(fs, vfs.anon_dev(), MS_RELATIME | MS_NOSUID | MS_NODEV, b"tmpfs",
                     b"tmpfs"), at)


async def sys_mount(t, source, target, fstype, flags, data, *_):
    if not capable(t.cred, CAP_SYS_ADMIN):
        raise Errno(errno.EPERM)
    if flags & MS_MGC_MSK == MS_MGC_VAL:
        flags &= ~MS_MGC_MSK
    vfs = t.kernel.vfs
    at = await resolve(t, AT_FDCWD, target)
    if flags & MS_REMOUNT:
        if at.inode is not at.mount.root:
            raise Errno(errno.EINVAL)
        if not flags & MS_RDONLY and not at.mount.fs.writable:
            raise Errno(errno.EROFS)
        at.mount.flags = mount_flags(flags)
        return 0
    if flags & MS_PROPAGATION:
        return 0
    if flags & MS_MOVE:
        raise Errno(errno.EINVAL)
    if flags & MS_BIND:
        src = await resolve(t, AT_FDCWD, source)
        if S.S_ISDIR(src.inode.mode) != S.S_ISDIR(at.inode.mode):
            raise Errno(errno.ENOTDIR)
        m = src.mount
        vfs.attach(Mount(m.fs, m.dev, m.flags, m.fstype, m.source, src.inode), at)
        return 0
    if not S.S_ISDIR(at.inode.mode):
        raise Errno(errno.ENOTDIR)
    if not fstype:
        raise Errno(errno.EINVAL)
    make = FILESYSTEMS.get(t.mem.read_cstr(fstype))
    if make is None:
        raise Errno(errno.ENODEV)
    if len(vfs.mounts) >= MAX_MOUNTS:
        raise Errno(errno.ENOSPC)
    fs = make(t.mem.read_cstr(data) if data else b"", vfs.tmpfs_pages)
    name = t.mem.read_cstr(source) if source else b"none"
    vfs.attach(Mount(fs, vfs.anon_dev(), mount_flags(flags), t.mem.read_cstr(fstype), name), at)
    return 0


def _in_use(kernel, m: Mount) -> bool:
    """Whether a task's cwd or open file is on mount m."""
    for task in kernel.tasks.values():
        if task.cwd.mount is m:
            return True
        if any(f.loc is not None and f.loc.mount is m for f, _ in task.files.fds.values()):
            return True
    return False


async def sys_umount2(t, target, flags, *_):
    if flags & ~(MNT_FORCE | MNT_DETACH | UMOUNT_NOFOLLOW):
        raise Errno(errno.EINVAL)
    if not capable(t.cred, CAP_SYS_ADMIN):
        raise Errno(errno.EPERM)
    vfs = t.kernel.vfs
    at = await resolve(t, AT_FDCWD, target, follow=not flags & UMOUNT_NOFOLLOW)
    m = at.mount
    if at.inode is not m.root:
        raise Errno(errno.EINVAL)
    if m.point is None:
        raise Errno(errno.EBUSY)
    if flags & MNT_DETACH:
        _detach_tree(vfs, m)
        return 0
    if vfs.submounts(m) or _in_use(t.kernel, m):
        raise Errno(errno.EBUSY)
    vfs.detach(m)
    return 0


def _detach_tree(vfs: Vfs, m: Mount) -> None:
    """A lazy unmount takes the mounts below m with it."""
    for child in vfs.submounts(m):
        _detach_tree(vfs, child)
    vfs.detach(m)
