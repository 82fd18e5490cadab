"""ZMTP 3.1, ZeroMQ's wire protocol, spoken by the service's own thread.

In a nutshell: every guest system call crosses the userspace -> kernel link
twice, and libzmq moves each message through an I/O thread on both sides:
four thread wake-ups per round trip besides the two that carry the call,
about a third of its time on the development VM (docs/architecture.md has
the numbers).  Here the thread that handles a message reads and writes the
Unix socket itself.  The bytes on the socket are ZeroMQ's (RFC 37: the
64-byte greeting, the NULL mechanism's READY, frames), so a libzmq DEALER
(the CLI, the tests) connects to this ROUTER as to any other.

Only what that link needs: ipc:// endpoints (the kernel reads guest memory
itself, so it and userspace share a host), the NULL mechanism (the run dir
is 0700, the socket 0600), a ROUTER on an asyncio loop (``Router``, the
kernel) and a DEALER with blocking writes (``Dealer``, userspace).  Anything
a peer sends that is not ZMTP ends that one connection with a log line.
"""
from __future__ import annotations

import itertools
import logging
import socket
from typing import TYPE_CHECKING, Callable

from common import activation

if TYPE_CHECKING:       # asyncio is the kernel's: imported, it would cost each other
    import asyncio      # service ~8 MiB of memory (bench/idle.py)

log = logging.getLogger(__name__)

MORE, LONG, COMMAND = 1, 2, 4
MAX_FRAME = 256 << 20          # far above any message of ours (BLOCK_MAX is 16 MiB)
# what a Router keeps for a peer that reads nothing before it drops what
# else comes for it (libzmq's ROUTER drops past its SNDHWM, 1000 messages):
# a client that sends and never reads cannot make the kernel's memory grow
MAX_UNREAD = 64 << 20
GREETING_SIZE = 64
GREETING = (b"\xff" + bytes(8) + b"\x7f"          # signature
            + b"\x03\x01"                         # version 3.1
            + b"NULL".ljust(20, b"\0")            # mechanism
            + b"\x00" + bytes(31))                # as-server (unused by NULL), filler
# Which peers each socket type may talk to (RFC 28's compatibility table).
PEERS = {b"ROUTER": (b"DEALER", b"REQ", b"ROUTER"), b"DEALER": (b"DEALER", b"REP", b"ROUTER")}


class ZmtpError(Exception):
    """What a peer sent is not ZMTP (or not for this socket); the connection ends."""


def frame(body: bytes, flags: int = 0) -> bytes:
    n = len(body)
    if n < 256:
        return bytes((flags, n)) + body
    return bytes((flags | LONG,)) + n.to_bytes(8, "big") + body


def message(frames: list[bytes]) -> bytes:
    """One message: every frame but the last has MORE."""
    last = len(frames) - 1
    return b"".join(frame(f, MORE if i < last else 0) for i, f in enumerate(frames))


def _property(name: bytes, value: bytes) -> bytes:
    return bytes((len(name),)) + name + len(value).to_bytes(4, "big") + value


def handshake(socket_type: bytes, identity: bytes = b"") -> bytes:
    """What a peer sends first: the greeting, then NULL's READY command."""
    ready = (b"\x05READY" + _property(b"Socket-Type", socket_type)
             + _property(b"Identity", identity))
    return GREETING + frame(ready, COMMAND)


def _properties(data: bytes) -> dict[bytes, bytes]:
    props, pos = {}, 0
    while pos < len(data):
        n = data[pos]
        name = data[pos + 1:pos + 1 + n]
        if len(name) < n or pos + 5 + n > len(data):
            raise ZmtpError("truncated READY metadata")
        size = int.from_bytes(data[pos + 1 + n:pos + 5 + n], "big")
        pos += 5 + n
        if pos + size > len(data):
            raise ZmtpError("truncated READY metadata")
        props[name.lower()] = data[pos:pos + size]
        pos += size
    return props


