"""The x86_64 signal frame (sched/sigframe.py) against Linux's rt_sigframe,
built and read back in-process: layout, alignment, red zone, alternate
stack, and rt_sigreturn's checks of the xsave image (fpu__restore_sig).

Linux's numbers: arch/x86/include/asm/sigframe.h (struct rt_sigframe),
uapi/asm/sigcontext.h, arch/x86/kernel/signal.c (get_sigframe,
align_sigframe), signal_64.c (x64_setup_rt_frame, restore_sigcontext),
fpu/signal.c (fpu__alloc_mathframe, check_xstate_in_sigframe), and the
SDM's XRSTOR/FXRSTOR faults."""
from __future__ import annotations

import errno
import struct
from types import SimpleNamespace

import pytest

from services.kernel.abi.arch import U64
from services.kernel.abi.signal import (MINSIGSTKSZ, SIGSEGV, SIGUSR1, SS_AUTODISARM, SS_DISABLE,
                                        SS_ONSTACK)
from services.kernel.core.errors import Errno
from services.kernel.sched import sigframe, signals
from services.kernel.sched.sigframe import ALTSTACK, build, on_stack, parse, restore_xstate
from services.kernel.sched.signals import disabled_altstack
from services.kernel.sched.task import NO_ALTSTACK
from services.kernel.syscalls.signals import sys_sigaltstack

# struct rt_sigframe on x86_64: pretcode, then struct ucontext (uc_flags,
# uc_link, uc_stack, uc_mcontext = struct sigcontext of 256 bytes,
# uc_sigmask), then siginfo (128)
PRETCODE, UC, UC_FLAGS, UC_LINK, UC_STACK, MCONTEXT, UC_SIGMASK, INFO = (
    0, 8, 8, 16, 24, 48, 304, 312)
SIGCONTEXT_SIZE = 256
# struct sigcontext's fields, in order (r8 .. eflags: 8 bytes each), then
# cs, gs, fs, ss (2 bytes each), err, trapno, oldmask, cr2, fpstate
SC_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
           "rdx", "rax", "rcx", "rsp", "rip", "eflags")
SC_CS, SC_GS, SC_FS, SC_SS = 144, 146, 148, 150
SC_ERR, SC_TRAPNO, SC_OLDMASK, SC_CR2, SC_FPSTATE = 152, 160, 168, 176, 184
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
EFLAGS_CF, EFLAGS_PF, EFLAGS_AF, EFLAGS_ZF, EFLAGS_SF = 0x1, 0x4, 0x10, 0x40, 0x80
EFLAGS_TF, EFLAGS_IF, EFLAGS_DF, EFLAGS_OF = 0x100, 0x200, 0x400, 0x800
EFLAGS_IOPL, EFLAGS_NT, EFLAGS_RF, EFLAGS_AC, EFLAGS_ID = 0x3000, 0x4000, 0x10000, 0x40000, 0x200000
# asm/sighandling.h: what rt_sigreturn takes from the frame (RF included on x86_64)
FIX_EFLAGS = (EFLAGS_AC | EFLAGS_OF | EFLAGS_DF | EFLAGS_TF | EFLAGS_SF | EFLAGS_ZF
              | EFLAGS_AF | EFLAGS_PF | EFLAGS_CF | EFLAGS_RF)
# the xsave layout: legacy area (MXCSR at 24, its mask at 28, the software
# bytes at 464), the header at 512 (XSTATE_BV, XCOMP_BV, reserved), then AVX
MXCSR, MXCSR_MASK, SW, HEADER, AVX = 24, 28, 464, 512, 576
XFEATURE_FP, XFEATURE_SSE, XFEATURE_YMM = 1, 2, 4
RED_ZONE = 128
STACK = 0x7FFF_F000_0000
ALT = 0x7000_0000_0000          # an alternate stack of ALT_SIZE bytes
ALT_SIZE = 0x10000


def regs(**changes) -> dict:
    """A register set with a distinct value in every slot."""
    r = {name: 0x1111_0000_0000_0000 + i for i, name in enumerate(SC_REGS)}
    r.update(rsp=STACK - 0x1000, rip=0x40_1234, eflags=0x246 | EFLAGS_TF | EFLAGS_DF,
             cs=0x33, ss=0x2B, fs=0, gs=0, orig_rax=U64)
    r.update(changes)
    return r


