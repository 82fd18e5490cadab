"""``skas console``: the user's terminal on a supervised guest's console line.

In a nutshell: find the guest's run directory (refusing, with what to do,
one that does not exist, belongs to another user or whose guest is not
running), attach to sigio's console socket (services/sigio/line.py), put
the terminal in raw mode (deploy/terminal.py: restored even if this
process is killed), show the screenful sigio kept and then the output as
it comes, saying after each piece that it took it (sigio sends a window
ahead, no more).  Keys go to the guest one piece at a time, as sigio's
acks allow; the window size goes at attach and at each SIGWINCH.
``Ctrl-]`` detaches and the guest runs on."""
from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
import time
from pathlib import Path

import zmq

from common import config as guest_config
from common.config import GuestConfig, default_run_root
from common.transport import Link
from deploy import terminal

DETACH = b"\x1d"         # Ctrl-]
ATTACH_WAIT_MS = 3000
QUIET = 2.0              # seconds without a word from sigio: ask if it is there
GONE = 6.0               # and without an answer: the guest stopped
KEYS = 4096              # of the keyboard read at a time


class ConsoleError(Exception):
    """Why the console cannot be attached, and what to do."""


def find(target: str) -> GuestConfig:
    """The config of guest NAME, or of the guest whose run directory is target."""
    by_dir = "/" in target
    run_dir = Path(target) if by_dir else default_run_root() / target
    name = run_dir.name
    try:
        st = os.stat(run_dir)
    except FileNotFoundError:
        raise ConsoleError(f"no guest {name!r} (no {run_dir}); define one: skas create {name} "
                           "--disk IMG -- CMD") from None
    except PermissionError:
        st = None
    if st is None or (st.st_uid != os.getuid() and os.getuid() != 0) \
            or not os.access(run_dir, os.R_OK | os.X_OK):
        raise ConsoleError(f"permission denied: guest {name!r} ({run_dir}) belongs to another "
                           "user; attach as that user")
    configs = sorted(run_dir.glob("*.toml"))
    if len(configs) != 1:
        raise ConsoleError(f"{run_dir} holds no guest config; is it a guest's run directory?")
    cfg = guest_config.load(configs[0])
    if cfg.console != "socket":
        raise ConsoleError(f"guest {cfg.name!r} has no console line to attach to (its console "
                           f"is {cfg.console!r}; see {cfg.console_log})")
    return cfg


def _winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def attach(cfg: GuestConfig, stdin: int = 0, stdout: int = 1) -> tuple[bool, str]:
    """Attach until detached (True) or the line is lost (False); and what to
    tell the user then."""
    if not Path(cfg.console_socket[len("ipc://"):]).exists():
        raise ConsoleError(f"guest {cfg.name!r} is not running; start it: "
                           f"skas supervisorctl start '{cfg.name}:*'")
    link = Link(cfg.console_socket, "console")
    try:
        link.send("console_attach", 1, {})
        if not link.sock.poll(ATTACH_WAIT_MS):
            raise ConsoleError(f"guest {cfg.name!r} is not running (its console does not "
                               f"answer); start it: skas supervisorctl start '{cfg.name}:*'")
        if os.isatty(stdin):
            with terminal.raw(stdin):
                return _session(cfg, link, stdin, stdout)
        return _session(cfg, link, stdin, stdout)
    finally:
        link.close()


def _session(cfg: GuestConfig, link: Link, stdin: int, stdout: int) -> tuple[bool, str]:
    tty = os.isatty(stdin)
    winch_r, winch_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(winch_w)
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
    ids = iter(range(2, 1 << 62))
    keys_in_flight, heard, pinged = False, time.monotonic(), False
    detached = True, f"detached from {cfg.name}; reattach: skas console {cfg.name}"
    try:
        if tty:
            link.send("console_winsize", next(ids), dict(zip(("rows", "cols"), _winsize(stdin))))
        while True:
            poller = zmq.Poller()
            for fd in [link.sock, winch_r] + ([] if keys_in_flight else [stdin]):
                poller.register(fd, zmq.POLLIN)
            ready = dict(poller.poll(500))
            now = time.monotonic()
            if link.sock in ready:
                heard, pinged = now, False
                for _, msg in link.drain():
                    if msg.type == "console_attached":
                        _write_all(stdout, msg["screen"])
                    elif msg.type == "console_output":
                        _write_all(stdout, msg["data"])
                        link.send("console_took", next(ids), {"upto": msg["at"] + len(msg["data"])})
                    elif msg.type == "console_input_ack":
                        keys_in_flight = False
                    elif msg.type == "console_detached":
                        return False, f"the console of {cfg.name} was taken: {msg['reason']}"
                    elif msg.type == "error":
                        return False, f"the console of {cfg.name} refused: {msg['reason']}"
            elif now - heard > GONE:
                return False, f"the console of {cfg.name} went away (the guest stopped?)"
            elif now - heard > QUIET and not pinged:
                link.send("ping", next(ids), {})
                pinged = True
            if winch_r in ready:
                os.read(winch_r, 512)
                if tty:
                    link.send("console_winsize", next(ids),
                              dict(zip(("rows", "cols"), _winsize(stdin))))
            if stdin in ready:
                data = os.read(stdin, KEYS)
                if not data or DETACH in data:
                    data = data.split(DETACH)[0]
                    if data:
                        link.send("console_input", next(ids), {"data": data, "eof": False})
                    link.send("console_detach", next(ids), {})
                    return detached
                link.send("console_input", next(ids), {"data": data, "eof": False})
                keys_in_flight = True
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        signal.set_wakeup_fd(old_wakeup)
        os.close(winch_r)
        os.close(winch_w)
