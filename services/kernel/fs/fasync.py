"""Files that signal their readiness (Linux's fasync_struct lists,
fasync_helper and kill_fasync).

In a nutshell: an object whose readiness changes (a pipe's ends, a socket,
an inotify instance, the console) keeps a dict of the open files that asked
to be told (O_ASYNC by F_SETFL or FIOASYNC) with the fd each asked by; where
Linux calls kill_fasync, it calls ``kill_fasync`` with a POLL_* reason, and
each file's owner (sched/sigio.py) is signalled.  A file type that can do
this defines ``fasync(fd, on)`` with ``fasync_helper`` on its dict; the
others have none (F_SETFL drops O_ASYNC on them silently; FIOASYNC is
ENOTTY), as on Linux.  A dict with nobody in it costs a test per call."""
from __future__ import annotations

from typing import Any

from services.kernel.abi.fcntl import O_ASYNC


def fasync_helper(entries: dict, f: Any, fd: int, on: bool) -> None:
    """f joins (with the fd it asked by) or leaves entries, and its O_ASYNC says so."""
    if on:
        entries[f] = fd
        f.flags |= O_ASYNC
    else:
        entries.pop(f, None)
        f.flags &= ~O_ASYNC


def kill_fasync(entries: dict, reason: int) -> None:
    """The object is ready for reason: each file that asked signals its owner."""
    if entries:
        for f, fd in list(entries.items()):
            if f.owner is not None:
                f.owner.send(fd, reason)