def xstate(size: int = 832, xcr0: int = 0x7, xstate_bv: int = 0x7, mxcsr: int = 0x1F80,
           mxcsr_mask: int = 0xFFFF, fill: int = 0x5A) -> bytearray:
    """An xsave image as ptrace gives it (NT_X86_XSTATE): XCR0 in the first
    software bytes, the header's XSTATE_BV, everything else a pattern."""
    x = bytearray((fill + i) & 0xFF for i in range(size))
    struct.pack_into("<II", x, MXCSR, mxcsr, mxcsr_mask)
    x[SW:HEADER] = struct.pack("<Q", xcr0).ljust(48, b"\0")
    if size > HEADER:
        x[HEADER:AVX] = struct.pack("<Q", xstate_bv).ljust(64, b"\0")
    return x


def altstack(sp: int = ALT, flags: int = 0, size: int = ALT_SIZE) -> bytes:
    return ALTSTACK.pack(sp, flags, 0, size)


DISABLED = altstack(0, SS_DISABLE, 0)


def frame_of(r: dict | None = None, x: bytes | None = None, *, onstack: bool = False,
             alt: bytes = DISABLED, mask: int = 0x1234_5678_9ABC_DEF0,
             fault_addr: int = 0, info: bytes = b"\x0b" + bytes(127)):
    r = regs() if r is None else r
    x = xstate() if x is None else x
    return build(r, bytes(x), SIGSEGV if fault_addr else SIGUSR1, info, 0x40_5000, 0x40_6000,
                 onstack, alt, mask, fault_addr)


def field(data: bytes, offset: int, fmt: str = "<Q"):
    return struct.unpack_from(fmt, data, offset)[0]


def fpstate_of(data: bytes) -> int:
    """The sigcontext's fpstate: the xsave area's address."""
    return field(data, MCONTEXT + SC_FPSTATE)


class Memory:
    """Guest memory holding one range: reads and writes outside it are
    EFAULT, as process_vm_readv's and writev's are."""

    def __init__(self, base: int, data: bytes):
        self.base, self.data = base, bytearray(data)

    def _at(self, addr: int, length: int) -> slice:
        if addr < self.base or addr + length > self.base + len(self.data):
            raise Errno(errno.EFAULT)
        return slice(addr - self.base, addr - self.base + length)

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.data[self._at(addr, length)])

    def write(self, addr: int, data: bytes) -> None:
        self.data[self._at(addr, len(data))] = data


# --- layout ------------------------------------------------------------------------------

def test_the_frame_has_linux_rt_sigframe_size_and_offsets():
    assert sigframe.FRAME_SIZE == 440
    assert (sigframe.UC_OFFSET, sigframe.INFO_OFFSET) == (UC, INFO)
    assert sigframe.FRAME.size == INFO == MCONTEXT + SIGCONTEXT_SIZE + 8
    assert sigframe.SIGINFO_SIZE == 128 and ALTSTACK.size == 24


def test_every_field_lands_where_linux_puts_it():
    r = regs()
    info = bytes(range(128))
    frame, data, _ = frame_of(r, info=info, mask=0xFEDC_BA98_7654_3210)
    assert field(data, PRETCODE) == 0x40_6000                    # sa_restorer
    assert field(data, UC_FLAGS) == UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
    assert field(data, UC_LINK) == 0
    for i, name in enumerate(SC_REGS):
        assert field(data, MCONTEXT + 8 * i) == r[name], name
    assert field(data, MCONTEXT + SC_CS, "<H") == 0x33
    assert field(data, MCONTEXT + SC_SS, "<H") == 0x2B
    assert field(data, MCONTEXT + SC_OLDMASK) == 0xFEDC_BA98_7654_3210
    assert field(data, UC_SIGMASK) == 0xFEDC_BA98_7654_3210
    assert data[INFO:INFO + 128] == info


def test_a_fault_address_is_cr2_with_the_page_fault_trap_number():
    _, data, _ = frame_of(fault_addr=0xDEAD_B000)
    assert field(data, MCONTEXT + SC_CR2) == 0xDEAD_B000
    assert field(data, MCONTEXT + SC_TRAPNO) == 14                # X86_TRAP_PF


def test_the_sigcontext_gs_and_fs_are_zero_as_linux_writes_them():
    """__unsafe_setup_sigcontext writes 0 for both on x86_64 (checked
    natively: a program that loads 0x2b into %gs sees gs 0 in its
    handler's uc_mcontext)."""
    _, data, _ = frame_of(regs(gs=0x2B, fs=0x2B))
    assert field(data, MCONTEXT + SC_GS, "<H") == 0
    assert field(data, MCONTEXT + SC_FS, "<H") == 0


