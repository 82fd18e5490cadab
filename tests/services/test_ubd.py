"""ubd_io as a process on a real socket: every op, bad requests, resends,
the bounded queue and its busy answers, the kernel's UbdDevice against it,
and a tcp endpoint secured with CURVE."""
from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from common.exits import CONFIG
from common import protocol
from common.config import GuestConfig
from common.shared_buffer import SLOTS, SharedBuffer
from common.transport import AsyncLink, Channel, Link, context
from deploy import launch
from services.kernel.drivers import ubd as ubdmod
from services.kernel.drivers.ubd import UbdDevice
from services.kernel.core.errors import Errno
from services.ubd_io.block_queue import INLINE_MAX

MiB = 1 << 20


class Client:
    """The kernel's side of the wire, by hand: block messages on a DEALER."""

    def __init__(self, endpoint: str, keys=None):
        self.link = Link(endpoint, "test", keys)
        self.ids = itertools.count(1)

    def send(self, op: str, offset: int = 0, length: int = 0, data: bytes = b"", dev: int = 0,
             id_: int | None = None) -> int:
        id_ = next(self.ids) if id_ is None else id_
        self.link.send("block", id_, {"dev": dev, "op": op, "offset": offset, "length": length,
                                      "data": data})
        return id_

    def recv(self, timeout: float = 10) -> protocol.Message:
        assert self.link.sock.poll(int(timeout * 1000)), "no answer from ubd_io"
        return protocol.decode(self.link.sock.recv())

    def call(self, op: str, offset: int = 0, length: int = 0, data: bytes = b"",
             dev: int = 0) -> protocol.Message:
        id_ = self.send(op, offset, length, data, dev)
        while (reply := self.recv()).id != id_:
            pass
        return reply

    def status(self) -> dict:
        self.link.send("status", 0, {})
        return self.recv()["state"]

    def close(self) -> None:
        self.link.close()


class Ubd:
    """A ubd_io service started as skas starts it, for a config written here."""

    def __init__(self, tmp_path, disks: dict[str, str], **settings):
        self.cfg = GuestConfig(name="ubd", run_dir=tmp_path / "run", disks=disks,
                               init=["/bin/true"], console="log", **settings)
        self.cfg.make_run_dir()
        self.cfg.write()
        self.procs: dict = {}
        self.clients: list[Client] = []

    def start(self) -> Ubd:
        self.procs = launch.start(self.cfg, ("ubd_io",))
        return self

    def client(self, keys=None) -> Client:
        self.clients.append(Client(self.cfg.endpoints["ubd_io"], keys))
        return self.clients[-1]

    def log(self) -> str:
        return (self.cfg.run_dir / "ubd_io.log").read_text()

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        launch.stop(self.procs)


@pytest.fixture(name="ubd")
def ubd_services(tmp_path):
    """ubd_io services on disks; the test names them, all stopped after."""
    started: list[Ubd] = []

    def start(disks: dict[str, str], **settings) -> Ubd:
        started.append(Ubd(tmp_path, disks, **settings).start())
        return started[-1]
    yield start
    for u in started:
        u.stop()


@pytest.fixture
def image(tmp_path):
    """4 MiB of random bytes: a plain image whose every byte is checkable."""
    path = tmp_path / "raw.img"
    path.write_bytes(os.urandom(4 * MiB))
    return path


def count_reads(dev: UbdDevice) -> list[tuple[int, int]]:
    """The READs dev sends to ubd_io from now on, (offset, length) each."""
    reads = []
    send = dev._send

    async def counted(op, offset, length, data):
        if op == "READ":
            reads.append((offset, length))
        return await send(op, offset, length, data)
    dev._send = counted
    return reads


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_write_read_and_flush_reach_the_image_file(ubd, image):
    before = image.read_bytes()
    c = ubd({"ubd0": str(image)}).client()
    assert c.call("READ", 4096, 8192)["data"] == before[4096:12288]
    new = os.urandom(3000)
    assert c.call("WRITE", 1234, len(new), new)["status"] == 0     # unaligned is fine
    assert c.call("READ", 0, 8192)["data"] == before[:1234] + new + before[4234:8192]
    assert c.call("FLUSH")["status"] == 0
    assert image.read_bytes() == before[:1234] + new + before[4234:]


