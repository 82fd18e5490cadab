"""The fault matrix: each service of a supervised guest killed (SIGKILL), or
stopped for longer than every deadline that watches it and then continued
(SIGSTOP, SIGCONT), while the guest churns files with fsync and renames,
untars a tree and prints to its console.

ubd_io and sigio are restarted by supervisord (or, stopped, are resent to
once they go on) and the guest carries on to its end; kernel or userspace
take the whole guest down with no host process left.  Either way the image
passes e2fsck -fn and every file the guest was told was fsync'd has its
bytes; a guest that carried on has every console line it printed, in order.

A stop lasts until its deadline's effect shows in a log (the kernel
resending to ubd_io or sigio, one of the core services giving up on the
other), never for a set time."""
from __future__ import annotations

import os
import re
import signal

import pytest

import churn
from deploy import disk as diskmod
from deploy import supervisor
from supervised import create, guest_pids, states, wait_until

SERVICES = ("kernel", "userspace", "ubd_io", "sigio")
RESTARTED = ("ubd_io", "sigio")
FAULT_AT = 20            # files fsync'd before the fault
# what shows, in which service's log, that a stopped service outlasted its deadline
DEADLINE_PASSED = {
    "ubd_io": ("kernel", r"no answer to (block|write_shared) #\d+ after"),
    "sigio": ("kernel", r"no answer to console_write #\d+ after"),
    "kernel": ("userspace", r"kernel silent for"),
    "userspace": ("kernel", r"userspace silent for"),
}


@pytest.fixture(scope="module")
def churn_tree(tmp_path_factory):
    return churn.make_churn_tree(tmp_path_factory)


def _console(cfg) -> str:
    return cfg.console_log.read_text(errors="replace") if cfg.console_log.exists() else ""


def _progressed(cfg, n: int) -> bool:
    """Whether the guest has reported n files fsync'd; an error fails at once."""
    text = _console(cfg)
    assert "error" not in text, text[-2000:]
    return len(churn.fsynced(text)) >= n or "exit=" in text


def _log_count(cfg, service: str, pattern: str) -> int:
    path = cfg.run_dir / f"{service}.log"
    return len(re.findall(pattern, path.read_text(errors="replace"))) if path.exists() else 0


def _pid(name: str, service: str) -> int:
    return supervisor.group_state(name)[service]["pid"]


def _restarted(name: str, service: str, old: int) -> bool:
    info = supervisor.group_state(name)[service]
    return info["statename"] == "RUNNING" and info["pid"] not in (0, old)


def _stop_past_deadline(cfg, name: str, victim: str) -> None:
    """SIGSTOP the victim until the service watching it shows that its
    deadline passed, then SIGCONT."""
    watcher, pattern = DEADLINE_PASSED[victim]
    before = _log_count(cfg, watcher, pattern)
    pid = _pid(name, victim)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _log_count(cfg, watcher, pattern) > before, 60,
                   f"{watcher} to give up waiting on the stopped {victim}")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGSTOP"])
@pytest.mark.parametrize("victim", SERVICES)
def test_fault(skas_home, tmp_path, churn_tree, outcome, victim, sig):
    name = f"f-{victim}-{sig[3:].lower()}".replace("_", "")
    img = tmp_path / "disk.img"
    diskmod.create(img, "64M", churn_tree)
    # A guest its core service's fault takes down must not finish first:
    # churn, which needs no userspace between its calls, went past 300
    # files while the kernel waited out a stopped userspace's deadline.
    # One that carries on runs to its end, which is checked.
    files = churn.FILES if victim in RESTARTED else 5 * churn.FILES
    cfg = create(name, img, *churn.command(files))
    assert supervisor.ctl("start", f"{name}:*").returncode == 0
    wait_until(lambda: _progressed(cfg, FAULT_AT), 60, "the first files fsync'd")
    victim_pid = _pid(name, victim)

    if sig == "SIGKILL":
        os.kill(victim_pid, signal.SIGKILL)
        if victim in RESTARTED:
            wait_until(lambda: _restarted(name, victim, victim_pid), 30,
                       f"supervisord to restart {victim}")
            how = f"restarted by supervisord (pid {victim_pid} -> {_pid(name, victim)})"
        else:
            how = "killed"
    else:
        _stop_past_deadline(cfg, name, victim)
        how = "stopped past its deadline, continued"
    seen = len(churn.fsynced(_console(cfg)))
    assert seen < files, "the guest finished before the fault: give it more files"

    if victim in RESTARTED:
        wait_until(lambda: _progressed(cfg, seen + 10), 60, "progress after the fault")
        wait_until(lambda: "exit=" in _console(cfg), 180, "the guest to finish")
        wait_until(lambda: set(states(name).values()) <= {"STOPPED", "EXITED"}, 30,
                   "the group to stop")
    wait_until(lambda: not guest_pids(name), 60, "every host process of the guest gone")

    console = _console(cfg)
    reported = churn.fsynced(console)
    fsck = churn.e2fsck(img)
    damaged = churn.damaged_files(img, reported, tmp_path / "dump")
    lines = churn.console_lines(console)
    if victim in RESTARTED:
        result = (f"carried on: {len(reported)}/{churn.FILES} files fsync'd, "
                  f"console {lines.present}/{churn.FILES * churn.LINES} lines"
                  f"{' in order' if lines.in_order else ' OUT OF ORDER'}"
                  f"{f', {lines.repeats} repeated' if lines.repeats else ''}")
    else:
        result = f"guest down, no host process left; {len(reported)} files fsync'd before"
    result += (f"; {len(reported) - len(damaged)}/{len(reported)} intact; "
               f"e2fsck {'clean' if not fsck else 'FOUND ERRORS'}")
    outcome(f"{how}; {result}")

    assert not damaged, f"fsync'd files with the wrong bytes: {damaged}"
    assert not fsck, fsck
    if victim in RESTARTED:
        assert f"done {churn.FILES}\nexit=0" in console, console[-2000:]
        assert reported == list(range(churn.FILES))
        assert lines.complete(churn.FILES * churn.LINES), lines
    else:
        assert "exit=" not in console, "the guest finished: its core service's fault did nothing"