# --- where the frame goes ------------------------------------------------------------------

@pytest.mark.parametrize("size", [512 + 64, 832, 1088, 2696])
@pytest.mark.parametrize("rsp", [STACK - 0x1000, STACK - 0x1001, STACK - 0x1007, STACK - 0xFF8])
def test_the_frame_and_xsave_area_are_aligned_below_the_red_zone(size, rsp):
    x = xstate(size)
    frame, data, entry = frame_of(regs(rsp=rsp), x)
    fp = fpstate_of(data)
    # fpu__alloc_mathframe: the image and MAGIC2, 64-aligned, below rsp - 128
    assert fp == (rsp - RED_ZONE - size - 4) & ~63
    assert fp % 64 == 0
    # align_sigframe: 16-aligned less 8, as after a call
    assert frame == ((fp - 440) & ~15) - 8
    assert (frame + 8) % 16 == 0
    assert len(data) == fp + size + 4 - frame
    assert frame + len(data) <= rsp - RED_ZONE             # nothing in the red zone
    assert entry["rsp"] == frame


def test_the_xsave_area_holds_the_image_with_the_software_bytes_and_magic2():
    x = xstate(832, xcr0=0x7)
    frame, data, _ = frame_of(x=x)
    at = fpstate_of(data) - frame
    image = data[at:at + 832]
    assert image[:SW] == x[:SW] and image[HEADER:] == x[HEADER:]
    magic1, extended, xfeatures, xsize = struct.unpack_from("<IIQI", image, SW)
    assert (magic1, extended, xfeatures, xsize) == (FP_XSTATE_MAGIC1, 832 + 4, 0x7, 832)
    assert field(data, at + 832, "<I") == FP_XSTATE_MAGIC2


def test_the_handler_is_entered_as_linux_enters_it():
    r = regs(eflags=0x246 | EFLAGS_TF | EFLAGS_DF | EFLAGS_RF | EFLAGS_AC)
    frame, _, entry = frame_of(r)
    assert entry["rip"] == 0x40_5000
    assert (entry["rdi"], entry["rsi"], entry["rdx"]) == (SIGUSR1, frame + INFO, frame + UC)
    assert entry["rax"] == 0
    # TF, DF and RF cleared, the rest kept (handle_signal)
    assert entry["eflags"] == 0x246 | EFLAGS_AC
    for name in ("rbx", "rbp", "r12", "r15", "cs", "ss"):
        assert entry[name] == r[name]


def test_a_stack_pointer_near_zero_wraps_modulo_2_64():
    for rsp in (0, 0x40, 0x100):
        frame, data, entry = frame_of(regs(rsp=rsp))
        fp = fpstate_of(data)
        assert fp == (rsp - RED_ZONE - 832 - 4) & ~63 & U64
        assert frame == (((fp - 440) & ~15) - 8) & U64
        assert 0 <= frame < 1 << 64 and frame > 1 << 63      # wrapped: no user address
        assert entry["rsp"] == frame


# --- the alternate stack ------------------------------------------------------------------

def test_on_stack_is_linux_on_sig_stack_bounds():
    alt = altstack()
    assert not on_stack(alt, ALT)                        # sp > ss_sp ...
    assert on_stack(alt, ALT + 1)
    assert on_stack(alt, ALT + ALT_SIZE)                 # ... and sp - ss_sp <= ss_size
    assert not on_stack(alt, ALT + ALT_SIZE + 1)
    assert not on_stack(altstack(flags=SS_DISABLE), ALT + 100)
    assert not on_stack(altstack(size=0), ALT)


def test_sa_onstack_enters_the_alternate_stack_at_its_top_without_a_red_zone():
    for flags in (0, SS_AUTODISARM):
        frame, data, entry = frame_of(onstack=True, alt=altstack(flags=flags))
        fp = fpstate_of(data)
        assert fp == (ALT + ALT_SIZE - 832 - 4) & ~63
        assert frame == ((fp - 440) & ~15) - 8
        assert ALT < frame and frame + len(data) <= ALT + ALT_SIZE
        assert entry["rsp"] == frame


