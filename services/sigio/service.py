"""The sigio service's main loop: write guest output when the host side is writable."""
from __future__ import annotations

import collections
import logging
import os
import signal

import zmq

from common.config import GuestConfig
from common.protocol import Message
from common.service import Running
from common.transport import Endpoint

log = logging.getLogger("sigio")

CHUNK = 4096   # a pipe that polls writable takes this much without blocking


class ConsoleLog:
    """RUN_DIR/console.log, kept under a size: past it the file becomes
    console.log.1 (the one before goes) and a new one starts, so a guest
    that prints for ever cannot fill the host's disk."""

    def __init__(self, path, limit: int):
        self.path, self.limit = path, limit
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> int:
        if self.size >= self.limit:
            os.replace(self.path, f"{self.path}.1")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.dup2(fd, self.fd)          # the fd the loop polls stays the same
            os.close(fd)
            self.size = 0
        n = os.write(self.fd, data)
        self.size += n
        return n


class ConsoleOut:
    """Output waiting for the host side, with the acks owed once it is written."""

    def __init__(self, fd: int, write=os.write):
        self.fd = fd
        self.write = write           # (data) -> bytes taken
        self.queue: collections.deque[tuple[bytes, int, bytes, int]] = collections.deque()
        self.last_seq = 0            # the last seq accepted
        self.done_seq = 0            # the last seq written out
        self.written = 0

    def accept(self, to: bytes, msg: Message) -> str | None:
        seq = msg["seq"]
        if seq <= self.done_seq:
            return "dup"             # a resend of what is written: ack again
        if seq <= self.last_seq:
            return "queued"          # a resend of what waits: its ack will come
        if self.last_seq and seq != self.last_seq + 1:
            return f"console_write seq {seq} out of order (expected {self.last_seq + 1})"
        self.last_seq = seq
        self.queue.append((to, msg.id, msg["data"], seq))
        return None

    def flush_some(self) -> list[tuple[bytes, int, int]]:
        """Write what the host side takes now; return the (to, id, seq) now done."""
        done = []
        while self.queue:
            to, id_, data, seq = self.queue[0]
            if data:
                n = self.write(data[:CHUNK])
                self.written += n
                data = data[n:]
                self.queue[0] = (to, id_, data, seq)
            if data:
                break
            self.queue.popleft()
            self.done_seq = seq
            done.append((to, id_, seq))
        return done


def run(cfg: GuestConfig) -> int:
    if cfg.console == "log":
        log_file = ConsoleLog(cfg.console_log, cfg.console_log_max)
        out = ConsoleOut(log_file.fd, log_file.write)
    else:
        out = ConsoleOut(1, lambda data: os.write(1, data))
    fd = out.fd
    endpoint = Endpoint(cfg.endpoints["sigio"], f"{cfg.name}/sigio")
    running = Running(endpoint)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    poller = zmq.Poller()
    poller.register(endpoint.sock, zmq.POLLIN)
    while running or out.queue:
        poller.register(fd, zmq.POLLOUT if out.queue else 0)
        ready = dict(poller.poll(200))
        if endpoint.sock in ready:
            for to, msg in endpoint.drain():
                handle(endpoint, out, to, msg)
        if ready.get(fd, 0) & zmq.POLLOUT:
            try:
                done = out.flush_some()
            except OSError as exc:   # the host side is gone: nothing more can be written
                log.error("console output failed: %s", exc)
                return 1
            for to, id_, seq in done:
                endpoint.send("console_ack", id_, {"seq": seq}, to)
    return 0


def handle(endpoint: Endpoint, out: ConsoleOut, to: bytes, msg: Message) -> None:
    if msg.type == "console_write":
        problem = out.accept(to, msg)
        if problem == "dup":
            endpoint.send("console_ack", msg.id, {"seq": msg["seq"]}, to)
        elif problem and problem != "queued":
            endpoint.error(msg.id, problem, to)
    elif msg.type == "ping":
        endpoint.send("pong", msg.id, {"service": "sigio"}, to)
    elif msg.type == "status":
        state = {"console": "log" if out.fd != 1 else "stdio", "bytes_written": out.written,
                 "pending": len(out.queue), "last_seq": out.last_seq}
        endpoint.send("status_reply", msg.id, {"service": "sigio", "state": state}, to)
    else:
        endpoint.error(msg.id, f"sigio does not serve {msg.type!r}", to)
