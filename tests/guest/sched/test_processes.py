"""Processes, threads and signals: fork/exec/wait, pthreads, handlers, a
busybox shell script corpus, compared with native runs in a chroot of the
same tree."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from common import protocol
from deploy import launch
from services.userspace import jail
from conftest import HERE, disk_of, guest, make_tree, native, skas_popen
from conftest import ask, make_config

PROGS = ("signals", "threads", "forkmany", "escape_signals", "jobctl", "execat", "dethread",
         "forkfail")


@pytest.fixture(scope="module")
def ptree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "ptree", PROGS, "-pthread")
    (root / "scripts").mkdir()
    shutil.copy(HERE / "scripts/shell_corpus.sh", root / "scripts/corpus.sh")
    return root


@pytest.fixture(scope="module")
def pdisk(tmp_path_factory, ptree) -> Path:
    yield from disk_of(tmp_path_factory, ptree)


@pytest.mark.parametrize("argv", [["/bin/signals"], ["/bin/threads"],
                                  ["/bin/sh", "-c", "/bin/jobctl; /bin/jobctl orphaned"],
                                  ["/bin/execat"], ["/bin/dethread"], ["/bin/dethread", "leader"],
                                  ["/bin/forkmany", "500", "seq"], ["/bin/forkmany", "redzone"],
                                  ["/bin/sh", "/scripts/corpus.sh"]],
                         ids=["signal-handlers", "pthreads", "job-control", "execveat",
                              "exec-from-a-thread", "exec-from-the-leader", "fork-wait-loop", "fork-keeps-the-red-zone",
                              "shell-corpus"])
def test_same_output_natively_and_in_a_guest(ptree, pdisk, argv):
    want = native(ptree, *argv)
    got = guest(pdisk, *argv)
    assert want.returncode == 0, want.stdout
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


@pytest.mark.parametrize("argv", [["/bin/signals"], ["/bin/threads"],
                                  ["/bin/dethread", "leader"], ["/bin/sh", "/scripts/corpus.sh"]],
                         ids=["signal-handlers", "pthreads", "exec-from-the-leader", "shell-corpus"])
def test_every_call_as_a_ptrace_stop_gives_the_same_output(ptree, pdisk, argv):
    """--ptrace-only: no call through the seccomp listener (the path a host
    without listeners takes), the same answers."""
    want = native(ptree, *argv)
    got = guest(pdisk, *argv, options=("--ptrace-only",))
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_200_children_at_once_are_all_reaped_and_nothing_is_left(tmp_path, pdisk):
    cfg = make_config(tmp_path, pdisk, ["/bin/sh", "-c", "forkmany 200 > /dev/console; sleep 30; true"],
                      console="log")
    procs = launch.start(cfg)
    try:
        deadline = time.monotonic() + 60
        while "reaped=200" not in _console(cfg):
            assert time.monotonic() < deadline and procs["kernel"].poll() is None, _console(cfg)
            time.sleep(0.1)
        assert "reaped=200 sum=19900" in _console(cfg)
        while True:      # until sh's next child has exec'd sleep
            state = ask(cfg.endpoints["kernel"], protocol.encode("status", 1, "test", {}))["state"]
            if sorted(t["comm"] for t in state["tasks"]) == ["sh", "sleep"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert state["zombies"] == []
        stubs = _guest_host_processes(cfg)
        assert len(stubs) == 2, stubs
    finally:
        launch.stop(procs)
    assert _guest_host_processes(cfg) == []


def _console(cfg) -> str:
    try:
        return (cfg.run_dir / "console.log").read_text()
    except FileNotFoundError:
        return ""


def _guest_host_processes(cfg) -> list[int]:
    """Host processes running this guest's code: their image is the stub (in
    their jail's root), and their uid the guest's."""
    uid = f"Uid:\t{jail.guest_uid(cfg.name)}\t"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if (os.readlink(f"/proc/{pid}/exe") == "/stub"
                    and uid in open(f"/proc/{pid}/status").read()):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_guest_signals_reach_only_guest_processes(ptree, pdisk):
    """kill, tgkill and wait name guest pids only: the host's pid 1, the
    services, a host process with a small pid are all out of reach."""
    r = guest(pdisk, "/bin/escape_signals", str(os.getpid()))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "kill host pid: ESRCH", "kill -1: only guest", "tgkill host tid: ESRCH",
        "wait other: ECHILD", "getpgid host: ESRCH", "kill self pgrp ok: 1"]


def test_a_process_killed_by_a_signal_reports_it_to_skas(pdisk):
    r = guest(pdisk, "/bin/sh", "-c", "kill -USR1 $$")
    assert r.returncode == 128 + signal.SIGUSR1


PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


def _host_pids_running(argv0: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if (Path("/proc", entry, "cmdline").read_bytes().split(b"\0")[0]) == argv0:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _start_time(pid: int) -> int:
    """When the host process started, in clock ticks since boot (stat's 22nd field)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 1 << 62         # gone: never the one


@pytest.mark.skipif(not os.access(PIDS_CGROUP, os.W_OK), reason="no writable cgroup-v1 pids")
def test_a_fork_the_host_refuses_is_eagain_and_leaves_no_child(tmp_path, pdisk):
    """The host clone fails (a pids cgroup at its limit, as with Linux's
    pids.max): the guest's fork is EAGAIN, as Linux's is there, the kernel forgets
    the child it had made for it (wait is ECHILD), and forks work again
    once the host allows them (userspace's clone_failed)."""
    group = PIDS_CGROUP / f"skas-test-{os.getpid()}"
    group.mkdir()
    p = skas_popen("run", "--disk", str(pdisk), "--", "/bin/forkfail", stdout=subprocess.PIPE,
                   text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in p.stdout], daemon=True).start()

    def line() -> str:
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            return "(nothing for 60 s)"
    try:
        assert line() == "ready\n"
        # the program, not one of its children of the moment: the first started
        host_pid = min(_host_pids_running(b"/bin/forkfail"), key=lambda p: (_start_time(p), p),
                       default=None)
        assert host_pid, "the guest's host process"
        (group / "pids.max").write_text("1")
        (group / "cgroup.procs").write_text(str(host_pid))
        assert line() == "fork failed: EAGAIN\n"
        assert line() == "wait: ECHILD\n"
        (group / "pids.max").write_text("max")
        assert line() == "fork works again\n"
        assert p.wait(timeout=60) == 0
    finally:
        p.kill()
        p.wait()
        for pid in (group / "cgroup.procs").read_text().split():
            (PIDS_CGROUP / "cgroup.procs").write_text(pid)
        group.rmdir()
