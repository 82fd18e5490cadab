"""The kinds of argument a call's signature names (signatures.py), and how
each prints: from the register alone (flags, fds, signals), from guest
memory at the call's entry (paths, what the caller passes), or from guest
memory at its exit (what the kernel wrote: stat buffers, read's data).  A
kind that returns None leaves its argument out (open's mode without
O_CREAT)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from services.kernel.abi import fcntl, ioctls, mman, sched, signal as abi_signal, socket
from services.kernel.abi import wait as abi_wait
from services.kernel.abi.arch import U64
from services.kernel.entry.strace import structs
from services.kernel.entry.strace.text import bits, flags, mode, pointer, s32, s64, signal, values
from services.kernel.mm.memory import GuestMemory


@dataclass
class Call:
    """What a kind sees: the caller's memory, the call's six arguments and,
    at exit, its result (signed)."""
    mem: GuestMemory
    args: list[int]
    sp: int = 0                       # the caller's stack pointer (trapped calls)
    result: int | None = None


@dataclass(frozen=True)
class Kind:
    show: Callable[[Call, int, int], str | None]    # (call, value, the argument ref names)
    at_exit: bool = False                           # shown from what the kernel wrote
    memory: bool = False                            # value is a guest pointer: NULL shows so


ARG_KINDS: dict[str, Kind] = {}

_ACCESS = {fcntl.O_RDONLY: "O_RDONLY", fcntl.O_WRONLY: "O_WRONLY", fcntl.O_RDWR: "O_RDWR"}
_OPEN_FLAGS = bits(fcntl, "O_CREAT O_EXCL O_NOCTTY O_TRUNC O_APPEND O_NONBLOCK O_DSYNC "
                          "O_ASYNC O_DIRECT O_LARGEFILE O_NOATIME O_CLOEXEC O_PATH O_TMPFILE "
                          "O_DIRECTORY O_NOFOLLOW")
_AT_FLAGS = bits(fcntl, "AT_SYMLINK_NOFOLLOW AT_REMOVEDIR AT_SYMLINK_FOLLOW AT_NO_AUTOMOUNT "
                        "AT_EMPTY_PATH AT_STATX_FORCE_SYNC AT_STATX_DONT_SYNC")
_ACCESS_MODES = bits(fcntl, "R_OK W_OK X_OK")
_PROT = bits(mman, "PROT_READ PROT_WRITE PROT_EXEC")
_MAP_TYPES = {mman.MAP_SHARED: "MAP_SHARED", mman.MAP_PRIVATE: "MAP_PRIVATE",
              mman.MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE"}
_MAP_FLAGS = bits(mman, "MAP_FIXED MAP_ANONYMOUS MAP_32BIT MAP_GROWSDOWN MAP_DENYWRITE "
                        "MAP_EXECUTABLE MAP_LOCKED MAP_NORESERVE MAP_POPULATE MAP_NONBLOCK "
                        "MAP_STACK MAP_HUGETLB MAP_SYNC MAP_FIXED_NOREPLACE")
_CLONE_FLAGS = [(v, n) for n, v in vars(sched).items()
                if n.startswith("CLONE_") and type(v) is int and v & (v - 1) == 0 and v > 0xFF]
_WAIT_OPTIONS = bits(abi_wait, "WNOHANG WUNTRACED WCONTINUED WNOTHREAD WALL WCLONE")
_SOCK_FLAGS = bits(fcntl, "O_NONBLOCK O_CLOEXEC")
_SOCK_TYPES = values(socket, "SOCK_")
_HOW = {abi_signal.SIG_BLOCK: "SIG_BLOCK", abi_signal.SIG_UNBLOCK: "SIG_UNBLOCK",
        abi_signal.SIG_SETMASK: "SIG_SETMASK"}
_WHENCE = values(fcntl, "SEEK_")
_FCNTL = {v: n for n, v in vars(fcntl).items()
          if n.startswith("F_") and n.isupper() and type(v) is int and "OWNER" not in n
          and n not in ("F_RDLCK", "F_WRLCK", "F_UNLCK", "F_OK")}
_IOCTLS = values(ioctls, "")


def kind(name: str, at_exit: bool = False, memory: bool = False):
    def register(show):
        ARG_KINDS[name] = Kind(show, at_exit, memory)
        return show
    return register


def _named(table: dict[int, str], v: int) -> str:
    return table.get(v, str(v))


# --- numbers and flags, from the register alone --------------------------------------
kind("d")(lambda c, v, r: str(s32(v)))
kind("ld")(lambda c, v, r: str(s64(v)))
kind("u")(lambda c, v, r: str(v & U64))
kind("x")(lambda c, v, r: hex(v & U64))
kind("p")(lambda c, v, r: pointer(v))
kind("fd")(lambda c, v, r: str(s32(v)))
kind("dirfd")(lambda c, v, r: "AT_FDCWD" if s32(v) == fcntl.AT_FDCWD else str(s32(v)))
kind("mode")(lambda c, v, r: mode(v & 0o7777))
kind("atflags")(lambda c, v, r: flags(v & 0xFFFFFFFF, _AT_FLAGS))
kind("amode")(lambda c, v, r: flags(v & 0xFFFFFFFF, _ACCESS_MODES, "F_OK"))
kind("prot")(lambda c, v, r: flags(v & 0xFFFFFFFF, _PROT, "PROT_NONE"))
kind("sig")(lambda c, v, r: signal(s32(v)) if s32(v) else "0")
kind("how")(lambda c, v, r: _named(_HOW, s32(v)))
kind("wopts")(lambda c, v, r: flags(v & 0xFFFFFFFF, _WAIT_OPTIONS))
kind("whence")(lambda c, v, r: _named(_WHENCE, s32(v)))
kind("fcntl")(lambda c, v, r: _named(_FCNTL, s32(v)))
kind("ioctl")(lambda c, v, r: _IOCTLS.get(v & 0xFFFFFFFF, hex(v & 0xFFFFFFFF)))
kind("family")(lambda c, v, r: _named(structs.FAMILIES, s32(v)))


@kind("oflags")
def _open_flags(c: Call, v: int, r: int) -> str:
    v &= 0xFFFFFFFF
    access = _ACCESS.get(v & fcntl.O_ACCMODE, hex(v & fcntl.O_ACCMODE))
    rest = flags(v & ~fcntl.O_ACCMODE, _OPEN_FLAGS, "")
    return access + ("|" + rest if rest else "")


kind("fdflags")(lambda c, v, r: flags(v & 0xFFFFFFFF, _OPEN_FLAGS))


@kind("omode")
def _open_mode(c: Call, v: int, r: int) -> str | None:
    """open's mode is shown only when it is used (strace)."""
    return mode(v & 0o7777) if c.args[r] & (fcntl.O_CREAT | fcntl.O_TMPFILE) else None


