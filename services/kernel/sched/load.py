"""The guest's CPUs and how busy they are: what /proc/stat, /proc/uptime,
/proc/loadavg, sysinfo(2) and /sys/devices/system/cpu show.

The guest's CPUs are the host CPUs its processes may run on (the services
are pinned, and the guest's processes with them: common/transport.py),
numbered from 0 as the guest's own.  Busy time is the guest processes'
CPU time (their host /proc/PID/stat, and what their waited-for children
used); idle is the rest of the CPUs' time since boot.  Never the host's
figures: its other processes' time, its CPU count, its load.

Load averages are Linux's exponentially decaying averages of the run queue
(runnable tasks), sampled when someone asks rather than by a timer every
5 seconds: the guest has no tick, and the run queue between two looks is
taken as what the later look found."""
from __future__ import annotations

import math
import time
from typing import Any

from services.kernel.sched.cpus import guest_cpus
from services.kernel.sched.timers import cpu_times, uptime

LOAD_PERIODS = (60.0, 300.0, 900.0)      # the 1, 5 and 15 minute averages
LOAD_SAMPLE = 5.0                        # Linux's LOAD_FREQ: seconds between samples


def is_running(t: Any, asking: Any) -> bool:
    """Whether t is on the run queue: out of the kernel, or in a call that
    does not wait (the caller asking is running)."""
    if t is None or t.process.zombie:
        return False
    return t is asking or t.flight.call is None or t.flight.call.done()


def run_queue(kernel: Any, asking: Any) -> tuple[int, int]:
    """(runnable threads, all threads) of the guest."""
    tasks = list(kernel.tasks.values())
    return sum(1 for t in tasks if is_running(t, asking)), len(tasks)


class LoadAverage:
    """Linux's avenrun: each sample moves every average toward the run
    queue's length by 1 - e^(-interval/period)."""

    def __init__(self) -> None:
        self.averages = [0.0, 0.0, 0.0]
        self.sampled = time.monotonic()

    def sample(self, running: int) -> list[float]:
        """The averages now, with the run queue found to be running since the
        last sample (nothing is moved before LOAD_SAMPLE seconds have passed,
        as Linux's)."""
        now = time.monotonic()
        elapsed = now - self.sampled
        if elapsed >= LOAD_SAMPLE:
            self.averages = [running + (a - running) * math.exp(-elapsed / period)
                             for a, period in zip(self.averages, LOAD_PERIODS)]
            self.sampled = now
        return self.averages


def busy_seconds(kernel: Any) -> tuple[float, float]:
    """(user, system) CPU seconds the guest's processes have used since
    boot: each process's own (its host thread group's while it has a live
    thread, its ended threads' once it is a zombie) and those of the
    children it waited for (which hold theirs in turn), so each ended
    process counts once."""
    user = system = 0.0
    for proc in list(kernel.processes.values()):
        live = next((t for t in proc.threads.values() if t.host_pid), None)
        if live is not None:
            u, s, _, _ = cpu_times(live)
        else:
            u, s = proc.usage.utime_us / 1e6, proc.usage.stime_us / 1e6
        user += u + proc.children_usage.utime_us / 1e6
        system += s + proc.children_usage.stime_us / 1e6
    return user, system


def cpu_seconds(kernel: Any) -> tuple[float, float, float]:
    """(user, system, idle) seconds of all the guest's CPUs since boot."""
    user, system = busy_seconds(kernel)
    idle = max(0.0, uptime() * guest_cpus() - user - system)
    return user, system, idle
