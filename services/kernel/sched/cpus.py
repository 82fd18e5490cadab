"""The guest's CPUs: the host CPUs the kernel (pinned with the guest's
processes) may run on, numbered from 0 as the guest's own.  Affinity,
getcpu, /proc and /sys all count them here."""
from __future__ import annotations

import os


def guest_cpus() -> int:
    """How many CPUs the guest has: the host CPUs the kernel (pinned with
    the guest's processes) may run on."""
    return len(os.sched_getaffinity(0))


def host_cpus() -> list[int]:
    """The host CPUs behind the guest's CPUs 0, 1, ...: guest CPU n is the
    n-th of them."""
    return sorted(os.sched_getaffinity(0))


def all_cpus() -> int:
    """The mask of every guest CPU."""
    return (1 << guest_cpus()) - 1


def cpu_range(n: int) -> str:
    """The first n CPUs as Linux lists them ("0-3")."""
    return "0" if n == 1 else f"0-{n - 1}"


def cpu_mask(n: int) -> str:
    """The first n CPUs as Linux's %*pb prints a bitmap: hex, in 32-bit
    groups separated by commas."""
    digits = f"{(1 << n) - 1:x}".zfill(-(-n // 4))
    groups = []
    while digits:
        groups.insert(0, digits[-8:])
        digits = digits[:-8]
    return ",".join(groups)
