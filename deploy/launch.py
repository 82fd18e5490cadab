"""Starting and stopping a guest's services as child processes.

The same command line supervisord uses (``python -m services.NAME
--guest-config FILE``); ``skas run`` and the tests start guests through here,
the tests sometimes with a double in place of one service.

Each service gets a session of its own (supervisord, too, gives each
program its own process group): the terminal's signals (Ctrl-C, Ctrl-Z,
hangup) then reach skas alone, which stops the guest in order, instead of
reaching the services and the guest's host processes (children of
userspace) behind the kernel's back.  Each also gets SIGTERM when skas
dies, however it dies."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import phases
from common.config import SERVICES, GuestConfig

REPO = Path(__file__).resolve().parent.parent   # holds services/, so -m services.x imports
STOP_GRACE = 2.0
PR_SET_PDEATHSIG = 1


def command(service: str, config_path: Path) -> list[str]:
    return [sys.executable, "-m", f"services.{service}", "--guest-config", str(config_path)]


def _die_with(parent: int):
    """For Popen's preexec_fn: SIGTERM when the parent dies, so that a skas run
    killed outright (SIGKILL) does not leave its guest running."""
    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:       # it died before we asked
            os._exit(1)
    return arm


def start(cfg: GuestConfig, services=SERVICES) -> dict[str, subprocess.Popen]:
    """Start services of a guest whose config is written.  Each logs to
    RUN_DIR/SERVICE.log; with a stdio console, sigio has skas's stdin and
    stdout.  If one cannot start, those already started are stopped."""
    procs: dict[str, subprocess.Popen] = {}
    phases.mark("cli", "spawn")
    try:
        for service in services:
            with open(cfg.run_dir / f"{service}.log", "ab") as log:
                console = service == "sigio" and cfg.console == "stdio"
                procs[service] = subprocess.Popen(
                    command(service, cfg.path), cwd=REPO, stderr=log,
                    stdin=None if console else subprocess.DEVNULL,
                    stdout=None if console else log, start_new_session=True,
                    preexec_fn=_die_with(os.getpid()))
    except BaseException:
        stop(procs)
        raise
    phases.mark("cli", "spawned")
    return procs


def wait_guest(procs: dict[str, subprocess.Popen]) -> int:
    """The kernel's exit code; if userspace dies first the guest is dead too."""
    kernel, userspace = procs["kernel"], procs.get("userspace")
    while True:
        try:
            return kernel.wait(0.2)
        except subprocess.TimeoutExpired:
            if userspace is not None and userspace.poll() is not None:
                kernel.send_signal(signal.SIGTERM)
                userspace = None


def stop(procs: dict[str, subprocess.Popen]) -> None:
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
