"""What a guest's host processes can reach if a call ever slips past the filter.

Defence in depth, as gVisor confines its sentry's address spaces: the first
stub of a guest (every other guest process descends from it) is made, in
the forked child before it executes the stub,
- a member of new mount, IPC, UTS and network namespaces: no host network,
  no host SysV objects, and a mount table that holds only
  ``/stub`` (the stub, read-only), ``/scratch`` (read-only, noexec),
  ``/pagecache`` (read-only) and ``/shared`` (the live files of MAP_SHARED
  maps, which the guest uid opens read-write: files the kernel made 0666
  under random names, in a directory it cannot list or add to) on an empty
  read-only tmpfs that it is pivoted into, the host's root detached;
- a process of the guest's own unprivileged host uid and gid, with no
  supplementary groups, no capabilities and an empty bounding set (uid 0 ->
  uid U drops every capability; no_new_privs is set later with the filter);
- limited by RLIMIT_NOFILE 16 (it needs one fd, for an injected mmap),
  RLIMIT_FSIZE 0 and RLIMIT_CORE 0 (it writes no file), and RLIMIT_NPROC
  (a host backstop behind the kernel's own task limit).

Only root can do the namespaces and the uid change.  Run unprivileged, skas
warns and confines what it can: the rlimits, and the working directory (the
run directory), so that guest memory holds names relative to it and never a
host path.  Root on a host that refuses the namespaces (a container, say)
gets a warning and the rest: the uid, the capabilities, the rlimits, the run
directory as working directory (made 0711 so that the guest uid can reach
the names it is given, and nothing it is not).  Either way the guest's
names for the stub, the scratch and the page cache are the same relative
ones (services/userspace/stub.py).

Nothing here runs in userspace's own process but ``Jail()``: ``enter`` runs
in the child between fork and exec, so it allocates little and logs nothing
(a failure is raised and reported by the parent).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import resource
import zlib
from pathlib import Path

from services.userspace import stub

log = logging.getLogger(__name__)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
CACHES = ("pagecache", "shared")     # services/kernel/fs/pagecache.py's directories
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
SYS_pivot_root = 155
CAP_LAST = 63                 # every capability number a kernel may know
UID_BASE, UID_COUNT = 0x5C000000, 1 << 16   # the range guest uids are taken from
NOFILE, NPROC_SLACK = 16, 64

_libc = ctypes.CDLL(None, use_errno=True)
for _name, _types in (("unshare", (ctypes.c_int,)),
                      ("mount", (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_char_p)),
                      ("umount2", (ctypes.c_char_p, ctypes.c_int)),
                      ("prctl", (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                 ctypes.c_ulong, ctypes.c_ulong))):
    getattr(_libc, _name).argtypes = _types


UID_LEASES = Path("/run/skas/uids")   # a lock file per guest uid in use on this host


def guest_uid(name: str) -> int:
    """The host uid (and gid) a guest's processes run as when no other
    running guest holds it: one per guest name, from a range no host
    account uses (lease_uid takes the next free one past it)."""
    return UID_BASE + zlib.crc32(name.encode()) % UID_COUNT


def lease_uid(name: str, leases: Path = UID_LEASES) -> tuple[int, int]:
    """A host uid no other running guest holds, and the fd whose lock holds
    it for as long as this process lives: guest_uid(name), or the first
    free one after it.  Two guests never share a uid, so neither shares the
    other's RLIMIT_NPROC, signals or /proc (two names' hashes can meet, and
    two guests of one name can run from two run directories)."""
    leases.mkdir(mode=0o700, parents=True, exist_ok=True)
    first = guest_uid(name) - UID_BASE
    for i in range(UID_COUNT):
        uid = UID_BASE + (first + i) % UID_COUNT
        fd = os.open(leases / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise OSError(errno.EAGAIN, f"all {UID_COUNT} guest uids are in use on this host")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                       flags, data and data.encode()), f"mount {target}")


class Jail:
    """How one guest's processes are confined: ``confined`` (a uid of their
    own, no capabilities) needs root, ``namespaces`` a host that allows them."""

    def __init__(self, run_dir: Path, name: str, max_tasks: int, host_uid: int = 0):
        self.run_dir = Path(run_dir)
        self.nproc = max_tasks + NPROC_SLACK
        self.confined = os.geteuid() == 0
        self.lease = -1                # the lock that keeps the uid this guest's alone
        if host_uid or not self.confined:
            self.uid = self.gid = host_uid or guest_uid(name)    # the operator's choice
        else:
            self.uid, self.lease = lease_uid(name)
            self.gid = self.uid
        self.namespaces = self.confined and _namespaces_allowed()
        self.root = self.run_dir / "jail"
        for cache in CACHES:
            (self.run_dir / cache).mkdir(exist_ok=True)
        if self.confined:
            self.root.mkdir(mode=0o755, exist_ok=True)
            for cache in CACHES:     # the guest uid opens files it is told the names of
                os.chmod(self.run_dir / cache, 0o711)
            if not self.namespaces:
                os.chmod(self.run_dir, 0o711)
                log.warning("the host refuses new namespaces: guest processes run as uid %d "
                            "with no capabilities, but see the host's network, mounts and "
                            "SysV IPC", self.uid)
        else:
            log.warning("not root: guest processes run as this user (uid %d), in the host's "
                        "namespaces; run skas as root to confine them to uid %d with no "
                        "capabilities, no network and an empty mount namespace",
                        os.geteuid(), self.uid)

    def enter(self) -> None:
        """In the forked child: confine it, and leave it in the directory the
        stub's names are relative to."""
        for limit, value in ((resource.RLIMIT_NOFILE, NOFILE), (resource.RLIMIT_FSIZE, 0),
                             (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))
        if not self.confined:
            os.chdir(self.run_dir)
            return
        if self.namespaces:
            self._enter_namespaces()
        else:
            os.chdir(self.run_dir)
        resource.setrlimit(resource.RLIMIT_NPROC, (self.nproc, self.nproc))
        for cap in range(CAP_LAST + 1):
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)   # EINVAL past the host's last
        os.setgroups([])
        os.setresgid(self.gid, self.gid, self.gid)
        os.setresuid(self.uid, self.uid, self.uid)

    def _enter_namespaces(self) -> None:
        """New namespaces, and a root of the stub, the scratch and the page
        cache alone; the working directory is that root."""
        _check(_libc.unshare(NAMESPACES), "unshare")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = str(self.root)
        _mount("skas", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0755")
        for name, flags in ((stub.STUB_NAME, MS_RDONLY | MS_NOSUID | MS_NODEV),
                            (stub.SCRATCH_NAME, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
                            ("pagecache", MS_RDONLY | MS_NOSUID | MS_NODEV),
                            ("shared", MS_NOSUID | MS_NODEV)):
            source, target = str(self.run_dir / name), f"{root}/{name}"
            if os.path.isdir(source):
                os.mkdir(target)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o444))
            _mount(source, target, None, MS_BIND)
            _mount(None, target, None, MS_REMOUNT | MS_BIND | flags)
        _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.chdir(root)
        # The host's root goes: stacked under the new one, then detached.
        if _libc.syscall(SYS_pivot_root, b".", b".") == 0:
            _check(_libc.umount2(b".", MNT_DETACH), "umount the host's root")
        else:            # a root pivot_root refuses (an initramfs): chroot, which
            os.chroot(".")   # the unprivileged uid below cannot leave
        os.chdir("/")


def _namespaces_allowed() -> bool:
    """Whether this host lets us make the jail's namespaces (tried in a child)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _libc.unshare(NAMESPACES) == 0 else 1)
    return os.waitpid(pid, 0)[1] == 0
