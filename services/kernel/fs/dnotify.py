"""dnotify (Linux's fs/notify/dnotify): fcntl(F_NOTIFY) on a directory,
and a signal to the file's owner when its entries change.

In a nutshell: a ``DirWatch`` is Linux's dnotify_struct: an open directory,
the fd table that asked (and the fd it asked by, the signal's si_fd), and
the FS_* events wanted.  It sits in the directory inode's watches next to
inotify's (fs/fsnotify.py routes events to both, and does nothing while the
guest watches nothing).  On an event it wants, the file's owner is sent
POLL_MSG (sched/sigio.py); without DN_MULTISHOT the watch then ends.  Asking
again by the same table and file adds to the events; a close of the file by
that table (any of its fds) ends the watch, as Linux's dnotify_flush.  The
guest's watches are bounded by DNOTIFY_WATCHES (ENOMEM past it): each
costs the kernel memory, and a guest could make one per fd of every table."""
from __future__ import annotations

import errno
import stat as S
from typing import Any

from services.kernel.abi.fcntl import (
    DN_ACCESS, DN_ATTRIB, DN_CREATE, DN_DELETE, DN_MODIFY, DN_MULTISHOT, DN_RENAME)
from services.kernel.abi.inotify import (
    FS_RENAME, IN_ACCESS, IN_ATTRIB, IN_CREATE, IN_DELETE, IN_MODIFY, IN_MOVED_FROM,
    IN_MOVED_TO)
from services.kernel.abi.signal import POLL_MSG
from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.fs import fsnotify

DNOTIFY_WATCHES = 8192          # in the guest
# the FS_* events each DN_* asks for (Linux's convert_arg)
DN_EVENTS = {DN_ACCESS: IN_ACCESS, DN_MODIFY: IN_MODIFY, DN_ATTRIB: IN_ATTRIB,
             DN_RENAME: FS_RENAME, DN_CREATE: IN_CREATE | IN_MOVED_TO,
             DN_DELETE: IN_DELETE | IN_MOVED_FROM}
_watches = 0


class DirWatch:
    __slots__ = ("inode", "file", "table", "fd", "mask", "multishot")

    def __init__(self, inode: Any, f: Any, table: Any, fd: int):
        self.inode, self.file, self.table, self.fd = inode, f, table, fd
        self.mask, self.multishot = 0, False

    def deliver(self, mask: int, name: bytes, cookie: int) -> None:
        if mask & self.mask:
            if self.file.owner is not None:
                self.file.owner.send(self.fd, POLL_MSG)
            if not self.multishot:
                self.end()

    def end(self) -> None:
        global _watches
        watches = self.inode.watches
        if watches is not None and self in watches:
            del watches[self]
            if not watches:
                self.inode.watches = None
            fsnotify.watching -= 1
            _watches -= 1


def _find(inode: Any, f: Any, table: Any) -> DirWatch | None:
    for w in inode.watches or ():
        if isinstance(w, DirWatch) and w.file is f and w.table is table:
            return w
    return None


def notify(inode: Any, f: Any, table: Any, fd: int, arg: int) -> None:
    """F_NOTIFY by table's fd on f, open on inode: watch for arg's events,
    or, with none (DN_MULTISHOT aside), stop; ENOTDIR on anything but a
    directory.  The caller has made the file's owner its process if it had
    none."""
    global _watches
    if not arg & ~DN_MULTISHOT:
        flush(inode, f, table)
        return
    if not S.S_ISDIR(inode.mode):
        raise Errno(errno.ENOTDIR)
    w = _find(inode, f, table)
    if w is None:
        if _watches >= DNOTIFY_WATCHES:
            raise refuse("dnotify watches in the guest", DNOTIFY_WATCHES, errno.ENOMEM)
        w = DirWatch(inode, f, table, fd)
        if inode.watches is None:
            inode.watches = {}
        inode.watches[w] = None
        fsnotify.watching += 1
        _watches += 1
    w.fd = fd
    w.mask |= sum(events for bit, events in DN_EVENTS.items() if arg & bit)
    w.multishot = w.multishot or bool(arg & DN_MULTISHOT)


def flush(inode: Any, f: Any, table: Any) -> None:
    """table closed an fd of f (or asked to stop): its watch ends."""
    if S.S_ISDIR(inode.mode):
        w = _find(inode, f, table)
        if w is not None:
            w.end()
