"""A supervised guest's console line (console "socket"): `skas console`
through a pty the test opens shows the same shell after a detach (^]) and
a reattach (its pid, history and working directory); a new attach takes
the line over; 4 MiB written while nobody is attached arrive in order
once someone is, none lost; and the errors say what to do."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from common import config as guest_config
from common.transport import Link
from conftest import HERE, _command, make_config, make_tree, disk_of
from deploy import launch
from terminal import Terminal

BIG = 4 << 20


@pytest.fixture(scope="module")
def attachtree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "attachtree")
    (root / "big").write_bytes(os.urandom(BIG))
    return root


@pytest.fixture(scope="module")
def attachdisk(tmp_path_factory, attachtree):
    yield from disk_of(tmp_path_factory, attachtree)


def supervised(tmp_path, disk, init):
    """A guest as supervisord runs it: its services started from its config,
    the console an attachable line (as skas create makes it), once sigio
    has made the line (as `supervisorctl start` returns once the services
    run: an attach before is told the guest is not running)."""
    cfg = make_config(tmp_path, disk, init, console="socket")
    cfg.console_input = True
    cfg.write()
    procs = launch.start(cfg)
    line = Path(cfg.console_socket[len("ipc://"):])
    deadline = time.monotonic() + 60
    while not line.exists():
        assert procs["sigio"].poll() is None and time.monotonic() < deadline, \
            f"sigio made no console line: {launch.log_tail(cfg, 'sigio')}"
        time.sleep(0.01)
    return cfg, procs


def attach(cfg) -> Terminal:
    return Terminal(_command(("console", str(cfg.run_dir))), cwd=HERE.parent)


SHELL = ["/bin/sh", "-c", "setsid cttyhack /bin/sh -i; echo shell ended"]


def test_detach_and_reattach_find_the_same_shell(tmp_path, attachdisk):
    """Answers are read by markers the typed lines cannot show ($$ and $PWD
    are not expanded in their echo), not by where prompts fall: the screen
    replayed at each attach holds old prompts, and a line typed before the
    shell's editor is ready is echoed by the terminal as well."""
    cfg, procs = supervised(tmp_path, attachdisk, SHELL)

    def ask(t: Terminal, line: bytes, answer: bytes) -> bytes:
        t.send(line + b"\r")
        return t.expect(answer).group(1)
    try:
        t = attach(cfg)
        pid = ask(t, b"echo pid=$$.", rb"pid=(\d+)\.\r\n")
        ask(t, b"cd /etc; echo cwd=$PWD.", rb"cwd=(/etc)\.\r\n")
        t.send(b"\x1d")                      # Ctrl-]
        t.expect(rb"detached from svc; reattach: skas console svc")
        assert t.wait() == 0
        t.close()
        t = attach(cfg)
        t.expect(rb"cwd=/etc\.\r\n")          # the screen it left, shown again
        assert ask(t, b"echo pid=$$.", rb"pid=(\d+)\.\r\n") == pid
        assert ask(t, b"echo cwd=$PWD.", rb"cwd=(/\S*)\.\r\n") == b"/etc"
        t.send(b"\x1b[A\x1b[A\r")            # history: up twice is the pid line again
        assert t.expect(rb"pid=(\d+)\.\r\n").group(1) == pid
        t2 = attach(cfg)                      # takes the line over
        t.expect(rb"the console of svc was taken: another client attached")
        assert t.wait() == 1
        t2.send(b"exit\r")
        t2.expect(rb"shell ended")
        t2.close()
        t.close()
        assert procs["kernel"].wait(30) == 0
    finally:
        launch.stop(procs)


def test_output_waits_for_a_client_and_none_is_lost(tmp_path, attachtree, attachdisk):
    """4 MiB written with nobody attached: the guest waits (at most the
    backlog is held), then a client gets every byte in order, though it
    goes away midway without a word and another attaches: the second is
    sent again what the first was sent but did not say it took.  The
    console is a terminal: ONLCR makes each newline CR NL."""
    cfg, procs = supervised(tmp_path, attachdisk, ["/bin/sh", "-c", "cat /big; echo; echo END"])
    try:
        got = bytearray()
        link = Link(cfg.console_socket, "test")
        link.send("console_attach", 1, {})
        taken = 0
        while len(got) < BIG // 2:           # the first client takes half, then goes away
            assert link.sock.poll(30000)
            for _, msg in link.drain():
                if msg.type == "console_attached":
                    assert msg["at"] == 0
                elif msg.type == "console_output":
                    assert msg["at"] == taken
                    got += msg["data"]
                    taken += len(msg["data"])
                    link.send("console_took", 2, {"upto": taken})
        link.close()                          # without a word: what it was sent and did
        link = Link(cfg.console_socket, "test")   # not take comes again
        link.send("console_attach", 1, {})
        while not got.endswith(b"END\r\n"):
            assert link.sock.poll(30000)
            for _, msg in link.drain():
                if msg.type == "console_attached":
                    at = msg["at"]
                    assert at <= taken and got[:at].endswith(msg["screen"])
                    del got[at:]
                    taken = at
                elif msg.type == "console_output":
                    assert msg["at"] == taken
                    got += msg["data"]
                    taken += len(msg["data"])
                    link.send("console_took", 2, {"upto": taken})
        link.close()
        assert procs["kernel"].wait(60) == 0
    finally:
        launch.stop(procs)
    want = ((attachtree / "big").read_bytes() + b"\nEND\n").replace(b"\n", b"\r\n")
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
    assert cfg.console_log.read_bytes() == want         # the record has every byte too


def test_console_errors_say_what_to_do(tmp_path, attachdisk):
    r = subprocess.run(_command(("console", "no-such-guest")), cwd=HERE.parent,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no guest 'no-such-guest'" in r.stderr
    cfg = make_config(tmp_path, attachdisk, ["/bin/true"], console="socket")
    r = subprocess.run(_command(("console", str(cfg.run_dir))), cwd=HERE.parent,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is not running; start it: skas supervisorctl start" in r.stderr
    assert guest_config.load(cfg.path).console == "socket"
