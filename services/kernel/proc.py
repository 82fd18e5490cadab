"""Process system calls: ids, process groups and sessions, exec, uname, limits."""
from __future__ import annotations

import errno
import struct

from services.kernel import exec as execmod
from services.kernel.errors import Errno

HOST = object()      # answer: run the call on the host as it is

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_NPROC, RLIMIT_NOFILE, RLIM_NLIMITS = 3, 6, 7, 16
PR_SET_NAME, PR_GET_NAME = 15, 16
MAX_ARGS = 1 << 17


class Ops:
    """answer: run ops in the task, then return value (or resume at set registers)."""

    def __init__(self, ops: list[dict], value: int = 0):
        self.ops = ops
        self.value = value


def sys_getpid(t, *_):
    return t.tgid


def sys_gettid(t, *_):
    return t.tid


def sys_getppid(t, *_):
    return t.ppid


def sys_getuid(t, *_):
    return t.cred.uid


def sys_geteuid(t, *_):
    return t.cred.euid


def sys_getgid(t, *_):
    return t.cred.gid


def sys_getegid(t, *_):
    return t.cred.egid


def sys_getresuid(t, ruid, euid, suid, *_):
    for addr, value in ((ruid, t.cred.uid), (euid, t.cred.euid), (suid, t.cred.suid)):
        t.mem.write(addr, struct.pack("<I", value))
    return 0


def sys_getresgid(t, rgid, egid, sgid, *_):
    for addr, value in ((rgid, t.cred.gid), (egid, t.cred.egid), (sgid, t.cred.sgid)):
        t.mem.write(addr, struct.pack("<I", value))
    return 0


def sys_getgroups(t, size, listp, *_):
    groups = t.cred.groups
    size &= 0xFFFFFFFF
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise Errno(errno.EINVAL)
    if groups:
        t.mem.write(listp, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def _process(t, pid: int):
    """The live or zombie process pid names (0: the caller's)."""
    pid &= 0xFFFFFFFF
    if pid == 0:
        return t.process
    proc = t.kernel.processes.get(pid)
    if proc is None:
        raise Errno(errno.ESRCH)
    return proc


def sys_getpgid(t, pid, *_):
    return _process(t, pid).pgid


def sys_getpgrp(t, *_):
    return t.pgid


def sys_getsid(t, pid, *_):
    return _process(t, pid).sid


def sys_setpgid(t, pid, pgid, *_):
    """Move a process (the caller or a child of it) into a process group of
    its session, or make it lead a new one."""
    pid &= 0xFFFFFFFF
    pgid &= 0xFFFFFFFF
    if pgid >= 1 << 31:
        raise Errno(errno.EINVAL)
    proc = _process(t, pid)
    if proc is not t.process and proc.parent is not t.process:
        raise Errno(errno.ESRCH)
    if proc.sid != t.sid:
        raise Errno(errno.EPERM)
    if proc.sid == proc.pid:                 # a session leader stays where it is
        raise Errno(errno.EPERM)
    pgid = pgid or proc.pid
    if pgid != proc.pid and not any(p.pgid == pgid and p.sid == t.sid and not p.zombie
                                    for p in t.kernel.processes.values()):
        raise Errno(errno.EPERM)
    proc.pgid = pgid
    return 0


def sys_setsid(t, *_):
    proc = t.process
    if any(p.pgid == proc.pid for p in t.kernel.processes.values()):
        raise Errno(errno.EPERM)             # it leads a process group already
    proc.sid = proc.pgid = proc.pid
    return proc.sid


def sys_set_tid_address(t, tidptr, *_):
    t.clear_child_tid = tidptr
    return t.tid


def sys_uname(t, buf, *_):
    k = t.kernel.cfg
    fields = (b"Linux", k.hostname.encode(), k.release.encode(),
              b"#1 SMP PREEMPT_DYNAMIC", b"x86_64", b"(none)")
    t.mem.write(buf, b"".join(f[:64].ljust(65, b"\0") for f in fields))
    return 0


def sys_prlimit64(t, pid, resource, new, old, *_):
    if pid not in (0, t.tgid):
        raise Errno(errno.ESRCH)
    if resource >= RLIM_NLIMITS:
        raise Errno(errno.EINVAL)
    limits = t.kernel.rlimits(t)
    if old:
        t.mem.write(old, struct.pack("<QQ", *limits[resource]))
    if new:
        soft, hard = struct.unpack("<QQ", t.mem.read(new, 16))
        if soft > hard:
            raise Errno(errno.EINVAL)
        if hard > limits[resource][1] and t.cred.euid != 0:
            raise Errno(errno.EPERM)
        limits[resource] = (soft, hard)
        if resource == RLIMIT_NOFILE:
            t.files.limit = min(soft, 1 << 20)
    return 0


def sys_getrlimit(t, resource, old, *_):
    return sys_prlimit64(t, 0, resource, 0, old)


def sys_setrlimit(t, resource, new, *_):
    return sys_prlimit64(t, 0, resource, new, 0)


def sys_prctl(t, option, arg2, *_):
    if option == PR_SET_NAME:
        t.comm = t.mem.read_cstr(arg2, 16)[:15]
        return 0
    if option == PR_GET_NAME:
        t.mem.write(arg2, t.comm.ljust(16, b"\0")[:16])
        return 0
    raise Errno(errno.EINVAL)


async def sys_execveat(t, dirfd, path_ptr, argv_ptr, envp_ptr, flags, *_):
    """execve of a path relative to dirfd, or of dirfd itself (AT_EMPTY_PATH,
    fexecve): the program is named by its guest path (Linux says /dev/fd/N)."""
    from services.kernel.fs import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, resolve
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    return await _execve(t, loc.path, argv_ptr, envp_ptr)


async def sys_execve(t, path_ptr, argv_ptr, envp_ptr, *_):
    return await _execve(t, t.mem.read_cstr(path_ptr), argv_ptr, envp_ptr)


async def _execve(t, path: bytes, argv_ptr: int, envp_ptr: int) -> Ops:
    argv = [t.mem.read_cstr(p, 128 << 10) for p in t.mem.read_ptrs(argv_ptr, MAX_ARGS)] \
        if argv_ptr else []
    envp = [t.mem.read_cstr(p, 128 << 10) for p in t.mem.read_ptrs(envp_ptr, MAX_ARGS)] \
        if envp_ptr else []
    return Ops(await execmod.execve(t, path, argv, envp))
