"""AF_UNIX sockets (Linux's net/unix/af_unix.c): stream, datagram and
seqpacket sockets, connections, queues and readiness.

In a nutshell: a ``UnixSocket`` is Linux's unix_sock: a type, a state
(unconnected, listening, connected), a peer, a receive queue of
``Message``s (a listener's holds the connected sockets accept will take),
shutdown bits, a pending error and one wait queue; its file, with
O_ASYNC, is told of data, connections and hang-ups, and of room once a
sender found none, where Linux's sk_wake_async tells it.  A ``SocketFile``
is the open file over it.  A message is charged to its sender until it is
read (``wmem`` against ``sndbuf``, Linux's sk_wmem_alloc): a sender blocks
(or gets EAGAIN) while its unread bytes fill its send buffer, so what a
guest can park in the kernel is bounded by its sockets' send buffers, and a
listener's queue by its backlog.  Stream senders read guest memory only as
room appears, and stream receivers write it as they take bytes, as pipes
do.

What needs the guest (its memory, its fd table, its signals, the VFS) is
the handlers' (services/kernel/syscalls/socket.py); this module is given
bytes, callables and credentials."""
from __future__ import annotations

import asyncio
import errno
import itertools
import struct
from collections import deque
from typing import Callable

from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.core.waitqueue import ALL_EVENTS, WaitQueue
from services.kernel.fs.fasync import fasync_helper, kill_fasync
from services.kernel.fs.files import PseudoInode, put
from services.kernel.fs.vfs import OpenFile, makedev, pack_stat, pack_statx
from services.kernel.net import names
from services.kernel.net.scm import Creds, Rights
from services.kernel.abi.fcntl import O_NONBLOCK, O_RDWR
from services.kernel.abi.poll import (
    POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRBAND, POLLWRNORM)
from services.kernel.abi.socket import (
    MSG_PEEK, MSG_TRUNC, MSG_WAITALL, SOCK_DGRAM, SOCK_STREAM, SIOCINQ, SIOCOUTQ)
from services.kernel.abi.signal import POLL_HUP, POLL_IN, POLL_OUT

RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
SHUTDOWN_MASK = RCV_SHUTDOWN | SEND_SHUTDOWN
UNCONNECTED, LISTENING, CONNECTED = "unconnected", "listening", "connected"
# Linux's defaults: net.core.wmem_default and rmem_default; what SO_SNDBUF may
# ask (wmem_max, before doubling), the least it gives (SOCK_MIN_SNDBUF and
# _RCVBUF); net.unix.max_dgram_qlen
SK_BUF_DEFAULT, SK_BUF_MAX = 212992, 212992
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
MAX_DGRAM_QLEN = 10
MSG_OVERHEAD = 576            # what a message costs beyond its bytes (an sk_buff's truesize)
STREAM_PIECE = 64 << 10       # the most one stream message holds
# What all the guest's socket queues may hold together (as its pipes' pages
# are bounded): past it a send is ENOBUFS, as when Linux cannot allocate.
# Each socket's send buffer bounds one sender; this bounds the many a guest
# can make, or keep alive by sending them to each other and closing them.
GUEST_QUEUED = 128 << 20
SOCKFS_DEV = makedev(0, 8)
S_IFSOCK = 0o140000
_inode_numbers = itertools.count(8192)
_queued = 0            # bytes charged in every socket of the guest

WAKE_IN = POLLIN | POLLRDNORM
WAKE_OUT = POLLOUT | POLLWRNORM | POLLWRBAND


class Message:
    """One sk_buff on a receive queue: bytes (a stream reader eats them from
    the front), who sent them, their credentials and any files in flight."""
    __slots__ = ("data", "sender", "creds", "rights", "cost")

    def __init__(self, data: bytes, sender: UnixSocket, creds: Creds, rights: Rights | None):
        self.data = data
        self.sender = sender
        self.creds = creds
        self.rights = rights
        self.cost = len(data) + MSG_OVERHEAD


class Received:
    """What a receive gives back besides the bytes: their count (or a datagram's
    whole length, with MSG_TRUNC), the message flags, the sender's address,
    credentials and files."""
    __slots__ = ("length", "flags", "addr", "creds", "files")

    def __init__(self) -> None:
        self.length = 0
        self.flags = 0
        self.addr: bytes | None = None
        self.creds: Creds | None = None
        self.files: list = []


