"""Mounts: mount(2) and umount2(2), and the filesystems mounted at boot.

The mount table itself lives in the VFS (``Vfs.attach``/``detach``); this
module decides what may be mounted where.  Every mount is private (there is
one mount namespace and no propagation), so the propagation flags succeed
and change nothing."""
from __future__ import annotations

import errno
import logging
import os
import stat as S

from services.kernel.core.cred import capable
from services.kernel.drivers.mem import populate_dev
from services.kernel.drivers.tty.pty import PTYS
from services.kernel.core.errors import Errno
from common.config import DEFAULT_MEM
from services.kernel.fsimpl.devpts import DevPts
from services.kernel.fsimpl.procfs import ProcFs
from services.kernel.fsimpl.sysfs import SysFs, disk_name
from services.kernel.fsimpl.tmpfs import PageBudget, Tmpfs
from services.kernel.syscalls.paths import resolve
from services.kernel.sched.task import Credentials
from services.kernel.fs.vfs import UBD_MAJOR, Mount, Vfs, makedev
from services.kernel.fsimpl.ext2 import Ext2, Ext2Error
from services.kernel.abi.fcntl import AT_FDCWD
from services.kernel.abi.capability import CAP_SYS_ADMIN
from services.kernel.abi.mount import (
    MNT_DETACH, MNT_FORCE, MS_BIND, MS_MGC_MSK, MS_MGC_VAL, MS_MOVE, MS_NOATIME, MS_NODEV,
    MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME, MS_REMOUNT, MS_STRICTATIME,
    UMOUNT_NOFOLLOW)

log = logging.getLogger("kernel")

MS_PROPAGATION = (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20)   # unbindable private slave shared

DISK_FILESYSTEMS = (b"ext2",)     # what a block device may hold
MAX_MOUNTS = 100_000       # Linux's fs.mount-max: each mount is the kernel's memory


async def devtmpfs(vfs: Vfs) -> Tmpfs:
    """The one devtmpfs of the guest, with the device nodes: every mount of
    it shows the same files, as Linux's one devtmpfs superblock."""
    if vfs.devtmpfs is None:
        fs = Tmpfs(mode=0o755, budget=vfs.tmpfs_pages)
        await populate_dev(fs.root)
        vfs.devtmpfs = fs
    return vfs.devtmpfs


async def add_disk_node(vfs: Vfs, n: int) -> bytes:
    """/dev/ubdX (block, UBD_MAJOR:16n) for disk n, plugged in at boot or by
    skas ctl config; its name."""
    name = disk_name(n)
    if vfs.devtmpfs is not None:
        await vfs.devtmpfs.root.create(name, S.S_IFBLK | 0o660, 0, 0, makedev(UBD_MAJOR, n * 16))
    return name


