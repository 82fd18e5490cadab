"""The filter, run by a classic-BPF interpreter on seccomp_data built here:
every call it lets run on the host is one the syscall policy routes there,
and is allowed only for arguments that keep it to the caller
(docs/security.md); the policy, the filter and the kernel's table agree on
every number."""
from __future__ import annotations

import errno
import logging
import random
import re
import struct
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from common import syscalls as policy
from common.layout import STUB_BASE, STUB_END, STUB_SIZE, touches_stub
from services.kernel.entry import kernel as service
from services.kernel.syscalls import table as syscalls
from services.userspace import seccomp

ALLOW, TRACE, KILL, NOTIFY = (seccomp.RET_ALLOW, seccomp.RET_TRACE, seccomp.RET_KILL_PROCESS,
                              seccomp.RET_USER_NOTIF)
GUEST_IP = 0x401000
U64 = (1 << 64) - 1
FUTEX, ARCH_PRCTL = policy.BY_NAME["futex"].nr, policy.BY_NAME["arch_prctl"].nr


def run(prog, nr: int, args=(), arch=seccomp.AUDIT_ARCH_X86_64, ip=GUEST_IP) -> int:
    """The verdict of prog for one call, as the host computes it."""
    args = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, ip, *(a & U64 for a in args))
    a, x, pc = 0, 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:                       # ld [k]
            a, = struct.unpack_from("<I", data, k)
        elif code == 0x54:                     # and #k
            a &= k
        elif code == 0x05:                     # ja
            pc += k
        elif code in (0x15, 0x35, 0x45):       # jeq, jge, jset
            hit = a == k if code == 0x15 else a >= k if code == 0x35 else bool(a & k)
            pc += jt if hit else jf
        elif code in (0x1D, 0x2D):             # jeq x, jgt x
            hit = a == x if code == 0x1D else a > x
            pc += jt if hit else jf
        elif code == 0x07:                     # tax
            x = a
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unknown BPF opcode {code:#x}")


PROGRAMS = [seccomp.program(False), seccomp.program(True)]
ANYWHERE = [0, 0x1000, 0x400000, STUB_BASE - 0x1000, STUB_BASE, STUB_END - 1, STUB_END,
            (STUB_BASE >> 32) - 1 << 32, 0x7FFFFFFFF000, 1 << 47, U64 & ~0xFFF, U64]
LENGTHS = [0, 1, 0x1000, 0x10000, (1 << 32) - 1, 1 << 32, 1 << 40, U64]


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_only_the_listed_calls_ever_run_on_the_host(prog):
    rng = random.Random(1)
    allowed = {p.nr for p in policy.routed(policy.HOST) + policy.routed(policy.CHECKED)}
    for nr in range(-2, 1024):
        for _ in range(20):
            args = [rng.choice((0, rng.getrandbits(64), rng.getrandbits(32))) for _ in range(6)]
            verdict = run(prog, nr, args)
            if verdict == ALLOW:
                assert nr in allowed, nr
            elif verdict == NOTIFY:
                assert nr in policy.NOTIFIED, nr
            else:
                assert verdict == TRACE, (nr, verdict)


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_other_abis_are_killed(prog):
    assert run(prog, 39, arch=0x40000003) == KILL                    # i386: int 0x80
    assert run(prog, 39 | seccomp.X32_SYSCALL_BIT) == KILL           # x32


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_memory_calls_run_on_the_host_only_off_the_stub(prog):
    """Every (address, length) the filter lets through is clear of the stub's
    range; the rest reach the kernel, which checks them exactly."""
    rng = random.Random(2)
    cases = [(a, n) for a in ANYWHERE for n in LENGTHS]
    cases += [(rng.getrandbits(47) & ~0xFFF, rng.getrandbits(rng.choice((12, 32, 33, 64))))
              for _ in range(3000)]
    cases += [(STUB_BASE + rng.randrange(-1 << 33, 1 << 33) & ~0xFFF, rng.getrandbits(33))
              for _ in range(3000)]
    anon = 0x22
    for addr, length in cases:
        for nr, args in ((10, (addr, length, 7)), (11, (addr, length)), (28, (addr, length, 4)),
                         (9, (addr, length, 7, anon | 0x10, U64, 0)),
                         (25, (addr, length, length, 1, 0))):
            if run(prog, nr, args) == ALLOW:
                assert not touches_stub(addr, length), (nr, hex(addr), hex(length))
    assert run(prog, 9, (0, 4096, 3, 0x22, U64, 0)) == ALLOW         # malloc's map
    assert run(prog, 9, (0, 4096, 1, 0x02, 3, 0)) == TRACE           # a file: the kernel's
    assert run(prog, 25, (0x10000, 4096, 8192, 3, 0x20000)) == TRACE  # MREMAP_FIXED
    assert run(prog, 25, (0x10000, 4096, 8192, 5, 0)) == TRACE       # MREMAP_DONTUNMAP


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_mremap_runs_on_the_host_only_when_it_does_not_grow(prog):
    """A grown file map's new part must be filled in the page cache first:
    growing traps, shrinking and keeping the size run on the host."""
    for old, new in ((4096, 8192), (4096, 1 << 32), ((1 << 32) + 4096, (1 << 32) + 8192),
                     ((1 << 32) - 4096, 1 << 32), (0, 1)):
        assert run(prog, 25, (0x10000, old, new, 1, 0)) == TRACE, (old, new)
    for old, new in ((8192, 4096), (4096, 4096), (0xFFFFF000, 0x1000)):
        assert run(prog, 25, (0x10000, old, new, 1, 0)) == ALLOW, (old, new)


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_futexes_run_on_the_host_only_private_and_without_pi(prog):
    for op in range(0, 1 << 10):
        verdict = run(prog, FUTEX, (0x1000, op, 1, 0, 0, 0))
        local = (op & 0x7F in seccomp.FUTEX_LOCAL_OPS.values() and op & 0x80
                 and not op & ~0x1FF)
        assert verdict == (ALLOW if local else TRACE), hex(op)
    for pi in (6, 7, 8, 11, 12, 13):
        assert run(prog, FUTEX, (0x1000, pi | 0x80)) == TRACE


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_rseq_and_foreign_arch_prctl_codes_trap(prog):
    assert run(prog, 334, (0x1000, 32, 0, 0x53053053)) == TRACE
    for code in (0x1001, 0x1002, 0x1003, 0x1004):
        assert run(prog, ARCH_PRCTL, (code, 0)) == ALLOW
    for code in (0x1011, 0x1012, 0x2001, 0x2002, 0x2003, 0x5001, 0x3001):
        assert run(prog, ARCH_PRCTL, (code, 0)) == TRACE


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_the_scratch_map_and_the_seal_run_only_exactly(prog):
    """Allowed from anyone, as they are harmless: the scratch mapped read-only
    where it is, the stub's range sealed.  Any other argument traps."""
    for nr, *args in (seccomp.SCRATCH_MAP_CALL, seccomp.SEAL_CALL):
        assert run(prog, nr, args) == ALLOW
        for i in range(len(args)):
            for delta in (1, 1 << 32, -1):
                changed = list(args)
                changed[i] = (changed[i] + delta) & U64
                assert run(prog, nr, changed) == TRACE, (nr, i, delta)


def test_calls_from_the_stub_are_never_notified():
    prog = PROGRAMS[1]
    for nr in sorted(policy.NOTIFIED):
        assert run(prog, nr, ip=GUEST_IP) == NOTIFY
        assert run(prog, nr, ip=STUB_BASE + 0x80) == TRACE


# For each call the policy routes CHECKED: arguments the filter lets run on
# the host, and arguments it traps.
CHECKED_EXAMPLES = {
    "mmap": ((0, 4096, 3, 0x22, U64, 0), (0, 4096, 1, 0x02, 3, 0)),            # anonymous, a file
    "mprotect": ((0x10000, 4096, 1), (STUB_BASE, 4096, 7)),
    "munmap": ((0x10000, 4096), (STUB_BASE, 4096)),
    "mremap": ((0x10000, 8192, 4096, 1, 0), (0x10000, 4096, 8192, 3, 0x20000)),  # MREMAP_FIXED
    "madvise": ((0x10000, 4096, 4), (STUB_BASE, 4096, 4)),
    "arch_prctl": ((0x1002, 0x1000), (0x1011, 0)),                             # SET_FS, AMX
    "futex": ((0x1000, 0x80, 1), (0x1000, 0x86)),                              # WAIT, LOCK_PI
    "mseal": ((STUB_BASE, STUB_SIZE, 0), (0x10000, 4096, 0)),
}


@pytest.mark.parametrize("prog", PROGRAMS, ids=["trapping", "notifying"])
def test_the_filter_routes_every_number_as_the_policy_says(prog):
    assert CHECKED_EXAMPLES.keys() == {p.name for p in policy.routed(policy.CHECKED)}
    notifying = prog is PROGRAMS[1]
    rng = random.Random(3)
    for nr in range(max(policy.TABLE) + 1):
        p = policy.policy(nr)
        args = [(), (1, 2, 3, 4, 5, 6)] + [[rng.getrandbits(64) for _ in range(6)]
                                           for _ in range(4)]
        verdicts = {run(prog, nr, a) for a in args}
        if p.route == policy.HOST:
            assert verdicts == {ALLOW}, p
        elif p.route == policy.CHECKED:
            on_host, trapped = CHECKED_EXAMPLES[p.name]
            assert verdicts <= {ALLOW, TRACE}, p
            assert (run(prog, nr, on_host), run(prog, nr, trapped)) == (ALLOW, TRACE), p
        elif p.route == policy.NOTIFY:
            assert verdicts == {NOTIFY if notifying else TRACE}, p
            assert run(prog, nr, ip=STUB_BASE + 0x80) == TRACE, p
        else:
            assert p.route == policy.TRAP and verdicts == {TRACE}, p


def test_each_call_the_kernel_serves_has_exactly_one_handler():
    handled = Counter(call for call, _ in syscalls.HANDLERS)
    assert [call for call, n in handled.items() if n > 1] == []
    assert [call for call in handled if call not in policy.BY_NAME] == []
    assert set(handled) == {p.name for p in policy.TABLE.values() if p.served}


def test_the_kernel_serves_every_number_that_reaches_it_or_answers_enosys(caplog):
    """Notified, trapped and checked calls reach the kernel: each has its
    handler, or, unimplemented, is ENOSYS, logged once."""
    answers = []
    kernel = SimpleNamespace(syscall_count=0, enosys_logged=set(), strace=None,
                             answer=lambda t, result, call, args: answers.append((call, result)))
    for nr in range(max(policy.TABLE) + 1):
        p = policy.policy(nr)
        if p.served:
            assert syscalls.TABLE[nr].policy is p
            continue
        assert nr not in syscalls.TABLE, p
        if p.route == policy.HOST:
            continue                 # never reaches the kernel
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            for _ in range(2):
                service.Kernel.dispatch(kernel, "task", nr, [0] * 6)
        assert answers[-2:] == [(p.name, -errno.ENOSYS)] * 2, p
        assert [r.getMessage() for r in caplog.records] == [
            f"unimplemented syscall {p.name} ({nr}) from 'task': ENOSYS"]


def test_the_policy_names_are_linux_names():
    """As the kernel's own header names them (python-ptrace's table has
    old names, 283 "timerfd" for timerfd_create)."""
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h").read_text()
    names = {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", header)}
    assert [p for nr, p in policy.TABLE.items()
            if p.nr != nr or names.get(nr, p.name) != p.name] == []
    assert len(policy.BY_NAME) == len(policy.TABLE)
