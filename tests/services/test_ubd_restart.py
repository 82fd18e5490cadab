"""Durability across ubd_io restarts: a supervised guest appends records with
fsync after each while its ubd_io is SIGKILLed three times; supervisord
restarts ubd_io, the kernel resends what was unanswered, the guest sees no
error, and every record it was told was fsync'd is on the image (or, for an
overlay, in the image uml_moo merges), which e2fsck finds clean."""
from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import subprocess

import pytest

from common.transport import AsyncLink
from conftest import make_tree, skas
from deploy import disk as diskmod
from deploy import launch
from deploy import supervisor
from services.kernel.drivers.ubd import UbdDevice
from services.kernel.core.errors import Errno
from test_cow import sha, uml_moo
from test_ubd import Ubd, run_async
from supervised import create, guest_pids, states, wait_until

RECORD = 512            # as tests/progs/fsync_log.c writes them
RECORDS = 2000          # enough that three kill/restart rounds happen while it runs
KILLS = 3


def record(i: int) -> bytes:
    head = f"record {i:08d}\n".encode()
    return head + bytes([ord("a") + i % 26]) * (RECORD - len(head) - 1) + b"\n"


def fsynced(console) -> list[int]:
    """The record numbers the guest reported fsync'd, in order."""
    text = console.read_text() if console.exists() else ""
    return [int(n) for n in re.findall(r"^fsynced (\d+)$", text, re.M)]


def reached(console, n: int) -> bool:
    """Whether the guest reported n records; an error or an early end fails
    at once, with the end of the console log."""
    text = console.read_text() if console.exists() else ""
    assert "error" not in text and "exit=" not in text, text[-2000:]
    return len(fsynced(console)) >= n


@pytest.fixture(scope="module")
def fsync_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "fsynclog", progs=["fsync_log"])


@pytest.mark.parametrize("disk", ["image", "overlay"])
def test_fsynced_records_survive_ubd_io_killed_three_times(skas_home, tmp_path,
                                                           fsync_tree, disk):
    """On a plain image, and on a UML COW overlay (whose bitmap must reach
    the file before a write is acknowledged)."""
    img = tmp_path / "disk.img"
    diskmod.create(img, "64M", fsync_tree)
    spec, digest = str(img), sha(img)
    if disk == "overlay":
        overlay = tmp_path / "disk.cow"
        r = skas("disk", "create", "--cow", str(img), str(overlay))
        assert r.returncode == 0, r.stderr
        spec = f"{overlay},{img}"
    cfg = create("durable", spec, "/bin/sh", "-c",
                 f"/bin/fsync_log /root/records {RECORDS}; echo exit=$?")
    assert supervisor.ctl("start", "durable:*").returncode == 0
    wait_until(lambda: reached(cfg.console_log, 20), 30, "the first records")

    ubd_pids = []
    for _ in range(KILLS):
        info = supervisor.group_state("durable")["ubd_io"]
        assert info["statename"] == "RUNNING"
        ubd_pids.append(info["pid"])
        os.kill(info["pid"], signal.SIGKILL)
        wait_until(lambda: (supervisor.group_state("durable")["ubd_io"]["statename"] == "RUNNING"
                            and supervisor.group_state("durable")["ubd_io"]["pid"]
                            not in ubd_pids), 30, "supervisord to restart ubd_io")
        seen = len(fsynced(cfg.console_log))
        assert seen < RECORDS, "the guest finished before the kills: raise RECORDS"
        wait_until(lambda: reached(cfg.console_log, seen + 10), 30,
                   "progress with the new ubd_io")

    wait_until(lambda: "exit=" in cfg.console_log.read_text(), 120, "the guest to finish")
    wait_until(lambda: set(states("durable").values()) <= {"STOPPED", "EXITED"}, 30,
               "the group to stop")
    wait_until(lambda: not guest_pids("durable"), 10, "every service gone")
    assert len(set(ubd_pids)) == KILLS

    console = cfg.console_log.read_text()
    assert "error" not in console, console[-2000:]
    assert f"done {RECORDS}\nexit=0\n" in console, console[-2000:]
    reported = fsynced(cfg.console_log)
    assert reported == list(range(RECORDS))

    if disk == "overlay":
        assert sha(img) == digest                   # the backing file is never written
        img = tmp_path / "merged.img"
        uml_moo(overlay, img)
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    out = tmp_path / "records"
    subprocess.run(["debugfs", "-R", f"dump /root/records {out}", str(img)], check=True,
                   capture_output=True)
    data = out.read_bytes()
    assert len(data) == RECORDS * RECORD
    for i in reported:
        assert data[i * RECORD:(i + 1) * RECORD] == record(i), f"record {i}"


def test_posted_writes_in_flight_when_ubd_io_is_killed_land_before_the_flush_returns(tmp_path):
    """The kernel's writes are posted (write returns once queued): those
    still unanswered when ubd_io dies are resent to the new one, and flush
    returns only when all of them are on the image."""
    image = tmp_path / "raw.img"
    image.write_bytes(bytes(8 << 20))
    u = Ubd(tmp_path, {"ubd0": str(image)}).start()
    chunks = [os.urandom(64 << 10) for _ in range(96)]

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel", deadline=0.3), 0)
        dev.size = 8 << 20                          # (as ubd_io's status tells at boot)
        for i, chunk in enumerate(chunks):
            await dev.write(i * len(chunk), chunk)
        in_flight = len(dev.posted)
        u.procs["ubd_io"].send_signal(signal.SIGKILL)
        u.procs["ubd_io"].wait()
        flushed = asyncio.ensure_future(dev.flush())
        await asyncio.sleep(0.5)
        assert not flushed.done()                   # nothing answers while ubd_io is down
        u.procs = launch.start(u.cfg, ("ubd_io",))
        await asyncio.wait_for(flushed, 30)
        # a posted write past the end fails for good (not kept to write
        # again): the next flush says so, once
        with pytest.raises(Errno) as beyond:
            await dev.write(8 << 20, b"x" * 4096)
            await dev.flush()
        await dev.flush()                           # reported once
        return in_flight, beyond.value.code

    try:
        in_flight, beyond = run_async(go)
    finally:
        u.stop()
    assert in_flight > 0
    assert beyond == errno.EIO
    assert image.read_bytes() == b"".join(chunks) + bytes((8 << 20) - 96 * (64 << 10))
