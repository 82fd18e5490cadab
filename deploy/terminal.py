"""The user's terminal in raw mode while a guest has it, always restored.

``raw(fd)`` saves the terminal's termios, makes it raw, and on the way
out puts them back.  A SIGKILL of skas has no way out, so a guardian
process holds a dup of the terminal and the read end of a pipe whose
write end only skas holds: when the pipe reaches its end without the
"done" byte (skas died however it died), the guardian restores the
saved termios itself."""
from __future__ import annotations

import contextlib
import os
import signal
import termios
import tty

DONE = b"d"


def _guard(fd: int, pipe: int, saved: list) -> None:
    """The guardian's life: wait for the pipe's end, restore unless told done."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    said = b""
    while True:
        try:
            piece = os.read(pipe, 1)
        except InterruptedError:
            continue
        if not piece:
            break
        said += piece
    if DONE not in said:
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def raw(fd: int):
    """The terminal at fd raw for the block (Ctrl-C, Ctrl-Z are bytes then)."""
    saved = termios.tcgetattr(fd)
    r, w = os.pipe()          # close-on-exec: the guest's services do not hold w
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            _guard(fd, r, saved)
        finally:
            os._exit(0)
    os.close(r)
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.write(w, DONE)
        os.close(w)
        os.waitpid(pid, 0)
