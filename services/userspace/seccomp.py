"""The syscall filter every guest process runs under: classic BPF, built here.

Policy (DESIGN §4, docs/security.md), each call's route in the syscall
policy (common/syscalls.py): a call from another ABI (``int 0x80``, x32)
kills the process; calls whose effect stays inside the caller's own address
space and time run on the host (``HOST``), or do for arguments that keep
them there (``CHECKED``: memory calls off the stub's range, futex commands
by value, no PI; the checks are here); everything else goes to the kernel:
the ``NOTIFY`` calls through the filter's listener
(``SECCOMP_RET_USER_NOTIF``: the caller waits in the host kernel and the
guest kernel answers it there, with no ptrace stop and no userspace turn),
the rest as a stop in the tracer (``SECCOMP_RET_TRACE``).
"""
from __future__ import annotations

import struct

from common import syscalls as policy
from common.syscalls import FUTEX_LOCAL_OPS
from common.layout import STUB_BASE, STUB_SIZE
from services.userspace import stub

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_TRACE = 0x7FF00000
RET_USER_NOTIF = 0x7FC00000
RET_ALLOW = 0x7FFF0000

# BPF opcodes
_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JA = 0x05
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_JGT_X = 0x2D
_JEQ_X = 0x1D
_TAX = 0x07
_RET_K = 0x06

# struct seccomp_data offsets
_NR, _ARCH, _IP = 0, 4, 8


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


def _arg_hi(i: int) -> int:
    return 20 + 8 * i


MAP_ANONYMOUS = 0x20
MREMAP_FIXED, MREMAP_DONTUNMAP = 0x2, 0x4
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
# Two calls allowed by their every argument, harmless from anyone: mapping
# the scratch read-only where it is, and sealing the stub's range (the
# stub's PREPARE code makes them after every exec, with no stop).
SCRATCH_MAP_CALL = (stub.SYS_mmap, stub.SCRATCH, stub.SCRATCH_SIZE, stub.PROT_READ,
                    stub.MAP_SHARED_FIXED, stub.SCRATCH_FD, 0)
SEAL_CALL = (stub.SYS_mseal, STUB_BASE, STUB_SIZE, 0)


NOTIFY_RUN = 200    # a BPF conditional jump reaches 255 instructions ahead


