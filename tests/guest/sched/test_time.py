"""Timers and time accounting (alarm, setitimer, nanosleep cut short by a
signal, times, getrusage, sysinfo, timerfd): a C program prints only facts
that do not depend on timing, natively in a chroot and in a guest."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, make_tree
from conftest import guest, native, native_with_ptys

EXPECTED = """\
pause: r=-1 errno=EINTR alarms=1
setitimer: r=0 old=0.000000
interval: alarms=3 settle=0 after=0.000000/0.000000
getitimer: armed=1
child: timer=0.000000
disarm: old_armed=1
cpu timers: vtalrm=1 prof>=3 1
itimer_virtual: r=0,0 armed=1 off=0,0 bad_which=1 bad_usec=1
nanosleep: r=-1 errno=EINTR alarms=1 rem_ok=1
nanosleep(SA_RESTART): r=-1 errno=EINTR alarms=1 rem_ok=1
clock_nanosleep: r=EINTR alarms=1 rem_ok=1
alarm: left_ok=1 then=0
times: ok=1 increasing=1
sysinfo: r=0 procs_ok=1 uptime_ok=1 unit_ok=1 ram_ok=1
getrusage: self=0 children=0 thread=0 bad=EINVAL
children: wait4_ok=1 getrusage_ok=1 maxrss_ok=1 times_ok=1
"""


@pytest.fixture(scope="module")
def ttree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory, "ttree", ["timers", "timerfd"])


@pytest.fixture(scope="module")
def tdisk(tmp_path_factory, ttree) -> Path:
    yield from disk_of(tmp_path_factory, ttree)


def test_timers_natively_and_in_a_guest(ttree, tdisk):
    want = native(ttree, "/bin/timers")
    assert (want.returncode, want.stdout) == (0, EXPECTED)
    got = guest(tdisk, "/bin/timers")
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_an_alarm_outlives_exec(ttree, tdisk):
    argv = ["/bin/sh", "-c", "/bin/timers exec; echo status=$?"]
    want = native(ttree, *argv)
    assert want.stdout == "Alarm clock\nstatus=142\n"
    got = guest(tdisk, *argv)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_timerfd_as_linux(ttree, tdisk, options):
    """One-shot, periodic (missed periods counted), absolute, epoll, the
    errors; natively with a /proc for the fd's link."""
    want = native_with_ptys(ttree, "/bin/timerfd")
    assert want.returncode == 0 and "ticks >= 20: 1" in want.stdout, want.stdout
    got = guest(tdisk, "/bin/timerfd", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
