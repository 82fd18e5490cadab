"""Sleeping, interval timers and the time accounting calls.

The guest's timers wait on the kernel's loop, never on the host: a sleep is
an ``asyncio.sleep`` the kernel cancels when a signal arrives, an
ITIMER_REAL (and ``alarm``) a loop timer that sends SIGALRM to the process.
A task's own CPU times come from its host thread's /proc entry; children's
from the host's wait4 of each ended thread (``exited``), added up as Linux
does: into the parent when it waits for the child."""
from __future__ import annotations

import asyncio
import os
import struct
import time as _time

from services.kernel.sched import signals
from services.kernel.abi.signal import SIGALRM, SIGPROF, SIGVTALRM, SI_KERNEL
from services.kernel.abi.time import ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL

_HOST_TCK = os.sysconf("SC_CLK_TCK")
TS = struct.Struct("<qq")          # timespec, timeval
ITIMERVAL = struct.Struct("<qqqq")     # it_interval, it_value (timevals)
TMS = struct.Struct("<qqqq")
_RUSAGE = struct.Struct("<qqqq14q")
SYSINFO = struct.Struct("<q3Q6QH6x2QI4x")

BOOT = _time.monotonic()            # the kernel starts when the guest boots


def uptime() -> float:
    """Seconds since the guest booted."""
    return _time.monotonic() - BOOT


# --- interval timers ---------------------------------------------------------
class ITimer:
    """One of a process's interval timers.  ITIMER_REAL runs on the kernel's
    loop, re-armed from its last expiry (no drift).  The CPU-time ones
    (VIRTUAL: user time, SIGVTALRM; PROF: user and system, SIGPROF) count the
    host process's CPU time, read from /proc at most once per tick: a watch
    sleeps on the loop for what is left (the guest's CPU time cannot run
    faster than the clock on its one CPU), looks, and fires or sleeps again."""

    def __init__(self, proc, which: int):
        self.proc = proc
        self.which = which
        self.interval = 0.0
        self.expires: float | None = None    # loop time (REAL) or process CPU time of expiry
        self.handle: asyncio.TimerHandle | asyncio.Task | None = None

    @property
    def armed(self) -> bool:
        return self.expires is not None

    def remaining(self) -> float:
        if self.expires is None:
            return 0.0
        return max(self.expires - self._now(), 1e-6)   # armed: never 0

    def _now(self) -> float:
        if self.which == ITIMER_REAL:
            return self.proc.kernel.loop.time()
        return _process_cpu(self.proc, self.which == ITIMER_PROF)

    def set(self, value: float, interval: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = self.expires = None
        self.interval = interval if value else 0.0
        if value:
            self._arm(self._now() + value)

    def _arm(self, when: float) -> None:
        self.expires = when
        if self.which == ITIMER_REAL:
            self.handle = self.proc.kernel.loop.call_at(when, self._fire)
        else:
            self.handle = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (left := self.expires - self._now()) > 0:
            if self.proc.zombie or not self.proc.threads:
                return
            await asyncio.sleep(max(left, 1 / _HOST_TCK))
        self.handle = None
        self._fire()

    def _fire(self) -> None:
        last, self.handle, self.expires = self.expires, None, None
        proc = self.proc
        if proc.zombie or not proc.threads:
            return                             # timers end with their process
        if self.interval:
            self._arm(max(last + self.interval, self._now()))
        signals.send_process(proc, _SIGNAL_OF[self.which], {"code": SI_KERNEL})


_SIGNAL_OF = {ITIMER_REAL: SIGALRM, ITIMER_VIRTUAL: SIGVTALRM, ITIMER_PROF: SIGPROF}


def _process_cpu(proc, system: bool) -> float:
    """The process's user (and system) seconds: /proc of any of its host
    threads shows the whole thread group's, ended threads included."""
    live = next((t for t in proc.threads.values() if t.host_pid), None)
    if live is None:
        return 0.0
    utime, stime, _, _ = cpu_times(live)
    return utime + stime if system else utime


# --- accounting --------------------------------------------------------------
def _host_stat(host_pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the comm (index 0 is field 3, state)."""
    try:
        with open(f"/proc/{host_pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
        return data[data.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return []


def cpu_times(t) -> tuple[float, float, int, int]:
    """(utime, stime) seconds, minor and major faults of t's host process."""
    f = _host_stat(t.host_pid) if t.host_pid else []
    if len(f) < 13:
        return 0.0, 0.0, 0, 0
    return int(f[11]) / _HOST_TCK, int(f[12]) / _HOST_TCK, int(f[7]), int(f[9])


def pack_rusage(utime_us: int, stime_us: int, maxrss_kb: int, minflt: int,
                majflt: int) -> bytes:
    """struct rusage: the times, maxrss and faults (the rest Linux leaves 0 too)."""
    fields = [0] * 18
    fields[0:4] = (*divmod(utime_us, 1_000_000), *divmod(stime_us, 1_000_000))
    fields[4], fields[10], fields[11] = maxrss_kb, minflt, majflt
    return _RUSAGE.pack(*fields)


