"""Guests under a real supervisord: start, console log, stop, and death of a core service."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from common import config as guest_config
from common.exits import CONFIG
from conftest import disk_of, make_tree, skas
from deploy import disk as diskmod
from deploy import supervisor
from supervised import alive, create, guest_pids, states, wait_until


def test_supervisorctl_starts_the_guest_and_its_output_reaches_the_console_log(skas_home, disk):
    cfg = create("demo", disk, "/bin/busybox", "sh", "-c",
                 "echo hello from demo; sleep 30 & sleep 31; true")
    assert supervisor.ctl("start", "demo:*").returncode == 0
    wait_until(lambda: cfg.console_log.exists() and "hello from demo" in cfg.console_log.read_text(),
               15, "console output")
    assert set(states("demo").values()) == {"RUNNING"}
    wait_until(lambda: skas("status", "demo").stdout.count("  sleep") == 2, 10, "two sleeps")
    rows = [line.split() for line in skas("status", "demo").stdout.splitlines()
            if line.endswith(("  busybox", "  sleep"))]
    # PID TID PPID STATE HOST-PID COMMAND: guest pids, init is 1, both sleeps its children
    assert sorted((r[0], r[2], r[5]) for r in rows) == [("1", "0", "busybox"), ("2", "1", "sleep"),
                                                        ("3", "1", "sleep")], rows
    pids = guest_pids("demo")
    assert len(pids) == 4 + 3       # the services, and sh with its two sleeps
    supervisor.ctl("stop", "demo:*")
    wait_until(lambda: not alive(pids), 5, "no guest process left")


def test_guest_stops_as_a_group_when_init_exits(skas_home, disk):
    cfg = create("brief", disk, "/bin/busybox", "echo", "done")
    supervisor.ctl("start", "brief:*")
    wait_until(lambda: set(states("brief").values()) <= {"STOPPED", "EXITED"}, 15, "group stopped")
    assert cfg.console_log.read_text() == "done\n"
    assert not guest_pids("brief")


@pytest.mark.parametrize("victim", ["kernel", "userspace"])
def test_sigkill_to_a_core_service_takes_the_whole_guest_down(skas_home, disk, victim):
    """Init sleeps 600 s, so a guest gone well before that went because of
    the kill (the bound is generous: a busy machine does not fail it)."""
    name = f"kill-{victim}"
    create(name, disk, "/bin/busybox", "sleep", "600")
    supervisor.ctl("start", f"{name}:*")
    wait_until(lambda: len(guest_pids(name)) == 5, 10, "four services and init")
    pids = guest_pids(name)
    os.kill(supervisor.group_state(name)[victim]["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(pids), 60, "every host process of the guest gone")


def test_a_guest_whose_disk_another_guest_is_using_stops_and_says_why(skas_home, disk):
    """Its ubd_io cannot open the disk and exits CONFIG: supervisord does
    not start it again, the listener stops the guest (its kernel would wait
    for its disks for ever), status says where to read why; the guest
    that holds the disk runs on."""
    create("first", disk, "/bin/busybox", "sleep", "600")
    second = create("second", disk, "/bin/busybox", "sleep", "600")
    supervisor.ctl("start", "first:*")
    wait_until(lambda: len(guest_pids("first")) == 5, 15, "four services and init")
    supervisor.ctl("start", "second:*")
    wait_until(lambda: not guest_pids("second"), 30, "the second guest stopped")
    state = supervisor.group_state("second")
    assert state["ubd_io"]["statename"] == "EXITED" and state["ubd_io"]["exitstatus"] == CONFIG
    assert {state[s]["statename"] for s in ("kernel", "userspace", "sigio")} == {"STOPPED"}
    assert "is in use by another ubd_io" in (second.run_dir / "ubd_io.log").read_text()
    assert "second-ubd_io PROCESS_STATE_EXITED (it cannot serve as configured" in \
        (second.run_dir / "listener.log").read_text()
    line = next(ln for ln in skas("status", "second").stdout.splitlines()
                if ln.startswith("ubd_io"))
    assert f"exit {CONFIG}: cannot serve as configured; see {second.run_dir}/ubd_io.log" in line
    assert set(states("first").values()) == {"RUNNING"}
    assert len(guest_pids("first")) == 5


def test_supervisorctl_stop_writes_the_guest_disk_back(skas_home, tmp_path_factory):
    """The kernel stops first, while ubd_io and sigio still serve it: what the
    guest wrote (never synced) is on the image, which e2fsck passes."""
    img = next(disk_of(tmp_path_factory, make_tree(tmp_path_factory, "stoptree")))
    cfg = create("keep", img, "/bin/sh", "-c", "echo kept > /kept; echo written; sleep 60")
    supervisor.ctl("start", "keep:*")
    wait_until(lambda: cfg.console_log.exists() and "written" in cfg.console_log.read_text(),
               15, "the guest's write")
    assert supervisor.ctl("stop", "keep:*").returncode == 0
    assert set(states("keep").values()) <= {"STOPPED", "EXITED"}
    diskmod.check(img)
    assert subprocess.run(["debugfs", "-R", "cat /kept", str(img)], capture_output=True,
                          check=True).stdout == b"kept\n"


INITTAB = """::sysinit:/etc/rc
::shutdown:/bin/echo init shuts down
"""
RC = """#!/bin/sh
n=$(cat /boots 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /boots
echo "boot $n, pid $$"
if [ $n = 1 ]; then reboot; else echo kept > /kept; poweroff; fi
"""


def test_a_guest_without_a_command_boots_its_init_reboots_and_powers_off(skas_home,
                                                                          tmp_path_factory):
    """skas create with no command boots /sbin/init (busybox init here):
    the guest's reboot starts the group again, its poweroff stops it with
    every service's exit status 0 and a clean disk."""
    tree = make_tree(tmp_path_factory, "inittree")
    (tree / "etc/inittab").write_text(INITTAB)
    (tree / "etc/rc").write_text(RC)
    (tree / "etc/rc").chmod(0o755)
    img = next(disk_of(tmp_path_factory, tree))
    cfg = create("booted", img)
    assert cfg.init == ["/sbin/init"]
    supervisor.ctl("start", "booted:*")
    wait_until(lambda: cfg.console_log.exists() and "Power down" in cfg.console_log.read_text(),
               60, "the second boot's power-off")
    wait_until(lambda: set(states("booted").values()) <= {"STOPPED", "EXITED"}, 30,
               "the group stopped")
    log = cfg.console_log.read_text()
    assert log.index("boot 1, pid 2") < log.index("reboot: Restarting system") < log.index(
        "boot 2, pid 2") < log.rindex("init shuts down") < log.index("reboot: Power down"), log
    assert {s: i["exitstatus"] for s, i in supervisor.group_state("booted").items()} == {
        s: 0 for s in guest_config.SERVICES}
    assert not guest_pids("booted")
    diskmod.check(img)
    kept = subprocess.run(["debugfs", "-R", "cat /kept", str(img)], capture_output=True,
                          text=True, check=True).stdout
    assert kept == "kept\n"
