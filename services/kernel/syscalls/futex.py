"""futex: the host's, for the guest's own memory.

Private futexes never trap (the filter allows them).  Shared ones trap and
run on the host too: a futex is keyed on memory the guest can reach anyway
(its own pages, or page-cache files only guests map), so nothing outside the
guest can be woken or waited on.  The priority-inheritance operations are
refused: they store the owner's tid in the futex word, and a host tid must
never reach guest memory."""
from __future__ import annotations

import errno

from common.syscalls import FUTEX_LOCAL_OPS
from services.kernel.core.errors import Errno
from services.kernel.core.answers import HOST

FUTEX_CMD_MASK = 0x7F      # without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
LOCAL_OPS = set(FUTEX_LOCAL_OPS.values())   # the policy's: the filter allows their private forms


def sys_futex(t, addr, op, *_):
    if op & FUTEX_CMD_MASK not in LOCAL_OPS:
        raise Errno(errno.ENOSYS)     # PI (LOCK_PI, TRYLOCK_PI, *REQUEUE_PI ...) and unknown
    return HOST
