"""The sigio service's main loop: write guest output when the host side is
writable, and bring the host's input and window size to the kernel.

The host side is sigio's stdout and stdin (``skas run``; stdin only with
-i), console.log alone, or console.log and a line ``skas console``
attaches to (services/sigio/line.py).  Input goes to the kernel one
``console_input`` at a time (``Keys``): sigio reads no more of the host
until the kernel has taken the last piece, so what waits is bounded and
nothing is lost."""
from __future__ import annotations

import collections
import fcntl
import itertools
import logging
import os
import signal
import struct
import termios

import zmq

from common import phases, tracing
from common.config import GuestConfig
from common.exits import CONFIG
from common.protocol import Message
from common.service import Running
from common.transport import Endpoint, Link
from services.sigio.line import CLIENT_QUEUE, MAX_MESSAGE, ConsoleLine

log = logging.getLogger("sigio")

CHUNK = 4096   # a pipe that polls writable takes this much without blocking
INPUT_PIECE = 4096   # of the host's input read at a time


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
    """Output waiting for the host side, with the acks owed once it is written.
    Only the guest's kernel writes (the envelope's sender): the sequence is
    its own, and another peer's numbers would make the kernel's look like
    resends and be dropped."""

    def __init__(self, fd: int, write=os.write, kernel: str = ""):
        self.fd = fd
        self.write = write           # (data) -> bytes taken
        self.kernel = kernel         # the kernel's sender name, NAME/kernel
        self.queue: collections.deque[tuple[bytes, int, bytes, int]] = collections.deque()
        self.last_seq = 0            # the last seq accepted
        self.done_seq = 0            # the last seq written out
        self.written = 0
        self.spans = None            # services/sigio/tracing.py's, when the guest traces

    def accept(self, to: bytes, msg: Message) -> str | None:
        if msg.sender != self.kernel:
            return f"console_write is the guest's kernel's ({self.kernel}), not {msg.sender!r:.80}'s"
        seq = msg["seq"]
        if seq <= self.done_seq:
            return "dup"             # a resend of what is written: ack again
        if seq <= self.last_seq:
            return "queued"          # a resend of what waits: its ack will come
        if self.last_seq and seq != self.last_seq + 1:
            return f"console_write seq {seq} out of order (expected {self.last_seq + 1})"
        self.last_seq = seq
        self.queue.append((to, msg.id, msg["data"], seq))
        if self.spans is not None:
            self.spans.begin(msg)
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
            if self.spans is not None:
                self.spans.written(seq)
        return done


class Keys:
    """The one console_input in flight to the kernel, and what to do at its ack."""

    def __init__(self, kernel: Link):
        self.kernel = kernel
        self.ids = itertools.count(1)
        self.in_flight: tuple[int, object] | None = None    # (its id, the callback)

    def send(self, data: bytes, eof: bool, done=None) -> None:
        id_ = next(self.ids)
        self.kernel.send("console_input", id_, {"data": data, "eof": eof})
        self.in_flight = (id_, done)

    def winsize(self, rows: int, cols: int) -> None:
        self.kernel.send("console_winsize", next(self.ids), {"rows": rows, "cols": cols})

    def reply(self, msg: Message) -> None:
        if msg.type == "error":
            log.error("the kernel refused console input: %s", msg["reason"])
        if self.in_flight is not None and msg.id == self.in_flight[0]:
            done = self.in_flight[1]
            self.in_flight = None
            if done is not None:
                done()