@kind("mflags")
def _map_flags(c: Call, v: int, r: int) -> str:
    v &= 0xFFFFFFFF
    kind_ = _MAP_TYPES.get(v & mman.MAP_TYPE, hex(v & mman.MAP_TYPE))
    rest = flags(v & ~mman.MAP_TYPE, _MAP_FLAGS, "")
    return kind_ + ("|" + rest if rest else "")


@kind("socktype")
def _sock_type(c: Call, v: int, r: int) -> str:
    v &= 0xFFFFFFFF
    rest = flags(v & ~socket.SOCK_TYPE_MASK, _SOCK_FLAGS, "").replace("O_", "SOCK_")
    return _named(_SOCK_TYPES, v & socket.SOCK_TYPE_MASK) + ("|" + rest if rest else "")


def clone_flags(v: int) -> str:
    exit_signal = v & sched.CSIGNAL
    shown = flags(v & ~sched.CSIGNAL, _CLONE_FLAGS, "")
    sig = signal(exit_signal) if exit_signal else ""
    return "|".join(p for p in (shown, sig) if p) or "0"


@kind("clone")
def _clone(c: Call, v: int, r: int) -> str:
    """clone(flags, stack, parent_tid, child_tid, tls) as strace names them."""
    fl, stack, ptid, ctid, tls = c.args[:5]
    out = [f"child_stack={pointer(stack)}", f"flags={clone_flags(fl)}"]
    if fl & sched.CLONE_PARENT_SETTID:
        out.append(f"parent_tid={pointer(ptid)}")
    if fl & (sched.CLONE_CHILD_SETTID | sched.CLONE_CHILD_CLEARTID):
        out.append(f"child_tidptr={pointer(ctid)}")
    if fl & sched.CLONE_SETTLS:
        out.append(f"tls={pointer(tls)}")
    return ", ".join(out)


# --- what the caller passes, read at entry ------------------------------------------
kind("path", memory=True)(lambda c, v, r: structs.path(c.mem, v))
kind("str", memory=True)(lambda c, v, r: structs.cstring(c.mem, v))
kind("wbuf", memory=True)(lambda c, v, r: structs.buffer(c.mem, v, s64(c.args[r])))
kind("argv", memory=True)(lambda c, v, r: structs.argv(c.mem, v))
kind("envp", memory=True)(lambda c, v, r: structs.envp(c.mem, v))
kind("sigset", memory=True)(lambda c, v, r: structs.sigset_at(c.mem, v, c.args[r]))
kind("sigact", memory=True)(lambda c, v, r: structs.sigaction(c.mem, v))
kind("sockaddr", memory=True)(lambda c, v, r: structs.sockaddr(c.mem, v, s32(c.args[r])))
kind("timespec", memory=True)(lambda c, v, r: structs.timespec(c.mem, v))
kind("frame")(lambda c, v, r: f"{{mask={structs.frame_mask(c.mem, c.sp)}}}")
kind("iov", memory=True)(lambda c, v, r: structs.iovecs(c.mem, v, s32(c.args[r]), None))

# --- what the kernel wrote, read at exit --------------------------------------------
kind("rbuf", True, True)(lambda c, v, r: structs.buffer(c.mem, v, c.result))
kind("ostr", True, True)(lambda c, v, r: structs.cstring(c.mem, v))
kind("stat", True, True)(lambda c, v, r: structs.stat(c.mem, v))
kind("statx", True, True)(lambda c, v, r: structs.statx(c.mem, v))
kind("dents", True, True)(lambda c, v, r: structs.dirents(c.mem, v, c.result))
kind("fds", True, True)(lambda c, v, r: structs.int_pair(c.mem, v))
kind("wstatus", True, True)(lambda c, v, r: structs.wait_status(c.mem, v) if c.result
                            else pointer(v))
kind("uts", True, True)(lambda c, v, r: structs.utsname(c.mem, v))
kind("osigset", True, True)(lambda c, v, r: structs.sigset_at(c.mem, v, c.args[r]))
kind("osigact", True, True)(lambda c, v, r: structs.sigaction(c.mem, v))
kind("oiov", True, True)(lambda c, v, r: structs.iovecs(c.mem, v, s32(c.args[r]), c.result))
