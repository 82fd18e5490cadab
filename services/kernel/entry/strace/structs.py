"""What strace shows of guest memory: strings, buffers, arrays and the
structs a call takes or fills, each read with a bound of its own.  A read
that fails raises Errno (EFAULT): the caller prints the address instead."""
from __future__ import annotations

import os
import stat as S
import struct

from services.kernel.abi import signal as abi_signal, socket as abi_socket, stat as abi_stat
from services.kernel.abi.fcntl import PATH_MAX
from services.kernel.abi.signal import SA_RESTORER, SIG_DFL, SIG_IGN
from services.kernel.entry.strace.text import (
    ITEMS_SHOWN, STRING_SHOWN, bits, flags, mode, pointer, quote, signal, sigset, values)
from services.kernel.abi.arch import PAGE
from services.kernel.fs.vfs import STAT, STATX_HEAD
from services.kernel.sched.sigframe import FRAME
from services.kernel.mm.memory import GuestMemory

DENTS_READ = 256 << 10     # bytes of getdents' result walked to count its entries
VARS_COUNTED = 4096        # pointers of an environment counted ("/* N vars */")
_FILE_TYPES = bits(S, "S_IFREG S_IFDIR S_IFLNK S_IFCHR S_IFBLK S_IFIFO S_IFSOCK")
_MODE_BITS = bits(S, "S_ISUID S_ISGID S_ISVTX")
_STATX_MASK = bits(abi_stat, "STATX_BASIC_STATS STATX_TYPE STATX_MODE STATX_NLINK STATX_UID "
                             "STATX_GID STATX_ATIME STATX_MTIME STATX_CTIME STATX_INO "
                             "STATX_SIZE STATX_BLOCKS STATX_BTIME STATX_MNT_ID")
_SA_FLAGS = bits(abi_signal, "SA_RESTORER SA_ONSTACK SA_RESTART SA_NODEFER SA_RESETHAND "
                             "SA_SIGINFO SA_NOCLDSTOP SA_NOCLDWAIT")
FAMILIES = values(abi_socket, "AF_")
_SIGACTION = struct.Struct("<QQQQ")       # handler, flags, restorer, mask
_UTSNAME_FIELD = 65


def cstring(mem: GuestMemory, addr: int, limit: int = STRING_SHOWN) -> str:
    """A NUL-terminated string, cut at limit bytes (one more is read to know
    whether it goes on); EFAULT if it cannot be read up to its end or the cut."""
    want, pieces = limit + 1, []
    for piece, ended in mem.cstr_pieces(addr, want):
        pieces.append(piece)
        if ended:
            break
    data = b"".join(pieces)
    return quote(data[:limit], len(data) > limit)


def path(mem: GuestMemory, addr: int) -> str:
    """A path, whole as strace shows paths, up to PATH_MAX bytes."""
    return cstring(mem, addr, PATH_MAX)


def buffer(mem: GuestMemory, addr: int, length: int) -> str:
    """length bytes of data, the first STRING_SHOWN of them shown."""
    if length <= 0:
        return '""'
    return quote(mem.read(addr, min(length, STRING_SHOWN)), length > STRING_SHOWN)


