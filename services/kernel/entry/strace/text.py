"""How strace writes a value: strings quoted with its escapes and cut at
32 bytes (its -s default), flags joined by name, numbers, pointers, signal
names.  Pure functions of numbers and bytes: what reads guest memory is in
structs.py, so a test can check the look without a guest."""
from __future__ import annotations

import errno
import os
from types import ModuleType

from services.kernel.abi import errno as kerrno
from services.kernel.abi import signal as abi_signal
from services.kernel.abi.arch import U64

STRING_SHOWN = 32      # bytes of a string or buffer shown (strace -s 32)
ITEMS_SHOWN = 32       # elements of an array shown (argv, iovecs), as strace's -s bounds them
_ESCAPES = {ord("\t"): "\\t", ord("\n"): "\\n", ord("\v"): "\\v", ord("\f"): "\\f",
            ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\"}
# the kernel's own errnos, as strace names them after a signal cut a call short
_RESTARTS = {kerrno.ERESTARTSYS: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
             kerrno.ERESTARTNOINTR: ("ERESTARTNOINTR", "To be restarted"),
             kerrno.ERESTARTNOHAND: ("ERESTARTNOHAND", "To be restarted if no handler"),
             kerrno.ERESTART_RESTARTBLOCK: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}


def quote(data: bytes, more: bool = False) -> str:
    """data as strace quotes it; more: it went on past what is shown ("...")."""
    out = []
    for i, c in enumerate(data):
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif i + 1 < len(data) and 0x30 <= data[i + 1] <= 0x37:   # an octal digit follows
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    return '"' + "".join(out) + '"' + ("..." if more else "")


def pointer(v: int) -> str:
    return "NULL" if v == 0 else hex(v & U64)


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v


def s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v & (1 << 63) else v


def bits(module: ModuleType, names: str) -> list[tuple[int, str]]:
    """(value, name) of each constant named, in the order strace shows them."""
    return [(getattr(module, n), n) for n in names.split()]


def values(module: ModuleType, prefix: str) -> dict[int, str]:
    """Each value of module's constants named prefix..., the first name of each."""
    out: dict[int, str] = {}
    for n, v in vars(module).items():
        if n.startswith(prefix) and n.isupper() and type(v) is int:
            out.setdefault(v, n)
    return out


def flags(v: int, known: list[tuple[int, str]], zero: str = "0") -> str:
    """v's bits by name, what is left in hex, zero when none."""
    parts = []
    for value, n in known:
        if value and v & value == value:
            parts.append(n)
            v &= ~value
    if v:
        parts.append(hex(v))
    return "|".join(parts) or zero


def mode(v: int) -> str:
    """Permission bits as strace's %#03o: 0644, 000."""
    return f"0{v:o}" if v else "000"


SIGNAL_NAMES = {v: n for n, v in vars(abi_signal).items()
                if n.startswith("SIG") and "_" not in n and type(v) is int and 0 < v <= 32}


def signal(n: int) -> str:
    """SIGUSR1, SIGRT_2 (strace counts real-time signals from SIGRTMIN), or the number."""
    if n in SIGNAL_NAMES:
        return SIGNAL_NAMES[n]
    if abi_signal.SIGRTMIN < n <= abi_signal.NSIG:
        return f"SIGRT_{n - abi_signal.SIGRTMIN}"
    return str(n)


def sigset(mask: int, size: int = 64) -> str:
    """[USR1 CHLD], or ~[...] of what is missing when most are in."""
    members = [n for n in range(1, size + 1) if mask >> (n - 1) & 1]
    if 2 * len(members) > size:
        return "~" + sigset(~mask & ((1 << size) - 1), size)
    return "[" + " ".join(signal(n).removeprefix("SIG") for n in members) + "]"


def result(v: int, as_hex: bool = False) -> str:
    """A call's return: the number, or -1 and the errno's name and message."""
    v = s64(v)
    if -4096 < v < 0:
        code = -v
        if code in _RESTARTS:
            name, message = _RESTARTS[code]
            return f"? {name} ({message})"
        return f"-1 {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
    return hex(v & U64) if as_hex else str(v)
