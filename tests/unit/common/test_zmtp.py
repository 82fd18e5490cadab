"""common/zmtp.py against libzmq itself: the kernel's link must be ZeroMQ on
the wire, so libzmq sockets are the peers here, on real Unix sockets."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
import uvloop
import zmq

from common import zmtp

BIG = bytes(range(256)) * 1200          # a long frame (over 255 bytes: 8-byte size)


async def _until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _echo_router(loop, endpoint, seen):
    router = None

    def on_message(to, frames):
        seen.append((to, frames))
        router.send(to, [b"re"] + frames)

    router = zmtp.Router(loop, endpoint, on_message)
    return router


def test_a_libzmq_dealer_talks_to_the_router(tmp_path):
    endpoint = f"ipc://{tmp_path}/r.sock"

    async def main():
        seen = []
        router = _echo_router(asyncio.get_running_loop(), endpoint, seen)
        ctx = zmq.Context()
        a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
        b.setsockopt(zmq.IDENTITY, b"named")
        for s in (a, b):
            s.connect(endpoint)
        a.send_multipart([b"one", BIG])
        b.send(b"two")
        await _until(lambda: a.poll(0) and b.poll(0))
        assert a.recv_multipart() == [b"re", b"one", BIG]
        assert b.recv_multipart() == [b"re", b"two"]
        ids = {frames[0]: to for to, frames in seen}
        assert ids[b"two"] == b"named" and len(ids[b"one"]) == 5 and ids[b"one"][0] == 0
        router.close()
        ctx.destroy(linger=0)

    asyncio.run(main())


def test_the_router_tells_when_a_peer_closes(tmp_path):
    """on_lost(id) when a connection ends: how the kernel hears userspace die."""
    endpoint = f"ipc://{tmp_path}/l.sock"

    async def main():
        seen, lost = [], []
        router = zmtp.Router(asyncio.get_running_loop(), endpoint,
                             lambda to, frames: seen.append(to), lost.append)
        ctx = zmq.Context()
        a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
        b.setsockopt(zmq.IDENTITY, b"stays")
        for s in (a, b):
            s.connect(endpoint)
            s.send(b"hi")
        await _until(lambda: len(seen) == 2)
        a.close(linger=0)
        await _until(lambda: lost)
        assert lost == [next(to for to in seen if to != b"stays")]
        assert list(router.peers) == [b"stays"]
        router.close()
        ctx.destroy(linger=0)

    asyncio.run(main())


def test_the_dealer_talks_to_a_libzmq_router_sending_what_was_queued_first_and_at_flush(tmp_path):
    endpoint = f"ipc://{tmp_path}/z.sock"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer = zmtp.Dealer(endpoint)
    dealer.send([b"early"])
    assert dealer.connect()
    first = router.recv_multipart()
    dealer.send([b"late", BIG])
    dealer.send([b"later"])
    assert router.poll(50) == 0           # kept for one write at flush
    dealer.flush()
    second, third = router.recv_multipart(), router.recv_multipart()
    assert first[1:] == [b"early"] and second[1:] == [b"late", BIG] and third[1:] == [b"later"]
    router.send_multipart([first[0], b"back", BIG])
    got = []
    deadline = time.monotonic() + 5
    while not got:
        assert time.monotonic() < deadline
        got = dealer.recv()
        time.sleep(0.005)
    assert got == [[b"back", BIG]]
    router.close(linger=0)
    deadline = time.monotonic() + 5
    with pytest.raises(ConnectionError):
        while time.monotonic() < deadline:
            dealer.recv()
            time.sleep(0.005)
    dealer.close()
    ctx.destroy(linger=0)


def test_the_dealer_waits_for_a_router_that_is_not_there_yet(tmp_path):
    assert not zmtp.Dealer(f"ipc://{tmp_path}/none.sock").connect()


def test_what_is_not_zmtp_is_dropped_and_the_router_serves_on(tmp_path):
    endpoint = f"ipc://{tmp_path}/r.sock"
    path = f"{tmp_path}/r.sock"

    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        router = _echo_router(loop, endpoint, seen)
        await asyncio.sleep(0.05)
        refused = []
        for junk in (b"GET / HTTP/1.0\r\n\r\n",
                     zmtp.GREETING.replace(b"NULL", b"PLAI") + b"\0" * 8,
                     zmtp.handshake(b"PUB"),
                     zmtp.handshake(b"DEALER") + bytes((0x80, 1, 0))):    # bad flags
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.setblocking(False)
            await loop.sock_sendall(s, junk)
            refused.append(s)
        for s in refused:        # each is closed by the router (read until EOF)
            while await asyncio.wait_for(loop.sock_recv(s, 4096), 5):
                pass
            s.close()
        dealer = zmtp.Dealer(endpoint)
        assert await loop.run_in_executor(None, dealer.connect)
        dealer.send([b"still here"])
        dealer.flush()
        got = []
        await _until(lambda: got.extend(dealer.recv()) or got)
        assert got == [[b"re", b"still here"]] and [f for _, f in seen] == [[b"still here"]]
        dealer.close()
        router.close()

    asyncio.run(main())


def test_a_peer_that_reads_nothing_gets_no_more_than_the_bound_kept_for_it(
        tmp_path, monkeypatch, caplog):
    """A client that sends and never reads: past MAX_UNREAD bytes kept for
    it, the router drops what else comes for it (logged once), as libzmq's
    ROUTER drops past its high-water mark; once it reads, it gets messages
    again."""
    monkeypatch.setattr(zmtp, "MAX_UNREAD", 1 << 20)
    endpoint = f"ipc://{tmp_path}/h.sock"
    payload = bytes(256 << 10)

    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        router = zmtp.Router(loop, endpoint,
                             lambda to, frames: (seen.append(frames),
                                                 router.send(to, [frames[0], payload])))
        await asyncio.sleep(0.05)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(f"{tmp_path}/h.sock")
        s.setblocking(False)
        await loop.sock_sendall(s, zmtp.handshake(b"DEALER"))
        for n in range(64):                                   # 16 MiB of answers asked
            await loop.sock_sendall(s, zmtp.message([b"%d" % n]))
        await _until(lambda: len(seen) == 64)
        (transport,) = router.peers.values()
        kept = transport.get_write_buffer_size()
        decoder, got = zmtp.Decoder(b"DEALER"), []

        async def read_until(check):
            while not check():
                data = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 5)
                got.extend(frames[0] for frames in decoder.feed(data))
        await read_until(lambda: got and transport.get_write_buffer_size() == 0)
        await asyncio.sleep(0.05)
        while True:                                           # what is on the socket still
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                break
            got.extend(frames[0] for frames in decoder.feed(data))
        answered = list(got)
        await loop.sock_sendall(s, zmtp.message([b"again"]))
        await read_until(lambda: b"again" in got)
        s.close()
        router.close()
        return kept, answered

    kept, answered = uvloop.run(main())       # the kernel's loop
    assert kept <= (1 << 20) + len(payload) + 64
    assert 0 < len(answered) < 64 and answered == [b"%d" % n for n in range(len(answered))]
    drops = [r for r in caplog.records if "left 1 MiB unread" in r.getMessage()]
    assert len(drops) == 1


def test_the_decoder_takes_bytes_as_they_come():
    stream = zmtp.handshake(b"ROUTER") + zmtp.message([b"a", BIG]) + zmtp.message([b""])
    whole = zmtp.Decoder(b"DEALER").feed(stream)
    decoder = zmtp.Decoder(b"DEALER")
    pieces = [m for i in range(len(stream)) for m in decoder.feed(stream[i:i + 1])]
    assert whole == pieces == [[b"a", BIG], [b""]]


def test_a_ping_is_answered_with_its_context():
    decoder = zmtp.Decoder(b"DEALER")
    decoder.feed(zmtp.handshake(b"ROUTER") + zmtp.frame(b"\x04PING\x00\x0actx", zmtp.COMMAND))
    assert decoder.replies == [zmtp.frame(b"\x04PONGctx", zmtp.COMMAND)]


def test_only_ipc_endpoints():
    with pytest.raises(ValueError, match="ipc:// only"):
        zmtp.Dealer("tcp://127.0.0.1:5555")
