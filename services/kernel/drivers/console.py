"""The guest console: a tty whose host side is the sigio service.

Output is queued here and pumped to sigio one ``console_write`` at a time,
everything queued since the last ack in one message.  At most ``BUFFER``
bytes wait (queued or in flight), as in a tty's output buffer: a guest's
write is taken from its memory as room appears, and returns once the last
of it is queued.  ``drain`` waits until sigio has written everything
(shutdown needs that).

The console is not yet a ``tty.Tty``: it has no input, so its termios
(the tty layer's ``Termios``, Linux's defaults) are kept and reported
but its output is sent as written (no OPOST: ``skas run``'s output is the
guest's bytes).  Console input (issue 16's sigio part) makes it a Tty:
sigio's input bytes go to ``Tty.receive``, ``Tty.output`` is what this
pump sends, and the console takes the tty ioctls, job control and
controlling-terminal rules with them (docs/architecture.md, "Terminals")."""
from __future__ import annotations

import asyncio
import errno
import struct

from common.transport import AsyncLink
from services.kernel.core.errors import Errno
from services.kernel.fs.files import PseudoInode
from services.kernel.fs.vfs import STAT, OpenFile
from services.kernel.abi.fcntl import O_NONBLOCK
from services.kernel.abi.poll import POLLOUT, POLLWRNORM
from services.kernel.drivers.tty.termios import Termios
from services.kernel.abi.ioctls import (
    TCGETS, TCSETS, TCSETSF, TCSETSW, TIOCGPGRP, TIOCGWINSZ, TIOCSPGRP, TIOCSWINSZ)

BUFFER = 64 << 10
CONSOLE_RDEV = (5 << 8) | 1     # /dev/console is 5:1


class Console:
    def __init__(self, link: AsyncLink, tty: bool = True):
        self.link = link
        self.tty = tty          # else a plain character device: terminal ioctls are ENOTTY
        self.queue = bytearray()
        self.seq = 0
        self.in_flight = 0
        self.termios = Termios()        # Linux's tty_std_termios
        self.winsize = struct.pack("<HHHH", 24, 80, 0, 0)
        self.pgrp = 1
        self.pump: asyncio.Task | None = None
        self.room = asyncio.Event()
        self.room.set()
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def free(self) -> int:
        """What the buffer takes now."""
        return max(0, BUFFER - len(self.queue) - self.in_flight)

    async def wait_room(self) -> None:
        while not self.free:
            self.room.clear()
            await self.room.wait()

    def put(self, data: bytes) -> None:
        self.queue += data
        self.idle.clear()
        if self.pump is None or self.pump.done():
            self.pump = asyncio.ensure_future(self._pump())

    async def write(self, data: bytes) -> int:
        """The kernel's own messages: queued whole once there is room."""
        await self.wait_room()
        self.put(data)
        return len(data)

    async def _pump(self) -> None:
        while self.queue:
            data = bytes(self.queue)
            self.queue.clear()
            self.in_flight = len(data)
            self.seq += 1
            reply = await self.link.request("console_write", {"seq": self.seq, "data": data})
            if reply.type != "console_ack":
                raise RuntimeError(f"sigio refused console output: {reply.body}")
            self.in_flight = 0
            self.room.set()
        self.idle.set()

    async def drain(self) -> None:
        await self.idle.wait()


class ConsoleFile(OpenFile):
    """An open /dev/console."""

    link_name = b"/dev/console"
    inode = PseudoInode(ino=5, mode=0o20600, rdev=CONSOLE_RDEV)   # as stat shows it

    def __init__(self, console: Console, flags: int):
        super().__init__(None, flags)
        self.console = console

    async def read(self, count: int, offset: int | None = None) -> bytes:
        return b""     # console input arrives with the tty line discipline

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        """write of the total bytes read(skip, n) gives (guest memory), taken
        as the buffer has room, as a tty copies a write into its buffer piece
        by piece: the kernel never holds more than BUFFER of it, and a
        signal, O_NONBLOCK or a bad address after some bytes ends it with
        their count (before any: EINTR, EAGAIN, EFAULT)."""
        console = self.console
        done = 0
        while done < total:
            try:
                if not console.free:
                    if self.flags & O_NONBLOCK:
                        raise Errno(errno.EAGAIN)
                    await console.wait_room()
                data = read(done, min(console.free, total - done))
            except (Errno, asyncio.CancelledError):
                if done:
                    return done
                raise
            console.put(data)
            done += len(data)
        return done

    def poll(self, table=None) -> int:
        return POLLOUT | POLLWRNORM     # no input yet: never readable

    def stat(self) -> bytes:
        return STAT.pack(6, 5, 1, 0o20600, 0, 0, 0, CONSOLE_RDEV, 0, 1024, 0,
                          0, 0, 0, 0, 0, 0)

    def statx(self) -> bytes:
        return self.stat().ljust(256, b"\0")

    def ioctl(self, task, request: int, arg: int) -> int:
        c = self.console
        if not c.tty:
            raise Errno(errno.ENOTTY)
        if request == TCGETS:
            task.mem.write(arg, c.termios.pack())
        elif request in (TCSETS, TCSETSW, TCSETSF):
            c.termios = c.termios.unpacked(task.mem.read(arg, Termios.size(False)))
        elif request == TIOCGWINSZ:
            task.mem.write(arg, c.winsize)
        elif request == TIOCSWINSZ:
            c.winsize = task.mem.read(arg, 8)
        elif request == TIOCGPGRP:
            task.mem.write(arg, struct.pack("<i", c.pgrp))
        elif request == TIOCSPGRP:
            c.pgrp = struct.unpack("<i", task.mem.read(arg, 4))[0]
        else:
            raise Errno(errno.ENOTTY)
        return 0
