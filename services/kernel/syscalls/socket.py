"""The socket calls (services/kernel/net/unix.py): AF_UNIX only; every other
family is EAFNOSUPPORT, as on a Linux built without it.

What is the guest's is done here: addresses, msghdrs, iovecs and control
messages are read from its memory once, checked, then handed to the socket
as bytes; names on filesystems are made and walked through the VFS; files
in flight leave and join fd tables here; SIGPIPE is sent from here."""
from __future__ import annotations

import asyncio
import errno
import functools
import stat as S
import struct

from services.kernel.sched import signals
from services.kernel.core.cred import capable
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.fs.poll import TIMESPEC
from services.kernel.fs.vfs import may_create, new_owner, permitted
from services.kernel.net import names
from services.kernel.net.scm import Creds, Rights, creds_of
from services.kernel.net.unix import (
    CONNECTED, LISTENING, SK_BUF_MAX, SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF, SocketFile, UnixSocket,
    drop_files)
from services.kernel.syscalls.paths import (INT, SPECIAL_NAMES, fd_arg, gather, iovecs,
                                            scatter)
from services.kernel.abi.capability import (
    CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN, CAP_SYS_RESOURCE)
from services.kernel.abi.fcntl import IOV_MAX, MAX_RW, O_CLOEXEC, O_NONBLOCK, W_OK
from services.kernel.abi.signal import SIGPIPE
from services.kernel.abi.socket import (
    AF_MAX, AF_UNIX, AF_UNSPEC, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_OOB,
    MSG_WAITFORONE, SCM_CREDENTIALS, SCM_MAX_FD, SCM_RIGHTS, SHUT_RD, SHUT_RDWR,
    SO_ACCEPTCONN, SO_DOMAIN, SO_ERROR, SO_KEEPALIVE, SO_PASSCRED, SO_PEERCRED, SO_PROTOCOL,
    SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF, SO_TYPE, SOCK_DGRAM, SOCK_MAX, SOCK_RAW, SOCK_SEQPACKET,
    SOCK_STREAM, SOCK_TYPE_MASK, SOCKADDR_STORAGE, SOL_SOCKET, SOMAXCONN, UNIX_PATH_MAX)

MSGHDR = struct.Struct("<QI4xQQQQi4x")     # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8             # and msg_len
CMSGHDR = struct.Struct("<Qii")            # cmsg_len, cmsg_level, cmsg_type
UCRED = struct.Struct("<iII")
OPTMEM_MAX = 131072        # /proc/sys/net/core/optmem_max: the most control data a send takes
SOCKADDR_UN = 2 + UNIX_PATH_MAX
STORED_OPTIONS = (SO_REUSEADDR, SO_KEEPALIVE)


def _cmsg_align(n: int) -> int:
    return (n + 7) & ~7


def _socket(t, fd) -> SocketFile:
    f = t.files.get(fd_arg(fd))
    if not isinstance(f, SocketFile):
        raise Errno(errno.ENOTSOCK)
    return f


def _install(t, f: SocketFile, cloexec: bool) -> int:
    try:
        return t.files.install(f, cloexec)
    except Errno:
        f.release()
        raise


# --- creating -----------------------------------------------------------------------

def _kind(family: int, type_: int, protocol: int) -> tuple[int, int]:
    """socket(2)'s checks in Linux's order: the type and its flags; the
    socket's type (SOCK_RAW is a datagram socket to AF_UNIX)."""
    type_, family, protocol = c_int(type_), c_int(family), c_int(protocol)
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise Errno(errno.EINVAL)
    kind = type_ & SOCK_TYPE_MASK
    if not 0 <= family < AF_MAX:
        raise Errno(errno.EAFNOSUPPORT)
    if kind >= SOCK_MAX:
        raise Errno(errno.EINVAL)
    if family != AF_UNIX:
        raise Errno(errno.EAFNOSUPPORT)
    if protocol not in (0, AF_UNIX):
        raise Errno(errno.EPROTONOSUPPORT)
    if kind == SOCK_RAW:
        kind = SOCK_DGRAM
    if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        raise Errno(errno.ESOCKTNOSUPPORT)
    return kind, flags


def sys_socket(t, family, type_, protocol, *_):
    kind, flags = _kind(family, type_, protocol)
    return _install(t, SocketFile(UnixSocket(kind), bool(flags & O_NONBLOCK)),
                    bool(flags & O_CLOEXEC))


