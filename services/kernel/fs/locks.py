"""Advisory file locks: flock(2), POSIX record locks and open file
description (OFD) locks, as Linux's fs/locks.c keeps them.

In a nutshell: an inode that was ever locked has a ``FileLocks`` (Linux's
file_lock_context) in ``inode.locks``: the flock locks, each held by an
open file description, and the record locks, each a byte range held by an
owner.  A POSIX lock's owner is the fd table (Linux's files_struct: threads
that share it share its locks, a fork does not inherit them, and any close
of an fd for the inode in that table drops them, ``OpenFile.flush``); an OFD
lock's owner is the open file description, whose last close drops them
with its flock lock.  A waiter sleeps on the inode's wait queue and tries
again when any lock there goes; a signal ends the wait and leaves nothing
behind.  A POSIX waiter that would wait, through a chain of waiters, on
itself is EDEADLK, as Linux's posix_locks_deadlock.

Bounds: each owner holds at most ``OWNER_RECORDS`` records and the guest
``GUEST_RECORDS``; a lock past them is ENOLCK (Linux's answer when it cannot
allocate one), so a guest cannot grow the kernel by splitting ranges."""
from __future__ import annotations

import bisect
import errno
from dataclasses import dataclass
from typing import Any

from services.kernel.abi.fcntl import F_UNLCK, F_WRLCK, LOCK_EX, OFFSET_MAX
from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.core.waitqueue import WaitQueue

OWNER_RECORDS = 4096        # record locks one owner (a process, an OFD) may hold
GUEST_RECORDS = 1 << 16     # in the whole guest
DEADLOCK_STEPS = 10         # how far a chain of waiters is followed (Linux's MAX_DEADLK_ITERATIONS)
_records = 0                # held in the guest
_owned: dict[Any, int] = {}     # owner -> records it holds
_waiting_for: dict[Any, Any] = {}   # a POSIX owner asleep -> the owner whose lock it waits on


@dataclass
class Record:
    """A byte range start..end (inclusive; OFFSET_MAX is "to the end, and
    beyond"), read or write locked by owner; pid is what F_GETLK shows."""
    owner: Any
    start: int
    end: int
    type: int
    pid: int

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and start <= self.end


class FileLocks:
    """The locks of one inode."""

    def __init__(self) -> None:
        self.flocks: dict[Any, int] = {}     # open file description -> LOCK_SH or LOCK_EX
        # owner -> its records, apart and by start (so by end too); owners in
        # the order their first record came, as Linux's list keeps them
        self.records: dict[Any, list[Record]] = {}
        self.waitq = WaitQueue()

    @property
    def empty(self) -> bool:
        return not self.flocks and not self.records


def locks_of(inode: Any) -> FileLocks:
    if inode.locks is None:
        inode.locks = FileLocks()
    return inode.locks


def _forget_if_empty(inode: Any) -> None:
    if inode.locks is not None and inode.locks.empty:
        inode.locks = None


# --- flock ---------------------------------------------------------------------------
async def flock(inode: Any, desc: Any, kind: int, wait: bool) -> None:
    """Lock (LOCK_SH, LOCK_EX) for the description: a conversion drops the
    old lock first, as Linux's flock_lock_inode does (it is not atomic)."""
    ctx = locks_of(inode)
    if ctx.flocks.get(desc) == kind:
        return
    if ctx.flocks.pop(desc, None) is not None:
        ctx.waitq.wake()
    while any(other is not desc and (kind == LOCK_EX or held == LOCK_EX)
              for other, held in ctx.flocks.items()):
        if not wait:
            _forget_if_empty(inode)
            raise Errno(errno.EWOULDBLOCK)
        await ctx.waitq.wait()
        ctx = locks_of(inode)
    ctx.flocks[desc] = kind


def funlock(inode: Any, desc: Any) -> None:
    ctx = inode.locks
    if ctx is not None and ctx.flocks.pop(desc, None) is not None:
        ctx.waitq.wake()
        _forget_if_empty(inode)


# --- record locks ------------------------------------------------------------------------
def _start(r: Record) -> int:
    return r.start


def _end(r: Record) -> int:
    return r.end