class UnixSocket:
    """Linux's unix_sock."""

    def __init__(self, kind: int):
        self.kind = kind
        self.state = UNCONNECTED
        self.peer: UnixSocket | None = None
        self.dead = False
        self.shutdown = 0
        self.err = 0
        self.queue: deque = deque()          # Messages; a listener's: UnixSockets
        self.backlog = 0
        self.wmem = 0
        self.sndbuf = self.rcvbuf = SK_BUF_DEFAULT
        self.passcred = False
        self.options: dict[int, int] = {}    # stored SOL_SOCKET ints (SO_REUSEADDR ...)
        self.peercred: Creds | None = None
        self.addr: bytes | None = None       # what getsockname gives: family and name
        self.name_key: tuple | None = None
        self.binding = asyncio.Lock()        # Linux's bindlock
        self.waitq = WaitQueue()
        self.fasync: dict = {}               # its file, with O_ASYNC (fs/fasync.py)
        self.nospace = False                 # a sender found no room (SOCKWQ_ASYNC_NOSPACE)
        self.embryo = False                  # a connection its listener dropped unaccepted
        self.inode = PseudoInode(next(_inode_numbers), S_IFSOCK | 0o777)

    @property
    def connection(self) -> bool:
        """Stream and seqpacket: connection-oriented."""
        return self.kind != SOCK_DGRAM

    # --- names and connections ----------------------------------------------------
    def listen(self, backlog: int, creds: Creds) -> None:
        if self.kind == SOCK_DGRAM:
            raise Errno(errno.EOPNOTSUPP)
        if self.addr is None or self.state not in (UNCONNECTED, LISTENING):
            raise Errno(errno.EINVAL)
        if self.state == UNCONNECTED:
            self.peercred = creds
        self.backlog = backlog
        self.state = LISTENING
        self.waitq.wake(ALL_EVENTS)

    async def connect(self, listener: UnixSocket, creds: Creds, nonblock: bool) -> None:
        """A stream or seqpacket connect: a new socket joins listener's queue,
        connected to this one, for accept to take."""
        while True:
            if self.state == CONNECTED:
                raise Errno(errno.EISCONN)
            if self.state == LISTENING:
                raise Errno(errno.EINVAL)
            if listener.kind != self.kind:
                raise Errno(errno.EPROTOTYPE)
            if listener.state != LISTENING or listener.dead:
                raise Errno(errno.ECONNREFUSED)
            if len(listener.queue) <= listener.backlog:
                break
            if nonblock:
                raise Errno(errno.EAGAIN)
            await listener.waitq.wait(ALL_EVENTS)
        server = UnixSocket(self.kind)
        server.addr = listener.addr
        server.peercred = creds
        server.passcred = listener.passcred
        server.state = self.state = CONNECTED
        server.peer, self.peer = self, server
        self.peercred = listener.peercred
        listener.queue.append(server)
        listener.waitq.wake(WAKE_IN)
        kill_fasync(listener.fasync, POLL_IN)
        self.waitq.wake(ALL_EVENTS)

    async def accept(self, nonblock: bool) -> UnixSocket:
        if self.kind == SOCK_DGRAM:
            raise Errno(errno.EOPNOTSUPP)
        while True:
            if self.state != LISTENING:
                raise Errno(errno.EINVAL)
            if self.queue:
                server = self.queue.popleft()
                self.waitq.wake(ALL_EVENTS)      # a connector waiting for room
                return server
            if nonblock:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(WAKE_IN | ALL_EVENTS)

    def connect_dgram(self, other: UnixSocket | None) -> None:
        """A datagram socket's default destination (None: AF_UNSPEC, none)."""
        if other is not None and other.kind != self.kind:
            raise Errno(errno.EPROTOTYPE)
        old, self.peer = self.peer, other
        self.state = CONNECTED if other is not None else UNCONNECTED
        if old is not None and old is not other:
            old.waitq.wake(ALL_EVENTS)

    def pair(self, other: UnixSocket, creds: Creds) -> None:
        """socketpair: two sockets connected to each other."""
        self.peer, other.peer = other, self
        self.state = other.state = CONNECTED
        self.peercred = other.peercred = creds

    def shut(self, how: int) -> None:
        mode = how + 1          # SHUT_RD 0 -> RCV_SHUTDOWN ...
        self.shutdown |= mode
        self.waitq.wake(ALL_EVENTS)
        peer = self.peer
        if peer is not None and self.connection:
            peer_mode = (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0) \
                | (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0)
            peer.shutdown |= peer_mode
            peer.waitq.wake(ALL_EVENTS)
            if peer_mode == SHUTDOWN_MASK:
                kill_fasync(peer.fasync, POLL_HUP)
            elif peer_mode & RCV_SHUTDOWN:
                kill_fasync(peer.fasync, POLL_IN)

    def take_error(self) -> int:
        err, self.err = self.err, 0
        return err

    # --- sending ------------------------------------------------------------------------
    @staticmethod
    def _budget(size: int) -> None:
        """Room in the guest's GUEST_QUEUED for a message of size bytes."""
        if _queued + size + MSG_OVERHEAD > GUEST_QUEUED:
            raise refuse("bytes queued in the guest's sockets", GUEST_QUEUED, errno.ENOBUFS)

    def _charge(self, msg: Message, other: UnixSocket) -> None:
        global _queued
        _queued += msg.cost
        self.wmem += msg.cost
        other.queue.append(msg)
        other.waitq.wake(WAKE_IN)
        kill_fasync(other.fasync, POLL_IN)

    def _uncharge(self, msg: Message) -> None:
        global _queued
        _queued -= msg.cost
        sender = msg.sender
        sender.wmem -= msg.cost
        if sender.writable():
            sender.waitq.wake(WAKE_OUT)
            if sender.nospace:
                sender.nospace = False
                kill_fasync(sender.fasync, POLL_OUT)

    def writable(self) -> bool:
        return self.state != LISTENING and self.wmem * 4 <= self.sndbuf

    async def _room(self, nonblock: bool) -> None:
        """Wait while this socket's unread messages fill its send buffer."""
        while self.wmem >= self.sndbuf:
            self.nospace = True
            if nonblock:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(WAKE_OUT | POLLERR | POLLHUP)

    async def send_stream(self, read: Callable[[int, int], bytes], total: int, creds: Creds,
                          rights: Rights | None, nonblock: bool) -> int:
        """A stream send of the total bytes read(skip, n) gives, in messages
        of at most half the send buffer; the files go with the first.  EPIPE
        once the peer cannot read (the caller signals); a signal, EAGAIN or a
        bad address after some bytes ends it with their count."""
        sent = 0
        try:
            if self.peer is None:
                raise Errno(errno.ENOTCONN)
            while sent < total:
                other = self.peer
                if self.shutdown & SEND_SHUTDOWN or other.dead or other.shutdown & RCV_SHUTDOWN:
                    if sent:
                        return sent
                    raise Errno(errno.EPIPE)
                try:
                    await self._room(nonblock)
                    if self.peer is not other or other.dead:
                        continue
                    size = min(total - sent, (self.sndbuf >> 1) - 64, STREAM_PIECE)
                    self._budget(size)
                    data = read(sent, size)
                except (Errno, asyncio.CancelledError):
                    if sent:
                        return sent
                    raise
                self._charge(Message(data, self, creds, rights), other)
                rights = None
                sent += size
            return sent
        finally:
            if rights is not None:
                rights.drop()

    async def send_dgram(self, data: bytes, to: UnixSocket | None, creds: Creds,
                         rights: Rights | None, nonblock: bool) -> int:
        """One datagram (or seqpacket record) to ``to``, or to the peer."""
        try:
            if len(data) > self.sndbuf - 32:
                raise Errno(errno.EMSGSIZE)
            while True:
                if self.shutdown & SEND_SHUTDOWN:
                    raise Errno(errno.EPIPE)
                await self._room(nonblock)
                other = to if to is not None else self.peer
                if other is None:
                    raise Errno(errno.ENOTCONN)
                if other.dead:
                    if other is self.peer:
                        self.peer = None
                        if self.connection:
                            raise Errno(errno.EPIPE)
                    raise Errno(errno.ECONNREFUSED)
                if other.peer is not None and other.peer is not self:
                    raise Errno(errno.EPERM)
                if other.shutdown & RCV_SHUTDOWN:
                    raise Errno(errno.EPIPE)
                if other is not self and other.peer is not self \
                        and len(other.queue) > MAX_DGRAM_QLEN:
                    if nonblock:
                        raise Errno(errno.EAGAIN)
                    await other.waitq.wait(WAKE_OUT | ALL_EVENTS)
                    continue
                self._budget(len(data))
                self._charge(Message(data, self, creds, rights), other)
                rights = None
                return len(data)
        finally:
            if rights is not None:
                rights.drop()

    # --- receiving ----------------------------------------------------------------------
    async def _data_waits(self, nonblock: bool) -> bool:
        """Wait for the queue to hold something: False at end of file; a
        pending error or EAGAIN raised."""
        while not self.queue:
            err = self.take_error()
            if err:
                raise Errno(err)
            if self.shutdown & RCV_SHUTDOWN:
                return False
            if nonblock:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(WAKE_IN | POLLRDHUP | POLLHUP | POLLERR)
        return True

    def _consume(self, msg: Message) -> None:
        self.queue.popleft()
        self._uncharge(msg)
        self.waitq.wake(WAKE_OUT)          # a datagram sender waiting for queue room
        if msg.rights is not None:
            msg.rights.drop()

    async def recv_stream(self, write: Callable[[int, bytes], None], count: int, flags: int,
                          nonblock: bool) -> Received:
        """Bytes of the stream into write(at, data), as Linux's
        unix_stream_read_generic: from one sender's credentials at a time
        (with SO_PASSCRED), ending with a message that brings files, and,
        with MSG_WAITALL, not before count bytes (or the end, an error or a
        signal)."""
        if self.state != CONNECTED:
            raise Errno(errno.EINVAL)
        out = Received()
        peek = bool(flags & MSG_PEEK)
        target = count if flags & MSG_WAITALL else 1
        skip = 0                       # bytes peeked so far, from the queue's front
        while True:
            index, at = 0, skip
            while index < len(self.queue) and at >= len(self.queue[index].data):
                at -= len(self.queue[index].data)
                index += 1
            if index == len(self.queue):
                if out.length >= target:
                    break
                try:
                    if not self.queue:
                        if not await self._data_waits(nonblock):
                            break
                    elif nonblock or self.shutdown & RCV_SHUTDOWN:
                        break                   # peeked all there is (so out holds some)
                    else:
                        await self.waitq.wait(WAKE_IN | POLLRDHUP | POLLHUP | POLLERR)
                except (Errno, asyncio.CancelledError):
                    if out.length:
                        break
                    raise
                continue
            msg = self.queue[index]
            if out.length and self.passcred and msg.creds != out.creds:
                break
            if out.creds is None:
                out.creds, out.addr = msg.creds, msg.sender.addr
            piece = msg.data[at:at + count - out.length]
            try:
                write(out.length, piece)
            except Errno:
                if out.length:
                    break
                raise
            out.length += len(piece)
            if msg.rights is not None:
                out.files = msg.rights.copies() if peek else msg.rights.take()
                if not peek:
                    msg.rights = None
            if peek:
                skip += len(piece)
            elif len(piece) == len(msg.data):
                self._consume(msg)
            else:
                msg.data = msg.data[len(piece):]
            if out.files or out.length >= count:
                break
        return out

    async def recv_dgram(self, count: int, flags: int, nonblock: bool) -> tuple[bytes, Received]:
        """One datagram (or record): its first count bytes; MSG_TRUNC in the
        flags when it was longer, its whole length asked with MSG_TRUNC."""
        if self.kind != SOCK_DGRAM and self.state != CONNECTED:
            raise Errno(errno.ENOTCONN)
        out = Received()
        if not await self._data_waits(nonblock):
            return b"", out
        msg = self.queue[0]
        data = msg.data[:count]
        if len(msg.data) > count:
            out.flags |= MSG_TRUNC
        out.length = len(msg.data) if flags & MSG_TRUNC else len(data)
        out.addr, out.creds = msg.sender.addr, msg.creds
        if msg.rights is not None:
            out.files = msg.rights.copies() if flags & MSG_PEEK else msg.rights.take()
        if not flags & MSG_PEEK:
            self._consume(msg)
        return data, out

    # --- readiness and the end ----------------------------------------------------------
    def poll_mask(self, table=None) -> int:
        """Linux's unix_poll and unix_dgram_poll."""
        if table is not None:
            table.add(self.waitq)
        mask = 0
        if self.err:
            mask |= POLLERR
        if self.shutdown == SHUTDOWN_MASK:
            mask |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            mask |= POLLRDHUP | POLLIN | POLLRDNORM
        if self.queue:
            mask |= POLLIN | POLLRDNORM
        if self.connection and self.state == UNCONNECTED:
            mask |= POLLHUP
        writable = self.writable()
        other = self.peer
        if self.kind == SOCK_DGRAM and writable and other is not None \
                and other.peer is not self and not other.dead:
            if table is not None:
                table.add(other.waitq)
            writable = len(other.queue) <= MAX_DGRAM_QLEN
        if writable:
            mask |= WAKE_OUT
        else:
            self.nospace = True
        return mask

    def inq(self) -> int:
        """SIOCINQ: a stream's or seqpacket's unread bytes, a datagram socket's
        next datagram's."""
        if self.state == LISTENING:
            raise Errno(errno.EINVAL)
        if self.connection:
            return sum(len(m.data) for m in self.queue)
        return len(self.queue[0].data) if self.queue else 0

    def release(self) -> None:
        """The last file is closed (or an unaccepted connection dropped)."""
        names.unbind(self)
        self.dead = True
        was_listening = self.state == LISTENING
        self.state = UNCONNECTED
        peer, self.peer = self.peer, None
        if peer is not None and self.connection:
            peer.shutdown = SHUTDOWN_MASK
            if self.queue or self.embryo:
                peer.err = errno.ECONNRESET
            peer.waitq.wake(ALL_EVENTS)
            kill_fasync(peer.fasync, POLL_HUP)
        queue, self.queue = self.queue, deque()
        for item in queue:
            if was_listening:
                item.embryo = True
                item.release()
            else:
                self._uncharge(item)
                if item.rights is not None:
                    item.rights.drop()
        self.waitq.wake(ALL_EVENTS)


