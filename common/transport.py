"""ZeroMQ sockets for the services: one way to bind, connect, send and receive.

In a nutshell: every service binds one ROUTER socket at its endpoint from the
guest config (``Endpoint``) and reaches its peers through DEALER sockets
(``Link``).  Receiving always goes through ``Channel.drain``, which decodes and
validates each message and answers a bad one with an ``error`` reply and a log
line, so a malformed peer can never crash or stall a service.

``AsyncLink`` adds what the kernel needs on an asyncio loop: requests with a
deadline that are resent when it passes (peers are idempotent), and futures
keyed by request id.

The kernel's own endpoint is the exception to libzmq: every guest system
call crosses it, so the kernel's loop serves it (``LoopEndpoint``) and
userspace reaches it (``DirectLink``) speaking ZMTP themselves
(``common/zmtp.py``), without libzmq's I/O threads.  Its clients may still
be libzmq DEALERs; the envelope and its checks are the same.

A ``tcp://`` endpoint is always secured with ZeroMQ CURVE (``Curve``): the
server has a key pair and lets in only its one client's public key (a ZAP
handler); the client has a key pair and knows the server's public key.  A
tcp endpoint without keys is refused; ipc endpoints rely on the 0700 run dir.
"""
from __future__ import annotations

import ctypes
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import zmq

from common import activation, protocol, zmtp
from common.protocol import Message, ProtocolError

if TYPE_CHECKING:         # imported where used: of the services, only the kernel has a loop
    import asyncio

log = logging.getLogger(__name__)

_context: zmq.Context | None = None


def context() -> zmq.Context:
    """The process's one ZeroMQ context (pin CPUs before the first call)."""
    global _context
    if _context is None:
        _context = zmq.Context(io_threads=1)
    return _context


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3      # glibc's mallopt
KEEP_FREED = 64 << 20


