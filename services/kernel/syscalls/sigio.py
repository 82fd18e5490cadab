"""fcntl's owner and signal commands (F_SETOWN, F_GETOWN, their _EX forms,
F_SETSIG, F_GETSIG), F_NOTIFY, and O_ASYNC by F_SETFL or FIOASYNC, as
Linux's fs/fcntl.c and fs/ioctl.c.  The owner is sched/sigio.py's, the
files that signal are fs/fasync.py's, dnotify is fs/dnotify.py's."""
from __future__ import annotations

import errno
import stat as S
import struct

from services.kernel.abi.fcntl import (
    F_GETOWN, F_GETOWN_EX, F_GETSIG, F_NOTIFY, F_OWNER_PGRP, F_OWNER_PID, F_OWNER_TID, F_SETOWN,
    F_SETOWN_EX, F_SETSIG, DN_MULTISHOT, O_ASYNC)
from services.kernel.abi.signal import NSIG
from services.kernel.core.errors import Errno
from services.kernel.fs import dnotify
from services.kernel.fs.files import c_int
from services.kernel.sched.sigio import PIDTYPE_PGID, PIDTYPE_TGID, PIDTYPE_PID, Owner

OWNER_EX = struct.Struct("<ii")           # struct f_owner_ex: type, pid
KINDS = {F_OWNER_TID: PIDTYPE_PID, F_OWNER_PID: PIDTYPE_TGID, F_OWNER_PGRP: PIDTYPE_PGID}
TYPES = {kind: type_ for type_, kind in KINDS.items()}
OWNER_CMDS = (F_SETOWN, F_GETOWN, F_SETOWN_EX, F_GETOWN_EX, F_SETSIG, F_GETSIG, F_NOTIFY)


def _owner(t, f) -> Owner:
    if f.owner is None:
        f.owner = Owner(t.kernel)
    return f.owner


def owner_fcntl(t, fd: int, f, cmd: int, arg: int) -> int:
    if cmd == F_SETOWN:
        who = c_int(arg)
        if who == -(1 << 31):
            raise Errno(errno.EINVAL)
        _owner(t, f).set(t, PIDTYPE_PGID if who < 0 else PIDTYPE_TGID, abs(who))
        return 0
    if cmd == F_GETOWN:
        if f.owner is None:
            return 0
        number = f.owner.number()
        return -number if f.owner.kind == PIDTYPE_PGID else number
    if cmd == F_SETOWN_EX:
        type_, pid = OWNER_EX.unpack(t.mem.read(arg, OWNER_EX.size))
        if type_ not in KINDS:
            raise Errno(errno.EINVAL)
        if pid < 0:               # find_vpid finds no negative pid
            raise Errno(errno.ESRCH)
        _owner(t, f).set(t, KINDS[type_], pid)
        return 0
    if cmd == F_GETOWN_EX:
        owner = f.owner
        t.mem.write(arg, OWNER_EX.pack(TYPES[owner.kind], owner.number()) if owner is not None
                    else OWNER_EX.pack(F_OWNER_TID, 0))
        return 0
    if cmd == F_SETSIG:
        sig = c_int(arg)
        if not 0 <= sig <= NSIG:
            raise Errno(errno.EINVAL)
        _owner(t, f).signum = sig
        return 0
    if cmd == F_GETSIG:
        return f.owner.signum if f.owner is not None else 0
    return _notify(t, fd, f, arg & 0xFFFFFFFF)     # an unsigned int to Linux


def _notify(t, fd: int, f, arg: int) -> int:
    """F_NOTIFY: a watch on a directory (none, with no events: DN_MULTISHOT
    alone stops it); its owner becomes the caller's process unless it has one."""
    inode = f.loc.inode if f.loc is not None else None
    if inode is None:                     # a pipe, a socket ...: never a directory
        if arg & ~DN_MULTISHOT:
            raise Errno(errno.ENOTDIR)
        return 0
    if arg & ~DN_MULTISHOT and S.S_ISDIR(inode.mode):
        _owner(t, f).set(t, PIDTYPE_TGID, t.tgid, force=False)
    dnotify.notify(inode, f, t.files, fd, arg)
    return 0


def set_async(f, fd: int, on: bool, ioctl: bool) -> None:
    """O_ASYNC on (with fd as si_fd) or off, if it changes: the file's
    fasync sets it; a file without one ignores it in F_SETFL, as Linux
    does, and refuses FIOASYNC (ENOTTY)."""
    if bool(f.flags & O_ASYNC) == on:
        return
    if f.fasync is not None:
        f.fasync(fd, on)
    elif ioctl:
        raise Errno(errno.ENOTTY)