class SocketFile(OpenFile):
    """An open socket (Linux's struct socket with its file)."""

    def __init__(self, sock: UnixSocket, nonblock: bool):
        super().__init__(None, O_RDWR | (O_NONBLOCK if nonblock else 0))
        self.sock = sock

    @property
    def link_name(self) -> bytes:
        return b"socket:[%d]" % self.sock.inode.ino

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    def release(self) -> None:
        self.sock.release()

    def fasync(self, fd: int, on: bool) -> None:
        fasync_helper(self.sock.fasync, self, fd, on)

    def poll(self, table=None) -> int:
        return self.sock.poll_mask(table)

    async def read(self, count: int, offset: int | None = None) -> bytes:
        """read(2): a receive with no flags; files that came along are dropped."""
        sock = self.sock
        if sock.kind == SOCK_STREAM:
            parts: list[bytes] = []
            got = await sock.recv_stream(lambda _at, data: parts.append(data), count, 0,
                                         self.nonblocking)
            files, data = got.files, b"".join(parts)
        else:
            data, got = await sock.recv_dgram(count, 0, self.nonblocking)
            files = got.files
        drop_files(files)
        return data

    def ioctl(self, task, request: int, arg: int) -> int:
        if request == SIOCINQ:
            value = self.sock.inq()
        elif request == SIOCOUTQ:
            if self.sock.state == LISTENING:
                raise Errno(errno.EINVAL)
            value = self.sock.wmem
        else:
            raise Errno(errno.ENOTTY)
        task.mem.write(arg, struct.pack("<i", value))
        return 0

    def stat(self) -> bytes:
        return pack_stat(self.sock.inode, SOCKFS_DEV)

    def statx(self) -> bytes:
        return pack_statx(self.sock.inode, SOCKFS_DEV)


def drop_files(files: list) -> None:
    """Files a receiver took but will not install."""
    for f in files:
        put(f)
