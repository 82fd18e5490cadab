"""Services as forks of ``skas run``'s own process, for a cold start.

A service started as ``python -m services.NAME`` pays Python's start and
imports the modules every service shares (zmq, msgpack, asyncio, logging,
the protocol, the transport) again: measured, most of a cold start's CPU,
four times over.  ``skas run`` imports those once (``common.service``) and
forks each service from itself; the child runs the service's ``__main__``
as ``python -m`` would (runpy), with the same command line, so from there
on it is the same program: it reads its config, pins itself and drops its
privileges itself.  supervisord still starts each service with ``python -m``.

Only a process with one thread and no zmq context may fork so (skas run's,
at launch): a fork keeps neither other threads nor a usable context.
``Forked`` is the part of ``subprocess.Popen`` that launch and skas use."""
from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import logging
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import common.service  # noqa: F401 -- imported once here, for every fork
from common import activation

PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15


def die_with(parent: int):
    """For a new service: SIGTERM when its parent dies, so that a skas run
    killed outright (SIGKILL) does not leave its guest running."""
    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:       # it died before we asked
            os._exit(1)
    return arm


class Forked:
    """A forked service: its pid, and its exit as Popen reports it (a
    negative returncode for a signal), waited for on a pidfd: no polling."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if timeout is not None:
                exited = select.poll()
                exited.register(self._pidfd, select.POLLIN)
                if not exited.poll(max(0, int(timeout * 1000))):
                    raise subprocess.TimeoutExpired(f"service {self.pid}", timeout)
            self._reaped(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)       # not reaped: still ours, even as a zombie

    def _reaped(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        os.close(self._pidfd)


def start(service: str, config: Path, log: int, console: bool,
          listening: socket.socket | None = None) -> Forked:
    """Fork service NAME: its stderr (and stdout, unless it has the
    console: then skas's stdin and stdout) to log, in a session of its own,
    SIGTERM when skas dies; listening, its endpoint's socket, handed over
    (common/activation.py).  A service forked ahead (``prefork``) is given
    these instead of a new fork."""
    early = _early.pop(service, None)
    if early is not None:
        proc, sock = early
        fds = [log] + ([listening.fileno()] if listening is not None else [])
        with sock:
            try:
                socket.send_fds(sock, [f"{config}\0{int(console)}".encode()], fds)
            except OSError:     # it is gone already (why: on stderr); its exit is seen
                pass
        return proc
    if threading.active_count() > 1:
        raise RuntimeError("a service is forked only from a process with one thread")
    parent = os.getpid()
    sys.stdout.flush()          # or the child would write skas's buffered output again
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return Forked(pid)
    _child(service, parent, lambda: (config, log, console, listening))


# services forked ahead by prefork, not yet started: their process, and
# the socket their config and fds go down
_early: dict[str, tuple[Forked, socket.socket]] = {}


def prefork(service: str, module: str) -> None:
    """Fork service NAME now, before skas has read its command line: the
    child imports module (the service's code, ~60 ms for the kernel) on
    another CPU while skas imports its own and writes the guest's config,
    then waits for ``start`` to send it what a fork would have had.  The
    kernel's imports were the longest step of a cold start, after skas's
    own.  A child that is never started (skas fails first, or exits)
    reads the end of its socket and exits."""
    parent = os.getpid()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        theirs.close()
        _early[service] = (Forked(pid), ours)
        return
    ours.close()

    def told() -> tuple[Path, int, bool, socket.socket | None]:
        gc.disable()            # for its imports: common.service.main turns it on again
        importlib.import_module(module)
        msg, fds, _, _ = socket.recv_fds(theirs, 4096, 2)
        if not msg:                                  # skas is done without it
            os._exit(0)
        config, console = msg.decode().split("\0")
        listening = socket.socket(fileno=fds[1]) if len(fds) > 1 else None
        return Path(config), fds[0], console == "1", listening
    _child(service, parent, told)


def prefork_for(args: list[str]) -> None:
    """``skas run``'s kernel forked ahead (``prefork``), where a second CPU
    can import it meanwhile; on one CPU both would only take turns."""
    if args[:1] == ["run"] and not {"-h", "--help"} & set(args) \
            and len(os.sched_getaffinity(0)) > 1:
        prefork("kernel", "services.kernel.main")


def _child(service: str, parent: int, told) -> None:
    """The new process of service NAME: told() gives its config, log fd,
    whether it has the console, and its listening socket."""
    code = 1
    try:
        os.setsid()
        die_with(parent)()
        ctypes.CDLL(None).prctl(PR_SET_NAME, f"skas-{service}".encode()[:15])   # ps -o comm
        config, log, console, listening = told()
        if not console:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
        os.dup2(log, 2)
        if listening is not None:
            activation.hand_over(listening)
        # as Popen's close_fds: nothing of skas's, no other service's socket
        os.closerange(activation.FIRST_FD + (listening is not None), os.sysconf("SC_OPEN_MAX"))
        _fresh_signals()
        atexit._clear()         # skas's exit handlers are not the service's
        sys.argv = [f"-m services.{service}", "--guest-config", str(config)]
        gc.disable()            # for its imports: common.service.main turns it on again
        runpy.run_module(f"services.{service}", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        # Never back into skas's code: the service's exit handlers, its logs
        # and output, then out, without tearing the interpreter down.
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _fresh_signals() -> None:
    """The signal dispositions a new interpreter has: skas's handlers
    (SIGINT, SIGTERM, SIGHUP, SIGWINCH) are not the service's."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in signal.valid_signals():
        handler = signal.getsignal(signum)
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                          else signal.SIG_DFL)
