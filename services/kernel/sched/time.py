"""Sleeping, interval timers and the time accounting calls.

The guest's timers wait on the kernel's loop, never on the host: a sleep is
an ``asyncio.sleep`` the kernel cancels when a signal arrives, an
ITIMER_REAL (and ``alarm``) a loop timer that sends SIGALRM to the process.
A task's own CPU times come from its host thread's /proc entry; children's
from the host's wait4 of each ended thread (``exited``), added up as Linux
does: into the parent when it waits for the child."""
from __future__ import annotations

import asyncio
import errno
import os
import struct
import time as _time

from services.kernel.sched import signal
from services.kernel.abi.resource import RUSAGE_CHILDREN, RUSAGE_SELF, RUSAGE_THREAD
from services.kernel.abi.signal import SIGALRM, SIGPROF, SIGVTALRM, SI_KERNEL
from services.kernel.core.errors import Errno

TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
CLK_TCK = 100                       # USER_HZ: what times() and clock_t count
_HOST_TCK = os.sysconf("SC_CLK_TCK")
_TS = struct.Struct("<qq")          # timespec, timeval
_ITIMERVAL = struct.Struct("<qqqq")     # it_interval, it_value (timevals)
_TMS = struct.Struct("<qqqq")
_RUSAGE = struct.Struct("<qqqq14q")
_SYSINFO = struct.Struct("<q3Q6QH6x2QI4x")

BOOT = _time.monotonic()            # the kernel starts when the guest boots


def uptime() -> float:
    """Seconds since the guest booted."""
    return _time.monotonic() - BOOT