@pytest.mark.parametrize("onstack, alt", [(False, altstack()), (True, DISABLED),
                                          (True, altstack(flags=SS_DISABLE)),
                                          (True, altstack(size=0))])
def test_without_sa_onstack_or_an_enabled_stack_the_frame_stays_on_the_stack(onstack, alt):
    r = regs()
    frame, data, _ = frame_of(r, onstack=onstack, alt=alt)
    assert fpstate_of(data) == (r["rsp"] - RED_ZONE - 832 - 4) & ~63


def test_a_nested_signal_on_the_alternate_stack_goes_below_it_with_a_red_zone():
    rsp = ALT + 0x8000
    frame, data, _ = frame_of(regs(rsp=rsp), onstack=True, alt=altstack())
    assert fpstate_of(data) == (rsp - RED_ZONE - 832 - 4) & ~63


def test_a_frame_that_would_overflow_the_alternate_stack_is_efault():
    with pytest.raises(Errno) as e:                      # nested, near its bottom
        frame_of(regs(rsp=ALT + 0x400), onstack=True, alt=altstack())
    assert e.value.code == errno.EFAULT
    with pytest.raises(Errno) as e:                      # entered, too small for the frame
        frame_of(onstack=True, alt=altstack(size=1024))
    assert e.value.code == errno.EFAULT
    # the least room that takes it (ALT is 64-aligned): ss_size 1348 puts the
    # image at ALT + 512 and the frame at ALT + 56; one byte less moves the
    # image to ALT + 448 and the frame to ALT - 8, off the stack
    frame, _, _ = frame_of(onstack=True, alt=altstack(size=1348))
    assert frame == ALT + 56
    with pytest.raises(Errno):
        frame_of(onstack=True, alt=altstack(size=1347))


def test_an_alternate_stack_whose_end_wraps_past_2_64_is_efault():
    """Its top, modulo 2^64, is a low address: the frame is not on the stack."""
    for sp, size in ((U64 - 0xFFF, 0x2000), (U64 - 7, 0x10000)):
        with pytest.raises(Errno) as e:
            frame_of(onstack=True, alt=altstack(sp, 0, size))
        assert e.value.code == errno.EFAULT


def test_an_alternate_stack_ending_at_2_64_gives_a_frame_no_write_reaches():
    """Its top wraps to 0 and the frame to just below 2^64, still on the stack
    by Linux's unsigned test: get_sigframe returns it and the write faults."""
    frame, _, entry = frame_of(onstack=True, alt=altstack(1 << 63, 0, 1 << 63))
    assert frame == ((((0 - 832 - 4) & ~63 & U64) - 440) & ~15) - 8
    assert frame > 1 << 47 and entry["rsp"] == frame


def test_uc_stack_holds_the_alternate_stack_as_the_thread_set_it():
    for flags in (0, SS_AUTODISARM):
        _, data, _ = frame_of(onstack=True, alt=altstack(flags=flags))
        assert ALTSTACK.unpack_from(data, UC_STACK) == (ALT, flags, 0, ALT_SIZE)
    _, data, _ = frame_of(onstack=True, alt=DISABLED)
    assert ALTSTACK.unpack_from(data, UC_STACK) == (0, SS_DISABLE, 0, 0)
    _, data, _ = frame_of(onstack=False, alt=altstack())       # enabled, not used
    assert ALTSTACK.unpack_from(data, UC_STACK) == (ALT, 0, 0, ALT_SIZE)


def test_uc_stack_flags_of_a_nested_frame_are_the_flags_as_set():
    """Linux (since 4.7, unsafe_save_altstack) writes sas_ss_flags, the flags
    as sigaltstack set them, not SS_ONSTACK (checked natively on 6.18)."""
    _, data, _ = frame_of(regs(rsp=ALT + 0x8000), onstack=True, alt=altstack())
    assert ALTSTACK.unpack_from(data, UC_STACK)[1] == 0


def test_uc_stack_flags_of_a_disabled_stack_keep_ss_autodisarm():
    """sas_ss_flags as set, SS_DISABLE|SS_AUTODISARM: 0x80000002 (checked
    natively on 6.18)."""
    _, data, _ = frame_of(alt=altstack(0, SS_DISABLE | SS_AUTODISARM, 0))
    assert ALTSTACK.unpack_from(data, UC_STACK)[1] == SS_DISABLE | SS_AUTODISARM


