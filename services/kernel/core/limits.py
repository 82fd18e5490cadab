"""Per-guest bounds: what reaching one looks like.

A call refused by a bound (max_tasks, RLIMIT_NPROC, RLIMIT_NOFILE ...) gets
its Linux errno, and the kernel's log a line naming the bound.  Only the
1st, 2nd, 4th, 8th ... refusal of each bound is logged, so that a guest
hammering one (a fork bomb) cannot fill the run directory with log."""
from __future__ import annotations

import errno
import logging

from services.kernel.core.errors import Errno

log = logging.getLogger("kernel")
_refusals: dict[str, int] = {}


def refuse(bound: str, value: int, code: int) -> Errno:
    """The error for a call refused by bound (whose value is value), logged."""
    n = _refusals[bound] = _refusals.get(bound, 0) + 1
    if n & (n - 1) == 0:
        log.warning("%s (%d) reached: %s (refusal %d)", bound, value, errno.errorcode[code], n)
    return Errno(code)