def _int(x: int) -> int:
    """An int argument (32 bits, signed)."""
    return ((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _timespec(t, addr: int) -> float:
    sec, nsec = _TS.unpack(t.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise Errno(errno.EINVAL)
    return sec + nsec / 1e9


def _pack_ts(seconds: float, unit: int = 1_000_000_000) -> tuple[int, int]:
    """(sec, nsec) or, with unit 1e6, (sec, usec); never negative."""
    n = max(0, round(seconds * unit))
    return n // unit, n % unit


async def _sleep(t, delay: float, rem: int) -> int:
    """Sleep on the loop; cut short by a signal, tell the guest how long was
    left (in rem, when given) and let the kernel's restart logic decide."""
    end = t.kernel.loop.time() + delay
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        if rem:
            try:
                t.mem.write(rem, _TS.pack(*_pack_ts(end - t.kernel.loop.time())))
            except (Errno, OSError):
                pass                   # the task is gone, or rem is bad
        raise
    return 0


async def sys_nanosleep(t, req, rem, *_):
    return await _sleep(t, _timespec(t, req), rem)


async def sys_clock_nanosleep(t, clock, flags, req, rem, *_):
    if clock not in (CLOCK_REALTIME, CLOCK_MONOTONIC, 7, 9):   # BOOTTIME, TAI
        raise Errno(errno.EINVAL)
    delay = _timespec(t, req)
    if flags & TIMER_ABSTIME:
        now = _time.clock_gettime(clock)
        return await _sleep(t, max(0.0, delay - now), 0)
    return await _sleep(t, delay, rem)


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
        signal.send_process(proc, _SIGNAL_OF[self.which], {"code": SI_KERNEL})


_SIGNAL_OF = {ITIMER_REAL: SIGALRM, ITIMER_VIRTUAL: SIGVTALRM, ITIMER_PROF: SIGPROF}


def _process_cpu(proc, system: bool) -> float:
    """The process's user (and system) seconds: /proc of any of its host
    threads shows the whole thread group's, ended threads included."""
    live = next((t for t in proc.threads.values() if t.host_pid), None)
    if live is None:
        return 0.0
    utime, stime, _, _ = _cpu_times(live)
    return utime + stime if system else utime


def _itimer(proc, which: int) -> ITimer:
    timers = proc.itimers
    if which not in timers:
        timers[which] = ITimer(proc, which)
    return timers[which]


def _put_itimerval(t, addr: int, timer: ITimer) -> None:
    t.mem.write(addr, _ITIMERVAL.pack(*_pack_ts(timer.interval, 1_000_000),
                                      *_pack_ts(timer.remaining(), 1_000_000)))


def _timeval(sec: int, usec: int) -> float:
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise Errno(errno.EINVAL)
    return sec + usec / 1e6


def sys_getitimer(t, which, value, *_):
    which = _int(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise Errno(errno.EINVAL)
    _put_itimerval(t, value, _itimer(t.process, which))
    return 0


def sys_setitimer(t, which, new, old, *_):
    which = _int(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        raise Errno(errno.EINVAL)
    isec, iusec, vsec, vusec = _ITIMERVAL.unpack(t.mem.read(new, 32)) if new else (0, 0, 0, 0)
    interval, value = _timeval(isec, iusec), _timeval(vsec, vusec)
    timer = _itimer(t.process, which)
    if old:
        _put_itimerval(t, old, timer)
    timer.set(value, interval)
    return 0


def sys_alarm(t, seconds, *_):
    timer = _itimer(t.process, ITIMER_REAL)
    left = timer.remaining() if timer.armed else 0.0
    timer.set(float(seconds & 0xFFFFFFFF), 0.0)
    if not left:
        return 0
    sec, usec = _pack_ts(left, 1_000_000)
    return max(1, sec + (usec >= 500_000))    # as Linux: rounded, never 0 if armed


# --- accounting --------------------------------------------------------------
def _host_stat(host_pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the comm (index 0 is field 3, state)."""
    try:
        with open(f"/proc/{host_pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
        return data[data.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return []


def _cpu_times(t) -> tuple[float, float, int, int]:
    """(utime, stime) seconds, minor and major faults of t's host process."""
    f = _host_stat(t.host_pid) if t.host_pid else []
    if len(f) < 13:
        return 0.0, 0.0, 0, 0
    return int(f[11]) / _HOST_TCK, int(f[12]) / _HOST_TCK, int(f[7]), int(f[9])


def _maxrss_kb(host_pid: int) -> int:
    try:
        with open(f"/proc/{host_pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _ticks(seconds: float) -> int:
    return int(seconds * CLK_TCK)


def pack_rusage(utime_us: int, stime_us: int, maxrss_kb: int, minflt: int,
                majflt: int) -> bytes:
    """struct rusage: the times, maxrss and faults (the rest Linux leaves 0 too)."""
    fields = [0] * 18
    fields[0:4] = (*divmod(utime_us, 1_000_000), *divmod(stime_us, 1_000_000))
    fields[4], fields[10], fields[11] = maxrss_kb, minflt, majflt
    return _RUSAGE.pack(*fields)


def sys_times(t, buf, *_):
    if buf:
        utime, stime, _, _ = _cpu_times(t)
        c = t.process.children_usage
        t.mem.write(buf, _TMS.pack(_ticks(utime), _ticks(stime), _ticks(c.utime_us / 1e6),
                                   _ticks(c.stime_us / 1e6)))
    return _ticks(uptime())


def sys_getrusage(t, who, buf, *_):
    who = _int(who)
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise Errno(errno.EINVAL)
    if who == RUSAGE_CHILDREN:
        t.mem.write(buf, pack_rusage(*t.process.children_usage.fields()))
        return 0
    utime, stime, minflt, majflt = _cpu_times(t)
    t.mem.write(buf, pack_rusage(round(utime * 1e6), round(stime * 1e6),
                                 _maxrss_kb(t.host_pid) if t.host_pid else 0, minflt, majflt))
    return 0


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                key, _, rest = line.decode().partition(":")
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def sys_sysinfo(t, buf, *_):
    m = _meminfo()
    t.mem.write(buf, _SYSINFO.pack(
        int(uptime()), 0, 0, 0,                               # no guest load averages
        m.get("MemTotal", 0), m.get("MemFree", 0), m.get("Shmem", 0), m.get("Buffers", 0),
        m.get("SwapTotal", 0), m.get("SwapFree", 0),
        min(len(t.kernel.tasks), 0xFFFF), 0, 0, 1))
    return 0