def test_an_autodisarm_stack_is_entered_at_its_top_even_from_inside_it():
    """Linux's on_sig_stack is false for an SS_AUTODISARM stack, so an
    SA_ONSTACK signal starts again at its top (checked natively on 6.18)."""
    rsp = ALT + 0x2000
    frame, data, _ = frame_of(regs(rsp=rsp), onstack=True,
                              alt=altstack(flags=SS_AUTODISARM))
    assert fpstate_of(data) == (ALT + ALT_SIZE - 832 - 4) & ~63


def test_whether_to_enter_the_stack_is_asked_below_the_red_zone():
    """get_sigframe asks sas_ss_flags at rsp - 128 and on_sig_stack at rsp:
    within 128 bytes above the base the signal starts again at the top;
    within 128 bytes above the top it goes below the red zone unchecked."""
    top_fp = (ALT + ALT_SIZE - 832 - 4) & ~63
    _, data, _ = frame_of(regs(rsp=ALT + 100), onstack=True, alt=altstack())
    assert fpstate_of(data) == top_fp
    rsp = ALT + ALT_SIZE + 64
    _, data, _ = frame_of(regs(rsp=rsp), onstack=True, alt=altstack())
    assert fpstate_of(data) == (rsp - RED_ZONE - 832 - 4) & ~63


def test_uc_stack_after_exec_keeps_the_old_flags_with_address_and_size_0():
    """begin_new_exec zeroes sas_ss_sp and sas_ss_size, and the flags stay:
    an enabled stack's 0, an autodisarm one's SS_AUTODISARM."""
    for flags in (0, SS_AUTODISARM, SS_DISABLE):
        alt = disabled_altstack(flags)
        _, data, _ = frame_of(onstack=True, alt=alt)
        assert ALTSTACK.unpack_from(data, UC_STACK) == (0, flags, 0, 0)
        assert fpstate_of(data) == (STACK - 0x1000 - RED_ZONE - 832 - 4) & ~63


# --- sigaltstack and rt_sigreturn's restore of it -----------------------------------------

class Task:
    """What sigaltstack and rt_sigreturn use of a task: its stack pointer,
    alternate stack and mask, and memory holding one range."""

    def __init__(self, alt: bytes, sp: int, mem: Memory | None = None):
        self.altstack, self.sigmask = alt, 0
        self.flight = SimpleNamespace(user_sp=sp)
        self.mem = mem or Memory(0x1000, bytes(0x100))


SS, OLD = 0x1000, 0x1040          # a stack_t to set, and one to get the old in


def sigaltstack(t: Task, new: bytes | None, old: bool = True):
    if new is not None:
        t.mem.write(SS, new)
    t.mem.write(OLD, bytes(24))
    result = sys_sigaltstack(t, SS if new is not None else 0, OLD if old else 0)
    return result, ALTSTACK.unpack(t.mem.read(OLD, 24))


def test_sigaltstack_on_an_armed_autodisarm_stack_is_not_onstack_nor_eperm():
    t = Task(altstack(flags=SS_AUTODISARM), ALT + 0x2000)
    other = altstack(ALT * 2, SS_AUTODISARM)
    assert sigaltstack(t, other) == (0, (ALT, SS_AUTODISARM, 0, ALT_SIZE))
    assert t.altstack == other


def test_sigaltstack_on_a_stack_in_use_reports_onstack_and_refuses_a_change():
    t = Task(altstack(), ALT + 0x2000)
    assert sigaltstack(t, None) == (0, (ALT, SS_ONSTACK, 0, ALT_SIZE))
    with pytest.raises(Errno) as e:
        sigaltstack(t, DISABLED)
    assert e.value.code == errno.EPERM
    assert t.mem.read(OLD, 24) == bytes(24)            # nothing written on an error
    assert t.altstack == altstack()


def test_sigaltstack_keeps_the_flags_as_set_and_reports_them_as_linux():
    t = Task(DISABLED, STACK)
    assert sigaltstack(t, altstack(flags=SS_ONSTACK))[0] == 0
    assert t.altstack == altstack(flags=SS_ONSTACK)    # sas_ss_flags as given
    assert sigaltstack(t, None)[1] == (ALT, 0, 0, ALT_SIZE)
    assert sigaltstack(t, altstack(ALT, SS_DISABLE | SS_AUTODISARM, 123))[0] == 0
    assert t.altstack == altstack(0, SS_DISABLE | SS_AUTODISARM, 0)
    assert sigaltstack(t, None)[1] == (0, SS_DISABLE | SS_AUTODISARM, 0, 0)
    for bad, code in ((altstack(flags=3), errno.EINVAL), (altstack(flags=4), errno.EINVAL),
                      (altstack(size=MINSIGSTKSZ - 1), errno.ENOMEM)):
        with pytest.raises(Errno) as e:
            sigaltstack(t, bad)
        assert e.value.code == code


