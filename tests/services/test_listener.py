"""The kernel's side of the seccomp listener (services/kernel/entry/listener.py)
against a real filtered process: answers as rax sees them, and a listener
whose last caller is gone is closed, not read for ever."""
from __future__ import annotations

import asyncio
import errno
import socket
import struct
import subprocess

import uvloop

from conftest import build
from services.kernel.entry.listener import Listener


def test_answers_reach_the_caller_and_a_hung_up_listener_is_closed(tmp_path):
    prog = build("notify.c", tmp_path / "notify", "-static")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = subprocess.Popen([str(prog), str(theirs.fileno())], pass_fds=[theirs.fileno()],
                             stdout=subprocess.PIPE, text=True)
    theirs.close()
    _, anc, _, _ = ours.recvmsg(1, socket.CMSG_SPACE(4))
    fd = struct.unpack("<i", anc[0][2][:4])[0]
    answers = [4242, -errno.ENOENT, (1 << 64) - 2]      # a value past 2**63, as lseek's
    calls, calls_seen = [], []

    async def serve():
        loop = asyncio.get_running_loop()

        def on_call(lst, nid, pid, nr, args):
            calls_seen.append((pid, nr))
            calls.append(lst.answer(nid, answers[len(calls)]))

        listener = Listener(loop, fd, on_call)
        deadline = loop.time() + 20
        while listener.fd >= 0:          # closed once the child is gone
            assert loop.time() < deadline, "the hung-up listener was never closed"
            await asyncio.sleep(0.01)

    uvloop.run(serve())
    out, _ = child.communicate(timeout=10)
    assert child.returncode == 0
    assert calls == [True, True, True]
    assert calls_seen == [(child.pid, 110)] * 3
    assert out.split() == ["0x1092", hex(-errno.ENOENT & ((1 << 64) - 1)), hex((1 << 64) - 2)]
