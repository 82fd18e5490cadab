"""The guest's CPUs: sched_getaffinity, sched_setaffinity, getcpu.

The guest's CPUs are the host CPUs the kernel may run on, numbered from 0
(sched/load.py; as /proc/cpuinfo and /sys/devices/system/cpu say).  A task's affinity
mask is the kernel's, inherited by fork and changed by sched_setaffinity
with Linux's checks, but never applied to the host: the guest's host
processes stay where `skas run` put them (one CPU, by default), and no
guest can move any host process.  getcpu says which CPU the task's host
thread last ran on, within the task's mask."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.capability import CAP_SYS_NICE
from services.kernel.core.cred import capable
from services.kernel.core.errors import Errno
from services.kernel.sched.cpus import all_cpus, guest_cpus, host_cpus


def _mask_bytes() -> int:
    """Linux's cpumask_size(): longs enough for nr_cpu_ids."""
    return 8 * -(-guest_cpus() // 64)


def _task(t, pid: int):
    pid &= 0xFFFFFFFF
    if pid == 0:
        return t
    target = t.kernel.tasks.get(pid)
    if target is None:
        raise Errno(errno.ESRCH)
    return target


def sys_sched_getaffinity(t, pid, length, mask_ptr, *_):
    length &= 0xFFFFFFFF
    if length * 8 < guest_cpus() or length % 8:
        raise Errno(errno.EINVAL)
    n = min(length, _mask_bytes())
    t.mem.write(mask_ptr, _task(t, pid).affinity.to_bytes(n, "little"))
    return n


def sys_sched_setaffinity(t, pid, length, mask_ptr, *_):
    """The mask is read up to cpumask_size() (zeros past a shorter one),
    cut to the guest's CPUs (EINVAL if none is left); another task needs
    the same owner or CAP_SYS_NICE (Linux's check_same_owner)."""
    length = min(length & 0xFFFFFFFF, _mask_bytes())
    mask = int.from_bytes(t.mem.read(mask_ptr, length), "little") if length else 0
    target = _task(t, pid)
    c, tc = t.cred, target.cred
    if c.euid not in (tc.uid, tc.euid) and not capable(c, CAP_SYS_NICE):
        raise Errno(errno.EPERM)
    if not mask & all_cpus():
        raise Errno(errno.EINVAL)
    target.affinity = mask & all_cpus()
    return 0


def _host_cpu(t) -> int:
    """The guest CPU whose host CPU the task's host thread last ran on
    (field 39 of its stat)."""
    try:
        with open(f"/proc/{t.host_pid}/stat", "rb") as f:
            stat = f.read()
        return host_cpus().index(int(stat.rpartition(b")")[2].split()[36]))
    except (OSError, ValueError, IndexError):
        return 0


def sys_getcpu(t, cpu_ptr, node_ptr, *_):
    """Where the host thread ran, if the task's mask has that CPU; else the
    mask's first (the mask is not applied on the host, and a task must not
    see itself run where it said it would not)."""
    if cpu_ptr:
        cpu = _host_cpu(t)
        if not t.affinity >> cpu & 1:
            cpu = (t.affinity & -t.affinity).bit_length() - 1
        t.mem.write(cpu_ptr, struct.pack("<I", cpu))
    if node_ptr:
        t.mem.write(node_ptr, struct.pack("<I", 0))
    return 0