def keep_freed_memory() -> None:
    """Make glibc keep freed memory for reuse (up to KEEP_FREED) instead of
    giving it back to the host at once, in a process that moves MiB-sized
    messages (the kernel's disk and ubd_io): with glibc's defaults each such
    buffer is mmapped or grown anew and page-faulted in, page by page.
    Measured: the kernel's ext2 read of 1 MiB from its device cache took
    1.74 ms of CPU, 0.60 ms with this; ubd_io's CPU for a guest's 64 MiB
    of 1 MiB writes fell from about 85 to 45 ms."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):      # not glibc
        return
    # buffers up to 32 MiB (glibc's limit; BLOCK_MAX is 16) from the heap, not mmap
    for option, value in ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, KEEP_FREED),
                          (M_TOP_PAD, 16 << 20)):
        mallopt(option, value)


def give_back_freed_memory() -> None:
    """What keep_freed_memory kept, back to the host (glibc's malloc_trim):
    for a process that has gone idle, whose next burst may fault its
    buffers in again."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):      # not glibc
        pass


def pin_cpu(cpu: int | None) -> None:
    """Pin this process (and so its guest children and zmq threads) to one CPU.

    Done before the zmq context exists: its I/O thread inherits the mask,
    and the tracer, the guest and the kernel waking each other on one CPU is
    cheaper on this VM than crossing CPUs (DESIGN §11)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


@dataclass(frozen=True)
class Curve:
    """CURVE keys for one tcp link: this side's key pair and the peer's
    public key (z85, as zmq.auth certificate files hold them)."""
    public: bytes
    secret: bytes
    peer: bytes

    @classmethod
    def load(cls, own: str | os.PathLike, peer: str | os.PathLike) -> Curve:
        """From certificate files written by zmq.auth.create_certificates:
        own must be a ``.key_secret`` file, peer may be the public ``.key``."""
        import zmq.auth            # tcp only: not in an ipc guest's start
        try:
            public, secret = zmq.auth.load_certificate(own)
            peer_public, _ = zmq.auth.load_certificate(peer)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load CURVE keys ({exc}); make a key pair with: python -c "
                             "'import zmq.auth; zmq.auth.create_certificates(DIR, NAME)'") from None
        if not secret:
            raise ValueError(f"{own} holds no secret key: give this side's .key_secret file")
        return cls(public, secret, peer_public)


class _Clients:
    """The ZAP credentials provider: lets in the listed client keys only."""

    def __init__(self) -> None:
        self.allowed: set[bytes] = set()

    def callback(self, _domain: str, key: bytes) -> bool:
        if key not in self.allowed:
            log.warning("refused a CURVE client with an unknown key %s", key.decode())
        return key in self.allowed


_clients: _Clients | None = None


Keys = tuple[str | os.PathLike, str | os.PathLike]   # (own .key_secret, peer's .key) files


def _secure(sock: zmq.Socket, endpoint: str, keys: Keys | None, server: bool) -> None:
    """Set CURVE on a socket for a tcp endpoint (and start the ZAP handler once)."""
    global _clients
    if not endpoint.startswith("tcp://"):
        return
    if keys is None:
        raise ValueError(f"{endpoint}: a tcp endpoint needs CURVE keys; set [curve] in the "
                         "guest config or put them in the run dir")
    curve = Curve.load(*keys)
    sock.curve_secretkey = curve.secret
    sock.curve_publickey = curve.public
    if not server:
        sock.curve_serverkey = curve.peer
        return
    if _clients is None:
        from zmq.auth.thread import ThreadAuthenticator
        _clients = _Clients()
        auth = ThreadAuthenticator(context())
        auth.start()
        auth.configure_curve_callback("skas", credentials_provider=_clients)
    _clients.allowed.add(curve.peer)
    sock.zap_domain = b"skas"
    sock.curve_server = True


def _ipc_path(endpoint: str) -> str | None:
    return endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None


# pyzmq's constants are enum flags, and mixing them with the ints zmq
# returns builds a new enum each time: a few µs per message on the hot path.
_EVENTS, _POLLIN, _NOBLOCK, _SNDMORE = (int(c) for c in (zmq.EVENTS, zmq.POLLIN, zmq.NOBLOCK,
                                                           zmq.SNDMORE))


class _Envelope:
    """What every socket wrapper shares: error replies, and accepting one
    received message (a bad one is answered with an error and a log line)."""

    sender: str

    def error(self, id_: int, reason: str, to: bytes | None = None) -> None:
        self.send("error", id_, {"reason": reason}, to)

    def accept(self, to: bytes | None, frames: list[bytes]) -> Message | None:
        if len(frames) != 1:
            log.warning("%s: dropped a message of %d frames", self.sender, len(frames))
            self.error(0, f"expected one message frame, got {len(frames)}", to)
            return None
        try:
            return protocol.decode(frames[0])
        except ProtocolError as exc:
            log.warning("%s: bad message: %s", self.sender, exc)
            self.error(protocol.request_id(frames[0]), str(exc), to)
            return None


class Channel(_Envelope):
    """A libzmq socket plus the envelope: send and drain messages."""

    def __init__(self, sock: zmq.Socket, sender: str):
        self.sock = sock
        self.sender = sender
        self.routed = sock.type == zmq.ROUTER

    def send(self, type_: str, id_: int, body: dict | None = None, to: bytes | None = None,
             traceparent: str | None = None) -> None:
        raw = protocol.encode(type_, id_, self.sender, body, traceparent)
        if self.routed:
            self.sock.send(to, _SNDMORE, copy=False)
            self.sock.send(raw, 0, copy=False)
        else:
            self.sock.send(raw, copy=False)

    def drain(self, until: float | None = None) -> Iterator[tuple[bytes | None, Message]]:
        """Yield every message waiting now (or those taken before the monotonic
        time until: a loop that polls the socket again may leave the rest for
        its next turn); bad ones are answered, not yielded.  EVENTS says when to
        stop (cheaper than the EAGAIN of one more recv), and asking it after
        the last message re-arms zmq's edge-triggered FD."""
        sock = self.sock
        while (until is None or time.monotonic() < until) and sock.getsockopt(_EVENTS) & _POLLIN:
            try:
                frames = sock.recv_multipart(_NOBLOCK, copy=True)
            except zmq.Again:
                return
            to = frames[0] if self.routed else None
            msg = self.accept(to, frames[1:] if self.routed else frames)
            if msg is not None:
                yield to, msg

    def close(self) -> None:
        self.sock.close(linger=0)


class Endpoint(Channel):
    """This service's bound ROUTER socket."""

    def __init__(self, endpoint: str, sender: str, keys: Keys | None = None,
                 options: tuple[tuple[int, int], ...] = ()):
        sock = context().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)     # never hold up an exit for a dead peer
        for option, value in options:      # before bind: the listener copies them
            sock.setsockopt(option, value)
        _secure(sock, endpoint, keys, server=True)
        path = _ipc_path(endpoint)
        bound = path and activation.handed_over(path)
        if bound:
            sock.setsockopt(zmq.USE_FD, bound.detach())   # libzmq listens on it
        elif path and os.path.exists(path):
            os.unlink(path)  # a stale socket from a killed predecessor
        sock.bind(endpoint)
        if path and not bound:
            os.chmod(path, 0o600)
        super().__init__(sock, sender)


class Link(Channel):
    """A DEALER socket connected to a peer's endpoint."""

    def __init__(self, endpoint: str, sender: str, keys: Keys | None = None):
        sock = context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        _secure(sock, endpoint, keys, server=False)
        sock.connect(endpoint)
        super().__init__(sock, sender)


