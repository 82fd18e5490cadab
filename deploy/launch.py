"""Starting and stopping a guest's services as child processes.

The same command line supervisord uses (``python -m services.NAME
--guest-config FILE``), or for ``skas run`` the same program forked from
skas's own process (deploy/forked.py); ``skas run`` and the tests start
guests through here, the tests sometimes with a double in place of one
service.

Each service gets a session of its own (supervisord, too, gives each
program its own process group): the terminal's signals (Ctrl-C, Ctrl-Z,
hangup) then reach skas alone, which stops the guest in order, instead of
reaching the services and the guest's host processes (children of
userspace) behind the kernel's back.  Each also gets SIGTERM when skas
dies, however it dies."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import activation, phases
from common.config import SERVICES, GuestConfig
from common.exits import CONFIG
from deploy import forked

REPO = Path(__file__).resolve().parent.parent   # holds services/, so -m services.x imports
STOP_GRACE = 2.0
Process = subprocess.Popen | forked.Forked


def command(service: str, config_path: Path) -> list[str]:
    return [sys.executable, "-m", f"services.{service}", "--guest-config", str(config_path)]


def start(cfg: GuestConfig, services=SERVICES, fork: bool = False) -> dict[str, Process]:
    """Start services of a guest whose config is written.  Each logs to
    RUN_DIR/SERVICE.log; with a stdio console, sigio has skas's stdin and
    stdout.  If one cannot start, those already started are stopped.  With
    fork (skas run), each is a fork of this process (deploy/forked.py);
    else ``python -m services.NAME``."""
    procs: dict[str, Process] = {}
    phases.mark("cli", "spawn")
    # forked: every ipc endpoint listening before any service runs, each
    # handed to its service (common/activation.py): no connect waits on a timer
    listening = {s: activation.listen(e[len("ipc://"):]) for s in services
                 if fork and (e := cfg.endpoints[s]).startswith("ipc://")}
    try:
        for service in services:
            with open(cfg.run_dir / f"{service}.log", "ab") as log:
                console = service == "sigio" and cfg.console == "stdio"
                if fork:
                    procs[service] = forked.start(service, cfg.path, log.fileno(), console,
                                                  listening.get(service))
                    continue
                procs[service] = subprocess.Popen(
                    command(service, cfg.path), cwd=REPO, stderr=log,
                    stdin=None if console else subprocess.DEVNULL,
                    stdout=None if console else log, start_new_session=True,
                    preexec_fn=forked.die_with(os.getpid()))
    except BaseException:
        stop(procs)
        raise
    finally:
        for sock in listening.values():
            sock.close()
    phases.mark("cli", "spawned")
    return procs


class ServiceEnded(Exception):
    """A service the guest cannot go on without ended before the kernel."""

    def __init__(self, service: str, code: int):
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        if code == CONFIG:
            super().__init__(f"{service} cannot serve as configured ({how})")
        else:
            super().__init__(f"{service} ended ({how}) while the guest ran")
        self.service = service


VITAL = ("userspace", "ubd_io")     # its processes and its disks: without either it is dead


def wait_guest(procs: dict[str, Process]) -> int:
    """The kernel's exit code.  Sleeps until the kernel or a VITAL service
    exits (their pidfds), never in turns.  A vital one that ends first
    takes the guest down: the kernel is stopped; if it failed (ubd_io could
    not open the disk, say), ServiceEnded is raised, so that skas says why
    instead of waiting for a kernel that waits for its disk.  (userspace
    ends cleanly before the kernel at every halt.)"""
    kernel = procs["kernel"]
    watch = select.poll()
    fds: dict[str, int] = {}
    try:
        for service in ("kernel", *VITAL):
            p = procs.get(service)
            if p is not None and p.returncode is None:    # not reaped: the pid is ours
                fds[service] = os.pidfd_open(p.pid)
                watch.register(fds[service], select.POLLIN)
        while kernel.poll() is None:
            for service in VITAL:
                p = procs.get(service)
                if service in fds and p.poll() is not None:
                    kernel.send_signal(signal.SIGTERM)
                    if p.returncode:
                        raise ServiceEnded(service, p.returncode)
                    watch.unregister(fds[service])
                    os.close(fds.pop(service))
            watch.poll()
        return kernel.returncode
    finally:
        for fd in fds.values():
            os.close(fd)


def stop(procs: dict[str, Process]) -> None:
    """SIGTERM, then SIGKILL to the whole session after a grace period; reap
    everything."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    phases.mark("cli", "stop")
    deadline = time.monotonic() + STOP_GRACE
    for p in procs.values():
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def log_tail(cfg: GuestConfig, service: str, lines: int = 20) -> str:
    try:
        return "\n".join((cfg.run_dir / f"{service}.log").read_text().splitlines()[-lines:])
    except OSError:
        return ""
