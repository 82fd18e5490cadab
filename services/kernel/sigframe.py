"""The x86_64 signal frame (Linux's struct rt_sigframe), built and read back.

In a nutshell: below the interrupted stack pointer (less the 128-byte red
zone, or at the top of the alternate stack) go the xsave image (64-aligned,
with the FP_XSTATE magics that tell sigreturn its size) and then the frame:
the restorer's address as the return address, a ucontext (flags, link, the
altstack, the sigcontext with every register, the mask to restore) and the
siginfo.  The handler is entered with rdi=sig, rsi=&info, rdx=&uc, and the
stack 16-byte aligned minus 8, as after a call.  rt_sigreturn, trapped to
the kernel, reads the ucontext back."""
from __future__ import annotations

import struct

RED_ZONE = 128
FRAME = struct.Struct("<Q" "QQ" "QIIQ" "32Q" "Q")    # pretcode, uc head, stack, mcontext, mask
SIGINFO_SIZE = 128
FRAME_SIZE = FRAME.size + SIGINFO_SIZE              # 440, as Linux
UC_OFFSET, INFO_OFFSET = 8, FRAME.size
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
SW_RESERVED = 464                                   # fx_sw_bytes in the legacy area
XSTATE_BV = 512                                     # the xsave header
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
EFLAGS_TF, EFLAGS_DF, EFLAGS_RF = 0x100, 0x400, 0x10000
# sigcontext order
MCONTEXT = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx",
            "rdx", "rax", "rcx", "rsp", "rip", "eflags")
ALTSTACK = struct.Struct("<QIIQ")                   # ss_sp, ss_flags, pad, ss_size


def on_stack(altstack: bytes, sp: int) -> bool:
    ss_sp, flags, _, size = ALTSTACK.unpack(altstack)
    return not flags & SS_DISABLE and size and ss_sp < sp <= ss_sp + size


def build(regs: dict, xstate: bytes, sig: int, info: bytes, handler: int, restorer: int,
          onstack: bool, altstack: bytes, saved_mask: int, fault_addr: int = 0
          ) -> tuple[int, bytes, dict]:
    """(address, bytes to write there, registers to enter the handler with)."""
    ss_sp, ss_flags, _, ss_size = ALTSTACK.unpack(altstack)
    sp = regs["rsp"]
    was_on = on_stack(altstack, sp)
    if onstack and not ss_flags & SS_DISABLE and ss_size and not was_on:
        sp = ss_sp + ss_size
    else:
        sp -= RED_ZONE
    fp = (sp - len(xstate) - 4) & ~63
    frame = ((fp - FRAME_SIZE) & ~15) - 8
    x = bytearray(xstate)
    if len(x) > SW_RESERVED + 48:
        xfeatures = struct.unpack_from("<Q", x, XSTATE_BV)[0] if len(x) > XSTATE_BV else 3
        struct.pack_into("<IIQI", x, SW_RESERVED, FP_XSTATE_MAGIC1, len(x) + 4,
                         xfeatures | 3, len(x))
    if ss_flags & SS_DISABLE or not ss_size:
        uc_stack_flags = SS_DISABLE
    else:
        uc_stack_flags = (SS_ONSTACK if was_on else 0) | ss_flags & SS_AUTODISARM
    segs = regs["cs"] | regs["gs"] << 16 | regs["fs"] << 32 | regs["ss"] << 48
    mcontext = [regs[r] for r in MCONTEXT] + [segs, 0, 14 if fault_addr else 0,
                                              saved_mask, fault_addr, fp] + [0] * 8
    head = FRAME.pack(restorer, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0,
                      ss_sp, uc_stack_flags, 0, ss_size, *mcontext, saved_mask)
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
    new["eflags"] = (regs["eflags"] & ~0x40DD5) | (new["eflags"] & 0x40DD5)  # FIX_EFLAGS
    return new, fields[39], ss, mc[23]
