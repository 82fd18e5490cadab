"""The one way a service starts: ``python -m services.NAME --guest-config FILE``.

Same command line under supervisord, ``skas run`` and the tests."""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import struct
import sys
import time
from typing import Callable

import zmq

from common import config as guest_config
from common import phases, privileges
from common.config import GuestConfig
from common.transport import pin_cpu


def main(service: str, run: Callable[[GuestConfig], int], drop_now: bool = True) -> None:
    """Parse the command line, read the config, log, pin, drop privileges
    (common/privileges.py; a service that must open files first passes
    drop_now=False and calls ``privileges.drop`` itself, before any thread)
    and run."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}",
                                     description=f"the {service} service of a skas guest")
    parser.add_argument("--guest-config", required=True, metavar="FILE",
                        help="the guest's TOML configuration (written by skas create/run)")
    args = parser.parse_args()
    phases.mark(service, "imported")
    # what the imports made lives as long as the service: no collection
    # need walk it (a fork of skas run imported with collection off)
    gc.freeze()
    gc.enable()
    try:
        cfg = guest_config.load(args.guest_config)
    except (OSError, ValueError, TypeError) as exc:
        sys.exit(f"{service}: cannot read guest config: {exc}")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format=f"%(asctime)s {cfg.name}/{service} %(levelname)s %(name)s: %(message)s")
    pin_cpu(cfg.io_cpu if service == "ubd_io" and cfg.io_cpu is not None else cfg.cpu)
    if drop_now:
        privileges.drop(service)
    code = run(cfg)
    phases.mark(service, "exit")
    sys.exit(code)


class Running:
    """True until SIGTERM: a service's loop runs while this is true, so a stop
    finishes the work in hand instead of dying in the middle of it.

    A service the kernel uses (ubd_io, sigio) passes its endpoint: after
    SIGTERM it serves on while a peer is still connected, for LINGER seconds
    at most.  ``supervisorctl stop NAME:*`` stops all four services at once,
    and the kernel's halt still writes the disks back and the console out
    through them; under ``skas run`` the kernel has ended first, and they go
    at once.

    A service polls what ends its loop with its sockets (``watch``): SIGTERM
    makes ``wake`` readable, and a peer's leaving the monitor, so a stop is
    seen at once, and the poll needs no timeout but the end of the LINGER
    (``timeout``): an idle service sleeps until something happens.  ``wake``
    is the process's signal wakeup fd, written by the C-level handler in
    whichever thread the signal lands: a SIGTERM taken by a worker thread
    (ubd_io's pool, an exporter's) still ends the main thread's poll, where
    Python runs the handler.  (It is the process's only wakeup fd: a service
    that wants another signal sets a Python handler, and this wakes it.)"""

    LINGER = 2.5         # under supervisord's stopwaitsecs (3)

    def __init__(self, endpoint=None) -> None:
        self.stopped_at: float | None = None
        self.peers = 0
        self.monitor = None if endpoint is None else endpoint.sock.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.wake, woken = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(woken, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.stop)

    def watch(self, poller: zmq.Poller) -> None:
        poller.register(self.wake, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)

    def timeout(self) -> int | None:
        """The longest the loop's poll may wait, in ms: until the LINGER ends
        once stopped, else (and after it) for ever: None."""
        left = None if self.stopped_at is None else self.stopped_at + self.LINGER - time.monotonic()
        return None if left is None or left < 0 else int(left * 1000) + 1

    def stop(self, *_) -> None:
        self.stopped_at = time.monotonic()

    def __bool__(self) -> bool:
        if self.monitor is not None:
            while self.monitor.poll(0):
                # zmq's monitor event: u16 event, u32 value, then the address
                # (zmq.utils.monitor would import zmq.asyncio, so asyncio)
                event = struct.unpack_from("=H", self.monitor.recv_multipart()[0])[0]
                self.peers = max(0, self.peers + (1 if event == zmq.EVENT_ACCEPTED else -1))
        try:
            os.read(self.wake, 64)     # any signal's byte: poll would wake on it again
        except BlockingIOError:
            pass
        if self.stopped_at is None:
            return True
        return self.peers > 0 and time.monotonic() - self.stopped_at < self.LINGER
