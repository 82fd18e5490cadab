"""What an AF_UNIX message carries besides its bytes (Linux's scm_cookie):
the sender's credentials and open files in flight (SCM_RIGHTS).

Files in flight are held by the message, not by any fd table, so a guest
could park any number of them in queues nobody reads, or in a loop of
sockets that hold each other.  They are counted as Linux counts them: per
sending user against its RLIMIT_NOFILE (unless it has CAP_SYS_RESOURCE or
CAP_SYS_ADMIN), and, here, against one bound for the whole guest that no
capability lifts; past either, sendmsg is ETOOMANYREFS."""
from __future__ import annotations

import errno
from typing import NamedTuple

from services.kernel.core.limits import refuse
from services.kernel.fs.files import hold, put

GUEST_INFLIGHT = 1 << 16       # files in flight in all the guest's sockets
_inflight_total = 0
_inflight_by_user: dict[int, int] = {}


class Creds(NamedTuple):
    """struct ucred: a guest pid (a tgid), a uid and a gid."""
    pid: int
    uid: int
    gid: int


NO_CREDS = Creds(0, 0xFFFFFFFF, 0xFFFFFFFF)    # SO_PEERCRED of a socket with no peer


class Rights:
    """The open files one message carries, held until received or dropped."""

    def __init__(self, files: list, uid: int, limit: int | None):
        """files sent by user uid, whose in-flight count may not pass limit
        (None: privileged)."""
        global _inflight_total
        n = len(files)
        mine = _inflight_by_user.get(uid, 0)
        if limit is not None and mine > limit:         # Linux's too_many_unix_fds
            raise refuse("RLIMIT_NOFILE on files in flight", limit, errno.ETOOMANYREFS)
        if _inflight_total + n > GUEST_INFLIGHT:
            raise refuse("files in flight in the guest", GUEST_INFLIGHT, errno.ETOOMANYREFS)
        _inflight_by_user[uid] = mine + n
        _inflight_total += n
        self.uid = uid
        self.files = [hold(f) for f in files]

    def take(self) -> list:
        """The files, for the receiver to install (it owns their references now)."""
        files, self.files = self.files, []
        self._uncount(len(files))
        return files

    def copies(self) -> list:
        """New references to the files (MSG_PEEK leaves the message as it is)."""
        return [hold(f) for f in self.files]

    def drop(self) -> None:
        """The message is gone unreceived: its files are let go."""
        for f in self.take():
            put(f)

    def _uncount(self, n: int) -> None:
        global _inflight_total
        _inflight_total -= n
        left = _inflight_by_user[self.uid] - n
        if left:
            _inflight_by_user[self.uid] = left
        else:
            del _inflight_by_user[self.uid]


def creds_of(task) -> Creds:
    """What a task's messages carry: its guest pid, real uid and real gid."""
    return Creds(task.tgid, task.cred.uid, task.cred.gid)
