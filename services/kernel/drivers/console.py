"""The guest console, tty0: a terminal whose other end is the sigio
service (UML's stdio console, 4:0; /dev/console, 5:1, opens it too).

In a nutshell: a ``Console`` is a ``Tty``.  What the guest writes goes
through its line discipline's output processing into ``output``; the
pump sends it to sigio one ``console_write`` at a time, everything there
since the last ack, and a writer waits while ``BUFFER`` bytes are queued
or in flight (a tty nobody reads).  ``drain`` waits until sigio has
written all of it (the halt needs that).  What sigio sends in
(``console_input``: the host's typed bytes) goes to ``Tty.receive``; a
piece the line discipline has no room for waits here until reads make
room, and the ack goes back once all of it is in, so sigio holds one piece
at a time and never reads more of the host than the guest takes.
``console_winsize`` is the host side's TIOCSWINSZ.

A console that is not a terminal (``skas run`` with stdin or stdout not
one, as ``docker run`` without -t) keeps cfmakeraw's termios, so bytes go
out and come in exactly, and answers the terminal ioctls with ENOTTY.
With no input attached, or after its end, reads return 0 once the typed
input is consumed (``Tty.ended``); a terminal console's end of input is
a hang-up instead (the user's terminal closed), as a pty master's close."""
from __future__ import annotations

import asyncio
import errno
import struct
from typing import Callable

from common.transport import AsyncLink
from services.kernel.core import tracing
from services.kernel.core.errors import Errno
from services.kernel.drivers.tty.termios import Termios
from services.kernel.drivers.tty.tty import WIDEST, Tty, TtyFile, kill_pgrp, open_ctty
from services.kernel.fs.files import PseudoInode
from services.kernel.fs.vfs import STAT, OpenFile
from services.kernel.abi.signal import SIGWINCH
from services.kernel.abi.termbits import (
    BRKINT, CS8, CSIZE, ECHO, ECHONL, ICANON, ICRNL, IEXTEN, IGNBRK, IGNCR, INLCR, ISIG,
    ISTRIP, IXON, OPOST, PARENB, PARMRK, TTY_MAJOR)

BUFFER = 64 << 10           # output queued or in flight to sigio
INPUT_MAX = 64 << 10        # the data of one console_input
CONSOLE_RDEV = (5 << 8) | 1     # /dev/console is 5:1
WINSIZE_MAX = 0xFFFF        # struct winsize's fields are unsigned shorts


def raw_termios() -> Termios:
    """cfmakeraw's termios: no input or output processing, no echo, no signals."""
    t = Termios()
    t.iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON)
    t.oflag &= ~OPOST
    t.lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN)
    t.cflag = t.cflag & ~(CSIZE | PARENB) | CS8
    return t


