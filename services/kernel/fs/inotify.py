"""inotify instances: an open file that reads as the queue of events its
watches heard (fs/fsnotify.py says where events come from).

In a nutshell: a ``Watch`` ties an instance to an inode (one per inode and
instance: adding a watch again for the same inode gives the same wd), with
the events it wants.  An event is queued as the bytes of its struct
inotify_event (its name NUL-padded to 16 bytes), unless it is the same as
the last one queued (Linux merges those).  Bounds, as Linux's
/proc/sys/fs/inotify: MAX_QUEUED_EVENTS events queued (then one
IN_Q_OVERFLOW), WATCHES per instance (ENOSPC past it, as max_user_watches)
and MAX_USER_INSTANCES instances per user (EMFILE)."""
from __future__ import annotations

import errno
import struct
from collections import deque
from typing import Any

from services.kernel.abi.fcntl import O_NONBLOCK
from services.kernel.abi.inotify import (
    IN_ALL_EVENTS, IN_IGNORED, IN_ISDIR, IN_MASK_ADD, IN_ONESHOT, IN_Q_OVERFLOW, MAX_QUEUED_EVENTS,
    MAX_USER_INSTANCES)
from services.kernel.abi.ioctls import FIONREAD
from services.kernel.abi.poll import POLLIN, POLLRDNORM
from services.kernel.abi.signal import POLL_IN
from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.core.waitqueue import WaitQueue
from services.kernel.fs import fsnotify
from services.kernel.fs.fasync import fasync_helper, kill_fasync
from services.kernel.fs.poll import AnonFile

EVENT = struct.Struct("<iIII")      # wd, mask, cookie, len
WATCHES = 8192                      # per instance (Linux's max_user_watches is per user)
OVERFLOW = EVENT.pack(-1, IN_Q_OVERFLOW, 0, 0)
_instances: dict[int, int] = {}     # uid -> inotify instances open


class Watch:
    __slots__ = ("wd", "inode", "mask", "instance")

    def __init__(self, wd: int, inode: Any, mask: int, instance: Inotify):
        self.wd, self.inode, self.mask, self.instance = wd, inode, mask, instance

    def deliver(self, mask: int, name: bytes, cookie: int) -> None:
        if mask & self.mask & IN_ALL_EVENTS:
            self.instance.queue(self.wd, mask & (IN_ALL_EVENTS | IN_ISDIR), cookie, name)
            if self.mask & IN_ONESHOT:
                self.end()

    def end(self) -> None:
        """Its inode is gone, or it was one-shot: IN_IGNORED."""
        self.instance.drop(self)


class Inotify(AnonFile):
    link_name = b"anon_inode:inotify"

    def __init__(self, flags: int, uid: int):
        if _instances.get(uid, 0) >= MAX_USER_INSTANCES:
            raise refuse("inotify instances of a user", MAX_USER_INSTANCES, errno.EMFILE)
        super().__init__(None, flags & O_NONBLOCK)
        _instances[uid] = _instances.get(uid, 0) + 1
        self.uid = uid
        self.watches: dict[int, Watch] = {}        # wd -> watch
        self.by_inode: dict[int, Watch] = {}       # id(inode) -> watch (the watch holds the inode)
        self.next_wd = 1
        self.events: deque[bytes] = deque()
        self.queued = 0                            # bytes in events
        self.waitq = WaitQueue()
        self.fasync_files: dict = {}               # itself, with O_ASYNC (fs/fasync.py)

    # --- watches --------------------------------------------------------------------
    def add(self, inode: Any, mask: int) -> int:
        """Watch inode for mask's events (added to what it had with
        IN_MASK_ADD); its wd, the same for the same inode."""
        w = self.by_inode.get(id(inode))
        if w is not None:
            w.mask = (w.mask | mask if mask & IN_MASK_ADD else mask) & ~IN_MASK_ADD
            return w.wd
        if len(self.watches) >= WATCHES:
            raise refuse("inotify watches of an instance", WATCHES, errno.ENOSPC)
        w = Watch(self.next_wd, inode, mask & ~IN_MASK_ADD, self)
        self.next_wd += 1
        self.watches[w.wd] = self.by_inode[id(inode)] = w
        if inode.watches is None:
            inode.watches = {}
        inode.watches[w] = None
        fsnotify.watching += 1
        return w.wd

    def _forget(self, w: Watch) -> None:
        del self.watches[w.wd], self.by_inode[id(w.inode)]
        w.inode.watches.pop(w, None)
        if not w.inode.watches:
            w.inode.watches = None
        fsnotify.watching -= 1

    def drop(self, w: Watch) -> None:
        """The watch ends (inotify_rm_watch, its inode gone, IN_ONESHOT): IN_IGNORED."""
        if self.watches.get(w.wd) is w:
            self._forget(w)
            self.queue(w.wd, IN_IGNORED, 0, b"")

    def remove(self, wd: int) -> None:
        w = self.watches.get(wd)
        if w is None:
            raise Errno(errno.EINVAL)
        self.drop(w)

    def release(self) -> None:
        for w in list(self.watches.values()):
            self._forget(w)
        self.events.clear()
        _instances[self.uid] -= 1
        if not _instances[self.uid]:
            del _instances[self.uid]

    # --- the queue ---------------------------------------------------------------------
    def queue(self, wd: int, mask: int, cookie: int, name: bytes) -> None:
        if name:
            name = name.ljust((len(name) + 1 + 15) & ~15, b"\0")
        event = EVENT.pack(wd, mask, cookie, len(name)) + name
        events = self.events
        if events and events[-1] == event:
            return                    # the same as the last: merged, as Linux's inotify_merge
        if len(events) >= MAX_QUEUED_EVENTS:
            if events[-1] == OVERFLOW:
                return
            event = OVERFLOW
        events.append(event)
        self.queued += len(event)
        self.waitq.wake(POLLIN)
        kill_fasync(self.fasync_files, POLL_IN)

    def fasync(self, fd: int, on: bool) -> None:
        fasync_helper(self.fasync_files, self, fd, on)

    def poll(self, table=None) -> int:
        if table is not None:
            table.add(self.waitq)
        return POLLIN | POLLRDNORM if self.events else 0

    async def read(self, count: int, offset: int | None = None) -> bytes:
        """Whole events, as many as fit; EINVAL if the first does not."""
        while not self.events:
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(POLLIN)
        out = bytearray()
        events = self.events
        while events and len(out) + len(events[0]) <= count:
            event = events.popleft()
            self.queued -= len(event)
            out += event
        if not out:
            raise Errno(errno.EINVAL)
        return bytes(out)

    def ioctl(self, task: Any, request: int, arg: int) -> int:
        if request != FIONREAD:
            raise Errno(errno.ENOTTY)
        task.mem.write(arg, struct.pack("<i", self.queued))
        return 0