def sys_socketpair(t, family, type_, protocol, sv, *_):
    kind, flags = _kind(family, type_, protocol)
    a, b = UnixSocket(kind), UnixSocket(kind)
    a.pair(b, creds_of(t))
    ends = [SocketFile(s, bool(flags & O_NONBLOCK)) for s in (a, b)]
    fds: list[int] = []
    try:
        for end in ends:
            fds.append(t.files.install(end, bool(flags & O_CLOEXEC)))
        t.mem.write(sv, struct.pack("<ii", *fds))
    except Errno:
        for fd in fds:
            t.files.close(fd)
        for end in ends[len(fds):]:
            end.release()
        raise
    return 0


# --- addresses ----------------------------------------------------------------------

def _read_addr(t, addr: int, addrlen: int) -> bytes:
    """A sockaddr from the guest (Linux's move_addr_to_kernel)."""
    addrlen = c_int(addrlen)
    if not 0 <= addrlen <= SOCKADDR_STORAGE:
        raise Errno(errno.EINVAL)
    return t.mem.read(addr, addrlen) if addrlen else b""


def _family(raw: bytes) -> int:
    return struct.unpack_from("<H", raw)[0] if len(raw) >= 2 else -1


def _unix_name(raw: bytes) -> tuple[bool, bytes]:
    """(abstract?, the name): an abstract name keeps its leading NUL; a
    path ends at its first NUL."""
    if not 2 < len(raw) <= SOCKADDR_UN or _family(raw) != AF_UNIX:
        raise Errno(errno.EINVAL)
    name = raw[2:]
    if name[0] == 0:
        return True, name
    return False, name.split(b"\0", 1)[0]


def _put_addr(t, addr: int, addrlen_ptr: int, kaddr: bytes) -> None:
    """An address to the guest, as Linux's move_addr_to_user: at most the
    room the guest gave, and the whole length in *addrlen."""
    room = INT.unpack(t.mem.read(addrlen_ptr, 4))[0]
    if room < 0:
        raise Errno(errno.EINVAL)
    n = min(room, len(kaddr))
    if n:
        t.mem.write(addr, kaddr[:n])
    t.mem.write(addrlen_ptr, INT.pack(len(kaddr)))


def _name_of(sock: UnixSocket | None) -> bytes:
    """getsockname's answer: an unbound socket's is its family alone."""
    return sock.addr if sock is not None and sock.addr is not None else names.FAMILY


async def _find(t, raw: bytes, kind: int) -> UnixSocket:
    """The socket a name names (Linux's unix_find_other): a path needs write
    permission on its socket inode; nobody bound there is ECONNREFUSED."""
    abstract, name = _unix_name(raw)
    if abstract:
        sock = names.find_abstract(name)
    else:
        loc = await t.kernel.vfs.lookup(t.cwd, name, t.cred, t.root)
        if not permitted(loc.inode, t.cred, W_OK):
            raise Errno(errno.EACCES)
        if not S.S_ISSOCK(loc.inode.mode):
            raise Errno(errno.ECONNREFUSED)
        sock = names.find_inode((loc.mount.fs, loc.inode.ino))
    if sock is None:
        raise Errno(errno.ECONNREFUSED)
    if sock.kind != kind:
        raise Errno(errno.EPROTOTYPE)
    return sock


def _autobind_for_creds(sock: UnixSocket) -> None:
    """A socket with SO_PASSCRED gets a name before it connects or sends, as on
    Linux, so that its peer can tell who it is."""
    if sock.passcred and sock.addr is None:
        names.autobind(sock)


async def sys_bind(t, fd, addr, addrlen, *_):
    sock = _socket(t, fd).sock
    raw = _read_addr(t, addr, addrlen)
    if len(raw) == 2 and _family(raw) == AF_UNIX:
        if sock.addr is not None:
            raise Errno(errno.EINVAL)
        names.autobind(sock)
        return 0
    abstract, name = _unix_name(raw)
    async with sock.binding:
        if abstract:
            if sock.addr is not None:
                raise Errno(errno.EINVAL)
            names.bind_abstract(sock, name)
            return 0
        dir_loc, base = await t.kernel.vfs.lookup_parent(t.cwd, name, t.cred, t.root)
        if base in SPECIAL_NAMES or name.endswith(b"/") \
                or await dir_loc.inode.lookup(base) is not None:
            raise Errno(errno.EADDRINUSE)       # Linux makes the node first
        if sock.addr is not None:
            raise Errno(errno.EINVAL)
        may_create(dir_loc, t.cred)
        mode, uid, gid = new_owner(dir_loc.inode, t.cred, S.S_IFSOCK | 0o777 & ~t.umask)
        try:
            inode = await dir_loc.inode.create(base, mode, uid, gid, 0)
        except Errno as e:
            raise Errno(errno.EADDRINUSE) if e.code == errno.EEXIST else e
        names.bind_inode(sock, (dir_loc.mount.fs, inode.ino), name)
    return 0


