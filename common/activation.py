"""Listening sockets bound before their service started (socket activation,
in systemd's LISTEN_PID/LISTEN_FDS form).

``skas run`` binds every ipc endpoint of a guest before it starts the
services and gives each its own: a peer's connect then succeeds at once,
whichever service comes up first, and waits in the socket's backlog until
the service serves it, so no service retries a connect on a timer.  A
service started any other way (supervisord) finds none and binds its own;
then its peers retry as before (startup order is never assumed)."""
from __future__ import annotations

import os
import socket

FIRST_FD = 3           # LISTEN_FDS counts from here (sd_listen_fds)
_inherited: dict[str, socket.socket] | None = None


def listen(path: str) -> socket.socket:
    """A Unix stream socket listening at path, 0600 (in the 0700 run dir)."""
    if os.path.exists(path):
        os.unlink(path)             # a stale socket from a killed predecessor
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def handed_over(path: str) -> socket.socket | None:
    """The listening socket at path this process was given, if any (once:
    the caller owns it).  The variables go from the environment at the
    first call, so nothing this service starts sees them."""
    global _inherited
    if _inherited is None:
        _inherited = {}
        pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "0")
        if pid == str(os.getpid()) and count.isdigit():
            for fd in range(FIRST_FD, FIRST_FD + int(count)):
                sock = socket.socket(fileno=fd)
                os.set_inheritable(fd, False)
                _inherited[sock.getsockname()] = sock
    return _inherited.pop(path, None)


def hand_over(sock: socket.socket) -> None:
    """In a service's new process, before it runs: sock becomes its one
    handed-over socket (the caller closes every other fd above it)."""
    os.dup2(sock.fileno(), FIRST_FD)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = "1"
