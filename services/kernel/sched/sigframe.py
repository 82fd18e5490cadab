"""The x86_64 signal frame (Linux's struct rt_sigframe), built and read back.

In a nutshell: below the interrupted stack pointer (less the 128-byte red
zone, or at the top of the alternate stack) go the xsave image (64-aligned,
with the FP_XSTATE magics that tell sigreturn its size) and then the frame:
the restorer's address as the return address, a ucontext (flags, link, the
altstack, the sigcontext with every register, the mask to restore) and the
siginfo.  The handler is entered with rdi=sig, rsi=&info, rdx=&uc, and the
stack 16-byte aligned minus 8, as after a call.  rt_sigreturn, trapped to
the kernel, reads the ucontext back.

Addresses are computed as Linux computes them, modulo 2^64: a frame that
would overflow the alternate stack is EFAULT here, one that wraps or leaves
user space is EFAULT when written, and either is SIGSEGV for the task
(signal.deliver)."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.arch import U64
from services.kernel.abi.signal import SS_AUTODISARM, SS_DISABLE, SS_ONSTACK
from services.kernel.core.errors import Errno

RED_ZONE = 128
FRAME = struct.Struct("<Q" "QQ" "QIIQ" "32Q" "Q")    # pretcode, uc head, stack, mcontext, mask
SIGINFO_SIZE = 128
FRAME_SIZE = FRAME.size + SIGINFO_SIZE              # 440, as Linux
UC_OFFSET, INFO_OFFSET = 8, FRAME.size
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
SW_RESERVED = 464                                   # fx_sw_bytes in the legacy area
SW_BYTES = struct.Struct("<IIQI")                   # magic1, extended_size, xfeatures, xstate_size
XSTATE_BV = 512                                     # the xsave header
HEADER_END = XSTATE_BV + 64
LEGACY = 512                                        # x87 and SSE: FXSAVE's area
MXCSR = 24                                          # MXCSR and MXCSR_MASK in the legacy area
FPSSE, SSE_AVX = 0x3, 0x6                           # xfeatures bits
EFLAGS_TF, EFLAGS_DF, EFLAGS_RF = 0x100, 0x400, 0x10000
# sigcontext order
MCONTEXT = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
            "rdx", "rax", "rcx", "rsp", "rip", "eflags")
ALTSTACK = struct.Struct("<QIIQ")                   # ss_sp, ss_flags, pad, ss_size


def within(altstack: bytes, sp: int) -> bool:
    """Linux's __on_sig_stack: sp above the stack's base and at most its top."""
    ss_sp, _, _, size = ALTSTACK.unpack(altstack)
    return ss_sp < sp <= ss_sp + size


def on_stack(altstack: bytes, sp: int) -> bool:
    """Linux's on_sig_stack: sp within the stack, which is never so for an
    SS_AUTODISARM one (a handler runs on it disarmed, so a thread found on
    it armed put itself there: a new frame starts again at its top)."""
    flags = ALTSTACK.unpack(altstack)[1]
    return not flags & (SS_DISABLE | SS_AUTODISARM) and within(altstack, sp)


def sas_ss_flags(altstack: bytes, sp: int) -> int:
    """Linux's sas_ss_flags: SS_DISABLE without a stack (size 0, which
    sigaltstack gives every disabled one), else SS_ONSTACK if sp is on it."""
    _, flags, _, size = ALTSTACK.unpack(altstack)
    if flags & SS_DISABLE or not size:
        return SS_DISABLE
    return SS_ONSTACK if on_stack(altstack, sp) else 0


def build(regs: dict, xstate: bytes, sig: int, info: bytes, handler: int, restorer: int,
          onstack: bool, altstack: bytes, saved_mask: int, fault_addr: int = 0
          ) -> tuple[int, bytes, dict]:
    """(address, bytes to write there, registers to enter the handler with);
    EFAULT if the frame would overflow the alternate stack (Linux's
    get_sigframe; one past user space is EFAULT when written).  uc_stack
    holds the stack as the thread set it, its flags too (Linux's
    unsafe_save_altstack writes sas_ss_flags)."""
    ss_sp, ss_flags, _, ss_size = ALTSTACK.unpack(altstack)
    nested = on_stack(altstack, regs["rsp"])
    sp = (regs["rsp"] - RED_ZONE) & U64
    # as Linux, whether to enter the stack is asked below the red zone
    entering = onstack and sas_ss_flags(altstack, sp) == 0
    if entering:
        sp = (ss_sp + ss_size) & U64
    fp = (sp - len(xstate) - 4) & ~63 & U64
    frame = (((fp - FRAME_SIZE) & ~15) - 8) & U64
    if (nested or entering) and not within(altstack, frame):
        raise Errno(errno.EFAULT)
    x = bytearray(xstate)
    if len(x) > SW_RESERVED + 48:     # the features enabled: ptrace gives XCR0 there
        struct.pack_into("<IIQI", x, SW_RESERVED, FP_XSTATE_MAGIC1, len(x) + 4,
                         struct.unpack_from("<Q", x, SW_RESERVED)[0] | FPSSE, len(x))
    segs = regs["cs"] | regs["ss"] << 48        # gs and fs 0, as Linux writes them
    mcontext = [regs[r] for r in MCONTEXT] + [segs, 0, 14 if fault_addr else 0,
                                              saved_mask, fault_addr, fp] + [0] * 8
    head = FRAME.pack(restorer, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0,
                      ss_sp, ss_flags, 0, ss_size, *mcontext, saved_mask)
    data = (head + info.ljust(SIGINFO_SIZE, b"\0")).ljust(fp - frame, b"\0")
    data += bytes(x) + struct.pack("<I", FP_XSTATE_MAGIC2)
    entry = dict(regs)
    entry.update(rip=handler, rsp=frame, rdi=sig, rsi=frame + INFO_OFFSET,
                 rdx=frame + UC_OFFSET, rax=0,
                 eflags=regs["eflags"] & ~(EFLAGS_TF | EFLAGS_DF | EFLAGS_RF))
    return frame, data, entry


def parse(raw: bytes, regs: dict) -> tuple[dict, int, bytes, int]:
    """Read a frame back at rt_sigreturn (raw starts at the ucontext):
    (registers, mask, uc_stack, fpstate address)."""
    fields = FRAME.unpack(b"\0" * 8 + raw[:FRAME.size - 8])
    ss = ALTSTACK.pack(fields[3], fields[4], 0, fields[6])
    mc = fields[7:39]
    new = dict(regs)
    new.update(zip(MCONTEXT, mc[:18]))
    segs = mc[18]
    new["cs"], new["ss"] = segs & 0xFFFF, (segs >> 48) & 0xFFFF
    if new["cs"] != 0x33:
        new["cs"] = 0x33
    if new["ss"] != 0x2B:
        new["ss"] = 0x2B
    # Linux's FIX_EFLAGS (asm/sighandling.h): AC OF DF TF SF ZF AF PF CF and RF
    new["eflags"] = (regs["eflags"] & ~0x50DD5) | (new["eflags"] & 0x50DD5)
    new["orig_rax"] = U64        # no system call to restart, as Linux's restore_sigcontext
    return new, fields[39], ss, mc[23]


def restore_xstate(mem, fpstate: int, current: bytes) -> bytes:
    """The xsave image rt_sigreturn loads from the frame's fpstate, as
    Linux's fpu__restore_sig takes it (current: the task's own image from
    ptrace, for its size, XCR0 and MXCSR mask).  With both magics and a
    size that fits, the components the frame names (of those enabled) and
    the rest in their initial state; otherwise the legacy area alone.
    EFAULT (SIGSEGV for the task) where XRSTOR or FXRSTOR would fault:
    memory it cannot read, XCOMP_BV or header bytes 16-23 set, a component
    XCR0 does not enable, reserved MXCSR bits.  The header bytes XRSTOR
    ignores (and ptrace refuses) are cleared."""
    size = len(current)
    xcr0 = struct.unpack_from("<Q", current, SW_RESERVED)[0]
    magic1, extended, xfeatures, xsize = SW_BYTES.unpack(mem.read(fpstate + SW_RESERVED,
                                                                  SW_BYTES.size))
    full = (magic1 == FP_XSTATE_MAGIC1 and HEADER_END <= xsize <= min(size, extended)
            and mem.read(fpstate + xsize, 4) == struct.pack("<I", FP_XSTATE_MAGIC2))
    out = bytearray(current)
    if full:
        out[:] = mem.read(fpstate, size)
        rfbm = xfeatures & xcr0
        xstate_bv, xcomp_bv, reserved = struct.unpack_from("<QQQ", out, XSTATE_BV)
        if xcomp_bv or reserved or xstate_bv & ~xcr0:
            raise Errno(errno.EFAULT)
        out[XSTATE_BV:HEADER_END] = struct.pack("<Q", xstate_bv & rfbm).ljust(64, b"\0")
    else:
        out[:LEGACY] = mem.read(fpstate, LEGACY)
        out[XSTATE_BV:HEADER_END] = struct.pack("<Q", FPSSE).ljust(64, b"\0")
        rfbm = FPSSE
    mxcsr, = struct.unpack_from("<I", out, MXCSR)
    own_mxcsr, mask = struct.unpack_from("<II", current, MXCSR)
    if rfbm & SSE_AVX and mxcsr & ~(mask or 0xFFBF):
        raise Errno(errno.EFAULT)
    struct.pack_into("<II", out, MXCSR, mxcsr if rfbm & SSE_AVX else own_mxcsr, mask)
    out[SW_RESERVED:LEGACY] = current[SW_RESERVED:LEGACY]
    return bytes(out)
