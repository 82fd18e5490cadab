"""Guests under a real supervisord with a private SKAS_HOME: the fixture
that gives a test its own supervisord, and what tests ask of a running
guest (its host processes, its services' states, a wait for an event)."""
from __future__ import annotations

import os
import time

import pytest

from common import config as guest_config
from conftest import skas
from deploy import supervisor


@pytest.fixture
def skas_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SKAS_HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    yield home
    if supervisor.running():
        supervisor.ctl("shutdown")
        deadline = time.monotonic() + 10
        while supervisor.running() and time.monotonic() < deadline:
            time.sleep(0.1)


def _proc(pid) -> tuple[bytes, int, str] | None:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return cmd, int(fields[1]), fields[0]


def guest_pids(name: str) -> set[int]:
    """Every live host process of the guest: its services and the guest
    processes they trace (children of userspace)."""
    procs = {int(p): _proc(p) for p in os.listdir("/proc") if p.isdigit()}
    procs = {p: v for p, v in procs.items() if v and v[2] != "Z"}
    mine = {p for p, (cmd, _, _) in procs.items()
            if b"services." in cmd and f"/{name}/{name}.toml".encode() in cmd}
    return mine | {p for p, (_, ppid, _) in procs.items() if ppid in mine}


def alive(pids: set[int]) -> set[int]:
    return {p for p in pids if (_proc(p) or (b"", 0, "Z"))[2] != "Z"}


def wait_until(cond, timeout: float, what: str):
    """Poll cond until it holds; the timeout only bounds a test that would
    otherwise hang, it decides nothing."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def create(name: str, disk, *cmd: str):
    r = skas("create", name, "--disk", str(disk), *(("--", *cmd) if cmd else ()))
    assert r.returncode == 0, r.stderr
    return guest_config.load(guest_config.default_run_root() / name / f"{name}.toml")


def states(name: str) -> dict[str, str]:
    return {s: i["statename"] for s, i in supervisor.group_state(name).items()}
