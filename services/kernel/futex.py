"""futex: the host's, for the guest's own memory.

Private futexes never trap (the filter allows them).  Shared ones trap and
run on the host too: a futex is keyed on memory the guest can reach anyway
(its own pages, or page-cache files only guests map), so nothing outside the
guest can be woken or waited on.  The priority-inheritance operations are
refused: they store the owner's tid in the futex word, and a host tid must
never reach guest memory."""
from __future__ import annotations

import errno

from services.kernel.errors import Errno
from services.kernel.proc import HOST

FUTEX_CMD_MASK = 0x7F      # without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
PI_OPS = {6, 7, 8, 11, 12, 13}   # LOCK_PI UNLOCK_PI TRYLOCK_PI WAIT_REQUEUE_PI CMP_REQUEUE_PI LOCK_PI2


def sys_futex(t, addr, op, *_):
    if op & FUTEX_CMD_MASK in PI_OPS:
        raise Errno(errno.ENOSYS)
    return HOST
