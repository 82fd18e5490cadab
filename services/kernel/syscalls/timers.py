"""Sleeps, interval timers and resource usage: the calls (services/kernel/sched/timers.py)."""
from __future__ import annotations

import asyncio
import errno
import time as _time

from services.kernel.abi.resource import RUSAGE_CHILDREN, RUSAGE_SELF, RUSAGE_THREAD
from services.kernel.abi.sysinfo import SI_LOAD_SHIFT
from services.kernel.core.errors import Errno
from services.kernel.mm.meminfo import memory_use
from services.kernel.sched.load import run_queue
from services.kernel.sched.timers import (
    ITIMERVAL, SYSINFO, TMS, TS, ITimer, cpu_times, pack_rusage, uptime)
from services.kernel.sched.timerfd import (
    ALARM_CLOCKS, CLOCKS, ITIMERSPEC, TimerFd, pack_itimerspec, unpack_itimerspec)
from services.kernel.core.cred import capable
from services.kernel.abi.capability import CAP_WAKE_ALARM
from services.kernel.abi.time import (
    CLK_TCK, CLOCK_MONOTONIC, CLOCK_REALTIME, ITIMER_PROF, ITIMER_REAL, ITIMER_VIRTUAL,
    TFD_CLOEXEC, TFD_NONBLOCK, TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET, TIMER_ABSTIME)


def _int(x: int) -> int:
    """An int argument (32 bits, signed)."""
    return ((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _timespec(t, addr: int) -> float:
    sec, nsec = TS.unpack(t.mem.read(addr, 16))
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
                t.mem.write(rem, TS.pack(*_pack_ts(end - t.kernel.loop.time())))
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


def _itimer(proc, which: int) -> ITimer:
    timers = proc.itimers
    if which not in timers:
        timers[which] = ITimer(proc, which)
    return timers[which]


def _put_itimerval(t, addr: int, timer: ITimer) -> None:
    t.mem.write(addr, ITIMERVAL.pack(*_pack_ts(timer.interval, 1_000_000),
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
    isec, iusec, vsec, vusec = ITIMERVAL.unpack(t.mem.read(new, 32)) if new else (0, 0, 0, 0)
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


def sys_times(t, buf, *_):
    if buf:
        utime, stime, _, _ = cpu_times(t)
        c = t.process.children_usage
        t.mem.write(buf, TMS.pack(_ticks(utime), _ticks(stime), _ticks(c.utime_us / 1e6),
                                   _ticks(c.stime_us / 1e6)))
    return _ticks(uptime())


def sys_getrusage(t, who, buf, *_):
    who = _int(who)
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise Errno(errno.EINVAL)
    if who == RUSAGE_CHILDREN:
        t.mem.write(buf, pack_rusage(*t.process.children_usage.fields()))
        return 0
    utime, stime, minflt, majflt = cpu_times(t)
    t.mem.write(buf, pack_rusage(round(utime * 1e6), round(stime * 1e6),
                                 _maxrss_kb(t.host_pid) if t.host_pid else 0, minflt, majflt))
    return 0


def sys_sysinfo(t, buf, *_):
    """The guest's memory and load (mm/meminfo.py, sched/load.py), as
    /proc/meminfo and /proc/loadavg show them; loads in 1/65536ths."""
    k = t.kernel
    use = memory_use(k)
    running, threads = run_queue(k, t)
    loads = [round(a * (1 << SI_LOAD_SHIFT)) for a in k.load.sample(running)]
    t.mem.write(buf, SYSINFO.pack(
        int(uptime()), *loads, use.total, use.free, use.shmem, use.buffers, 0, 0,
        min(threads, 0xFFFF), 0, 0, 1))
    return 0


# --- timerfd (services/kernel/sched/timerfd.py) ----------------------------------
def sys_timerfd_create(t, clock, flags, *_):
    clock, flags = _int(clock), _int(flags)
    if flags & ~(TFD_CLOEXEC | TFD_NONBLOCK) or clock not in CLOCKS:
        raise Errno(errno.EINVAL)
    if clock in ALARM_CLOCKS and not capable(t.cred, CAP_WAKE_ALARM):
        raise Errno(errno.EPERM)
    return t.files.install(TimerFd(t.kernel.loop, clock, flags),
                           cloexec=bool(flags & TFD_CLOEXEC))


def _timerfd(t, fd: int) -> TimerFd:
    f = t.files.get(_int(fd))
    if not isinstance(f, TimerFd):
        raise Errno(errno.EINVAL)
    return f


def sys_timerfd_settime(t, fd, flags, new, old, *_):
    """Linux's order: the new value read (EFAULT), the flags and the value
    checked (EINVAL), the file (EBADF, EINVAL); the old value written last
    (EFAULT then, with the timer set)."""
    interval, value = unpack_itimerspec(t.mem.read(new, ITIMERSPEC.size))
    if _int(flags) & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise Errno(errno.EINVAL)
    f = _timerfd(t, fd)
    before = f.get()
    f.set(value, interval, bool(flags & TFD_TIMER_ABSTIME))
    if old:
        t.mem.write(old, pack_itimerspec(*before))
    return 0


def sys_timerfd_gettime(t, fd, cur, *_):
    t.mem.write(cur, pack_itimerspec(*_timerfd(t, fd).get()))
    return 0
