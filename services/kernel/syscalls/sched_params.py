"""Scheduling parameters: nice values (getpriority/setpriority) and
policies (the sched_*scheduler and sched_*param calls), with Linux's
permission rules.  The guest's threads run at the host's default
priority whatever is set here (sched/task.py SchedParams): the values are
the kernel's record, so programs that set and read them see Linux's
answers without a guest gaining host scheduling power."""
from __future__ import annotations

import errno
import struct

from services.kernel.core.cred import capable
from services.kernel.core.errors import Errno
from services.kernel.fs.poll import TIMESPEC
from services.kernel.abi.capability import CAP_SYS_NICE
from services.kernel.abi.resource import RLIMIT_NICE, RLIMIT_RTPRIO
from services.kernel.abi.sched import (
    MAX_NICE, MAX_RT_PRIO, MIN_NICE, PRIO_PGRP, PRIO_PROCESS, PRIO_USER, RR_TIMESLICE_NS,
    SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE, SCHED_OTHER, SCHED_RESET_ON_FORK,
    SCHED_RR)

_PARAM = struct.Struct("<i")
_RT = (SCHED_FIFO, SCHED_RR)
_NORMAL = (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE)


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _thread(t, pid: int):
    """The thread pid names (0: the caller); EINVAL below 0, ESRCH if none."""
    pid = _signed(pid)
    if pid < 0:
        raise Errno(errno.EINVAL)
    target = t if pid == 0 else t.kernel.tasks.get(pid)
    if target is None:
        raise Errno(errno.ESRCH)
    return target


def _may_change(t, target) -> None:
    """check_same_owner: the caller's euid is the target's uid or euid, or
    it has CAP_SYS_NICE."""
    c, tc = t.cred, target.cred
    if c.euid not in (tc.uid, tc.euid) and not capable(c, CAP_SYS_NICE):
        raise Errno(errno.EPERM)


def _can_nice(t, target, nice: int) -> bool:
    """can_nice: RLIMIT_NICE allows it (its value v allows nice 20 - v and
    up), or CAP_SYS_NICE."""
    return 20 - nice <= target.process.rlimits[RLIMIT_NICE][0] or capable(t.cred, CAP_SYS_NICE)


def _targets(t, which: int, who: int) -> list:
    """The threads getpriority/setpriority's (which, who) names: a thread,
    the threads of a process group, or of a user (0: the caller's)."""
    who = _signed(who)
    tasks = t.kernel.tasks.values()
    if which == PRIO_PROCESS:
        target = t if who == 0 else t.kernel.tasks.get(who)
        return [target] if target is not None else []
    if which == PRIO_PGRP:
        pgid = who or t.process.pgid
        return [x for x in tasks if x.process.pgid == pgid]
    if which == PRIO_USER:
        uid = t.cred.uid if who == 0 else who & 0xFFFFFFFF
        return [x for x in tasks if x.cred.uid == uid]
    raise Errno(errno.EINVAL)


def sys_getpriority(t, which, who, *_):
    """The highest priority (lowest nice) of the targets, as 20 - nice (the
    raw call's answer; glibc turns it back into a nice value)."""
    targets = _targets(t, which, who)
    if not targets:
        raise Errno(errno.ESRCH)
    return 20 - min(x.sched.nice for x in targets)


def sys_setpriority(t, which, who, nice, *_):
    targets = _targets(t, which, who)
    if not targets:
        raise Errno(errno.ESRCH)
    nice = min(max(_signed(nice), MIN_NICE), MAX_NICE)
    for target in targets:
        _may_change(t, target)
        if nice < target.sched.nice and not _can_nice(t, target, nice):
            raise Errno(errno.EACCES)
        target.sched.nice = nice
    return 0


def sys_sched_getscheduler(t, pid, *_):
    s = _thread(t, pid).sched
    return s.policy | (SCHED_RESET_ON_FORK if s.reset_on_fork else 0)


def _read_priority(t, param: int) -> int:
    if not param:
        raise Errno(errno.EINVAL)
    return _PARAM.unpack(t.mem.read(param, 4))[0]


def _set(t, target, policy: int, priority: int, reset: bool) -> int:
    if policy == SCHED_DEADLINE:
        raise Errno(errno.EINVAL)         # it takes sched_setattr's parameters
    if policy not in _RT + _NORMAL:
        raise Errno(errno.EINVAL)
    if not (1 <= priority <= MAX_RT_PRIO if policy in _RT else priority == 0):
        raise Errno(errno.EINVAL)
    _may_change(t, target)
    s = target.sched
    if not capable(t.cred, CAP_SYS_NICE):
        # unprivileged: no real-time policy above RLIMIT_RTPRIO (0 unless
        # raised), no leaving SCHED_IDLE unless the nice value could be
        # set, no dropping SCHED_RESET_ON_FORK once set
        rtprio = target.process.rlimits[RLIMIT_RTPRIO][0]
        if (policy in _RT and priority > max(rtprio, s.priority if s.policy in _RT else 0)
                or s.policy == SCHED_IDLE and policy != SCHED_IDLE
                and not _can_nice(t, target, s.nice)
                or s.reset_on_fork and not reset):
            raise Errno(errno.EPERM)
    s.policy, s.priority, s.reset_on_fork = policy, priority, reset
    return 0


def sys_sched_setscheduler(t, pid, policy, param, *_):
    target = _thread(t, pid)
    policy = _signed(policy)
    reset = bool(policy & SCHED_RESET_ON_FORK)
    policy &= ~SCHED_RESET_ON_FORK
    return _set(t, target, policy, _read_priority(t, param), reset)


def sys_sched_getparam(t, pid, param, *_):
    if not param:
        raise Errno(errno.EINVAL)
    target = _thread(t, pid)
    t.mem.write(param, _PARAM.pack(target.sched.priority))
    return 0


def sys_sched_setparam(t, pid, param, *_):
    target = _thread(t, pid)
    s = target.sched
    return _set(t, target, s.policy, _read_priority(t, param), s.reset_on_fork)


def sys_sched_get_priority_max(t, policy, *_):
    policy = _signed(policy)
    if policy in _RT:
        return MAX_RT_PRIO
    if policy in _NORMAL or policy == SCHED_DEADLINE:
        return 0
    raise Errno(errno.EINVAL)


def sys_sched_get_priority_min(t, policy, *_):
    policy = _signed(policy)
    if policy in _RT:
        return 1
    if policy in _NORMAL or policy == SCHED_DEADLINE:
        return 0
    raise Errno(errno.EINVAL)


def sys_sched_rr_get_interval(t, pid, tp, *_):
    """SCHED_RR's time slice; 0 for the others (as Linux on an idle run queue)."""
    target = _thread(t, pid)
    ns = RR_TIMESLICE_NS if target.sched.policy == SCHED_RR else 0
    t.mem.write(tp, TIMESPEC.pack(ns // 1_000_000_000, ns % 1_000_000_000))
    return 0
