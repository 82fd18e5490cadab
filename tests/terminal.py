"""A program on a terminal the test opens (a pty): what it printed, keys to
type, and the window size to change; waits are event-driven (a reader
thread and a condition), with generous deadlines that only catch a hang."""
from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
import threading

WAIT = 60.0
PROMPT = rb"/[^\r\n]*# "          # busybox sh's, as root, in any directory


def _take_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is its stdin."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80, read: bool = True,
                 **kw):
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=_take_terminal, **kw)
        os.close(slave)
        self.out = bytearray()
        self.pos = 0
        self.cond = threading.Condition()
        self.closed = False
        self.reader = None
        if read:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.out += data
                self.cond.notify_all()

    def expect(self, pattern: bytes, timeout: float = WAIT) -> re.Match:
        """Wait for pattern (a regex) in what came after the last match."""
        rx = re.compile(pattern)
        with self.cond:
            found = None

            def seen():
                nonlocal found
                found = rx.search(self.out, self.pos)
                return found is not None or self.closed
            self.cond.wait_for(seen, timeout)
            if found is None:
                raise AssertionError(f"no {pattern!r} in {bytes(self.out[self.pos:])[-2000:]!r}")
            self.pos = found.end()
            return found

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def run_line(t: Terminal, line: bytes, prompt: bytes = PROMPT) -> bytes:
    """Type a command line to a shell; what it printed before its next prompt."""
    t.send(line + b"\r")
    t.expect(re.escape(line) + rb"\r\n")
    start = t.pos
    t.expect(prompt)
    return bytes(t.out[start:t.pos]).rsplit(b"\r\n", 1)[0]
