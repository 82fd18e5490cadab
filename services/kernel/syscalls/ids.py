"""Process system calls: ids, process groups and sessions, uname, limits."""
from __future__ import annotations

import errno
import struct

from services.kernel.core.cred import CAP_SYS_RESOURCE, PRCTLS, capable
from services.kernel.syscalls.cred import sys_prctl as cred_prctl
from services.kernel.core.errors import Errno
from services.kernel.abi.resource import RLIM_NLIMITS, RLIMIT_NOFILE

PR_SET_NAME, PR_GET_NAME = 15, 16


def sys_getpid(t, *_):
    return t.tgid


def sys_gettid(t, *_):
    return t.tid


def sys_getppid(t, *_):
    return t.ppid


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
        if hard > limits[resource][1] and not capable(t.cred, CAP_SYS_RESOURCE):
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
    if option in PRCTLS:
        return cred_prctl(t, option, arg2)
    if option == PR_SET_NAME:
        t.comm = t.mem.read_cstr(arg2, 16)[:15]
        return 0
    if option == PR_GET_NAME:
        t.mem.write(arg2, t.comm.ljust(16, b"\0")[:16])
        return 0
    raise Errno(errno.EINVAL)