def test_sigaltstack_reads_the_new_stack_before_it_writes_the_old():
    """Linux copies the new stack_t in before it writes the old one out:
    one buffer for both sets the new stack and gets the old."""
    t = Task(DISABLED, STACK)
    t.mem.write(SS, altstack())
    assert sys_sigaltstack(t, SS, SS) == 0
    assert t.altstack == altstack()
    assert ALTSTACK.unpack(t.mem.read(SS, 24)) == (0, SS_DISABLE, 0, 0)


def returned(t: Task, data: bytes, frame: int, changes: dict | None = None):
    """rt_sigreturn of the frame data at frame (its uc_stack and saved
    registers changed by changes), with t's memory holding it."""
    data = bytearray(data)
    for name, value in (changes or {}).items():
        if name == "uc_stack":
            data[UC_STACK:UC_STACK + 24] = value
        else:
            struct.pack_into("<Q", data, MCONTEXT + 8 * SC_REGS.index(name), value)
    t.mem = Memory(frame, bytes(data))
    return signals.sigreturn(t, regs(rsp=frame + 8), bytes(xstate()))


def test_sigreturn_restores_uc_stack_as_of_the_stack_pointer_it_restores():
    """Linux's restore_altstack runs do_sigaltstack at the restored rsp:
    back from a handler on the alternate stack to the normal stack, the
    frame's uc_stack is set (a handler may change it); back to a frame on
    the stack in use, it is EPERM and squashed."""
    t = Task(altstack(), STACK)
    frame, data, _ = frame_of(regs(rsp=STACK), onstack=True, alt=t.altstack)
    moved = altstack(ALT * 2)
    new, _ = returned(t, data, frame, {"uc_stack": moved})
    assert new["rsp"] == STACK and t.altstack == moved
    t = Task(altstack(), STACK)
    frame, data, _ = frame_of(regs(rsp=ALT + 0x8000), onstack=True, alt=t.altstack)
    new, _ = returned(t, data, frame, {"uc_stack": moved})
    assert new["rsp"] == ALT + 0x8000 and t.altstack == altstack()


def test_sigreturn_rearms_an_autodisarm_stack_and_squashes_a_bad_uc_stack():
    t = Task(altstack(flags=SS_AUTODISARM), STACK)
    frame, data, _ = frame_of(regs(rsp=STACK), onstack=True, alt=t.altstack)
    t.altstack = NO_ALTSTACK                           # delivery disarmed it
    returned(t, data, frame)
    assert t.altstack == altstack(flags=SS_AUTODISARM)
    for bad in (altstack(flags=4), altstack(size=MINSIGSTKSZ - 1)):
        t.altstack = NO_ALTSTACK
        new, _ = returned(t, data, frame, {"uc_stack": bad})
        assert t.altstack == NO_ALTSTACK and new["rsp"] == STACK


# --- rt_sigreturn: the frame read back ------------------------------------------------------

def sigreturn_view(data: bytes) -> bytes:
    """What rt_sigreturn reads: the handler's ret popped pretcode, so rsp
    points at the ucontext."""
    return data[UC:sigframe.FRAME.size]


def test_build_then_parse_gives_back_registers_mask_altstack_and_fpstate():
    r = regs(eflags=0x246)
    alt = altstack(flags=SS_AUTODISARM)
    frame, data, entry = frame_of(r, onstack=True, alt=alt, mask=0x8000_0000_0000_0101)
    later = dict(entry, rax=99, rbx=98, rsp=frame + 8, eflags=0x202, orig_rax=15)
    new, mask, ss, fp = parse(sigreturn_view(data), later)
    for name in SC_REGS:
        assert new[name] == r[name], name
    assert (new["cs"], new["ss"]) == (0x33, 0x2B)
    assert new["orig_rax"] == U64                   # no system call to restart
    assert mask == 0x8000_0000_0000_0101
    assert ss == alt
    assert fp == fpstate_of(data)


