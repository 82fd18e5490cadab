"""`skas run --strace`: every call the kernel serves, as `strace -f -tt -T`
prints it.

In a nutshell: the Kernel makes a Strace only when the guest's config asks
for one (nothing of this package is imported otherwise), and tells it of
each call as it enters (`enter`: the arguments the caller passes are read
now, before the call can change them) and as it is answered (`leave`: what
the kernel wrote is read, and the line printed), of each signal delivered
and of each task's end.  A line stays open while its call runs; if another
task prints first, it is printed `<unfinished ...>` and its end later as
`<... read resumed>`, as strace does.  Every read of guest memory is
bounded and one that fails prints the address; a decoding bug is logged
and the argument printed in hex: tracing never ends a call differently."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from common.syscalls import name as call_name
from services.kernel.abi import signal as abi_signal
from services.kernel.core.answers import HOST, Ops
from services.kernel.core.errors import Errno
from services.kernel.entry.strace.kinds import Call
from services.kernel.entry.strace.signatures import SIGNATURES, Signature
from services.kernel.entry.strace.text import (
    ITEMS_SHOWN, STRING_SHOWN, pointer, quote, result, s64, signal, values)

log = logging.getLogger("kernel")
RESULT_COLUMN = 40           # where strace puts " = result" on a short line

_SI_CODES = values(abi_signal, "SI_")
_SIGNAL_CODES = {abi_signal.SIGCHLD: values(abi_signal, "CLD_"),
                 abi_signal.SIGSEGV: values(abi_signal, "SEGV_"),
                 abi_signal.SIGBUS: values(abi_signal, "BUS_"),
                 abi_signal.SIGIO: values(abi_signal, "POLL_")}


@dataclass
class Pending:
    """A call entered and not yet printed whole."""
    tid: int
    name: str
    call: Call
    signature: Signature | None
    shown: list[str | None]          # each argument's text; None: to be read at exit
    wall: float = field(default_factory=time.time)
    start: float = field(default_factory=time.monotonic)
    split: int = 0                   # printed <unfinished ...>: the first argument not shown


def stamp(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall % 1 * 1e6):06d}"


class Strace:
    """The decoded syscall log of one guest, to write(line)."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.calls: dict[int, Pending] = {}      # by tid
        self.open: Pending | None = None         # the call whose line is still open
        self.bugs_logged: set[str] = set()

    @classmethod
    def to(cls, where: str) -> Strace:
        """One writing to the kernel's log ("log") or to the file named."""
        if where == "log":
            return cls(lambda line: log.info("%s", line))
        out = open(where, "a", buffering=1)      # noqa: SIM115 -- open as long as the kernel
        return cls(lambda line: out.write(line + "\n"))

    # --- calls -----------------------------------------------------------------------
    def enter(self, t, nr: int, args: list[int]) -> None:
        name = call_name(nr)
        sig = SIGNATURES.get(name)
        call = Call(t.mem, list(args), t.flight.user_sp)
        shown: list[str | None]
        if sig is None:
            shown = [hex(a) for a in args]
        else:
            shown = [None if kind.at_exit else self._show(name, kind, call, i, ref)
                     for i, (kind, ref) in enumerate(sig.args)]
        self.begin(Pending(t.tid, name, call, sig, shown))

    def enter_text(self, t, name: str, shown: list[str]) -> None:
        """A call the kernel makes for a task (boot's execve of init), its
        arguments already text."""
        self.begin(Pending(t.tid, name, Call(t.mem, []), None, list(shown)))

    def begin(self, p: Pending) -> None:
        self._close_open()
        self.calls[p.tid] = p
        self.open = p

    def leave(self, t, answer) -> None:
        """The call's answer (a number, HOST or Ops): its line."""
        p = self.calls.pop(t.tid, None)
        if p is None:
            return                     # answered twice (a listener call stopped): printed
        value = self._value(answer)
        if value is not None and p.signature is not None:
            p.call.result = s64(value)
            for i, (kind, ref) in enumerate(p.signature.args):
                if kind.at_exit:
                    p.shown[i] = (pointer(p.call.args[i]) if p.call.result < 0
                                  else self._show(p.name, kind, p.call, i, ref))
        ret = "?" if value is None else result(value, p.signature is not None
                                               and p.signature.hex_result)
        took = f" <{time.monotonic() - p.start:.6f}>"
        if self.open is p:
            self.open = None
            self._line(p.tid, p.wall, f"{p.name}({', '.join(self._texts(p, 0))})", f" = {ret}{took}")
        else:
            self._close_open()
            rest = ", ".join(self._texts(p, p.split))
            self._line(p.tid, time.time(), f"<... {p.name} resumed>{rest})", f" = {ret}{took}")

    @staticmethod
    def _value(answer) -> int | None:
        """What the call returns, when the kernel knows it: Ops end with
        their value, or with the registers they load (rt_sigreturn)."""
        if answer is HOST:
            return None
        if isinstance(answer, Ops):
            for op in answer.ops:
                if op.get("op") == "set_context":
                    return op["regs"]["rax"]
            return answer.value
        return answer

    # --- signals and ends -------------------------------------------------------------
    def signal(self, t, sig: int, info: dict) -> None:
        self._close_open()
        self._line(t.tid, time.time(), f"--- {signal(sig)} {self._siginfo(sig, info)} ---")

    def exited(self, t, status: int) -> None:
        """t's end, with its wait status: exited with N, or killed by SIGx."""
        p = self.calls.pop(t.tid, None)
        if p is not None:
            if self.open is p:
                self.open = None
                self._line(p.tid, p.wall,
                           f"{p.name}({', '.join(self._texts(p, 0))} <unfinished ...>) = ?")
            else:
                self._close_open()
                self._line(p.tid, time.time(), f"<... {p.name} resumed>) = ?")
        self._close_open()
        if status & 0x7F == 0:
            end = f"exited with {status >> 8 & 0xFF}"
        else:
            end = f"killed by {signal(status & 0x7F)}" + (" (core dumped)" if status & 0x80
                                                          else "")
        self._line(t.tid, time.time(), f"+++ {end} +++")

    # --- the lines ---------------------------------------------------------------------
    def _line(self, tid: int, wall: float, text: str, ret: str = "") -> None:
        """One line; a call's result (ret) starts at column 40 at least, as strace's."""
        line = f"[pid {tid}] {stamp(wall)} {text}"
        try:
            self.write(line.ljust(RESULT_COLUMN - 1) + ret if ret else line)
        except OSError as exc:          # a full disk must not stop the guest
            self._bug("write", exc)

    def _close_open(self) -> None:
        """The open line ends <unfinished ...>: another line comes first."""
        p, self.open = self.open, None
        if p is None:
            return
        p.split = next((i for i, a in enumerate(p.shown) if a is None), len(p.shown))
        head = ", ".join(self._texts(p, 0, p.split))
        cut = ", " if head and self._texts(p, p.split) else " " if head else ""
        self._line(p.tid, p.wall, f"{p.name}({head}{cut}<unfinished ...>")

    @staticmethod
    def _texts(p: Pending, start: int, end: int = 6) -> list[str]:
        """Its arguments' texts from start to end, those left out ("") not;
        one to be read at exit that is not yet is its address."""
        return [a if a is not None else pointer(p.call.args[i])
                for i, a in enumerate(p.shown) if start <= i < end and a != ""]

    def _show(self, name: str, kind, call: Call, i: int, ref: int) -> str:
        v = call.args[i]
        if kind.memory and v == 0:
            return "NULL"
        if kind.memory and call.mem is None:
            return pointer(v)
        try:
            text = kind.show(call, v, ref)
        except Errno:
            return pointer(v)           # a bad pointer is shown as strace shows it
        except Exception as exc:        # a decoder's bug: logged once, the value in hex
            self._bug(name, exc)
            return hex(v)
        return "" if text is None else text

    def _bug(self, what: str, exc: Exception) -> None:
        if what not in self.bugs_logged:
            self.bugs_logged.add(what)
            log.error("strace: cannot show %s: %r", what, exc)

    @staticmethod
    def _siginfo(sig: int, info: dict) -> str:
        code = info.get("code", 0)
        named = _SIGNAL_CODES.get(sig, {}) if code > 0 and code != abi_signal.SI_KERNEL else {}
        out = [f"si_signo={signal(sig)}",
               f"si_code={named.get(code) or _SI_CODES.get(code) or str(code)}"]
        if "status" in info:
            status = info["status"]
            shown = signal(status) if code != abi_signal.CLD_EXITED else str(status)
            out += [f"si_pid={info.get('pid', 0)}", f"si_uid={info.get('uid', 0)}",
                    f"si_status={shown}", "si_utime=0", "si_stime=0"]
        elif "addr" in info:
            out.append(f"si_addr={pointer(info['addr'])}")
        elif "band" in info:
            out += [f"si_band={info['band']}", f"si_fd={info.get('fd', 0)}"]
        else:
            out += [f"si_pid={info.get('pid', 0)}", f"si_uid={info.get('uid', 0)}"]
            if "value" in info:
                out.append(f"si_int={info['value'] & 0xFFFFFFFF}")
        return "{" + ", ".join(out) + "}"


def exec_args(path: bytes, argv: list[bytes], env: list[bytes]) -> list[str]:
    """Boot's execve of init, as text: its argv and environment are the config's."""
    shown = [quote(a[:STRING_SHOWN], len(a) > STRING_SHOWN) for a in argv[:ITEMS_SHOWN]]
    shown += ["..."] if len(argv) > ITEMS_SHOWN else []
    return [quote(path), "[" + ", ".join(shown) + "]", f"[/* {len(env)} vars */]"]