class Decoder:
    """Bytes in, whole messages out, for one connection of a socket_type
    socket: checks the greeting and the peer's READY, answers PING."""

    def __init__(self, socket_type: bytes):
        self.socket_type = socket_type
        self.buf = bytearray()
        self.greeted = False
        self.peer: dict[bytes, bytes] | None = None     # the peer's READY metadata
        self.parts: list[bytes] = []
        self.replies: list[bytes] = []                  # commands to send back (PONG)

    def feed(self, data: bytes) -> list[list[bytes]]:
        buf = self.buf
        buf += data
        n, pos, out = len(buf), 0, []
        if not self.greeted:
            if n < GREETING_SIZE:
                if buf[:1] not in (b"", b"\xff"):
                    raise ZmtpError("not a ZMTP greeting")
                return out
            self._greeting(bytes(buf[:GREETING_SIZE]))
            pos = GREETING_SIZE
        while n - pos >= 2:
            flags = buf[pos]
            if flags & ~(MORE | LONG | COMMAND):
                raise ZmtpError(f"bad frame flags {flags:#x}")
            if flags & LONG:
                if n - pos < 9:
                    break
                size, head = int.from_bytes(buf[pos + 1:pos + 9], "big"), 9
            else:
                size, head = buf[pos + 1], 2
            if size > MAX_FRAME:
                raise ZmtpError(f"frame of {size} bytes is over the limit")
            end = pos + head + size
            if end > n:
                break
            body = bytes(buf[pos + head:end])
            pos = end
            if flags & COMMAND:
                self._command(body)
            elif self.peer is None:
                raise ZmtpError("message before the READY command")
            else:
                self.parts.append(body)
                if not flags & MORE:
                    out.append(self.parts)
                    self.parts = []
        del buf[:pos]
        return out

    def _greeting(self, g: bytes) -> None:
        if g[0] != 0xFF or not g[9] & 1:
            raise ZmtpError("not a ZMTP greeting")
        if g[10] < 3:
            raise ZmtpError(f"ZMTP {g[10]}.x is not supported (3.0 or later)")
        mechanism = g[12:32].rstrip(b"\0")
        if mechanism != b"NULL":
            raise ZmtpError(f"security mechanism {mechanism.decode(errors='replace')!r} "
                            "is not supported on an ipc endpoint (NULL only)")
        self.greeted = True

    def _command(self, body: bytes) -> None:
        n = body[0] if body else 0
        name, data = body[1:1 + n], body[1 + n:]
        if name == b"READY":
            props = _properties(data)
            kind = props.get(b"socket-type", b"")
            if kind not in PEERS[self.socket_type]:
                raise ZmtpError(f"a {kind.decode(errors='replace')} socket cannot talk to "
                                f"a {self.socket_type.decode()}")
            self.peer = props
        elif name == b"PING":       # ZMTP 3.1 heartbeat: PONG with its context
            self.replies.append(frame(b"\x04PONG" + data[2:], COMMAND))
        elif name == b"ERROR":
            reason = data[1:1 + data[0]] if data else b""
            raise ZmtpError(f"the peer refused us: {reason.decode(errors='replace')}")
        # other commands (PONG, SUBSCRIBE ...) mean nothing to these sockets


def ipc_path(endpoint: str) -> str:
    if not endpoint.startswith("ipc://"):
        raise ValueError(f"{endpoint}: this link is ipc:// only (its two services share a host)")
    return endpoint[len("ipc://"):]


