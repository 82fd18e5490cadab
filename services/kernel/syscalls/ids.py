"""Process system calls: ids, process groups and sessions, uname, limits."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.resource import NR_OPEN, RLIM_NLIMITS, RLIMIT_NOFILE
from services.kernel.core.cred import PRCTLS, capable
from services.kernel.core.errors import Errno
from services.kernel.syscalls.cred import sys_prctl as cred_prctl
from services.kernel.abi.capability import CAP_SYS_RESOURCE
from services.kernel.abi.prctl import (
    PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_NO_NEW_PRIVS, PR_SET_DUMPABLE, PR_SET_NAME,
    PR_SET_NO_NEW_PRIVS, SUID_DUMP_DISABLE, SUID_DUMP_USER)

_RLIMIT = struct.Struct("<QQ")       # struct rlimit64: soft, hard



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
    proc.tty = None                          # a new session has no terminal yet
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


def _rlimit_target(t, pid: int):
    """The process whose limits prlimit64's pid names (0: the caller's; a
    thread's tid names its process), if the caller may read and set them
    (check_prlimit_permission): its own thread, or one whose real, effective
    and saved uids and gids are all the caller's real ones, or the caller
    has CAP_SYS_RESOURCE.  A zombie, whose credentials went with its last
    thread, is ESRCH (Linux still answers for it)."""
    pid &= 0xFFFFFFFF
    if pid == 0:
        return t.process
    target = t.kernel.tasks.get(pid)
    if target is None:
        proc = t.kernel.processes.get(pid)      # its leader is gone, other threads live
        target = next(iter(proc.threads.values()), None) if proc is not None else None
    if target is None:
        raise Errno(errno.ESRCH)
    c, tc = t.cred, target.cred
    if (target is not t and not (c.uid == tc.uid == tc.euid == tc.suid
                                 and c.gid == tc.gid == tc.egid == tc.sgid)
            and not capable(c, CAP_SYS_RESOURCE)):
        raise Errno(errno.EPERM)
    return target.process


def _prlimit(t, proc, resource: int, new: tuple[int, int] | None) -> tuple[int, int]:
    """Linux's do_prlimit: proc's limit of resource as it was, after setting
    new if given (raising a hard limit takes CAP_SYS_RESOURCE, and no fd
    limit goes past nr_open).  The limits are the process's, as Linux's
    signal_struct keeps them."""
    resource &= 0xFFFFFFFF
    if resource >= RLIM_NLIMITS:
        raise Errno(errno.EINVAL)
    was = proc.rlimits[resource]
    if new is not None:
        soft, hard = new
        if soft > hard:
            raise Errno(errno.EINVAL)
        if resource == RLIMIT_NOFILE and hard > NR_OPEN:
            raise Errno(errno.EPERM)
        if hard > was[1] and not capable(t.cred, CAP_SYS_RESOURCE):
            raise Errno(errno.EPERM)
        proc.rlimits[resource] = (soft, hard)
        if resource == RLIMIT_NOFILE:
            # an fd table bounds itself by this (a table shared by two
            # processes, CLONE_FILES without CLONE_THREAD, by the last set)
            for th in proc.threads.values():
                th.files.limit = soft
    return was


def sys_prlimit64(t, pid, resource, new, old, *_):
    limit = _RLIMIT.unpack(t.mem.read(new, 16)) if new else None
    was = _prlimit(t, _rlimit_target(t, pid), resource, limit)
    if old:
        t.mem.write(old, _RLIMIT.pack(*was))
    return 0


def sys_getrlimit(t, resource, old, *_):
    t.mem.write(old, _RLIMIT.pack(*_prlimit(t, t.process, resource, None)))
    return 0


def sys_setrlimit(t, resource, new, *_):
    _prlimit(t, t.process, resource, _RLIMIT.unpack(t.mem.read(new, 16)))
    return 0


def sys_prctl(t, option, arg2, arg3, arg4, arg5, *_):
    """The name, dumpability, no_new_privs (kernel/sys.c), and the
    capability prctls (syscalls/cred.py).  The option is an int."""
    option &= 0xFFFFFFFF
    if option in PRCTLS:
        return cred_prctl(t, option, arg2)
    if option == PR_SET_NAME:
        t.comm = t.mem.read_cstr(arg2, 16)[:15]
        return 0
    if option == PR_GET_NAME:
        t.mem.write(arg2, t.comm.ljust(16, b"\0")[:16])
        return 0
    if option == PR_GET_DUMPABLE:
        return t.process.dumpable
    if option == PR_SET_DUMPABLE:
        if arg2 not in (SUID_DUMP_DISABLE, SUID_DUMP_USER):
            raise Errno(errno.EINVAL)
        t.process.dumpable = arg2
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise Errno(errno.EINVAL)
        t.no_new_privs = True
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        if arg2 or arg3 or arg4 or arg5:
            raise Errno(errno.EINVAL)
        return int(t.no_new_privs)
    raise Errno(errno.EINVAL)