def sys_listen(t, fd, backlog, *_):
    backlog = c_int(backlog)
    _socket(t, fd).sock.listen(backlog if 0 <= backlog <= SOMAXCONN else SOMAXCONN,
                               creds_of(t))
    return 0


async def sys_connect(t, fd, addr, addrlen, *_):
    f = _socket(t, fd)
    sock = f.sock
    raw = _read_addr(t, addr, addrlen)
    if sock.kind == SOCK_DGRAM:
        if len(raw) < 2:
            raise Errno(errno.EINVAL)
        if _family(raw) == AF_UNSPEC:
            sock.connect_dgram(None)
            return 0
        other = await _find(t, raw, sock.kind)
        _autobind_for_creds(sock)
        sock.connect_dgram(other)
        return 0
    _unix_name(raw)
    _autobind_for_creds(sock)
    other = await _find(t, raw, sock.kind)
    await sock.connect(other, creds_of(t), f.nonblocking)
    return 0


async def sys_accept4(t, fd, addr, addrlen_ptr, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise Errno(errno.EINVAL)
    f = _socket(t, fd)
    if t.files.lowest_free(0) >= t.files.limit:      # before a connection is taken
        raise Errno(errno.EMFILE)
    server = await f.sock.accept(f.nonblocking)
    new = SocketFile(server, bool(flags & O_NONBLOCK))
    if addr:
        try:
            _put_addr(t, addr, addrlen_ptr, _name_of(server.peer))
        except Errno:
            new.release()
            raise
    return _install(t, new, bool(flags & O_CLOEXEC))


async def sys_accept(t, fd, addr, addrlen_ptr, *_):
    return await sys_accept4(t, fd, addr, addrlen_ptr, 0)


def sys_shutdown(t, fd, how, *_):
    sock = _socket(t, fd).sock
    how = c_int(how)
    if not SHUT_RD <= how <= SHUT_RDWR:
        raise Errno(errno.EINVAL)
    sock.shut(how)
    return 0


def sys_getsockname(t, fd, addr, addrlen_ptr, *_):
    _put_addr(t, addr, addrlen_ptr, _name_of(_socket(t, fd).sock))
    return 0


def sys_getpeername(t, fd, addr, addrlen_ptr, *_):
    sock = _socket(t, fd).sock
    if sock.peer is None or sock.state != CONNECTED:
        raise Errno(errno.ENOTCONN)
    _put_addr(t, addr, addrlen_ptr, _name_of(sock.peer))
    return 0


# --- options --------------------------------------------------------------------------

def sys_setsockopt(t, fd, level, optname, optval, optlen, *_):
    sock = _socket(t, fd).sock
    if c_int(level) != SOL_SOCKET:
        raise Errno(errno.EOPNOTSUPP)
    optname = c_int(optname)
    if c_int(optlen) < INT.size:
        raise Errno(errno.EINVAL)
    val = INT.unpack(t.mem.read(optval, INT.size))[0]
    if optname == SO_SNDBUF:
        sock.sndbuf = max(min(val & 0xFFFFFFFF, SK_BUF_MAX) * 2, SOCK_MIN_SNDBUF)
        sock.waitq.wake()
    elif optname == SO_RCVBUF:
        sock.rcvbuf = max(min(val & 0xFFFFFFFF, SK_BUF_MAX) * 2, SOCK_MIN_RCVBUF)
    elif optname == SO_PASSCRED:
        sock.passcred = bool(val)
    elif optname in STORED_OPTIONS:
        sock.options[optname] = int(bool(val))
    else:
        raise Errno(errno.ENOPROTOOPT)
    return 0


def _option(sock: UnixSocket, optname: int) -> bytes:
    if optname == SO_PEERCRED:
        cred = sock.peercred or Creds(0, 0xFFFFFFFF, 0xFFFFFFFF)
        return UCRED.pack(*cred)
    value = {SO_TYPE: lambda: sock.kind, SO_DOMAIN: lambda: AF_UNIX, SO_PROTOCOL: lambda: 0,
             SO_ERROR: sock.take_error, SO_SNDBUF: lambda: sock.sndbuf,
             SO_RCVBUF: lambda: sock.rcvbuf, SO_PASSCRED: lambda: int(sock.passcred),
             SO_ACCEPTCONN: lambda: int(sock.state == LISTENING)}.get(optname)
    if value is not None:
        return INT.pack(value())
    if optname in STORED_OPTIONS:
        return INT.pack(sock.options.get(optname, 0))
    raise Errno(errno.ENOPROTOOPT)


def sys_getsockopt(t, fd, level, optname, optval, optlen_ptr, *_):
    sock = _socket(t, fd).sock
    if c_int(level) != SOL_SOCKET:
        raise Errno(errno.EOPNOTSUPP)
    room = INT.unpack(t.mem.read(optlen_ptr, 4))[0]
    if room < 0:
        raise Errno(errno.EINVAL)
    value = _option(sock, c_int(optname))
    value = value[:room]
    t.mem.write(optval, value)
    t.mem.write(optlen_ptr, INT.pack(len(value)))
    return 0


# --- sending ----------------------------------------------------------------------------

def _check_creds(t, pid: int, uid: int, gid: int) -> Creds:
    """SCM_CREDENTIALS a sender may send (Linux's scm_check_creds): its own
    pid unless CAP_SYS_ADMIN (and a pid that exists), one of its uids
    unless CAP_SETUID, one of its gids unless CAP_SETGID."""
    if uid == 0xFFFFFFFF or gid == 0xFFFFFFFF:
        raise Errno(errno.EINVAL)
    cred = t.cred
    if not ((pid == t.tgid or capable(cred, CAP_SYS_ADMIN))
            and (uid in (cred.uid, cred.euid, cred.suid) or capable(cred, CAP_SETUID))
            and (gid in (cred.gid, cred.egid, cred.sgid) or capable(cred, CAP_SETGID))):
        raise Errno(errno.EPERM)
    if pid not in t.kernel.processes and pid not in t.kernel.tasks:
        raise Errno(errno.ESRCH)
    return Creds(pid, uid, gid)


def _control_in(t, control: int, controllen: int) -> tuple[Creds, Rights | None]:
    """A send's control messages (Linux's __scm_send): the credentials it
    carries and the files it passes."""
    creds = creds_of(t)
    if controllen > OPTMEM_MAX:
        raise Errno(errno.ENOBUFS)
    if controllen < CMSGHDR.size:
        return creds, None
    raw = t.mem.read(control, controllen)
    files: list = []
    at = 0
    while at + CMSGHDR.size <= len(raw):
        length, level, kind = CMSGHDR.unpack_from(raw, at)
        if length < CMSGHDR.size or length > len(raw) - at:
            raise Errno(errno.EINVAL)
        data = raw[at + CMSGHDR.size:at + length]
        if level == SOL_SOCKET:
            if kind == SCM_RIGHTS:
                fds = struct.unpack_from("<%di" % (len(data) // 4), data)
                if len(files) + len(fds) > SCM_MAX_FD:
                    raise Errno(errno.EINVAL)
                files += [t.files.get(fd) for fd in fds]
            elif kind == SCM_CREDENTIALS:
                if len(data) != UCRED.size:
                    raise Errno(errno.EINVAL)
                creds = _check_creds(t, *UCRED.unpack(data))
            else:
                raise Errno(errno.EINVAL)
        at += _cmsg_align(length)
    if not files:
        return creds, None
    privileged = capable(t.cred, CAP_SYS_RESOURCE) or capable(t.cred, CAP_SYS_ADMIN)
    return creds, Rights(files, t.cred.uid, None if privileged else t.files.limit)


async def _send(t, f: SocketFile, vecs: list[tuple[int, int]], flags: int, raw_name: bytes,
                creds: Creds, rights: Rights | None) -> int:
    """One send; EPIPE on a stream raises SIGPIPE unless MSG_NOSIGNAL."""
    sock = f.sock
    nonblock = f.nonblocking or bool(flags & MSG_DONTWAIT)
    total = sum(length for _, length in vecs)
    read = functools.partial(gather, t, vecs)
    try:
        try:
            if flags & MSG_OOB:
                raise Errno(errno.EOPNOTSUPP)
            to = None
            if sock.kind == SOCK_STREAM:
                if raw_name:
                    raise Errno(errno.EISCONN if sock.state == CONNECTED else errno.EOPNOTSUPP)
            elif sock.kind == SOCK_SEQPACKET:
                if sock.state != CONNECTED:
                    raise Errno(errno.ENOTCONN)
            elif raw_name:
                _unix_name(raw_name)
                to = await _find(t, raw_name, SOCK_DGRAM)
            if sock.kind != SOCK_STREAM:
                _autobind_for_creds(sock)
                if total > sock.sndbuf - 32:
                    raise Errno(errno.EMSGSIZE)
                data = read(0, total)
        except BaseException:
            if rights is not None:
                rights.drop()
            raise
        if sock.kind == SOCK_STREAM:
            return await sock.send_stream(read, total, creds, rights, nonblock)
        return await sock.send_dgram(data, to, creds, rights, nonblock)
    except Errno as e:
        if e.code == errno.EPIPE and sock.kind == SOCK_STREAM and not flags & MSG_NOSIGNAL:
            signals.send_task(t, SIGPIPE)
        raise


async def write_socket(t, f: SocketFile, vecs: list[tuple[int, int]]) -> int:
    """write(2) and writev(2) on a socket: a send with no flags."""
    return await _send(t, f, vecs, 0, b"", creds_of(t), None)


async def sys_sendto(t, fd, buf, length, flags, addr, addrlen):
    f = _socket(t, fd)
    raw = _read_addr(t, addr, addrlen) if addr else b""
    return await _send(t, f, [(buf, min(length, MAX_RW))], flags & 0xFFFFFFFF, raw,
                       creds_of(t), None)


def _msghdr(t, ptr: int) -> tuple:
    name, namelen, iov, iovlen, control, controllen, _ = MSGHDR.unpack(t.mem.read(ptr, MSGHDR.size))
    if iovlen > IOV_MAX:
        raise Errno(errno.EMSGSIZE)
    if controllen > 0x7FFFFFFF:
        raise Errno(errno.ENOBUFS)
    namelen = c_int(namelen)
    if namelen < 0:
        raise Errno(errno.EINVAL)
    return name, min(namelen, SOCKADDR_STORAGE) if name else 0, iovecs(t, iov, iovlen), \
        control, controllen


async def _sendmsg(t, f: SocketFile, ptr: int, flags: int) -> int:
    name, namelen, vecs, control, controllen = _msghdr(t, ptr)
    raw = t.mem.read(name, namelen) if namelen else b""
    creds, rights = _control_in(t, control, controllen)
    return await _send(t, f, vecs, flags, raw, creds, rights)


async def sys_sendmsg(t, fd, msg, flags, *_):
    return await _sendmsg(t, _socket(t, fd), msg, flags & 0xFFFFFFFF)


async def sys_sendmmsg(t, fd, vec, vlen, flags, *_):
    f = _socket(t, fd)
    done = 0
    for i in range(min(vlen & 0xFFFFFFFF, IOV_MAX)):
        at = vec + i * MMSGHDR_SIZE
        try:
            n = await _sendmsg(t, f, at, flags & 0xFFFFFFFF)
            t.mem.write(at + MSGHDR.size, struct.pack("<I", n))
        except (Errno, asyncio.CancelledError):
            if done:
                return done
            raise
        done += 1
    return done


# --- receiving -------------------------------------------------------------------------

async def _recv(t, f: SocketFile, vecs: list[tuple[int, int]], flags: int):
    """One receive into vecs: what the socket gave (Received)."""
    sock = f.sock
    if flags & MSG_OOB:
        raise Errno(errno.EINVAL if sock.kind == SOCK_STREAM else errno.EOPNOTSUPP)
    nonblock = f.nonblocking or bool(flags & MSG_DONTWAIT)
    total = min(sum(length for _, length in vecs), MAX_RW)
    if sock.kind == SOCK_STREAM:
        return await sock.recv_stream(functools.partial(scatter, t, vecs), total, flags, nonblock)
    data, got = await sock.recv_dgram(total, flags, nonblock)
    try:
        scatter(t, vecs, 0, data)
    except Errno:
        drop_files(got.files)
        raise
    return got


def _put_cmsg(out: bytearray, room: int, kind: int, data: bytes) -> int:
    """One control message into out, within room bytes (Linux's put_cmsg):
    cut short, with MSG_CTRUNC, where it does not fit."""
    left = room - len(out)
    if left < CMSGHDR.size:
        return MSG_CTRUNC
    msg = CMSGHDR.pack(CMSGHDR.size + len(data), SOL_SOCKET, kind) + data
    out += msg[:left]
    out += bytes(min(_cmsg_align(len(msg)), left) - min(len(msg), left))
    return MSG_CTRUNC if left < len(msg) else 0


def _control_out(t, sock: UnixSocket, got, control: int, room: int, flags: int) -> tuple[int, int]:
    """The received credentials and files as control messages at control
    (Linux's scm_recv): as many files as fit are installed, the rest are
    closed, with MSG_CTRUNC; (bytes used, flags)."""
    files = got.files
    if not control and (sock.passcred or files):
        drop_files(files)
        return 0, MSG_CTRUNC
    out = bytearray()
    mflags = 0
    if sock.passcred and got.creds is not None:
        mflags |= _put_cmsg(out, room, SCM_CREDENTIALS, UCRED.pack(*got.creds))
    installed: list[int] = []
    if files:
        left = room - len(out)
        fit = min(max((left - CMSGHDR.size) // 4, 0), len(files))
        try:
            for f in files[:fit]:
                installed.append(t.files.install(f, bool(flags & MSG_CMSG_CLOEXEC)))
        except Errno:
            pass                # EMFILE: those installed are what the guest gets
        finally:
            drop_files(files)   # the installed ones are held by their fds now
        if installed:
            _put_cmsg(out, room, SCM_RIGHTS, struct.pack("<%di" % len(installed), *installed))
        if len(installed) < len(files):
            mflags |= MSG_CTRUNC
    try:
        if out:
            t.mem.write(control, bytes(out))
    except Errno:
        for fd in installed:
            t.files.close(fd)
        raise
    return len(out), mflags


async def _recvmsg(t, f: SocketFile, ptr: int, flags: int) -> int:
    name, namelen, vecs, control, controllen = _msghdr(t, ptr)
    got = await _recv(t, f, vecs, flags)
    used, mflags = _control_out(t, f.sock, got, control, controllen, flags)
    if name:
        kaddr = got.addr or b""
        if namelen and kaddr:
            t.mem.write(name, kaddr[:namelen])
        t.mem.write(ptr + 8, INT.pack(len(kaddr)))
    t.mem.write(ptr + 40, struct.pack("<Qi", used, got.flags | mflags))
    return got.length


async def sys_recvmsg(t, fd, msg, flags, *_):
    return await _recvmsg(t, _socket(t, fd), msg, flags & 0xFFFFFFFF)


async def sys_recvfrom(t, fd, buf, length, flags, addr, addrlen_ptr):
    f = _socket(t, fd)
    got = await _recv(t, f, [(buf, min(length, MAX_RW))], flags & 0xFFFFFFFF)
    drop_files(got.files)
    if addr:
        _put_addr(t, addr, addrlen_ptr, got.addr or b"")
    return got.length


async def sys_recvmmsg(t, fd, vec, vlen, flags, timeout_ptr, *_):
    """Up to vlen messages; MSG_WAITFORONE makes all but the first
    nonblocking; the timeout is looked at after each message, as Linux does."""
    f = _socket(t, fd)
    flags &= 0xFFFFFFFF
    loop = asyncio.get_running_loop()
    deadline = None
    if timeout_ptr:
        sec, nsec = TIMESPEC.unpack(t.mem.read(timeout_ptr, TIMESPEC.size))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise Errno(errno.EINVAL)
        deadline = loop.time() + sec + nsec / 1e9
    done = 0
    for i in range(min(vlen & 0xFFFFFFFF, IOV_MAX)):
        at = vec + i * MMSGHDR_SIZE
        try:
            n = await _recvmsg(t, f, at, flags)
            t.mem.write(at + MSGHDR.size, struct.pack("<I", n))
        except (Errno, asyncio.CancelledError):
            if done:
                break
            raise
        done += 1
        if flags & MSG_WAITFORONE:
            flags |= MSG_DONTWAIT
        if deadline is not None and loop.time() >= deadline:
            break
    if deadline is not None:
        left = max(deadline - loop.time(), 0.0)
        t.mem.write(timeout_ptr, TIMESPEC.pack(int(left), int(left % 1 * 1e9)))
    return done