def host_winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def run(cfg: GuestConfig) -> int:
    line = None
    kernel = f"{cfg.name}/kernel"        # the kernel's sender name (entry/kernel.py's me)
    if cfg.console in ("log", "socket"):
        log_file = ConsoleLog(cfg.console_log, cfg.console_log_max)
        if cfg.console == "socket":
            line = ConsoleLine(line_endpoint(cfg), cfg.console_backlog)
            out = ConsoleOut(log_file.fd, lambda data: log_file.write(data[:line.put(data)]),
                             kernel)
        else:
            out = ConsoleOut(log_file.fd, log_file.write, kernel)
    else:
        out = ConsoleOut(1, lambda data: os.write(1, data), kernel)
    try:
        endpoint = Endpoint(cfg.endpoints["sigio"], f"{cfg.name}/sigio")
    except (ValueError, zmq.ZMQError) as exc:
        log.error("cannot serve at %s: %s", cfg.endpoints["sigio"], exc)
        return CONFIG
    telemetry = tracing.start(cfg, "sigio")          # None when the guest does not trace
    if telemetry is not None:
        from services.sigio.tracing import ConsoleSpans
        out.spans = ConsoleSpans(telemetry)
    keys = Keys(Link(cfg.endpoints["kernel"], f"{cfg.name}/sigio"))
    running = Running(endpoint)
    phases.mark("sigio", "serving")
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    stdin = cfg.console == "stdio" and cfg.console_input       # fd 0 is the host's input
    winch_r = follow_winsize(keys) if cfg.console == "stdio" and cfg.console_tty else None
    poller = zmq.Poller()
    for sock in (endpoint.sock, keys.kernel.sock, line and line.ep.sock):
        if sock is not None:
            poller.register(sock, zmq.POLLIN)
    if winch_r is not None:
        poller.register(winch_r, zmq.POLLIN)
    running.watch(poller)
    try:
        while running or out.queue and (line is None or line.room()):
            line_ready = bool(out.queue) and line is not None and line.room() > 0
            poller.register(out.fd, zmq.POLLOUT if out.queue and line is None else 0)
            if stdin:
                poller.register(0, 0 if keys.in_flight else zmq.POLLIN)
            ready = dict(poller.poll(0 if line_ready else running.timeout()))
            if endpoint.sock in ready:
                for to, msg in endpoint.drain():
                    handle(endpoint, out, line, to, msg)
            if keys.kernel.sock in ready:
                for _, msg in keys.kernel.drain():
                    keys.reply(msg)
            if line is not None and line.ep.sock in ready:
                for to, msg in line.ep.drain():
                    serve_client(line, keys, to, msg)
            if winch_r is not None and winch_r in ready:
                os.read(winch_r, 512)
                keys.winsize(*host_winsize(0))
            if stdin and ready.get(0, 0) and not keys.in_flight:
                try:
                    data = os.read(0, INPUT_PIECE)
                except OSError:            # a terminal hung up
                    data = b""
                keys.send(data, eof=not data)
                if not data:
                    stdin = False
                    poller.unregister(0)
            if line_ready or ready.get(out.fd, 0) & zmq.POLLOUT:
                try:
                    done = out.flush_some()
                except OSError as exc:   # the host side is gone: nothing more can be written
                    log.error("console output failed: %s", exc)
                    return 1
                for to, id_, seq in done:
                    endpoint.send("console_ack", id_, {"seq": seq}, to)
        if line is not None and line.client is not None:
            line.detach(line.client, "the guest halted")
        return 0
    finally:
        if telemetry is not None:
            telemetry.shutdown()      # export what is left


def line_endpoint(cfg: GuestConfig) -> Endpoint:
    """The console socket, in the 0700 run dir, 0600: only its user attaches."""
    return Endpoint(cfg.console_socket, f"{cfg.name}/sigio", options=(
        (zmq.MAXMSGSIZE, MAX_MESSAGE), (zmq.RCVHWM, CLIENT_QUEUE), (zmq.SNDHWM, CLIENT_QUEUE)))


def follow_winsize(keys: Keys) -> int | None:
    """When sigio's stdin is a terminal: its size now, and again at each
    SIGWINCH (skas run passes its own on); the fd that SIGWINCH wakes."""
    if not os.isatty(0):
        return None
    keys.winsize(*host_winsize(0))
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def resized(*_) -> None:       # run once Running's wakeup fd has ended the poll
        try:
            os.write(w, b"W")
        except BlockingIOError:    # a resize is waiting to be read already
            pass
    signal.signal(signal.SIGWINCH, resized)
    return r


def serve_client(line: ConsoleLine, keys: Keys, to: bytes, msg: Message) -> None:
    """A message from a console client."""
    kind = msg.type
    if kind == "console_attach":
        line.attach(to, msg.id)
    elif kind == "console_took":
        line.took(to, msg.id, msg["upto"])
    elif kind == "ping":
        line.ep.send("pong", msg.id, {"service": "sigio"}, to)
    elif to != line.client:
        line.ep.error(msg.id, f"{kind}: attach first (console_attach)", to)
    elif kind == "console_detach":
        line.detach(to)
    elif kind == "console_winsize":
        keys.winsize(msg["rows"], msg["cols"])
    elif kind == "console_input":
        if keys.in_flight:
            line.ep.error(msg.id, "console_input: the previous input is not taken yet", to)
        elif msg["eof"]:
            line.ep.error(msg.id, "console_input: a client does not end the console's input", to)
        else:
            keys.send(msg["data"], False,
                      lambda: line.ep.send("console_input_ack", msg.id, {}, to))
    else:
        line.ep.error(msg.id, f"the console line does not serve {kind!r}", to)


def handle(endpoint: Endpoint, out: ConsoleOut, line: ConsoleLine | None, to: bytes,
           msg: Message) -> None:
    if msg.type == "console_write":
        problem = out.accept(to, msg)
        if problem == "dup":
            endpoint.send("console_ack", msg.id, {"seq": msg["seq"]}, to)
        elif problem and problem != "queued":
            endpoint.error(msg.id, problem, to)
    elif msg.type == "ping":
        endpoint.send("pong", msg.id, {"service": "sigio"}, to)
    elif msg.type == "status":
        state = {"console": "stdio" if out.fd == 1 else "socket" if line else "log",
                 "bytes_written": out.written, "pending": len(out.queue),
                 "last_seq": out.last_seq, **(line.state() if line else {})}
        endpoint.send("status_reply", msg.id, {"service": "sigio", "state": state}, to)
    else:
        endpoint.error(msg.id, f"sigio does not serve {msg.type!r}", to)