def _pointers(mem: GuestMemory, addr: int, most: int) -> tuple[list[int], bool]:
    """A NULL-ended array of pointers, at most `most` of them: (them, whether more follow)."""
    out: list[int] = []
    while len(out) < most:
        at = addr + 8 * len(out)
        n = max(1, min(most - len(out), (PAGE - at % PAGE) // 8))   # never past its page
        words = struct.unpack(f"<{n}Q", mem.read(at, 8 * n))
        for w in words:
            if w == 0:
                return out, False
            out.append(w)
    return out, True


def argv(mem: GuestMemory, addr: int) -> str:
    """["ls", "-l", "/"], at most ITEMS_SHOWN strings."""
    ptrs, more = _pointers(mem, addr, ITEMS_SHOWN)
    items = []
    for p in ptrs:
        try:
            items.append(cstring(mem, p))
        except Exception:                 # noqa: BLE001 -- a bad element shows as its address
            items.append(pointer(p))
    return "[" + ", ".join(items) + (", ..." if more else "") + "]"


def envp(mem: GuestMemory, addr: int) -> str:
    """0x7ffc... /* 3 vars */: strace counts the environment, not shows it."""
    ptrs, more = _pointers(mem, addr, VARS_COUNTED)
    return f"{pointer(addr)} /* {len(ptrs)}{'+' if more else ''} vars */"


def frame_mask(mem: GuestMemory, sp: int) -> str:
    """The mask rt_sigreturn restores: its frame's last word (the handler's
    return popped pretcode, the frame's first)."""
    return sigset(struct.unpack("<Q", mem.read(sp - 8 + FRAME.size - 8, 8))[0])


def file_mode(m: int) -> str:
    """S_IFREG|0644, S_IFDIR|S_ISVTX|0777."""
    kind = next((n for v, n in _FILE_TYPES if S.S_IFMT(m) == v), None)
    parts = ([kind] if kind else [hex(S.S_IFMT(m))] if S.S_IFMT(m) else []) + \
        [n for v, n in _MODE_BITS if m & v]
    return "|".join(parts + [mode(m & 0o777)])


def _rdev(rdev: int) -> str:
    return f", st_rdev=makedev({os.major(rdev):#x}, {os.minor(rdev):#x})"


def stat(mem: GuestMemory, addr: int) -> str:
    """struct stat, short: {st_mode=S_IFREG|0644, st_size=1234, ...}."""
    f = STAT.unpack(mem.read(addr, STAT.size))
    m, rdev, size = f[3], f[7], f[8]
    tail = _rdev(rdev) if S.S_ISCHR(m) or S.S_ISBLK(m) else f", st_size={size}"
    return f"{{st_mode={file_mode(m)}{tail}, ...}}"


def statx(mem: GuestMemory, addr: int) -> str:
    """struct statx, short: {stx_mask=..., stx_attributes=0, stx_mode=..., stx_size=..., ...}."""
    f = STATX_HEAD.unpack(mem.read(addr, STATX_HEAD.size))
    mask, attrs, m, size = f[0], f[2], f[6], f[8]
    rmaj, rmin = struct.unpack("<II", mem.read(addr + 128, 8))
    tail = (f", stx_rdev_major={rmaj}, stx_rdev_minor={rmin}" if S.S_ISCHR(m) or S.S_ISBLK(m)
            else f", stx_size={size}")
    return (f"{{stx_mask={flags(mask, _STATX_MASK)}, stx_attributes={hex(attrs) if attrs else 0}"
            f", stx_mode={file_mode(m)}{tail}, ...}}")


def dirents(mem: GuestMemory, addr: int, length: int) -> str:
    """getdents' result as strace without -v: 0x... /* 5 entries */."""
    data = mem.read(addr, min(length, DENTS_READ))
    count, off = 0, 0
    while off + 18 <= len(data):
        reclen = struct.unpack_from("<H", data, off + 16)[0]
        if reclen == 0:
            break
        count += 1
        off += reclen
    more = "+" if length > DENTS_READ else ""
    return f"{pointer(addr)} /* {count}{more} entries */"


def sigset_at(mem: GuestMemory, addr: int, size: int) -> str:
    size = min(size, 8)
    if size <= 0:
        return pointer(addr)
    return sigset(int.from_bytes(mem.read(addr, size), "little"), 8 * size)


def sigaction(mem: GuestMemory, addr: int) -> str:
    """{sa_handler=..., sa_mask=[...], sa_flags=SA_RESTORER|..., sa_restorer=0x...}."""
    handler, fl, restorer, mask = _SIGACTION.unpack(mem.read(addr, _SIGACTION.size))
    h = "SIG_DFL" if handler == SIG_DFL else "SIG_IGN" if handler == SIG_IGN else pointer(handler)
    out = f"{{sa_handler={h}, sa_mask={sigset(mask)}, sa_flags={flags(fl, _SA_FLAGS)}"
    if fl & SA_RESTORER:
        out += f", sa_restorer={pointer(restorer)}"
    return out + "}"


def sockaddr(mem: GuestMemory, addr: int, length: int) -> str:
    """{sa_family=AF_UNIX, sun_path="/dev/log"}; an abstract name as @"name"."""
    data = mem.read(addr, max(0, min(length, abi_socket.SOCKADDR_STORAGE)))
    if len(data) < 2:
        return pointer(addr)
    family = int.from_bytes(data[:2], "little")
    out = f"{{sa_family={FAMILIES.get(family, str(family))}"
    if family == abi_socket.AF_UNIX and len(data) > 2:
        name = data[2:]
        if name[:1] == b"\0":
            out += f", sun_path=@{quote(name[1:][:STRING_SHOWN], len(name) - 1 > STRING_SHOWN)}"
        else:
            name = name.split(b"\0", 1)[0]
            out += f", sun_path={quote(name)}"
    elif family != abi_socket.AF_UNIX:
        out += ", ..."
    return out + "}"


def int_pair(mem: GuestMemory, addr: int) -> str:
    """[3, 4]: pipe's and socketpair's fds."""
    a, b = struct.unpack("<ii", mem.read(addr, 8))
    return f"[{a}, {b}]"


def wait_status(mem: GuestMemory, addr: int) -> str:
    """[{WIFEXITED(s) && WEXITSTATUS(s) == 3}] and its kin."""
    (s,) = struct.unpack("<i", mem.read(addr, 4))
    if s & 0x7F == 0:
        text = f"WIFEXITED(s) && WEXITSTATUS(s) == {s >> 8 & 0xFF}"
    elif s == 0xFFFF:
        text = "WIFCONTINUED(s)"
    elif s & 0xFF == 0x7F:
        text = f"WIFSTOPPED(s) && WSTOPSIG(s) == {signal(s >> 8 & 0xFF)}"
        if s >> 16:
            text += f" && s >> 16 == {s >> 16}"
    else:
        text = f"WIFSIGNALED(s) && WTERMSIG(s) == {signal(s & 0x7F)}"
        if s & 0x80:
            text += " && WCOREDUMP(s)"
    return f"[{{{text}}}]"


def utsname(mem: GuestMemory, addr: int) -> str:
    """{sysname="Linux", nodename="box", ...}."""
    data = mem.read(addr, 2 * _UTSNAME_FIELD)
    sysname, nodename = (data[i:i + _UTSNAME_FIELD].split(b"\0", 1)[0]
                         for i in (0, _UTSNAME_FIELD))
    return f"{{sysname={quote(sysname)}, nodename={quote(nodename)}, ...}}"


def timespec(mem: GuestMemory, addr: int) -> str:
    sec, nsec = struct.unpack("<qq", mem.read(addr, 16))
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def iovecs(mem: GuestMemory, addr: int, count: int, total: int | None) -> str:
    """[{iov_base="...", iov_len=5}, ...]: writev's data at entry (total None),
    readv's at exit (total bytes of it were filled)."""
    n = max(0, min(count, ITEMS_SHOWN))
    raw = mem.read(addr, 16 * n)
    items = []
    for i in range(n):
        base, length = struct.unpack_from("<QQ", raw, 16 * i)
        shown = length if total is None else max(0, min(length, total))
        if total is not None:
            total -= shown
        try:
            data = buffer(mem, base, shown)
        except Exception:             # noqa: BLE001 -- a bad base shows as its address
            data = pointer(base)
        items.append(f"{{iov_base={data}, iov_len={length}}}")
    return "[" + ", ".join(items) + (", ..." if count > n else "") + "]"
