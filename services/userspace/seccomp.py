"""The syscall filter every guest process runs under: classic BPF, built here.

Policy (DESIGN §4): a call from another ABI (``int 0x80``, x32) kills the
process; calls whose effect stays inside the caller's own address space and
time run on the host; everything else goes to the kernel: the calls in
``NOTIFIED`` through the filter's listener (``SECCOMP_RET_USER_NOTIF``: the
caller waits in the host kernel and the guest kernel answers it there, with
no ptrace stop and no userspace turn), the rest as a stop in the tracer
(``SECCOMP_RET_TRACE``).  Which calls are notified is a matter of speed
only: the kernel stops a notified caller for ptrace whenever it needs to
(a signal to deliver, address-space ops), see docs/architecture.md.
"""
from __future__ import annotations

import struct

from common.notified import NOTIFIED
from services.userspace import stub

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_TRACE = 0x7FF00000
RET_USER_NOTIF = 0x7FC00000
RET_ALLOW = 0x7FFF0000

# BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# struct seccomp_data offsets
_NR, _ARCH, _IP = 0, 4, 8


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


MAP_ANONYMOUS = 0x20
FUTEX_PRIVATE_FLAG = 128

# Calls confined to the caller: memory of its own, its own futexes, its own
# clocks, its own end (exit and exit_group: the kernel learns of it, with the
# host wait status, when userspace reaps the process).
# (rt_sigreturn traps: the signal mask and frame it restores are the kernel's.)
ALLOWED = {
    "brk": 12, "mprotect": 10, "munmap": 11, "mremap": 25, "madvise": 28,
    "sched_yield": 24, "exit": 60, "gettimeofday": 96, "arch_prctl": 158, "exit_group": 231,
    "time": 201, "clock_gettime": 228, "clock_getres": 229, "set_robust_list": 273,
    "getrandom": 318, "rseq": 334,
}
# Allowed only when an argument flag keeps them local.
CONDITIONAL = {
    "mmap": (9, 3, MAP_ANONYMOUS),          # anonymous: the fd is ignored
    "futex": (202, 1, FUTEX_PRIVATE_FLAG),  # private futexes only
}


def program(notify: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; with notify, the calls
    in NOTIFIED go to the listener."""
    insns: list[tuple] = []  # jump targets may name a label: "trace", "kill", "allow", "notify"
    insns.append((_LD_W_ABS, 0, 0, _ARCH))
    insns.append((_JEQ_K, 0, "kill", AUDIT_ARCH_X86_64))
    insns.append((_LD_W_ABS, 0, 0, _NR))
    insns.append((_JGE_K, "trace", 0, 0x80000000))    # nr -1 and friends: kernel says ENOSYS
    insns.append((_JGE_K, "kill", 0, X32_SYSCALL_BIT))
    for nr in sorted(ALLOWED.values()):
        insns.append((_JEQ_K, "allow", 0, nr))
    for nr, arg, flag in CONDITIONAL.values():
        insns.append((_JEQ_K, 0, 2, nr))                 # not this call: A still holds nr
        insns.append((_LD_W_ABS, 0, 0, _arg_lo(arg)))
        insns.append((_JSET_K, "allow", "trace", flag))
    if notify:
        code, jt, _, k = insns[-1]
        insns[-1] = (code, jt, 0, k)          # the last condition fails on to the notified calls
        assert stub.STUB_BASE & 0xFFFFFFFF == 0 and stub.STUB_SIZE < 1 << 32
        # Calls made from the stub are userspace's injected ones: never notified.
        insns.append((_LD_W_ABS, 0, 0, _IP + 4))
        insns.append((_JEQ_K, 0, 2, stub.STUB_BASE >> 32))
        insns.append((_LD_W_ABS, 0, 0, _IP))
        insns.append((_JGE_K, 0, "trace", (stub.STUB_BASE & 0xFFFFFFFF) + stub.STUB_SIZE))
        insns.append((_LD_W_ABS, 0, 0, _NR))
        for nr in sorted(NOTIFIED.values()):
            insns.append((_JEQ_K, "notify", 0, nr))
    labels = {"trace": len(insns), "kill": len(insns) + 1, "allow": len(insns) + 2,
              "notify": len(insns) + 3}
    insns += [(_RET_K, 0, 0, RET_TRACE), (_RET_K, 0, 0, RET_KILL_PROCESS),
              (_RET_K, 0, 0, RET_ALLOW)] + [(_RET_K, 0, 0, RET_USER_NOTIF)] * notify
    out = []
    for pc, (code, jt, jf, k) in enumerate(insns):
        jt = labels[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pc - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256
        out.append((code, jt, jf, k))
    return out


def assemble(insns: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_filter[] bytes."""
    return b"".join(struct.pack("<HBBI", *i) for i in insns)
