"""The services as processes on real sockets: bad messages, and doubles."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

import msgpack
import pytest

from common import protocol
from common.config import SERVICES
from deploy import launch
from conftest import HERE, ask, make_config, skas, skas_popen


BAD = {
    "garbage": (b"\xc1\xff not msgpack", "not msgpack"),
    "unknown type": (msgpack.packb([protocol.VERSION, "frobnicate", 7, "t", None, {}]),
                     "unknown message type"),
    "wrong version": (msgpack.packb([99, "ping", 7, "t", None, {}]), "protocol version"),
    "bad field": (msgpack.packb([protocol.VERSION, "block", 7, "t", None,
                                 {"dev": "zero", "op": "READ", "offset": 0, "length": 1,
                                  "data": b""}]), "field 'dev'"),
    "short envelope": (msgpack.packb([protocol.VERSION, "ping"]), "6-element"),
}


@pytest.fixture
def guest(tmp_path, disk):
    cfg = make_config(tmp_path, disk, ["/bin/busybox", "sleep", "30"])
    procs = launch.start(cfg)
    yield cfg, procs
    launch.stop(procs)


def test_every_service_answers_bad_messages_with_an_error_and_keeps_serving(guest):
    cfg, procs = guest
    for service in SERVICES:
        for case, (raw, reason) in BAD.items():
            reply = ask(cfg.endpoints[service], raw)
            assert reply.type == "error" and reason in reply["reason"], (service, case, reply)
        pong = ask(cfg.endpoints[service], protocol.encode("ping", 8, "test", {}))
        assert pong.type == "pong" and pong.id == 8
    assert all(p.poll() is None for p in procs.values())


def _running(cfg) -> dict:
    """The kernel's state once init runs busybox."""
    deadline = time.monotonic() + 10
    while True:
        state = ask(cfg.endpoints["kernel"], protocol.encode("status", 1, "test", {}))["state"]
        if state["tasks"] and state["tasks"][0]["comm"] == "busybox":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_status_shows_the_guest_processes(guest):
    cfg, _ = guest
    task = _running(cfg)["tasks"][0]
    assert task["pid"] == 1 and task["host_pid"] > 1


def test_the_kernel_drops_bad_hand_overs_on_its_fd_socket(guest):
    """Only a seccomp listener, with a task id, from the kernel's own uid is
    taken; anything else is logged and dropped, and the guest runs on."""
    cfg, procs = guest
    _running(cfg)
    r, w = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"no fd here", str(cfg.fd_socket))
            s.sendmsg([struct.pack("<q", 1)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                struct.pack("<i", r))], 0, str(cfg.fd_socket))
            s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<ii", r, w))],
                      0, str(cfg.fd_socket))
    finally:
        os.close(r)
        os.close(w)
    deadline = time.monotonic() + 10
    while (cfg.run_dir / "kernel.log").read_text().count("fd socket:") < 3:
        assert time.monotonic() < deadline, (cfg.run_dir / "kernel.log").read_text()
        time.sleep(0.1)
    assert [t["comm"] for t in _running(cfg)["tasks"]] == ["busybox"]
    assert all(p.poll() is None for p in procs.values())


def test_guest_runs_with_a_memory_ubd_double(tmp_path, disk):
    cfg = make_config(tmp_path, disk, ["/bin/busybox", "cat", "/etc/motd"])
    procs = launch.start(cfg, ("kernel", "userspace", "sigio"))
    log = open(cfg.run_dir / "memory_ubd.log", "wb")
    procs["ubd_io"] = subprocess.Popen([sys.executable, "-m", "tests.doubles.memory_ubd",
                                        "--guest-config", str(cfg.path)],
                                       cwd=HERE.parent, stderr=log, stdout=log)
    try:
        assert procs["kernel"].wait(30) == 0
    finally:
        launch.stop(procs)
    assert cfg.console_log.read_text() == "a file from the guest's disk\nline two\n"


def _children(pid: int) -> list[int]:
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def _placed(skas_pid: int) -> dict[str, set[int]]:
    """Each service's CPUs (and the guest's, as 'guest'), once all are up
    and pinned."""
    placed = {}
    for pid in _children(skas_pid):
        comm = open(f"/proc/{pid}/comm").read().strip()     # skas run forks skas-SERVICE
        if comm.startswith("skas-"):
            name = comm.removeprefix("skas-")
            placed[name] = os.sched_getaffinity(pid)
            if name == "userspace":
                for guest in _children(pid):
                    placed["guest"] = os.sched_getaffinity(guest)
    return placed


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two host CPUs")
@pytest.mark.parametrize("flags, io", [((), {1}), (("--io-cpu", "-1"), {0})])
def test_a_pinned_guest_runs_its_disk_io_on_the_next_cpu_unless_told(disk, flags, io):
    """skas run --cpu 0: the kernel, userspace, sigio and the guest on CPU 0,
    ubd_io (posted writes, off the trap path) on CPU 1; --io-cpu -1 keeps it
    with the rest."""
    proc = skas_popen("run", "--cpu", "0", *flags, "--disk", str(disk), "--",
                      "/bin/busybox", "sleep", "60", stdout=subprocess.DEVNULL)
    try:
        want = {"kernel": {0}, "userspace": {0}, "sigio": {0}, "ubd_io": io, "guest": {0}}
        deadline = time.monotonic() + 30
        while (placed := _placed(proc.pid)) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        assert placed == want
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("option", ["--cpu", "--io-cpu"])
def test_a_cpu_the_host_will_not_give_is_a_usage_error(disk, option):
    r = skas("run", option, str(os.cpu_count() + 3), "--disk", str(disk), "--", "/bin/true")
    assert r.returncode == 2 and f"Invalid value for {option}" in r.stderr
    assert "is not one this process may use" in r.stderr
