"""futex: the host's, for the guest's own memory.

Private futexes never trap (the filter allows them).  Shared ones trap and
run on the host too: a futex is keyed on memory the guest can reach anyway
(its own pages, or page-cache files only guests map), so nothing outside the
guest can be woken or waited on.  The priority-inheritance operations are
refused: they store the owner's tid in the futex word, and a host tid must
never reach guest memory."""
from __future__ import annotations

import errno

from services.kernel.core.errors import Errno
from services.kernel.core.answers import HOST

FUTEX_CMD_MASK = 0x7F      # without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
# WAIT WAKE REQUEUE CMP_REQUEUE WAKE_OP WAIT_BITSET WAKE_BITSET: by value, as
# the filter allows their private forms (services/userspace/seccomp.py).
LOCAL_OPS = {0, 1, 3, 4, 5, 9, 10}


def sys_futex(t, addr, op, *_):
    if op & FUTEX_CMD_MASK not in LOCAL_OPS:
        raise Errno(errno.ENOSYS)     # PI (LOCK_PI, TRYLOCK_PI, *REQUEUE_PI ...) and unknown
    return HOST