def test_parse_takes_the_mask_from_uc_sigmask_not_oldmask():
    frame, data, entry = frame_of(mask=0x5)
    data = bytearray(data)
    struct.pack_into("<Q", data, MCONTEXT + SC_OLDMASK, 0xFFFF)
    struct.pack_into("<Q", data, UC_SIGMASK, 0x30)
    assert parse(sigreturn_view(data), entry)[1] == 0x30


def test_parse_takes_only_the_user_changeable_eflags_from_the_frame():
    frame, data, entry = frame_of()
    data = bytearray(data)
    frame_flags = FIX_EFLAGS | EFLAGS_IOPL | EFLAGS_NT | EFLAGS_ID | 0x2
    struct.pack_into("<Q", data, MCONTEXT + 8 * SC_REGS.index("eflags"), frame_flags)
    new = parse(sigreturn_view(data), dict(entry, eflags=EFLAGS_IF | 0x2))[0]
    assert new["eflags"] == EFLAGS_IF | 0x2 | (frame_flags & FIX_EFLAGS)


def test_parse_restores_rf_from_the_frame_as_linux_fix_eflags_does():
    """FIX_EFLAGS (asm/sighandling.h, used by restore_sigcontext on x86_64)
    includes X86_EFLAGS_RF: 0x50DD5."""
    frame, data, entry = frame_of()
    data = bytearray(data)
    struct.pack_into("<Q", data, MCONTEXT + 8 * SC_REGS.index("eflags"), 0x202 | EFLAGS_RF)
    assert parse(sigreturn_view(data), dict(entry, eflags=0x202))[0]["eflags"] & EFLAGS_RF


def test_parse_forces_user_code_and_stack_selectors():
    frame, data, entry = frame_of()
    data = bytearray(data)
    struct.pack_into("<HHHH", data, MCONTEXT + SC_CS, 0x30, 0, 0, 0x28)   # RPL 0
    new = parse(sigreturn_view(data), entry)[0]
    assert (new["cs"], new["ss"]) == (0x33, 0x2B)


# --- rt_sigreturn: the xsave image ----------------------------------------------------------

def frame_memory(x: bytes | None = None):
    """A frame built with xsave image x, in guest memory: (memory, fpstate
    address, x)."""
    x = xstate(fill=0x10) if x is None else x
    frame, data, _ = frame_of(x=x)
    return Memory(frame, data), fpstate_of(data), x


def current_image(**kw) -> bytes:
    return bytes(xstate(fill=0xC0, **kw))


def test_restore_xstate_takes_back_what_build_saved():
    mem, fp, x = frame_memory()
    cur = current_image()
    out = restore_xstate(mem, fp, cur)
    assert len(out) == len(cur)
    assert out[:SW] == x[:SW] and out[AVX:] == x[AVX:]
    assert out[SW:HEADER] == cur[SW:HEADER]           # the software bytes: the task's own
    assert out[HEADER:AVX] == struct.pack("<Q", 0x7).ljust(64, b"\0")


def test_header_bytes_xrstor_ignores_are_cleared():
    x = xstate(fill=0x10)
    x[HEADER + 24:AVX] = b"\xff" * 40
    mem, fp, _ = frame_memory(x)
    assert restore_xstate(mem, fp, current_image())[HEADER + 8:AVX] == bytes(56)


@pytest.mark.parametrize("at, value", [(HEADER + 8, 1), (HEADER + 8, 1 << 63),    # XCOMP_BV
                                       (HEADER + 16, 1)])                       # bytes 16-23
def test_xcomp_bv_or_reserved_header_bytes_are_efault(at, value):
    x = xstate(fill=0x10)
    struct.pack_into("<Q", x, at, value)
    mem, fp, _ = frame_memory(x)
    with pytest.raises(Errno) as e:
        restore_xstate(mem, fp, current_image())
    assert e.value.code == errno.EFAULT


def test_a_component_xcr0_does_not_enable_is_efault():
    x = xstate(fill=0x10, xstate_bv=0x7 | 1 << 9)        # PKRU, with XCR0 = 7
    mem, fp, _ = frame_memory(x)
    with pytest.raises(Errno):
        restore_xstate(mem, fp, current_image(xcr0=0x7))


