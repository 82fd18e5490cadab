"""A pidfd names a Process object, not a number: once the process is
reaped it polls as hung up and says ESRCH, and it keeps nothing of the
process tree alive (no parent, no children, no table entry)."""
from __future__ import annotations

import errno
import gc
import weakref
from types import SimpleNamespace

import pytest

from services.kernel.abi.poll import POLLHUP, POLLIN, POLLRDNORM
from services.kernel.core.errors import Errno
from services.kernel.sched import wait
from services.kernel.sched.pidfd import PidFile, leader
from services.kernel.sched.task import Process


def a_kernel():
    k = SimpleNamespace(processes={}, pids=set(), init_exited=lambda status: None,
                        pagecache=SimpleNamespace(release=lambda proc: None))
    k.free_pid = k.pids.discard
    return k


def spawn(k, pid, parent):
    proc = Process(k, pid, parent, 1, 1)
    k.processes[pid] = proc
    k.pids.add(pid)
    if parent is not None:
        parent.children.append(proc)
    return proc


def test_a_pidfd_polls_readable_at_the_end_and_hung_up_once_reaped():
    k = a_kernel()
    init = spawn(k, 1, None)
    child = spawn(k, 2, init)
    f = PidFile(child, 0)
    assert f.poll() == 0
    wait.process_exited(child, 0)
    assert f.poll() == POLLIN | POLLRDNORM and not child.reaped
    wait.release(child)
    assert f.poll() == POLLIN | POLLRDNORM | POLLHUP and child.reaped
    with pytest.raises(Errno) as e:
        leader(f.process)
    assert e.value.code == errno.ESRCH
    assert 2 not in k.processes and 2 not in k.pids


def test_a_reaped_processs_pidfd_keeps_no_ancestor_alive():
    k = a_kernel()
    init = spawn(k, 1, None)
    parent = spawn(k, 2, init)
    child = spawn(k, 3, parent)
    f = PidFile(child, 0)
    wait.process_exited(child, 0)
    wait.release(child)
    gone = weakref.ref(parent)
    wait.process_exited(parent, 0)
    wait.release(parent)
    del parent
    gc.collect()
    assert gone() is None and f.process.parent is None and not f.process.children