def conflict(inode: Any, owner: Any, start: int, end: int, kind: int) -> Record | None:
    """The first record of another owner that a lock of kind over start..end
    would conflict with (F_GETLK's answer): each owner's found by bisection."""
    ctx = inode.locks
    if ctx is None:
        return None
    for other, recs in ctx.records.items():
        if other is owner:
            continue
        i = bisect.bisect_left(recs, start, key=_end)
        while i < len(recs) and recs[i].start <= end:
            if F_WRLCK in (kind, recs[i].type):
                return recs[i]
            i += 1
    return None


def _deadlocks(owner: Any, blocker: Any) -> bool:
    for _ in range(DEADLOCK_STEPS):
        if blocker is owner:
            return True
        blocker = _waiting_for.get(blocker)
        if blocker is None:
            return False
    return False


async def set_record(inode: Any, owner: Any, start: int, end: int, kind: int, pid: int, *,
                     wait: bool, posix: bool) -> None:
    """Lock (F_RDLCK, F_WRLCK) or unlock (F_UNLCK) start..end for owner:
    its own records there are replaced, split or merged, as Linux's
    posix_lock_inode.  A conflict is EAGAIN, or a wait (EDEADLK for a
    POSIX owner that would wait on itself)."""
    if kind != F_UNLCK:
        while (blocker := conflict(inode, owner, start, end, kind)) is not None:
            if not wait:
                raise Errno(errno.EAGAIN)
            if posix and _deadlocks(owner, blocker.owner):
                raise Errno(errno.EDEADLK)
            _waiting_for[owner] = blocker.owner
            try:
                await locks_of(inode).waitq.wait()
            finally:
                _waiting_for.pop(owner, None)
    elif inode.locks is None:
        return
    ctx = locks_of(inode)
    recs = ctx.records.get(owner, [])
    # the owner's records that overlap start..end or touch it
    lo = bisect.bisect_left(recs, start - (start > 0), key=_end)
    hi = bisect.bisect_right(recs, end + (end < OFFSET_MAX), key=_start)
    mine = recs[lo:hi]
    kept = _replace(mine, start, end, kind, pid, owner)
    _account(owner, len(kept) - len(mine))
    kept.sort(key=_start)
    recs[lo:hi] = kept
    if recs:
        ctx.records.setdefault(owner, recs)
    else:
        ctx.records.pop(owner, None)
    if kind != F_WRLCK or any(r.type == F_WRLCK for r in mine):
        ctx.waitq.wake()        # something was let go, or a write lock became a read one
    _forget_if_empty(inode)


def _replace(mine: list[Record], start: int, end: int, kind: int, pid: int,
             owner: Any) -> list[Record]:
    """An owner's records once start..end is kind: what lay under it cut
    away, and the new range joined to its neighbours of the same kind."""
    out = []
    for r in mine:
        touches = r.overlaps(start - (start > 0), end + (end < OFFSET_MAX))
        if r.type == kind and touches:        # same kind, overlapping or adjacent: one range
            start, end = min(start, r.start), max(end, r.end)
            continue
        if not r.overlaps(start, end):
            out.append(r)
            continue
        if r.start < start:
            out.append(Record(owner, r.start, start - 1, r.type, r.pid))
        if r.end > end:
            out.append(Record(owner, end + 1, r.end, r.type, r.pid))
    if kind != F_UNLCK:
        out.append(Record(owner, start, end, kind, pid))
    return out


def _account(owner: Any, more: int) -> None:
    """more records held by owner, or ENOLCK past a bound."""
    global _records
    held = _owned.get(owner, 0)
    if more > 0:
        if held + more > OWNER_RECORDS:
            raise refuse("record locks of one owner", OWNER_RECORDS, errno.ENOLCK)
        if _records + more > GUEST_RECORDS:
            raise refuse("record locks in the guest", GUEST_RECORDS, errno.ENOLCK)
    _records += more
    if held + more:
        _owned[owner] = held + more
    else:
        _owned.pop(owner, None)


def drop_records(inode: Any, owner: Any) -> None:
    """Every record owner holds on the inode goes (a close by the process,
    the last close of an OFD)."""
    ctx = inode.locks
    if ctx is None:
        return
    recs = ctx.records.pop(owner, None)
    if recs:
        _account(owner, -len(recs))
        ctx.waitq.wake()
        _forget_if_empty(inode)
