"""What AF_UNIX sockets hold in the kernel is bounded and given back: a
message is charged to its sender until read, the guest's queues together
stop at GUEST_QUEUED (ENOBUFS), and a closed socket lets go of the files
in flight in its queue."""
import asyncio
import errno

import pytest

from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import OpenFile
from services.kernel.net import scm, unix
from services.kernel.net.scm import Creds, Rights
from services.kernel.net.unix import SOCK_DGRAM, SOCK_STREAM, UnixSocket

ME = Creds(1, 0, 0)


def pair(kind):
    a, b = UnixSocket(kind), UnixSocket(kind)
    a.pair(b, ME)
    return a, b


def test_a_message_is_charged_to_its_sender_until_read():
    async def go():
        a, b = pair(SOCK_STREAM)
        data = b"x" * 1000
        assert await a.send_stream(lambda skip, n: data[skip:skip + n], 1000, ME, None, True) == 1000
        assert a.wmem == 1000 + unix.MSG_OVERHEAD
        got = []
        await b.recv_stream(lambda at, d: got.append(d), 4096, 0, True)
        assert b"".join(got) == data and a.wmem == 0 and unix._queued == 0
    asyncio.run(go())


def test_the_guests_queues_are_bounded(monkeypatch):
    monkeypatch.setattr(unix, "GUEST_QUEUED", 10_000)
    async def go():
        a, b = pair(SOCK_DGRAM)
        for _ in range(4):
            await a.send_dgram(b"y" * 1500, None, ME, None, True)
        with pytest.raises(Errno) as e:
            await a.send_dgram(b"y" * 9000, None, ME, None, True)
        assert e.value.code == errno.ENOBUFS
        b.release()                       # the unread messages go, and their charge
        assert unix._queued == 0 and a.wmem == 0
    asyncio.run(go())


def test_closing_a_socket_lets_go_of_files_in_flight():
    released = []

    class Tracked(OpenFile):
        def release(self):
            released.append(self)

    async def go():
        a, b = pair(SOCK_DGRAM)
        f = Tracked(None, 0)
        f.refs = 1                        # its fd
        await a.send_dgram(b"z", None, ME, Rights([f], 0, None), True)
        assert f.refs == 2 and scm._inflight_total == 1
        b.release()
        assert f.refs == 1 and scm._inflight_total == 0 and not released
    asyncio.run(go())
