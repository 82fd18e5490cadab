"""The kernel SIGKILLed at many points of a write-heavy workload, each time
while ubd_io holds writes it has not committed (the kernel was half-way
through writing a change back): the image must pass e2fsck -fn after every
kill, every file the guest said it fsync'd must have its bytes, and the
next boot (a new kernel, which drops the dead one's uncommitted writes) must
find and leave the image clean.

One guest under supervisord, started again on the same image after each
kill, runs a churn with no end in sight; the kill points are counts of block
requests ubd_io has served, read from its status, so they land at different
points of the churn each round.  The last boot is a `skas run` of a churn
that ends, on the same image.
"""
from __future__ import annotations

import os
import signal

import pytest

import churn
from common import protocol
from common.transport import Link
from conftest import guest
from deploy import disk as diskmod
from deploy import supervisor
from supervised import create, guest_pids, states, wait_until

KILL_AFTER = (150, 600, 1200, 2500, 4000, 6000)     # block requests served by ubd_io
# few fsyncs (each a whole-filesystem sync) amid the untar loop's writing, so
# that most of the time something is written back and not yet synced
FILES, LINES = 60, 150
ENDLESS = 1_000_000       # files: the kill rounds' churn never gets to its end


@pytest.fixture(scope="module")
def churn_tree(tmp_path_factory):
    return churn.make_churn_tree(tmp_path_factory)


def _ubd_state(cfg) -> dict:
    """ubd_io's status (requests served, bytes staged per device)."""
    link = Link(cfg.endpoints["ubd_io"], "test")
    try:
        link.send("status", 1, {})
        if not link.sock.poll(5000):
            return {}
        reply = protocol.decode(link.sock.recv())
        return reply["state"] if reply.type == "status_reply" else {}
    finally:
        link.close()


def _mid_unit(cfg, requests: int, seen: list) -> bool:
    """ubd_io has served at least requests, and holds writes not yet
    committed (seen: their count and bytes)."""
    state = _ubd_state(cfg)
    staged = state.get("devices", {}).get("ubd0", {}).get("staged_bytes", 0)
    seen[:] = [state.get("requests", 0), staged]
    return seen[0] >= requests and staged > 0


def _down(name: str) -> bool:
    return set(states(name).values()) <= {"STOPPED", "EXITED", "FATAL"} and not guest_pids(name)


def test_a_kernel_killed_mid_write_back_leaves_a_clean_image(skas_home, tmp_path, churn_tree,
                                                             outcome):
    name = "kkills"
    img = tmp_path / "disk.img"
    diskmod.create(img, "64M", churn_tree)
    cfg = create(name, img, "/bin/sh", "/etc/churn.sh", str(ENDLESS), str(LINES))
    reported: set[int] = set()
    report = []
    seen: list = []
    for n in (*KILL_AFTER, None):
        if n is None:          # the last boot runs a churn to its end
            run = guest(img, "/bin/sh", "/etc/churn.sh", str(FILES), str(LINES))
            console = run.stdout
            assert run.returncode == 0, run.stderr[-2000:]
        else:
            assert supervisor.ctl("start", f"{name}:*").returncode == 0
            wait_until(lambda: _mid_unit(cfg, n, seen), 120, f"{n} requests, some uncommitted")
            os.kill(supervisor.group_state(name)["kernel"]["pid"], signal.SIGKILL)
            wait_until(lambda: _down(name), 60, "the guest down")
            console = cfg.console_log.read_text(errors="replace")
        reported |= set(churn.fsynced(console))
        fsck = churn.e2fsck(img)
        damaged = churn.damaged_files(img, sorted(reported), tmp_path / f"dump{n}")
        when = (f"killed at {seen[0]} requests, {seen[1]} bytes uncommitted" if n else
                "then a boot to the end")
        report.append(f"{when}: {len(reported) - len(damaged)}/{len(reported)} fsync'd "
                      f"files intact, e2fsck {'clean' if not fsck else 'FOUND ERRORS'}")
        assert not fsck, f"{when}: {fsck}"
        assert not damaged, f"{when}: fsync'd files damaged: {damaged}"
    assert f"done {FILES}\nexit=0" in console, console[-2000:]
    outcome("\n".join(report))
