"""The console line against hostile peers: another host user can neither
attach to a guest's console nor type into it; a guest flooding a console
nobody is attached to holds sigio to its backlog; bad console_input and
console_winsize fields, even from the guest's own sigio (the only peer the
kernel takes them from), get error replies from the kernel; garbage on the
console socket gets error replies and sigio serves on."""
from __future__ import annotations

import os
import socket
import time

import msgpack
import pytest

from common import protocol
from common.transport import Link
from conftest import ask, make_config
from deploy import console as console_client
from deploy import launch

NOBODY = 65534


@pytest.fixture
def flooding(tmp_path, disk):
    """A supervised guest writing to its console without end, nobody attached."""
    cfg = make_config(tmp_path, disk, ["/bin/busybox", "cat", "/dev/zero"], console="socket")
    cfg.console_input = True
    cfg.console_backlog = 1 << 20
    cfg.write()
    procs = launch.start(cfg)
    ask(cfg.endpoints["sigio"], protocol.encode("status", 1, "test"), timeout=30)  # it is up
    yield cfg, procs
    launch.stop(procs)


def _sigio_state(cfg) -> dict:
    reply = ask(cfg.endpoints["sigio"], protocol.encode("status", 1, "test"))
    return reply["state"]


def _full(cfg) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:      # event: the backlog reaches its bound
        state = _sigio_state(cfg)
        if state.get("backlog") == cfg.console_backlog:
            return state
        time.sleep(0.1)
    raise AssertionError(f"the backlog never filled: {state}")


def test_a_flood_with_nobody_attached_stays_bounded(flooding):
    cfg, procs = flooding
    state = _full(cfg)
    written = state["bytes_written"]
    rss = [int(line.split()[1]) for line in open(f"/proc/{procs['sigio'].pid}/status")
           if line.startswith("VmRSS:")][0]
    assert rss < 200 << 10, f"sigio holds {rss} KiB"
    again = _sigio_state(cfg)     # the guest waits: nothing more is taken
    assert again["backlog"] == cfg.console_backlog and again["bytes_written"] == written
    assert procs["kernel"].poll() is None


def test_another_user_can_neither_attach_nor_type(flooding):
    cfg, _ = flooding
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        said = []
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                console_client.find(str(cfg.run_dir))
                said.append("found")
            except console_client.ConsoleError as exc:
                said.append(str(exc))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(cfg.console_socket[len("ipc://"):])
                said.append("connected")
            except PermissionError:
                said.append("EACCES")
        finally:
            os.write(w, "\n".join(said).encode())
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        found, connect = f.read().split("\n")
    assert found.startswith("permission denied: guest") and connect == "EACCES"
    assert os.stat(cfg.run_dir).st_mode & 0o777 == 0o700
    assert os.stat(cfg.console_socket[len("ipc://"):]).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("body, reason", [
    ({"data": b"x" * (65 << 10), "eof": False}, "at most"),
    ({"data": b"x", "eof": 1}, "must be bool"),
    ({"data": "text", "eof": False}, "must be bytes"),
])
def test_bad_console_input_is_an_error_reply(flooding, body, reason):
    cfg, procs = flooding
    raw = msgpack.packb([protocol.VERSION, "console_input", 7, f"{cfg.name}/sigio", None, body],
                        use_bin_type=True)
    reply = ask(cfg.endpoints["kernel"], raw)
    assert reply.type == "error" and reason in reply["reason"] and reply.id == 7
    assert procs["kernel"].poll() is None


@pytest.mark.parametrize("rows, cols", [(-1, 80), (24, 1 << 16), (1 << 40, 1)])
def test_bad_console_winsize_is_an_error_reply(flooding, rows, cols):
    cfg, procs = flooding
    reply = ask(cfg.endpoints["kernel"], protocol.encode(
        "console_winsize", 8, f"{cfg.name}/sigio", {"rows": rows, "cols": cols}))
    assert reply.type == "error" and "0..65535" in reply["reason"]
    assert procs["kernel"].poll() is None


def test_garbage_on_the_console_socket_gets_errors_and_sigio_serves_on(flooding):
    cfg, procs = flooding
    link = Link(cfg.console_socket, "test")
    try:
        for frames in ([b"garbage"], [b"\x96\x01", b"two frames"], [msgpack.packb([1, 2, 3])],
                       [protocol.encode("console_took", 3, "test", {"upto": 5})],
                       [protocol.encode("console_input", 4, "test",
                                        {"data": b"ls\n", "eof": False})],
                       [msgpack.packb([protocol.VERSION, "console_output", 5, "t", None,
                                       {"at": 0, "data": b"x"}], use_bin_type=True)]):
            link.sock.send_multipart(frames)
            assert link.sock.poll(5000)
            _, msg = next(link.drain())
            assert msg.type == "error", frames
        link.sock.send(b"\xff" * (1 << 20))       # past the socket's message bound: dropped
        link.send("ping", 9, {})
        assert link.sock.poll(5000)
        _, msg = next(link.drain())
        assert msg.type == "pong" and msg.id == 9
    finally:
        link.close()
    assert procs["sigio"].poll() is None