def test_discard_punches_a_hole_and_write_zeroes_zeroes_in_place(ubd, image):
    before = image.read_bytes()
    blocks = os.stat(image).st_blocks
    c = ubd({"ubd0": str(image)}).client()
    assert c.call("DISCARD", MiB, MiB, b"")["status"] == 0
    assert c.call("WRITE_ZEROES", 3 * MiB, 4096)["status"] == 0
    assert c.call("READ", MiB, MiB)["data"] == bytes(MiB)
    c.call("FLUSH")
    after = image.read_bytes()
    assert after == before[:MiB] + bytes(MiB) + before[2 * MiB:3 * MiB] + bytes(4096) \
        + before[3 * MiB + 4096:]
    assert os.stat(image).st_blocks <= blocks - (MiB // 512)     # the hole is really there
    assert os.path.getsize(image) == 4 * MiB


def test_bad_requests_get_an_errno_and_change_nothing(ubd, image):
    digest = sha(image)
    c = ubd({"ubd0": str(image)}).client()
    cases = [
        ({"op": "READ", "dev": 7}, errno.ENXIO),
        ({"op": "TRIM"}, errno.EOPNOTSUPP),
        ({"op": "READ", "offset": 4 * MiB - 10, "length": 20}, errno.EIO),
        ({"op": "WRITE", "offset": 4 * MiB, "length": 1, "data": b"x"}, errno.EIO),
        ({"op": "DISCARD", "offset": 4 * MiB - 512, "length": 1024}, errno.EIO),
        ({"op": "WRITE", "length": 10, "data": b"short"}, errno.EINVAL),
        ({"op": "READ", "offset": -512, "length": 512}, errno.EINVAL),
        ({"op": "READ", "length": protocol.BLOCK_MAX + 1}, errno.EINVAL),
        ({"op": "FLUSH", "data": b"x"}, errno.EINVAL),
    ]
    for fields, err in cases:
        body = {"offset": 0, "length": 0, "data": b"", "dev": 0, **fields}
        reply = c.call(body.pop("op"), **body)
        assert (reply.type, reply["status"]) == ("block_done", -err), fields
    assert c.call("READ", 0, 16)["status"] == 0
    assert c.status()["errors"] == len(cases)
    assert sha(image) == digest


def test_a_resent_request_is_answered_with_its_id_and_keeps_its_place(ubd, image):
    c = ubd({"ubd0": str(image)}).client()
    old, new = os.urandom(65536), os.urandom(65536)
    c.send("WRITE", MiB, len(old), old, id_=500)
    c.send("WRITE", MiB, len(old), old, id_=500)          # the kernel's resend
    c.send("WRITE", MiB, len(new), new, id_=501)          # then the next write there
    read = c.send("READ", MiB, len(new), id_=502)
    seen = []
    while (reply := c.recv()).id != read:
        assert (reply.type, reply["status"]) == ("block_done", 0)
        seen.append(reply.id)
    assert set(seen) == {500, 501} and seen.count(501) == 1
    assert reply["data"] == new


BIG = 2 * INLINE_MAX     # big enough to go through the queue, not run at once


def test_a_full_queue_answers_busy_and_what_it_accepts_runs_in_order(ubd, image):
    u = ubd({"ubd0": str(image)}, ubd_queue=2)
    c = u.client()
    writes = {c.send("WRITE", 8192, BIG, bytes([i]) * BIG): i for i in range(1, 201)}
    answers = {}
    while len(answers) < len(writes):
        reply = c.recv()
        assert reply.id not in answers, "one answer per request"
        answers[reply.id] = reply
    busy = [i for i, r in answers.items() if r.type == "busy"]
    done = [i for i, r in answers.items() if r.type == "block_done" and r["status"] == 0]
    assert busy and len(busy) + len(done) == len(writes)
    assert all(answers[i]["outstanding"] >= 2 for i in busy)
    assert c.call("READ", 8192, BIG)["data"] == bytes([writes[max(done)]]) * BIG
    state = c.status()
    assert state["busy"] == len(busy) and state["outstanding"] == 0 and state["depth"] == 2


def run_async(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro(loop))
    finally:
        loop.close()


def test_ubd_device_retries_busy_answers_and_keeps_the_order_of_its_calls(ubd, image):
    u = ubd({"ubd0": str(image)}, ubd_queue=1)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        # 8 blocks written 16 times each, all at once: calls on the same
        # block must land in call order, whatever ubd_io answers busy
        await asyncio.gather(*(dev.write(BIG * (i % 8), bytes([i]) * BIG)
                               for i in range(128)))
        await dev.flush()
        data = await dev.read(0, 8 * BIG)
        with pytest.raises(Errno) as beyond:
            await dev.read(4 * MiB, 512)
        await dev.discard(0, BIG)
        await dev.write_zeroes(BIG, BIG)
        return dev.busy, data, beyond.value.code, await dev.read(0, 3 * BIG)

    busy, data, beyond, zeroed = run_async(go)
    assert busy > 0
    assert data == b"".join(bytes([120 + b]) * BIG for b in range(8))
    assert beyond == errno.EIO
    assert zeroed == bytes(2 * BIG) + bytes([122]) * BIG


def test_status_describes_the_devices_and_the_queue(ubd, image):
    state = ubd({"ubd0": str(image)}).client().status()
    assert state["devices"] == {"ubd0": {"path": str(image), "size": 4 * MiB, "kind": "image",
                                         "journal": f"{image}.journal", "staged_bytes": 0}}
    assert state["depth"] == 64 and state["outstanding"] == 0


def test_a_missing_image_stops_ubd_io_with_a_clear_error(tmp_path):
    u = Ubd(tmp_path, {"ubd0": str(tmp_path / "nope.img")})
    u.procs = launch.start(u.cfg, ("ubd_io",))
    assert u.procs["ubd_io"].wait(30) == CONFIG
    assert "cannot open the guest's disks" in u.log() and "nope.img" in u.log()


# --- tcp with CURVE -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_ubd(ubd, image, tmp_path):
    keys = tmp_path / "run" / "curve"
    keys.mkdir(parents=True)
    for name in ("ubd_io", "kernel", "intruder"):
        zmq.auth.create_certificates(keys, name)
    u = ubd({"ubd0": str(image)}, endpoints={"ubd_io": f"tcp://127.0.0.1:{free_port()}"})
    return u, keys


def handshake(link: Channel) -> str:
    """The first handshake event of a link's connection, and it is sent a ping."""
    names = {getattr(zmq, n): n for n in dir(zmq) if n.startswith("EVENT_HANDSHAKE")}
    monitor = link.sock.get_monitor_socket()
    try:
        link.send("ping", 1, {})
        while monitor.poll(30_000):
            event = recv_monitor_message(monitor)["event"]
            if event in names:
                return names[event]
        raise AssertionError("no handshake")
    finally:
        link.sock.disable_monitor()
        monitor.close()


def test_tcp_ubd_io_serves_the_client_with_the_right_keys(tcp_ubd):
    u, keys = tcp_ubd
    c = u.client((keys / "kernel.key_secret", keys / "ubd_io.key"))
    assert handshake(c.link) == "EVENT_HANDSHAKE_SUCCEEDED"
    assert c.recv().type == "pong"
    assert c.call("READ", 0, 512)["status"] == 0


@pytest.mark.parametrize("who", ["no keys", "wrong server key", "unknown client key"])
def test_tcp_ubd_io_gives_nothing_to_a_client_without_the_right_keys(tcp_ubd, who):
    u, keys = tcp_ubd
    if who == "no keys":
        sock = context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(u.cfg.endpoints["ubd_io"])
        link = Channel(sock, "test")
    else:
        own, server = {"wrong server key": ("kernel", "intruder"),
                       "unknown client key": ("intruder", "ubd_io")}[who]
        link = Link(u.cfg.endpoints["ubd_io"], "test", (keys / f"{own}.key_secret",
                                                         keys / f"{server}.key"))
    try:
        assert handshake(link).startswith("EVENT_HANDSHAKE_FAILED")
        assert not link.sock.poll(0)
    finally:
        link.close()
    if who == "unknown client key":
        assert "refused a CURVE client with an unknown key" in u.log()
    good = u.client((keys / "kernel.key_secret", keys / "ubd_io.key"))
    assert good.call("READ", 0, 512)["status"] == 0          # and the service serves on


def test_a_tcp_endpoint_without_keys_is_refused_with_what_to_do(ubd, image):
    u = ubd({"ubd0": str(image)}, endpoints={"ubd_io": f"tcp://127.0.0.1:{free_port()}"})
    assert u.procs["ubd_io"].wait(30) == CONFIG
    assert "create_certificates" in u.log()
    with pytest.raises(ValueError, match="CURVE"):
        Link(u.cfg.endpoints["ubd_io"], "test")


def test_sequential_reads_are_read_ahead_and_a_write_still_wins(ubd, image):
    """4 KiB reads one after another: read-ahead brings the following ones
    into the cache, so far fewer requests reach ubd_io; a write in the middle
    is read back, not the older bytes read ahead."""
    u = ubd({"ubd0": str(image)})
    want = os.urandom(1 * MiB)
    with open(image, "r+b") as f:
        f.write(want)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        reads = count_reads(dev)
        got = [await dev.read(pos, 4096) for pos in range(0, 512 << 10, 4096)]
        await dev.write(256 << 10, b"w" * 4096)
        again = [await dev.read(pos, 4096) for pos in range(0, 1 * MiB, 4096)]
        await asyncio.wait([dev.ahead])
        return b"".join(got), b"".join(again), [length for _, length in reads]

    first, again, reads = run_async(go)
    assert first == want[:512 << 10]
    assert again == want[:256 << 10] + b"w" * 4096 + want[(256 << 10) + 4096:]
    # 384 reads of 4 KiB asked; the windows grow (to 128 KiB, less what is cached)
    assert len(reads) < 40 and max(reads) > 64 << 10


def test_a_write_shared_is_written_from_the_kernels_buffer(ubd, image):
    """A local ubd_io takes a posted write's data from the kernel's memfd."""
    before = image.read_bytes()
    c = ubd({"ubd0": str(image)}).client()
    buf = SharedBuffer(slots=2, slot=MiB)
    new = os.urandom(MiB)
    at = buf.put(new)
    c.link.send("write_shared", 7, {"dev": 0, "offset": 4096, "length": MiB,
                                    "buffer": buf.path, "at": at, "fresh": False})
    assert c.recv()["status"] == 0
    assert c.call("FLUSH")["status"] == 0
    assert image.read_bytes() == before[:4096] + new + before[4096 + MiB:]
    assert c.status()["shared"] == 1


def test_write_shared_reads_nothing_but_a_kernel_buffer(ubd, image, tmp_path):
    """A request cannot make ubd_io copy some other file into a disk: a
    plain file, an fd link to one, a memfd of another name and bytes
    outside the buffer are each refused with an error, and the image is
    left as it was."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 8192)
    c = ubd({"ubd0": str(image)}).client()
    before = sha(image)
    buf = SharedBuffer(slots=1, slot=8192)
    other = os.memfd_create("not-skas")
    os.write(other, b"o" * 8192)
    opened = os.open(secret, os.O_RDONLY)
    try:
        for path, at in ((str(secret), 0), (f"/proc/{os.getpid()}/fd/{opened}", 0),
                         (f"/proc/{os.getpid()}/fd/{other}", 0), ("/proc/self/fd/0", 0),
                         (buf.path, 8192 - 100)):
            c.link.send("write_shared", 9, {"dev": 0, "offset": 0, "length": 4096,
                                            "buffer": path, "at": at, "fresh": False})
            reply = c.recv()
            assert reply.type == "error" and "cannot use buffer" in reply["reason"], path
    finally:
        os.close(opened)
        os.close(other)
    assert c.call("FLUSH")["status"] == 0
    assert sha(image) == before


def test_the_kernel_sends_the_data_itself_if_ubd_io_cannot_use_its_buffer(ubd, image):
    u = ubd({"ubd0": str(image)})
    data = os.urandom(BIG)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        assert dev.sharing
        dev.shared.path = "/proc/1/fd/0"           # not a buffer ubd_io accepts
        await dev.write(BIG, data)
        await dev.flush()
        return dev.sharing

    assert run_async(go) is False
    assert image.read_bytes()[BIG:2 * BIG] == data
    assert "cannot use the kernel's buffer" in u.log()


def test_a_resent_shared_write_keeps_its_slot_until_a_flush(ubd, image):
    """ubd_io stopped past the deadline: the write is sent again, so a copy
    of it may still be queued when the answer comes; its slot must not take
    other data before a FLUSH (which ubd_io runs after every earlier write)."""
    u = ubd({"ubd0": str(image)})
    pid = u.procs["ubd_io"].pid
    data = os.urandom(BIG)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel", deadline=0.2), 0)
        await dev.write(0, b"warm" * 1024)
        await dev.flush()
        os.kill(pid, signal.SIGSTOP)
        try:
            await dev.write(0, data)
            deadline = loop.time() + 30
            while not dev.link.resends:           # past the deadline: sent again
                assert loop.time() < deadline, "the write was never resent"
                await asyncio.sleep(0.01)
        finally:
            os.kill(pid, signal.SIGCONT)
        while dev.posted:
            await asyncio.sleep(0.01)
        held, free = list(dev.quarantine), len(dev.shared.free)
        await dev.flush()
        return held, free, list(dev.quarantine), len(dev.shared.free), dev.link.resends

    held, free, after, free_after, resends = run_async(go)
    # How many slots the write took, and how many of its requests were resent
    # before ubd_io woke, depends on timing; every slot resent is held.
    assert resends >= 1 and held
    assert free == SLOTS - len(held) and after == [] and free_after == SLOTS
    assert image.read_bytes()[:BIG] == data


def test_a_write_in_flight_is_read_back_at_once_and_a_discard_in_flight_is_waited_for(
        ubd, image):
    """A posted write's data is in the page cache from the moment it is
    posted (as Linux reads a page under write-back): reading it back needs
    no ubd_io, even a stopped one.  A DISCARD drops its range at once, so a
    read of it waits for ubd_io and gets zeros, never the older bytes."""
    u = ubd({"ubd0": str(image)})
    pid = u.procs["ubd_io"].pid
    new = os.urandom(64 << 10)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        assert await dev.read(MiB, 64 << 10) == image.read_bytes()[MiB:MiB + (64 << 10)]
        reads = count_reads(dev)
        os.kill(pid, signal.SIGSTOP)
        try:
            await dev.write(MiB, new)
            during = await asyncio.wait_for(dev.read(MiB, 64 << 10), 1)
            held = list(reads)
        finally:
            os.kill(pid, signal.SIGCONT)
        await dev.discard(MiB, 64 << 10)
        assert await dev.read(2 * MiB, 4096) == image.read_bytes()[2 * MiB:2 * MiB + 4096]
        task = asyncio.ensure_future(dev.discard(2 * MiB, 4096))
        await asyncio.sleep(0)                 # the discard is registered, not done
        zeros = await dev.read(2 * MiB, 4096)
        await task
        await dev.flush()
        return during, held, zeros, reads

    during, held, zeros, reads = run_async(go)
    assert during == new and held == []
    assert zeros == bytes(4096) and reads[-1] == (2 * MiB, 4096)
    assert image.read_bytes()[MiB:MiB + (64 << 10)] == bytes(64 << 10)


def test_written_parts_reach_the_image_and_the_cache_keeps_no_bytearray(ubd, image):
    """ext2 writes back its dirty blocks as parts (some bytearrays it
    changes in place): ubd_io gets their join, through the shared buffer
    and, when that is refused, in the message; the page cache keeps each
    page as immutable bytes, so a later change to a bytearray is not read."""
    u = ubd({"ubd0": str(image)})
    parts = [os.urandom(4096), bytearray(os.urandom(4096)), os.urandom(4096)]
    joined = b"".join(parts)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        await dev.write_parts(8192, parts)
        await dev.flush()
        parts[1][:4] = b"XXXX"                 # ext2 would not, once written back
        cached = await dev.read(8192, 3 * 4096)
        kinds = {type(p) for p in dev.cache.pages.values()}
        dev.sharing = False
        await dev.write_parts(MiB + 512, [b"a" * 1000, b"b" * 24])   # unaligned: joined
        await dev.flush()
        return cached, kinds, await dev.read(MiB, 4096)

    cached, kinds, unaligned = run_async(go)
    assert cached == joined and kinds == {bytes}
    assert image.read_bytes()[8192:8192 + 3 * 4096] == joined
    assert unaligned[512:1536] == b"a" * 1000 + b"b" * 24


def test_without_a_memfd_the_kernel_sends_the_data_itself(ubd, image, monkeypatch):
    def no_memfd(*_):
        raise OSError(errno.ENOSYS, "memfd_create")
    monkeypatch.setattr("common.shared_buffer.os.memfd_create", no_memfd)
    u = ubd({"ubd0": str(image)})
    data = os.urandom(BIG)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        await dev.write(0, data)
        await dev.flush()
        return dev.sharing

    assert run_async(go) is False
    assert image.read_bytes()[:BIG] == data


def test_small_reads_take_whole_pages_and_a_small_write_is_merged_into_its_page(ubd, image):
    """A filesystem of 1 KiB blocks reading its metadata: each miss reads
    the whole 4 KiB page, so the page's other blocks are then read from the
    cache; blocks of one page asked at once wait for one read; a 1 KiB
    write into a cached page is merged into it, not dropped with it; and a
    read asked after a write to a page whose read was in flight sees the
    write, never the bytes that read brings."""
    u = ubd({"ubd0": str(image)})
    disk = image.read_bytes()
    KiB = 1024

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        dev.size = len(disk)
        reads = count_reads(dev)
        out = {"page5": [await dev.read(5 * 4096 + k * KiB, KiB) for k in (1, 0, 3, 2)]}
        out["page5 reads"] = list(reads)
        await dev.write(5 * 4096 + 2 * KiB, b"w" * KiB)
        out["page5 after"] = await dev.read(5 * 4096, 4096)
        out["page9"] = await asyncio.gather(*(dev.read(9 * 4096 + k * KiB, KiB) for k in range(4)))
        first = asyncio.ensure_future(dev.read(12 * 4096, KiB))
        await asyncio.sleep(0)                   # its read is in flight
        await dev.write(12 * 4096 + KiB, b"x" * KiB)
        out["page12"] = await dev.read(12 * 4096, 4096)
        out["page12 first"] = await first
        await dev.flush()
        out["reads"] = reads
        return out

    out = run_async(go)
    page = lambda n: disk[n * 4096:(n + 1) * 4096]     # noqa: E731
    assert out["page5"] == [page(5)[k * KiB:(k + 1) * KiB] for k in (1, 0, 3, 2)]
    assert out["page5 reads"] == [(5 * 4096, 4096)]
    assert out["page5 after"] == page(5)[:2 * KiB] + b"w" * KiB + page(5)[3 * KiB:]
    assert b"".join(out["page9"]) == page(9)
    assert out["reads"].count((9 * 4096, 4096)) == 1
    assert out["page12"] == page(12)[:KiB] + b"x" * KiB + page(12)[2 * KiB:]
    assert out["page12 first"] == page(12)[:KiB]
    assert (5 * 4096, 4096) not in out["reads"][1:]          # the merged page was kept
    on_disk = image.read_bytes()
    assert on_disk[5 * 4096:6 * 4096] == out["page5 after"]
    assert on_disk[12 * 4096:13 * 4096] == out["page12"]


def test_a_forgotten_range_leaves_the_cache_and_is_read_from_ubd_io_again(ubd, image):
    """forget (blocks the filesystem freed) drops the pages the range
    touches, and only those: after the image changes behind the cache's
    back, a read sees the change in those pages alone."""
    u = ubd({"ubd0": str(image)})
    data = os.urandom(8 * 4096)

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel"), 0)
        await dev.write(0, data)
        await dev.flush()
        dev.forget(4096, 2 * 4096 + 100)             # touches pages 1, 2 and 3
        with open(image, "r+b") as f:
            f.write(bytes(8 * 4096))
        cached = sorted(dev.cache.pages)
        # last page first: no read is sequential, so none reads ahead
        return cached, [await dev.read(n * 4096, 4096) for n in reversed(range(8))]

    cached, seen = run_async(go)
    assert cached == [0, 4, 5, 6, 7]
    assert b"".join(reversed(seen)) == data[:4096] + bytes(3 * 4096) + data[4 * 4096:]


class FailingDisk:
    """The memory double (tests/doubles/memory_ubd.py) as this guest's
    ubd_io: every WRITE and FLUSH fails with EIO between fail() and heal()."""

    def __init__(self, tmp_path, image):
        self.cfg = GuestConfig(name="failing", run_dir=tmp_path / "run",
                               disks={"ubd0": str(image)}, init=["/bin/true"], console="log")
        self.cfg.make_run_dir()
        self.cfg.write()
        self.log = self.cfg.run_dir / "memory_ubd.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.doubles.memory_ubd", "--guest-config",
                 str(self.cfg.path)], cwd=Path(__file__).resolve().parents[2],
                stdout=log, stderr=log, start_new_session=True)

    async def _signal(self, signum: int, word: str) -> None:
        count = self.log.read_text().count(word)
        self.proc.send_signal(signum)
        while self.log.read_text().count(word) == count:
            await asyncio.sleep(0.01)

    async def fail(self) -> None:
        await self._signal(signal.SIGUSR1, "failing")

    async def heal(self) -> None:
        await self._signal(signal.SIGUSR2, "healed")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def failing_disk(tmp_path, image):
    disk = FailingDisk(tmp_path, image)
    yield disk
    disk.stop()


def test_a_failed_write_is_read_back_and_written_again_once_the_disk_takes_writes(
        failing_disk, image):
    """As Linux keeps a page whose write-back failed: the flush fails, reads
    (from the cache or, evicted, from the disk) see what was written, a
    later write wins over the part it covers, and the next commit point
    after the disk healed writes the rest; a range forgotten (freed by the
    filesystem) is not written again."""
    original = image.read_bytes()
    a, b, c, x = (bytes([v]) * 8192 for v in b"abcx")

    async def go(loop):
        link = AsyncLink(loop, failing_disk.cfg.endpoints["ubd_io"], "kernel")
        dev = UbdDevice(link, 0)
        await dev.flush()                            # (the buffer refused: data in messages)
        await failing_disk.fail()
        await dev.write(0, a)
        await dev.write(4096, b[:4096])              # over a's second half, after it
        await dev.write(65536, x)
        with pytest.raises(Errno) as failed:
            await dev.flush()
        pending = dict(dev.failed.data)
        await dev.write(0, c[:2048])                 # after the failure: wins over a's start
        cached = await dev.read(0, 8192)
        dev.cache.pages.clear()                      # evicted: read from the disk, overlaid
        overlaid = await dev.read(0, 8192)
        dev.forget(65536, 8192)                      # freed: not worth writing again
        await failing_disk.heal()
        await dev.flush()
        assert not dev.failed
        fresh = UbdDevice(AsyncLink(loop, failing_disk.cfg.endpoints["ubd_io"], "check"), 0)
        return failed.value.code, pending, cached, overlaid, await fresh.read(0, 81920)

    code, pending, cached, overlaid, disk = run_async(go)
    assert code == errno.EIO
    assert pending == {0: a[:4096], 4096: b[:4096], 65536: x}
    want = c[:2048] + a[2048:4096] + b[:4096]
    assert cached == overlaid == want
    assert disk == want + original[8192:81920]


def test_failed_writes_past_the_retry_bound_are_dropped_and_logged(
        failing_disk, image, monkeypatch, caplog):
    """RETRY_BYTES bounds what failed writes keep: past it one is dropped
    (its range reads from the disk again) and the log says e2fsck may be
    needed."""
    monkeypatch.setattr(ubdmod, "RETRY_BYTES", 8192)
    original = image.read_bytes()

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, failing_disk.cfg.endpoints["ubd_io"], "kernel"), 0)
        await dev.flush()
        await failing_disk.fail()
        await dev.write(0, b"k" * 8192)
        await dev.write(16384, b"d" * 4096)
        await dev.write(24576, b"e" * 4096)
        with pytest.raises(Errno):
            await dev.flush()
        kept = sorted(dev.failed.data)
        await failing_disk.heal()
        await dev.flush()
        return kept, await dev.read(0, 20480)

    kept, disk = run_async(go)
    assert kept == [0]
    assert disk == b"k" * 8192 + original[8192:20480]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert [e for e in errors if "is dropped" in e] == [
        "ubd0: a failed write of 4096 bytes at 16384 is dropped (8192 bytes already wait to be "
        "written again): the filesystem may need e2fsck"]          # once, not per write
    assert "ubd0: the disk takes writes again; 8192 bytes of failed writes were dropped " \
        "meanwhile: the filesystem may need e2fsck" in errors


class _FullImage:
    """An image whose writes fail with ENOSPC while full is set (the host's
    disk full), for BlockQueue's logging; reads always work."""

    def __init__(self):
        self.full = True
        self.written = 0

    def write(self, offset, data):
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)

    def read(self, offset, length):
        return bytes(length)


def test_a_failing_disk_logs_its_first_error_and_then_how_many_failed(caplog):
    """A full host disk fails every write (and the kernel writes its failed
    writes again at each commit point): ubd_io logs the first failure, and
    the count once the disk takes writes again, not a line a request;
    reads that work meanwhile do not reset the count."""
    from services.ubd_io.block_queue import BlockQueue, BlockRequest
    image = _FullImage()
    blocks = BlockQueue({0: image}, 4)
    try:
        def req(op):
            return BlockRequest(None, 1, 0, op, 0, 4096, b"x" * 4096 if op == "WRITE" else b"")
        statuses = [blocks._do(req(op))[0] for op in ["WRITE", "READ"] * 50]
        image.full = False
        after = blocks._do(req("WRITE"))[0]
    finally:
        blocks.pool.shutdown()
    assert statuses == [-errno.ENOSPC, 0] * 50 and after == 0
    logged = [r.getMessage() for r in caplog.records if r.name == "ubd_io"]
    assert logged == ["ubd0 WRITE at 0+4096: [Errno 28] No space left on device",
                      "ubd0 serves writes again: 50 failed before (the last with No space "
                      "left on device)"]