def program(notify: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions, from the policy's
    routes; with notify, the NOTIFY calls go to the listener."""
    assert STUB_BASE & 0xFFFFFFFF == 0 and STUB_SIZE < 1 << 32
    checked = policy.routed(policy.CHECKED)
    assert {p.name for p in checked} == _CHECKS.keys(), "one check for each checked call"
    insns: list = []  # jump targets may name a label; ("label", name) marks one

    def label(name: str) -> None:
        insns.append(("label", name))

    insns.append((_LD_W_ABS, 0, 0, _ARCH))
    insns.append((_JEQ_K, 0, "kill", AUDIT_ARCH_X86_64))
    insns.append((_LD_W_ABS, 0, 0, _NR))
    insns.append((_JGE_K, "trace", 0, 0x80000000))    # nr -1 and friends: kernel says ENOSYS
    insns.append((_JGE_K, "kill", 0, X32_SYSCALL_BIT))
    for p in policy.routed(policy.HOST):
        insns.append((_JEQ_K, "allow", 0, p.nr))
    for p in checked:
        insns.append((_JEQ_K, p.name, 0, p.nr))
    insns.append((_JA, 0, 0, "rest"))
    for p in checked:
        label(p.name)
        insns += _CHECKS[p.name]
    # Memory calls, allowed only off the stub's range (address and length
    # are their first two arguments).  The check is coarse and safe: a
    # length under 4 GiB from an address whose high half is neither the
    # stub's nor the one below cannot reach the stub; anything else traps
    # and the kernel checks it exactly (services/kernel/mm.py).
    label("range_0_1")
    insns.append((_LD_W_ABS, 0, 0, _arg_hi(1)))
    insns.append((_JEQ_K, 0, "trace", 0))
    insns.append((_LD_W_ABS, 0, 0, _arg_hi(0)))
    insns.append((_JEQ_K, "trace", 0, STUB_BASE >> 32))
    insns.append((_JEQ_K, "trace", "allow", (STUB_BASE >> 32) - 1))

    label("rest")
    if notify:
        # Calls made from the stub are userspace's injected ones: never notified.
        insns.append((_LD_W_ABS, 0, 0, _IP + 4))
        insns.append((_JEQ_K, 0, 2, STUB_BASE >> 32))
        insns.append((_LD_W_ABS, 0, 0, _IP))
        insns.append((_JGE_K, 0, "trace", (STUB_BASE & 0xFFFFFFFF) + STUB_SIZE))
        insns.append((_JA, 0, 0, "notified"))     # past the returns: a long jump
    label("trace")
    insns.append((_RET_K, 0, 0, RET_TRACE))
    label("kill")
    insns.append((_RET_K, 0, 0, RET_KILL_PROCESS))
    label("allow")
    insns.append((_RET_K, 0, 0, RET_ALLOW))
    if notify:
        # The notified numbers, in runs short enough for a conditional jump
        # to reach the run's own return; none matched: trace.
        label("notified")
        insns.append((_LD_W_ABS, 0, 0, _NR))
        nrs = [p.nr for p in policy.routed(policy.NOTIFY)]
        for n in range(0, len(nrs), NOTIFY_RUN):
            for nr in nrs[n:n + NOTIFY_RUN]:
                insns.append((_JEQ_K, f"notify{n}", 0, nr))
            insns.append((_JA, 0, 0, f"after{n}"))
            label(f"notify{n}")
            insns.append((_RET_K, 0, 0, RET_USER_NOTIF))
            label(f"after{n}")
        insns.append((_RET_K, 0, 0, RET_TRACE))
    return _resolve(insns)


def _exactly(args: tuple, label: str) -> list:
    """Jump to label when the call's arguments are exactly args (each
    argument's two halves), else fall through past these instructions."""
    checks = [(off, value) for i, a in enumerate(args)
              for off, value in ((_arg_lo(i), a & 0xFFFFFFFF), (_arg_hi(i), a >> 32))]
    out = []
    for n, (off, value) in enumerate(checks):
        last = n == len(checks) - 1
        out.append((_LD_W_ABS, 0, 0, off))
        # a mismatch skips the rest of the checks (two instructions each)
        out.append((_JEQ_K, label if last else 0, 2 * (len(checks) - n - 1), value))
    return out


# The filter's argument check for each call the policy routes CHECKED: it
# jumps to "allow" or "trace", or on to "range_0_1" (off the stub's range).
_CHECKS = {
    "mmap": _exactly(SCRATCH_MAP_CALL[1:], "allow") + [     # the scratch's own map,
        (_LD_W_ABS, 0, 0, _arg_lo(3)),                      # or anonymous only
        (_JSET_K, 0, "trace", MAP_ANONYMOUS),
        (_JA, 0, 0, "range_0_1")],
    "mprotect": [(_JA, 0, 0, "range_0_1")],
    "munmap": [(_JA, 0, 0, "range_0_1")],
    "mremap": [                                             # the host picks where it moves,
        (_LD_W_ABS, 0, 0, _arg_lo(3)),
        (_JSET_K, "trace", 0, MREMAP_FIXED | MREMAP_DONTUNMAP),
        # and it does not grow: the kernel fills a file map's new part first
        (_LD_W_ABS, 0, 0, _arg_hi(1)), (_TAX, 0, 0, 0), (_LD_W_ABS, 0, 0, _arg_hi(2)),
        (_JGT_X, "trace", 0, 0), (_JEQ_X, 0, "range_0_1", 0),
        (_LD_W_ABS, 0, 0, _arg_lo(1)), (_TAX, 0, 0, 0), (_LD_W_ABS, 0, 0, _arg_lo(2)),
        (_JGT_X, "trace", "range_0_1", 0)],
    "madvise": [(_JA, 0, 0, "range_0_1")],
    "arch_prctl": [(_LD_W_ABS, 0, 0, _arg_lo(0))] + [
        (_JEQ_K, "allow", 0, code) for code in (ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS,
                                                ARCH_GET_GS)] + [(_JA, 0, 0, "trace")],
    "futex": [(_LD_W_ABS, 0, 0, _arg_lo(1)),
              (_ALU_AND_K, 0, 0, 0xFFFFFFFF & ~FUTEX_CLOCK_REALTIME)] + [
        (_JEQ_K, "allow", 0, op | FUTEX_PRIVATE_FLAG) for op in sorted(FUTEX_LOCAL_OPS.values())
    ] + [(_JA, 0, 0, "trace")],
    "mseal": _exactly(SEAL_CALL[1:], "allow") + [(_JA, 0, 0, "trace")],
}


def _resolve(insns: list) -> list[tuple[int, int, int, int]]:
    """Labels to relative jumps (conditional ones reach 255 ahead at most)."""
    labels, pc = {}, 0
    for i in insns:
        if i[0] == "label":
            labels[i[1]] = pc
        else:
            pc += 1
    out: list[tuple[int, int, int, int]] = []
    for code, jt, jf, k in (i for i in insns if i[0] != "label"):
        pc = len(out)
        if code == _JA:
            k = labels[k] - pc - 1 if isinstance(k, str) else k
        jt = labels[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pc - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256 and k >= 0
        out.append((code, jt, jf, k))
    return out


def assemble(insns: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_filter[] bytes."""
    return b"".join(struct.pack("<HBBI", *i) for i in insns)