def on_readable(loop: asyncio.AbstractEventLoop, channel: Channel,
                handle: Callable[[bytes | None, Message], None]) -> Callable[[], None]:
    """Call handle for each message arriving on channel, from the asyncio loop.

    zmq's FD is edge-triggered: each callback drains the socket until EVENTS
    says it is empty, and after sends the returned ``kick`` asks EVENTS again
    (a send can swallow the edge of a message that came in)."""
    sock = channel.sock

    def readable() -> None:
        for to, msg in channel.drain():
            handle(to, msg)

    loop.add_reader(sock.getsockopt(zmq.FD), readable)

    def kick() -> None:
        # Asking EVENTS re-arms the edge; a loop turn only if a message waits.
        if sock.getsockopt(_EVENTS) & _POLLIN:
            loop.call_soon(readable)

    return kick


class LoopEndpoint(_Envelope):
    """The kernel's bound endpoint, a ROUTER served on its asyncio loop by the
    loop's own thread (``zmtp.Router``): handle(to, msg) for each message,
    lost(to) when that peer's connection closes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint: str, sender: str,
                 handle: Callable[[bytes, Message], None], lost: Callable[[bytes], None]):
        self.sender = sender
        self.handle = handle
        self.router = zmtp.Router(loop, endpoint, self._received, lost)

    def _received(self, to: bytes, frames: list[bytes]) -> None:
        msg = self.accept(to, frames)
        if msg is not None:
            self.handle(to, msg)

    def send(self, type_: str, id_: int, body: dict | None = None, to: bytes | None = None,
             traceparent: str | None = None) -> None:
        self.router.send(to, [protocol.encode(type_, id_, self.sender, body, traceparent)])

    def close(self) -> None:
        self.router.close()


class DirectLink(_Envelope):
    """Userspace's link to a ``LoopEndpoint`` (``zmtp.Dealer``): sends wait
    for ``flush`` (and for ``connect``); ``flush`` and ``drain`` raise
    ConnectionError once the peer is gone."""

    def __init__(self, endpoint: str, sender: str):
        self.sender = sender
        self.dealer = zmtp.Dealer(endpoint)

    @property
    def connected(self) -> bool:
        return self.dealer.sock is not None

    def connect(self, timeout: float = 5.0) -> bool:
        return self.dealer.connect(timeout)

    def fileno(self) -> int:
        return self.dealer.fileno()

    def send(self, type_: str, id_: int, body: dict | None = None, to: bytes | None = None,
             traceparent: str | None = None) -> None:
        self.dealer.send([protocol.encode(type_, id_, self.sender, body, traceparent)])

    def flush(self) -> None:
        """Write what was sent since the last flush; ConnectionError if the
        peer is gone."""
        self.dealer.flush()

    def drain(self) -> Iterator[tuple[None, Message]]:
        for frames in self.dealer.recv():
            msg = self.accept(None, frames)
            if msg is not None:
                yield None, msg

    def close(self) -> None:
        self.dealer.close()


class AsyncLink:
    """Requests to one peer from an asyncio loop, with deadlines and resends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint: str, sender: str,
                 deadline: float = 2.0, keys: Keys | None = None):
        self.loop = loop
        self.endpoint = endpoint
        self.link = Link(endpoint, sender, keys)
        self.deadline = deadline
        self.resends = 0               # so far: a request outstanding meanwhile may be twice in the peer
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.kick = on_readable(loop, self.link, self._reply)

    def _reply(self, _to: bytes | None, msg: Message) -> None:
        fut = self.pending.pop(msg.id, None)
        if fut is None or fut.done():
            return  # an answer to a resent request that was answered already
        fut.set_result(msg)

    async def request(self, type_: str, body: dict, *, retries: int | None = None,
                      traceparent: str | None = None) -> Message:
        """Send, and resend after each deadline, until answered (or retries run
        out); traceparent: the W3C trace context it is sent in, if traced."""
        import asyncio
        id_ = next(self.ids)
        attempt = 0
        while True:
            fut = self.loop.create_future()
            self.pending[id_] = fut
            self.link.send(type_, id_, body, traceparent=traceparent)
            self.kick()
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self.deadline)
            except asyncio.TimeoutError:
                attempt += 1
                self.resends += 1
                if retries is not None and attempt > retries:
                    self.pending.pop(id_, None)
                    raise
                log.warning("%s: no answer to %s #%d after %.1fs, resending",
                            self.link.sender, type_, id_, self.deadline)

    def close(self) -> None:
        self.loop.remove_reader(self.link.sock.getsockopt(zmq.FD))
        self.link.close()