class Router:
    """A ROUTER socket served on an asyncio loop: each connection gets a
    routing id (libzmq's form, or the peer's Identity), and on_message(id,
    frames) is called for each message, in the loop's thread; on_lost(id)
    when that connection closes (libzmq's ROUTER would not tell)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint: str,
                 on_message: Callable[[bytes, list[bytes]], None],
                 on_lost: Callable[[bytes], None] = lambda _id: None):
        path = ipc_path(endpoint)
        sock = activation.handed_over(path) or activation.listen(path)
        sock.setblocking(False)
        self.on_message = on_message
        self.on_lost = on_lost
        self.peers: dict[bytes, asyncio.Transport] = {}
        self.dropping: set[bytes] = set()               # peers past MAX_UNREAD, logged once
        self.ids = itertools.count(0x6B8B4567)          # libzmq starts at a random uint32
        self.server = loop.create_task(
            loop.create_unix_server(lambda: _RouterPeer(self), sock=sock))

    def send(self, to: bytes | None, frames: list[bytes]) -> None:
        """To one peer; a peer that is gone drops it, as a ROUTER does, and
        so does one that has left MAX_UNREAD bytes unread."""
        transport = self.peers.get(to)
        if transport is None:
            return
        if transport.get_write_buffer_size() > MAX_UNREAD:
            if to not in self.dropping:
                self.dropping.add(to)
                log.warning("a peer (%r) has left %d MiB unread: what else comes for it is "
                            "dropped until it reads", to, MAX_UNREAD >> 20)
            return
        self.dropping.discard(to)
        transport.write(message(frames))

    def close(self) -> None:
        for transport in self.peers.values():
            transport.abort()
        if self.server.done() and not self.server.exception():
            self.server.result().close()
        else:
            self.server.cancel()


class _RouterPeer:
    """One connection, an asyncio protocol (asyncio takes any object with
    these methods; its Protocol class is no more than their defaults)."""

    def __init__(self, router: Router):
        self.router = router
        self.decoder = Decoder(b"ROUTER")
        self.transport: asyncio.Transport | None = None
        self.id: bytes | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(handshake(b"ROUTER"))

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.decoder.feed(data)
        except ZmtpError as exc:
            log.warning("dropped a connection: %s", exc)
            self.transport.abort()
            return
        if self.decoder.replies:
            self.transport.write(b"".join(self.decoder.replies))
            self.decoder.replies.clear()
        if self.id is None and self.decoder.peer is not None:
            self.id = (self.decoder.peer.get(b"identity")
                       or b"\0" + next(self.router.ids).to_bytes(4, "big"))
            self.router.peers[self.id] = self.transport
        for frames in messages:
            self.router.on_message(self.id, frames)

    def connection_lost(self, exc) -> None:
        if self.id is not None and self.router.peers.get(self.id) is self.transport:
            del self.router.peers[self.id]
            self.router.dropping.discard(self.id)
            self.router.on_lost(self.id)

    def eof_received(self) -> None:      # None: the transport closes itself
        return None

    def pause_writing(self) -> None:     # the peer reads what is written in time, or
        pass                             # its deadlines end it (asyncio's default too)

    def resume_writing(self) -> None:
        pass


class Dealer:
    """A DEALER connected to a Router: blocking writes (the peer's loop reads
    whatever comes), nonblocking reads.  Sends are kept until flush(), and
    until connect() succeeds."""

    def __init__(self, endpoint: str):
        self.path = ipc_path(endpoint)
        self.sock: socket.socket | None = None
        self.decoder = Decoder(b"DEALER")
        self.queued: list[bytes] = []
        self.early: list[list[bytes]] = []      # messages that came with the handshake

    def connect(self, timeout: float = 5.0) -> bool:
        """Try once; False if the peer is not listening yet (start order is not
        assumed).  Waits for the peer's READY: a libzmq peer refuses messages
        that reach it before it has sent its own."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return False
        sock.settimeout(timeout)
        try:
            sock.sendall(handshake(b"DEALER"))
            while self.decoder.peer is None:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionResetError("the peer closed the connection in the handshake")
                self.early += self.decoder.feed(data)
            sock.settimeout(None)
            sock.sendall(b"".join(self.queued) + b"".join(self.decoder.replies))
        except (OSError, ZmtpError) as exc:
            sock.close()
            raise ConnectionError(f"{self.path}: ZMTP handshake failed: {exc}") from None
        self.queued.clear()
        self.decoder.replies.clear()
        self.sock = sock
        return True

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frames: list[bytes]) -> None:
        """Kept until flush (or connect): what one turn of the caller's loop
        sends goes out in one write and wakes the peer once."""
        self.queued.append(message(frames))

    def flush(self) -> None:
        if self.sock is not None and self.queued:
            data = b"".join(self.queued)
            self.queued.clear()
            self.sock.sendall(data)

    def recv(self) -> list[list[bytes]]:
        """Every whole message readable now; ConnectionError once the peer is gone."""
        out, self.early = self.early, []
        while True:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                raise ConnectionResetError("the peer closed the connection")
            try:
                out += self.decoder.feed(data)
            except ZmtpError as exc:
                raise ConnectionResetError(str(exc)) from None
            if self.decoder.replies:
                self.sock.sendall(b"".join(self.decoder.replies))
                self.decoder.replies.clear()
            if len(data) < 1 << 16:
                break
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
