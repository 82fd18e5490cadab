"""The ops: what userspace does in a stopped guest process on the kernel's orders.

In a nutshell: an op is a map ``{"op": NAME, FIELD: VALUE, ...}``, a list of
them is the body of an ``ops`` message (common/protocol.py).  Every op type
is declared once, in ``TYPES`` below, with each field and what it may hold.
The kernel builds ops only through the constructors (``Mmap(addr=...,
...)``: keyword arguments, optional fields filled in), which raise
``OpError`` for a missing, unknown or mistyped field before anything is
sent; userspace runs ``check`` on each op as it takes it and refuses a bad
one: that op fails with -EINVAL and the kernel hears why (``op_refused``).
On the wire every field is present.

Nothing here runs an op (services/userspace/platform.py does) or decides
one (the kernel does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

U64_MAX = (1 << 64) - 1
TID_MAX = (1 << 31) - 1          # a guest tid: a positive pid_t
POKE_MAX = 8 << 20               # exec's stack image: at most 6 MiB of strings, in an 8 MiB stack
XSTATE_MAX = 1 << 14             # the xsave image (FPU, SSE, AVX ...) a signal frame keeps
# Names of host files a guest process may map, relative to its working
# directory (the run directory, or its jail's root): a page-cache version,
# or the live file of an inode mapped shared.  Nothing else is opened.
PAGECACHE_NAME = re.compile(r"(pagecache|shared)/[0-9A-Za-z.-]+")
PATH_MAX = 255                   # such a name's length (the kernel's are under 64)
# Linux's struct user_regs_struct on x86-64, in its order: what get_context
# gives and set_context takes (services/userspace/tracee.py's REGS).
REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")
# PR_SET_MM_MAP's addresses, in struct prctl_mm_map's order (set_mm)
MM_FIELDS = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
             "start_stack", "arg_start", "arg_end", "env_start", "env_end")


class OpError(ValueError):
    """An op that is not one; str(self) names the op and the field."""


@dataclass(frozen=True)
class Kind:
    """What a field may hold: a test, its name for the error, and what to
    say of a value it refuses."""
    test: Callable[[Any], bool]
    what: str
    show: Callable[[Any], str] = lambda v: _show(v)


def _regs(v: Any) -> bool:
    """Exactly the registers of REGS, each a u64."""
    if type(v) is not dict or v.keys() != _REG_SET:
        return False
    values = v.values()
    return set(map(type, values)) == _INT and min(values) >= 0 and max(values) <= U64_MAX


def _show_regs(v: Any) -> str:
    if type(v) is not dict:
        return _show(v)
    missing, unknown = sorted(_REG_SET - v.keys()), sorted(map(str, v.keys() - _REG_SET))
    if missing or unknown:
        return "a map " + " and ".join([f"missing {missing}"] * bool(missing)
                                       + [f"with unknown {unknown}"] * bool(unknown))
    name = next(n for n in REGS if not U64.test(v[n]))
    return f"{name}={_show(v[name])}"


def _bytes_up_to(limit: int, nil: bool = False) -> Kind:
    return Kind(lambda v: type(v) is bytes and len(v) <= limit or nil and v is None,
                f"bytes (at most {limit}){' or nil' if nil else ''}")


_REG_SET = frozenset(REGS)
_INT = {int}
U64 = Kind(lambda v: type(v) is int and 0 <= v <= U64_MAX, "an integer in [0, 2**64)")
TID = Kind(lambda v: type(v) is int and 0 < v <= TID_MAX, "a guest tid in [1, 2**31)")
BOOL = Kind(lambda v: type(v) is bool, "a bool")
PATH = Kind(lambda v: v is None or type(v) is str and len(v) <= PATH_MAX
            and PAGECACHE_NAME.fullmatch(v) is not None,
            f"nil or a page-cache name (pagecache/KEY or shared/KEY, at most {PATH_MAX})")
DATA = _bytes_up_to(POKE_MAX)
XSTATE = _bytes_up_to(XSTATE_MAX, nil=True)
REGISTERS = Kind(_regs, f"a map of the {len(REGS)} registers {REGS[0]}..{REGS[-1]}, "
                        "each an integer in [0, 2**64)", _show_regs)


class OpType:
    """One op type: its name, fields and what it does.  Calling it builds
    one (keyword arguments only), checked."""

    def __init__(self, name: str, doc: str, fields: dict[str, Kind],
                 defaults: dict[str, Any] | None = None):
        self.name, self.doc, self.fields = name, doc, fields
        self.defaults = defaults or {}
        self.keys = frozenset(fields) | {"op"}
        self.tests = tuple((name, kind.test) for name, kind in fields.items())

    def __call__(self, **fields: Any) -> dict[str, Any]:
        op = {"op": self.name, **self.defaults, **fields}
        self.check(op)
        return op

    def check(self, op: dict[str, Any]) -> None:
        if op.keys() != self.keys:
            missing = [f for f in self.fields if f not in op]
            unknown = sorted(map(str, op.keys() - self.keys))
            raise OpError(f"{self.name}: " + ", ".join(
                [f"missing field {f!r}" for f in missing]
                + [f"unknown field {f!r}" for f in unknown]))
        for name, test in self.tests:
            if not test(op[name]):
                kind = self.fields[name]
                raise OpError(f"{self.name}: field {name!r} must be {kind.what}, "
                              f"not {kind.show(op[name])}")

    def __repr__(self) -> str:
        return f"OpType({self.name!r})"


def _show(v: Any) -> str:
    """A value in an error, short: a long one is only named."""
    if isinstance(v, (bytes, bytearray)) and len(v) > 40:
        return f"{len(v)} bytes"
    if isinstance(v, (str, list, dict)) and len(v) > 40:
        return f"a {type(v).__name__} of length {len(v)}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# Addresses and lengths are the guest's register values (u64); the checks
# of what they mean (off the stub's range ...) are userspace's, per op.
ExecStub = OpType("exec_stub", "exec the stub in the task's host process: a fresh address "
                  "space; the result is {vdso, stack_top}", {})
Mmap = OpType("mmap", "map [addr, addr+length) FIXED or not: anonymous (path nil) or the "
              "page-cache file path from offset, opened read-write if write (a shared "
              "live file); the result is the address or -errno",
              {"addr": U64, "length": U64, "prot": U64, "flags": U64, "offset": U64,
               "path": PATH, "write": BOOL}, {"path": None, "write": False})
Munmap = OpType("munmap", "unmap a range", {"addr": U64, "length": U64})
Mprotect = OpType("mprotect", "change a range's protection",
                  {"addr": U64, "length": U64, "prot": U64})
Poke = OpType("poke", "write data into guest memory at addr (read-only pages too)",
              {"addr": U64, "data": DATA})
SetMm = OpType("set_mm", "PR_SET_MM_MAP: where brk, the arguments and the environment are",
               {name: U64 for name in MM_FIELDS})
SetRegs = OpType("set_regs", "a new image's entry: every register 0 but rip and rsp",
                 {"rip": U64, "rsp": U64})
Clone = OpType("clone", "host clone with the kernel's flags for the new guest task; the "
               "child's registers are a return from the parent's call (0); settid: "
               "where to write its tid, or 0; the result is its host pid or -errno",
               {"task": TID, "flags": U64, "stack": U64, "ctid": U64, "tls": U64,
                "settid": U64})
GetContext = OpType("get_context", "the registers and xsave image: {regs, xstate}", {})
SetContext = OpType("set_context", "load the registers (and the xsave image, unless nil); "
                    "a pending call is skipped", {"regs": REGISTERS, "xstate": XSTATE},
                    {"xstate": None})

TYPES: dict[str, OpType] = {t.name: t for t in (
    ExecStub, Mmap, Munmap, Mprotect, Poke, SetMm, SetRegs, Clone, GetContext, SetContext)}


def check(op: Any) -> str:
    """An op as userspace takes it: its type's name, or OpError saying
    what is wrong with it."""
    kind = op.get("op") if type(op) is dict else None
    t = TYPES.get(kind) if type(kind) is str else None
    if t is None:
        raise OpError(f"not an op: {_show(op)}" if type(op) is not dict
                      else f"unknown op {_show(kind)}")
    t.check(op)
    return kind


def kind_of(op: Any) -> Any:
    """The op field of what may not be an op, for a log line."""
    return op.get("op") if type(op) is dict else None