class Console(Tty):
    device = TTY_MAJOR << 8     # tty0 as /proc/PID/stat's tty_nr gives it

    def __init__(self, kernel, link: AsyncLink, terminal: bool = True, input: bool = False):
        super().__init__(kernel, Termios() if terminal else raw_termios())
        self.link = link
        self.terminal = terminal     # else its terminal ioctls are ENOTTY
        self.ended = not input
        self.winsize = struct.pack("<HHHH", 24, 80, 0, 0)
        self.seq = 0
        self.in_flight = 0
        self.pump: asyncio.Future | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        # input not yet taken: (its data, eof, the ack to send once it is)
        self.pending: tuple[bytes, bool, Callable[[], None]] | None = None
        self.feeding = False
        self.waitq.add(self._changed)

    # --- output --------------------------------------------------------------------
    def output_room(self) -> int:
        return 0 if self.stopped else max(BUFFER - len(self.output) - self.in_flight, 0)

    def _changed(self, _events: int) -> None:
        """Any change of the terminal: output to send, or room for input."""
        if self.output and not self.stopped and (self.pump is None or self.pump.done()):
            self.idle.clear()
            self.pump = asyncio.ensure_future(self._pump())
        if self.pending is not None and not self.feeding and self.ldisc.room():
            self.feeding = True
            asyncio.get_running_loop().call_soon(self._feed)

    async def _pump(self) -> None:
        while self.output and not self.stopped:
            self.in_flight = len(self.output)
            data = self.take_output(self.in_flight)
            self.seq += 1
            tracing.tracer.count("skas.console.bytes", len(data))
            with tracing.tracer.span("console write", {"console.seq": self.seq,
                                                       "console.bytes": len(data)}):
                reply = await self.link.request("console_write",
                                                {"seq": self.seq, "data": data},
                                                traceparent=tracing.tracer.traceparent())
            if reply.type != "console_ack":
                raise RuntimeError(f"sigio refused console output: {reply.body}")
            self.in_flight = 0
            self.wake()
        self.idle.set()

    async def write(self, data: bytes) -> int:
        """The kernel's own messages, through the output processing."""
        done = 0
        while done < len(data):
            room = self.output_room()
            if room < WIDEST:
                await self.waitq.wait()
                continue
            out, n = self.ldisc.opost(data[done:done + room], room)
            self.put_output(out)
            done += n
        return done

    async def drain(self) -> None:
        while self.output or self.in_flight:
            await self.idle.wait()

    # --- the host side -----------------------------------------------------------------
    def input(self, data: bytes, eof: bool, ack: Callable[[], None]) -> str | None:
        """console_input: None, or why it is refused; ack() once all of data is in."""
        if len(data) > INPUT_MAX:
            return f"console_input: {len(data)} bytes of data (at most {INPUT_MAX})"
        if self.pending is not None:
            return "console_input: the previous input is not taken yet (wait for its ack)"
        self.pending = (data, eof, ack)
        self.feeding = True
        self._feed()
        return None

    def _feed(self) -> None:
        """Give the line discipline what it takes of the pending input (its own
        wake-ups meanwhile do not come back here)."""
        data, eof, ack = self.pending
        try:
            if self.hung_up:
                data = b""              # nobody will read it
            elif data and self.ldisc.room():
                data = data[self.receive(data):]
        finally:
            self.feeding = False
        if data:
            self.pending = (data, eof, ack)
            return
        self.pending = None
        if eof:
            self.end_input()
        ack()

    def end_input(self) -> None:
        if self.terminal:
            self.hangup()
        else:
            self.ended = True
            self.wake()

    def resize(self, rows: int, cols: int) -> str | None:
        """console_winsize: the host's window size, SIGWINCH to the
        foreground group when it changes; None, or why it is refused."""
        if not (0 <= rows <= WINSIZE_MAX and 0 <= cols <= WINSIZE_MAX):
            return f"console_winsize: rows and cols are 0..{WINSIZE_MAX}"
        ws = struct.pack("<HHHH", rows, cols, 0, 0)
        if self.terminal and ws != self.winsize:
            self.winsize = ws
            kill_pgrp(self.kernel, self.pgrp, SIGWINCH)
            self.wake()
        return None

    def reopen(self, loc, flags: int) -> ConsoleFile:
        """/dev/tty naming it."""
        if self.hung_up:
            raise Errno(errno.EIO)
        return ConsoleFile(self, flags, loc)


class ConsoleFile(TtyFile):
    """An open console: init's fds 0-2 (no node), /dev/console, /dev/tty0."""

    link_name = b"/dev/console"
    inode = PseudoInode(ino=5, mode=0o20600, rdev=CONSOLE_RDEV)   # as stat shows it

    def __init__(self, console: Console, flags: int, loc=None):
        super().__init__(console, loc, flags)

    def stat(self) -> bytes:
        if self.loc is not None:
            return super().stat()
        return STAT.pack(6, 5, 1, 0o20600, 0, 0, 0, CONSOLE_RDEV, 0, 1024, 0,
                         0, 0, 0, 0, 0, 0)

    def statx(self) -> bytes:
        if self.loc is not None:
            return super().statx()
        return self.stat().ljust(256, b"\0")

    async def ioctl(self, task, request: int, arg: int) -> int:
        if not self.tty.terminal:
            raise Errno(errno.ENOTTY)
        return await super().ioctl(task, request, arg)


def open_console(t, loc, flags: int, noctty: bool) -> OpenFile:
    """/dev/console: never a controlling terminal by its open (TIOCSCTTY
    makes it one, as Linux's, where it is the tty underneath)."""
    return ConsoleFile(t.kernel.console, flags, loc)


def open_tty0(t, loc, flags: int, noctty: bool) -> OpenFile:
    """/dev/tty0: the console's line, a session leader's terminal by its open."""
    console = t.kernel.console
    if console.hung_up:
        raise Errno(errno.EIO)
    f = ConsoleFile(console, flags, loc)
    if console.terminal:
        open_ctty(t, console, noctty)
    return f