def test_components_the_frame_does_not_name_go_back_to_their_initial_state():
    mem, fp, _ = frame_memory()
    mem.data[fp - mem.base + SW + 8:fp - mem.base + SW + 16] = struct.pack("<Q", 0x3)
    out = restore_xstate(mem, fp, current_image())
    assert field(out, HEADER) == 0x3                    # AVX: init (XSTATE_BV bit clear)
    # a feature the frame names but XCR0 lacks is left out, not a fault
    mem.data[fp - mem.base + SW + 8:fp - mem.base + SW + 16] = struct.pack("<Q", 0xFF)
    assert field(restore_xstate(mem, fp, current_image()), HEADER) == 0x7


def legacy_only(mem: Memory, fp: int, cur: bytes, x: bytes) -> None:
    out = restore_xstate(mem, fp, cur)
    assert out[:SW] == x[:SW]                           # the legacy area from the frame
    assert out[SW:HEADER] == cur[SW:HEADER]
    assert out[HEADER:AVX] == struct.pack("<Q", XFEATURE_FP | XFEATURE_SSE).ljust(64, b"\0")


@pytest.mark.parametrize("what", ["magic1", "size below the header", "size over the task's",
                                  "size over extended_size", "magic2"])
def test_without_valid_software_bytes_only_the_legacy_area_is_restored(what):
    mem, fp, x = frame_memory()
    at = fp - mem.base
    if what == "magic1":
        struct.pack_into("<I", mem.data, at + SW, 0)
    elif what == "size below the header":
        struct.pack_into("<I", mem.data, at + SW + 16, 575)
    elif what == "size over the task's":
        struct.pack_into("<I", mem.data, at + SW + 16, 836)
        struct.pack_into("<I", mem.data, at + SW + 4, 840)
    elif what == "size over extended_size":
        struct.pack_into("<I", mem.data, at + SW + 4, 831)
    else:
        struct.pack_into("<I", mem.data, at + 832, 0)
    legacy_only(mem, fp, current_image(), x)


def test_a_smaller_xstate_size_that_fits_is_honoured_with_its_own_magic2():
    mem, fp, x = frame_memory()
    at = fp - mem.base
    struct.pack_into("<I", mem.data, at + SW + 16, 576)
    struct.pack_into("<I", mem.data, at + 576, FP_XSTATE_MAGIC2)
    out = restore_xstate(mem, fp, current_image())
    assert out[:SW] == x[:SW] and field(out, HEADER) == 0x7


def test_unreadable_image_or_magic2_is_efault():
    mem, fp, _ = frame_memory()
    for cut in (SW + 10, 832 + 2):                       # software bytes, MAGIC2
        short = Memory(mem.base, mem.data[:fp - mem.base + cut])
        with pytest.raises(Errno) as e:
            restore_xstate(short, fp, current_image())
        assert e.value.code == errno.EFAULT


def test_reserved_mxcsr_bits_are_efault_in_either_form():
    for mxcsr in (0x1F80 | 1 << 16, 0x1F80 | 1 << 31):
        mem, fp, _ = frame_memory(xstate(fill=0x10, mxcsr=mxcsr))
        with pytest.raises(Errno):
            restore_xstate(mem, fp, current_image())
        struct.pack_into("<I", mem.data, fp - mem.base + SW, 0)     # legacy form: FXRSTOR
        with pytest.raises(Errno):
            restore_xstate(mem, fp, current_image())


def test_mxcsr_mask_zero_means_the_default_mask_0xffbf():
    mem, fp, _ = frame_memory(xstate(fill=0x10, mxcsr=0x1F80 | 0x40))    # DAZ
    assert field(restore_xstate(mem, fp, current_image(mxcsr_mask=0xFFFF)), MXCSR, "<I") \
        == 0x1FC0
    with pytest.raises(Errno):
        restore_xstate(mem, fp, current_image(mxcsr_mask=0))


def test_mxcsr_is_kept_when_neither_sse_nor_avx_is_restored():
    """XRSTOR loads MXCSR only for RFBM's SSE or AVX bit: an x87-only frame
    keeps the task's MXCSR, and its reserved bits do not fault."""
    mem, fp, _ = frame_memory(xstate(fill=0x10, mxcsr=0xFFFF_FFFF))
    mem.data[fp - mem.base + SW + 8:fp - mem.base + SW + 16] = struct.pack("<Q", XFEATURE_FP)
    cur = current_image(mxcsr=0x1F80)
    out = restore_xstate(mem, fp, cur)
    assert struct.unpack_from("<II", out, MXCSR) == (0x1F80, 0xFFFF)
    assert field(out, HEADER) == XFEATURE_FP