async def disk_fs(t, source: int):
    """ext2 on a ubd disk: source names its block device (ENOTBLK if not
    one, ENXIO if no disk is plugged in there, EINVAL if it holds no
    ext2).  A disk mounted twice is one filesystem, as Linux shares the
    superblock.  Returns (fs, its device number)."""
    src = await resolve(t, AT_FDCWD, source)
    if not S.S_ISBLK(src.inode.mode):
        raise Errno(errno.ENOTBLK)
    if src.mount.flags & MS_NODEV:
        raise Errno(errno.EACCES)
    dev = src.inode.rdev
    disk = t.kernel.disks.get(os.minor(dev) // 16)
    if os.major(dev) != UBD_MAJOR or os.minor(dev) % 16 or disk is None:
        raise Errno(errno.ENXIO)
    for m in t.kernel.vfs.mounts:
        if m.dev == dev:
            return m.fs, dev
    try:
        return await Ext2.mount(disk), dev
    except Ext2Error as exc:
        log.info("mount of %s: %s", t.mem.read_cstr(source).decode(errors="replace"), exc)
        raise Errno(errno.EINVAL) from None


async def make_fs(vfs: Vfs, fstype: bytes, options: bytes):
    """A filesystem of that type for a mount (ENODEV: no such type); proc,
    sysfs and devtmpfs take no options here, as none changes what they show;
    devpts shows the guest's one table of ptys."""
    if fstype == b"tmpfs":
        return Tmpfs.from_options(options, vfs.tmpfs_pages)
    if fstype == b"devtmpfs":
        return await devtmpfs(vfs)
    if fstype == b"proc":
        return ProcFs()
    if fstype == b"sysfs":
        return SysFs()
    if fstype == b"devpts":
        return DevPts(PTYS, options)
    raise Errno(errno.ENODEV)


# what a one-shot guest (no init of its own to mount them) boots with, where
# the image has the directory: path, fstype, flags, and a tmpfs's mode (no
# tmpfs over the image's /tmp: a guest writing 100 MiB there would fill
# the kernel's memory where Linux writes the disk; --tmpfs /tmp asks for one)
BOOT_MOUNTS = [(b"/dev", b"devtmpfs", MS_NOSUID),
               (b"/dev/pts", b"devpts", MS_NOSUID | MS_NOEXEC),
               (b"/run", b"tmpfs", MS_NOSUID | MS_NODEV),
               (b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
               (b"/sys", b"sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)]


def mount_flags(flags: int) -> int:
    """The per-mount flags a mount(2) asks for; relatime unless told otherwise."""
    kept = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    return kept if flags & (MS_NOATIME | MS_STRICTATIME) else kept | MS_RELATIME


async def boot_vfs(root_fs, dev: int, fstype: bytes, read_only: bool = False,
                   tmpfs_limit: int = 1 << 30, mem: int = DEFAULT_MEM) -> Vfs:
    """The root filesystem (read-only if asked or if it cannot be written),
    and the BOOT_MOUNTS where the disk has those directories."""
    ro = 0 if root_fs.writable and not read_only else MS_RDONLY
    vfs = Vfs(Mount(root_fs, dev, MS_RELATIME | ro, fstype, b"/dev/root"))
    vfs.tmpfs_pages = PageBudget(tmpfs_limit, mem)
    for path, kind, flags in BOOT_MOUNTS:
        try:
            at = await vfs.lookup(vfs.root, path, Credentials(), vfs.root)
        except Errno as exc:
            log.warning("no %s on the root filesystem (%s): not mounting %s there",
                        path.decode(), errno.errorcode.get(exc.code, exc.code), kind.decode())
            continue
        fs = (Tmpfs(mode=0o755, budget=vfs.tmpfs_pages) if kind == b"tmpfs"
              else await make_fs(vfs, kind, b""))
        vfs.attach(Mount(fs, vfs.anon_dev(), MS_RELATIME | flags, kind, kind), at)
    return vfs


async def mount_tmpfs(vfs: Vfs, path: bytes, size: int | None) -> None:
    """A tmpfs the guest's config asks for (--tmpfs PATH[:SIZE]), mode 1777
    as Linux's tmpfs starts, on a directory the image has (ENOENT, ENOTDIR);
    without a size, half the guest's memory."""
    at = await vfs.lookup(vfs.root, path, Credentials(), vfs.root)
    if not S.S_ISDIR(at.inode.mode):
        raise Errno(errno.ENOTDIR)
    fs = Tmpfs(size, budget=vfs.tmpfs_pages)
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
        vfs.attach(Mount(m.fs, m.dev, m.flags, m.fstype, m.source, src.inode,
                         root_path=_root_in_fs(src)), at)
        return 0
    if not S.S_ISDIR(at.inode.mode):
        raise Errno(errno.ENOTDIR)
    if not fstype:
        raise Errno(errno.EINVAL)
    kind = t.mem.read_cstr(fstype)
    options = t.mem.read_cstr(data) if data else b""
    name = t.mem.read_cstr(source) if source else b"none"
    if len(vfs.mounts) >= MAX_MOUNTS:
        raise Errno(errno.ENOSPC)
    if kind in DISK_FILESYSTEMS:
        fs, dev = await disk_fs(t, source)
        if not fs.writable:
            flags |= MS_RDONLY
    else:
        fs, dev = await make_fs(vfs, kind, options), vfs.anon_dev()
    vfs.attach(Mount(fs, dev, mount_flags(flags), kind, name), at)
    return 0


def _root_in_fs(loc) -> bytes:
    """Where a directory is in its filesystem (mountinfo's root field): its
    path below its mount's point, under that mount's own root."""
    point = loc.mount.point.path if loc.mount.point is not None else b"/"
    below = loc.path[len(point):] if point != b"/" else loc.path
    return (loc.mount.root_path.rstrip(b"/") + b"/" + below.strip(b"/")).rstrip(b"/") or b"/"


def _in_use(kernel, m: Mount) -> bool:
    """Whether a task's cwd, root or open file is on mount m."""
    for task in kernel.tasks.values():
        if task.cwd.mount is m or task.root.mount is m:
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
    if os.major(m.dev) == UBD_MAJOR and m.fs.writable and all(o.fs is not m.fs
                                                              for o in vfs.mounts):
        await m.fs.unmount()       # its last mount: everything to the disk
    return 0


def _detach_tree(vfs: Vfs, m: Mount) -> None:
    """A lazy unmount takes the mounts below m with it."""
    for child in vfs.submounts(m):
        _detach_tree(vfs, child)
    vfs.detach(m)
