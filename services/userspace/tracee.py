"""One traced host process that runs guest code, and the ptrace calls on it.

libc's ptrace through ctypes, Linux's constants and the register structure
(python-ptrace's would cost its package's import, ``ldconfig -p`` and all).
A tracee is always in one of these states: running; stopped in a trapped
system call (``SYSCALL``); or parked at the stub gadget's ``int3`` (or at the
exec event) after injected calls (``PARKED``).
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import struct


from common.ops import XSTATE_MAX
from services.userspace import seccomp, stub

log = logging.getLogger(__name__)

PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GETREGSET, PTRACE_SETREGSET = 0x4204, 0x4205
PTRACE_GETSIGINFO, PTRACE_GETEVENTMSG = 0x4202, 0x4201
NT_X86_XSTATE = 0x202
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACECLONE = 0x02, 0x04, 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000
PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC = 1, 2, 3, 4
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128
# Fork, vfork and clone events make the host attach a new child to us before
# its first instruction (DESIGN §3): a guest process is never untraced.
OPTIONS = (PTRACE_O_EXITKILL | PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEEXEC
           | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE)
FORK_EVENTS = (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE)

SECCOMP_STOP = signal.SIGTRAP | (PTRACE_EVENT_SECCOMP << 8)
EXEC_STOP = signal.SIGTRAP | (PTRACE_EVENT_EXEC << 8)

SYS_open, SYS_close, SYS_mmap, SYS_munmap, SYS_mprotect = 2, 3, 9, 11, 10
SYS_clone, SYS_execve, SYS_prctl, SYS_seccomp = 56, 59, 157, 317
SYS_pidfd_getfd = 438
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
ERESTARTSYS = -512            # a call cut short by our interrupt, to restart
PR_SET_NO_NEW_PRIVS, PR_SET_MM, PR_SET_MM_MAP = 38, 35, 14
SECCOMP_SET_MODE_FILTER = 1
O_RDONLY_CLOEXEC = 0o2000000
O_RDWR_CLOEXEC = 0o2000002
MAP_PRIVATE, MAP_FIXED = 0x02, 0x10
U64 = (1 << 64) - 1

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
_ptrace.restype = ctypes.c_long

RUNNING, SYSCALL, PARKED = "running", "syscall", "parked"
ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")


class user_regs_struct(ctypes.Structure):
    """x86_64's registers as PTRACE_GETREGS reads them (Linux's
    arch/x86/include/asm/user_64.h).  Not python-ptrace's: importing its
    package runs `ldconfig -p`, about 30 ms of every userspace start."""
    _fields_ = [(name, ctypes.c_ulong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
        "gs_base", "ds", "es", "fs", "gs")]


REGS = tuple(name for name, _ in user_regs_struct._fields_)


class _iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_vm_writev = _libc.process_vm_writev
_vm_writev.argtypes = (ctypes.c_int, ctypes.POINTER(_iovec), ctypes.c_ulong,
                       ctypes.POINTER(_iovec), ctypes.c_ulong, ctypes.c_ulong)
_vm_writev.restype = ctypes.c_ssize_t


class TraceeGone(Exception):
    """The host process died (or was tampered with and killed) mid-operation."""


class Overdue(Exception):
    """A tracee did not reach the stop userspace waited for in time."""


class deadline:
    """Userspace never waits for a tracee without one: a wait that outlasts
    it raises Overdue (SIGALRM, which must reach this thread: zmq's block
    it).  Shorter than the kernel's patience with a silent userspace, so an
    overdue task is killed before its whole guest would be.  One object can
    be entered again and again (two setitimer calls each time)."""

    active = False            # a SIGALRM that comes late finds none: ignored

    def __init__(self, seconds: float):
        self.seconds = seconds
        if signal.getsignal(signal.SIGALRM) is not _overdue:
            signal.signal(signal.SIGALRM, _overdue)

    def __enter__(self) -> None:
        deadline.active = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *_) -> None:
        deadline.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _overdue(_signo, _frame) -> None:
    if deadline.active:
        raise Overdue()


def _call(request: int, pid: int, addr: int = 0, data=None) -> None:
    if _ptrace(request, pid, addr, data) == -1:
        err = ctypes.get_errno()
        if err == 3:  # ESRCH: gone or not stopped
            raise TraceeGone(pid)
        raise OSError(err, f"ptrace({request}) on {pid}: {os.strerror(err)}")


def signed(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


class NotInCall(Exception):
    """An order to finish a system call for a tracee stopped in none."""


class Tracee:
    """A host process running a guest task, stopped or running."""

    def __init__(self, task: int, pid: int):
        self.task = task
        self.pid = pid
        self.tgid = pid                    # its host thread group (leader's pid)
        self.state = PARKED
        self.regs = user_regs_struct()     # at the last stop
        self.syscall_regs: user_regs_struct | None = None
        self.mem_fd = -1
        self.request_id = 0                # the kernel request this stop belongs to
        self.vdso = 0
        self.stack_top = 0                 # where the host put the stub's stack
        self.interrupting = False          # PTRACE_INTERRUPT sent, its stop not seen
        self.listener = -1                 # a spawned stub's seccomp listener, until sent on
        self.scratch: stub.Scratch | None = None   # mapped at stub.SCRATCH (prepare)

    # --- basic ptrace -------------------------------------------------
    def getregs(self) -> user_regs_struct:
        _call(PTRACE_GETREGS, self.pid, 0, ctypes.addressof(self.regs))
        return self.regs

    def setregs(self, regs: user_regs_struct) -> None:
        _call(PTRACE_SETREGS, self.pid, 0, ctypes.addressof(regs))

    def cont(self, sig: int = 0) -> None:
        self.state = RUNNING
        self.interrupting = False
        _call(PTRACE_CONT, self.pid, 0, sig)

    def interrupt(self) -> None:
        """Ask a running tracee to stop (PTRACE_INTERRUPT): a trap stop follows."""
        if self.state == RUNNING and not self.interrupting:
            self.interrupting = True
            _call(PTRACE_INTERRUPT, self.pid, 0, 0)

    def siginfo(self) -> tuple[int, int]:
        """si_code and si_addr of the signal the tracee is stopped with."""
        buf = ctypes.create_string_buffer(128)
        _call(PTRACE_GETSIGINFO, self.pid, 0, ctypes.addressof(buf))
        code, = struct.unpack_from("<i", buf.raw, 8)
        addr, = struct.unpack_from("<Q", buf.raw, 16)
        return code, addr

    def context(self) -> dict:
        """Every user register and the xsave image (FPU, SSE, AVX ...) at this
        stop: what a signal frame saves."""
        # In a system call (even parked after injecting for it) the guest's
        # registers are those it made the call with, not the gadget's.
        regs = self.syscall_regs if self.syscall_regs is not None else self.getregs()
        buf = ctypes.create_string_buffer(XSTATE_MAX)
        iov = _iovec(ctypes.addressof(buf), XSTATE_MAX)
        _call(PTRACE_GETREGSET, self.pid, NT_X86_XSTATE, ctypes.addressof(iov))
        return {"regs": {name: getattr(regs, name) for name in REGS},
                "xstate": buf.raw[:iov.len]}

    def set_context(self, regs: dict, xstate: bytes | None) -> None:
        """Load registers (and the xsave image), so that the tracee runs on
        from there when resumed; a pending system call is skipped."""
        new = user_regs_struct()
        for name in REGS:
            setattr(new, name, regs[name] & U64)
        new.orig_rax = U64
        self.setregs(new)
        if xstate is not None:
            buf = ctypes.create_string_buffer(xstate, len(xstate))
            iov = _iovec(ctypes.addressof(buf), len(xstate))
            _call(PTRACE_SETREGSET, self.pid, NT_X86_XSTATE, ctypes.addressof(iov))

    def wait(self, wait_group=None) -> int:
        """The next event of this host pid; with wait_group, of it or of its
        group's leader, whose pid an exec makes its own."""
        if wait_group is None:
            try:
                pid, status = os.waitpid(self.pid, os.__dict__.get("__WALL", 0x40000000))
            except ChildProcessError:
                raise TraceeGone(self.pid) from None
        else:
            pid, status = wait_group(self.pid, self.tgid)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.exit_status = status
            raise TraceeGone(self.pid)
        if pid != self.pid and status >> 8 == EXEC_STOP:
            self.pid = pid               # the exec made it the leader
        return status >> 8

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # --- memory ---------------------------------------------------------
    def poke(self, addr: int, data: bytes) -> None:
        """Write guest memory: process_vm_writev (no fd to open: a fork's
        CHILD_SETTID word costs one call), or /proc/PID/mem for what that
        refuses (read-only pages, which the mem file may write)."""
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        local, remote = _iovec(ctypes.addressof(buf), len(data)), _iovec(addr, len(data))
        if _vm_writev(self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) == len(data):
            return
        if self.mem_fd < 0:
            self.mem_fd = os.open(f"/proc/{self.pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        if os.pwrite(self.mem_fd, data, addr) != len(data):
            raise OSError(14, f"short write to guest memory at {addr:#x}")

    def close(self) -> None:
        """Drop the /proc/PID/mem fd: it pins one mm, so exec must drop it too."""
        if self.mem_fd >= 0:
            os.close(self.mem_fd)
            self.mem_fd = -1

    def stopped_in_call(self) -> None:
        """At a stop outside a trapped call: if it cut a call short (one the
        kernel was serving through the listener, or a host futex wait), that
        call's registers, so that the kernel can still finish it (``finish``
        sets the result and keeps the host from restarting it)."""
        regs = self.getregs()
        cut = regs.rax == ERESTARTSYS & U64 and regs.orig_rax != U64
        self.syscall_regs = user_regs_struct.from_buffer_copy(regs) if cut else None

    # --- the syscall stop -------------------------------------------------
    def at_syscall(self) -> tuple[int, list[int]]:
        """Enter SYSCALL state: remember the registers, return (nr, args)."""
        regs = self.getregs()
        self.state = SYSCALL
        self.syscall_regs = user_regs_struct.from_buffer_copy(regs)
        return signed(regs.orig_rax), [getattr(regs, r) for r in ARG_REGS]

    def finish(self, value: int) -> None:
        """Complete the trapped call with value (skipping it on the host), resume;
        NotInCall if the tracee is stopped in none (a kernel's mistake)."""
        regs = self.syscall_regs
        if regs is None:
            raise NotInCall(f"task {self.task} is not stopped in a system call")
        regs.orig_rax = U64          # -1: the host skips (or does not restart) the call
        regs.rax = value & U64
        self.setregs(regs)
        self.cont()

    # --- injection --------------------------------------------------------
    def inject(self, nr: int, *args: int, wait_group=None) -> int:
        """Run one system call in the tracee and return its result.

        From a syscall stop the pending call itself becomes the injected one
        (returning to the gadget's int3); otherwise the tracee is pointed at the
        gadget.  The call ends only at the gadget's int3, having been exactly
        ours at the filter's stop; any other stop on the way (a second
        seccomp stop, a signal, a trap elsewhere) means guest code ran, and
        the task is killed: nothing the guest controls may run between an
        injected call and its end (docs/security.md).

        An execve (of the stub: exec_stub's) goes on, once the new image is
        there, to the stub's PREPARE code, and returns 0 once that made the
        address space ours (OSError if it could not).  An execve in a
        thread that is not its group's leader ends the other threads, and
        the thread carries on under the leader's pid: its events may come
        from either, so wait_group(pid, tgid) waits for both."""
        regs = user_regs_struct.from_buffer_copy(self.syscall_regs if self.state == SYSCALL
                                                 else self.regs)
        args = list(args) + [0] * (6 - len(args))
        for name, value in zip(ARG_REGS, args):
            setattr(regs, name, value & U64)
        if self.state == SYSCALL:
            regs.orig_rax, regs.rax, regs.rip = nr, nr, stub.GADGET_RETURN
            trapped = True
        else:
            regs.orig_rax, regs.rax, regs.rip = U64, nr, stub.GADGET
            trapped = False   # calls the filter allows (munmap ...) never stop here
        self.setregs(regs)
        _call(PTRACE_CONT, self.pid, 0, 0)
        stops, execd = 0, False
        while True:
            event = self.wait(wait_group)
            if event == SECCOMP_STOP and not trapped:
                got = self.getregs()
                if (got.rip != stub.GADGET_RETURN or got.orig_rax != nr
                        or [getattr(got, r) for r in ARG_REGS] != [a & U64 for a in args]):
                    self.hijacked(f"a seccomp stop for call {signed(got.orig_rax)} at "
                                  f"{got.rip:#x}")
                trapped = True
            elif event == signal.SIGTRAP:
                got = self.getregs()
                self.state = PARKED
                if execd:                  # PREPARE's end: the new image made ours
                    self.prepared(self.scratch, got.rip, signed(got.rax))
                    return 0
                if got.rip != stub.GADGET_TRAPPED:
                    self.hijacked(f"a trap at {got.rip:#x}")
                return signed(got.rax)
            elif event == EXEC_STOP and nr == SYS_execve and not execd:
                # The new image is the stub's: before anything else runs in
                # it, its PREPARE code (it ends at an int3 of its own).
                execd = True
                regs = self.getregs()
                regs.rip = stub.PREPARE
                self.setregs(regs)
            elif nr == SYS_clone and event & 0xFF == signal.SIGTRAP and event >> 8 in FORK_EVENTS:
                pass                                   # the child stops on its own
            elif self._ours(event, stops):
                stops += 1
            else:
                self.hijacked(f"stop {event:#x}")
            _call(PTRACE_CONT, self.pid, 0, 0)

    @staticmethod
    def _ours(event: int, stops: int) -> bool:
        """A stop userspace or the host made, not the guest: our interrupt's,
        or the host's group-stop of the first stub, a few at most."""
        return stops < 4 and (event & 0xFF == signal.SIGSTOP or event >> 8 == PTRACE_EVENT_STOP)

    def hijacked(self, what: str) -> None:
        """Guest code ran where only userspace's may: kill the task."""
        log.error("task %d: %s during an injected call: killing it", self.task, what)
        self.kill()
        raise TraceeGone(self.pid)

    def fork_in_place(self, flags: int, ctid: int, tls: int, vtid: int) -> int:
        """A fork (no shared memory, no new stack) done as the guest's own
        call, which then returns through the stub's fork code: the parent
        gets vtid and the child 0, both straight back at the call site, so
        the parent needs no stop after the clone.  The words that code pops
        (vtid, the argument registers the call overwrote, the return address)
        go on the caller's stack below its red zone, where a signal frame
        would not reach them either.  Returns the child's host pid, the
        parent running on; or -errno, the parent parked as after ``inject``.
        OSError if the stack cannot take the words."""
        regs = user_regs_struct.from_buffer_copy(self.syscall_regs)
        sp = regs.rsp - stub.FORK_SLOTS
        words = [vtid & U64] + [getattr(regs, r) for r in stub.FORK_WORDS[1:]]
        self.poke(sp, struct.pack(f"<{len(words)}Q", *words))
        regs.orig_rax = regs.rax = SYS_clone
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8 = flags & U64, 0, 0, ctid, tls
        regs.rip, regs.rsp = stub.FORK_RETURN, sp
        self.setregs(regs)
        _call(PTRACE_CONT, self.pid, 0, 0)
        stops = 0
        while True:
            event = self.wait()
            if event >> 8 == PTRACE_EVENT_FORK:
                pid = ctypes.c_ulong()
                _call(PTRACE_GETEVENTMSG, self.pid, 0, ctypes.addressof(pid))
                self.cont()
                return pid.value
            if event == signal.SIGTRAP:        # the fork code's int3: the clone failed
                got = self.getregs()
                if got.rip != stub.FORK_FAILED:
                    self.hijacked(f"a trap at {got.rip:#x}")
                self.state = PARKED
                return signed(got.rax)
            if not self._ours(event, stops):
                self.hijacked(f"stop {event:#x}")
            stops += 1
            _call(PTRACE_CONT, self.pid, 0, 0)

    def prepare(self, scratch: "stub.Scratch") -> None:
        """Make a fresh stub address space ours (the first stub's, parked):
        run the stub's PREPARE code, which maps the scratch and seals the
        stub's range, then find the stack and the vdso."""
        regs = user_regs_struct.from_buffer_copy(self.regs)
        regs.rip = stub.PREPARE
        self.setregs(regs)
        _call(PTRACE_CONT, self.pid, 0, 0)
        stops = 0
        while (event := self.wait()) != signal.SIGTRAP:
            if not self._ours(event, stops):
                self.hijacked(f"stop {event:#x}")
            stops += 1
            _call(PTRACE_CONT, self.pid, 0, 0)
        got = self.getregs()
        self.state = PARKED
        self.prepared(scratch, got.rip, signed(got.rax))

    def prepared(self, scratch: "stub.Scratch", rip: int, result: int) -> None:
        """PREPARE's end (at rip, with result in rax) checked; the layout found."""
        if rip == stub.UNPREPARED:
            raise OSError(-result, f"cannot map the stub's scratch: {os.strerror(-result)}")
        if rip != stub.PREPARED:
            self.hijacked(f"a trap at {rip:#x}")
        if result < 0 and not Tracee.unsealed_warned:
            Tracee.unsealed_warned = True
            log.warning("the host cannot seal the stub (mseal: %s; Linux 6.10 can): the "
                        "filter and the kernel still keep guest calls off it",
                        os.strerror(-result))
        self.scratch = scratch
        self.find_layout()

    unsealed_warned = False

    def write_scratch(self, offset: int, data: bytes) -> int:
        """Host data for an injected call, where no guest thread can change it."""
        return self.scratch.write(offset, data)

    def install_filter(self, notify: bool) -> int:
        """The filter; with notify, the one that sends NOTIFIED calls to a
        listener, which is taken out of the stub (it must hold no fd) and
        returned, or -1 if the host has no listeners (the filter then
        traps every call)."""
        if self.inject(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1) != 0:
            raise OSError("cannot set no_new_privs in the stub")
        if (notify and _libc.syscall(SYS_pidfd_getfd, -1, 0, 0) == -1
                and ctypes.get_errno() == errno.ENOSYS):
            log.warning("no pidfd_getfd here (Linux < 5.6): every call traps")
            notify = False             # the listener could not be taken out of the stub
        for listen in ((True, False) if notify else (False,)):
            code = seccomp.assemble(seccomp.program(listen))
            prog = self.write_scratch(64, code)
            # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
            fprog = self.write_scratch(0, struct.pack("<H6xQ", len(code) // 8, prog))
            flags = SECCOMP_FILTER_FLAG_NEW_LISTENER if listen else 0
            result = self.inject(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, fprog)
            if result >= 0:
                return self._take_fd(result) if listen else -1
            if not listen:
                raise OSError(-result, f"seccomp filter refused: {os.strerror(-result)}")
            log.warning("no seccomp listener here (%s): every call traps",
                        os.strerror(-result))
        return -1

    def _take_fd(self, fd: int) -> int:
        """Move host fd fd out of the stub into this process (pidfd_getfd)."""
        pidfd = os.pidfd_open(self.pid)
        try:
            mine = _libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
            err = ctypes.get_errno()
        finally:
            os.close(pidfd)
        try:
            self.inject(SYS_close, fd)
        except BaseException:
            if mine >= 0:
                os.close(mine)
            raise
        if mine < 0:
            raise OSError(err, f"cannot take the seccomp listener: {os.strerror(err)}")
        os.set_inheritable(mine, False)
        return mine


    def find_layout(self) -> None:
        """Where the host put the fresh stub's stack (randomized) and vdso.
        The stack's place becomes the guest's: exec maps the guest's stack
        over all of it (MAP_FIXED), and until then it holds only what the
        stub was started with: "stub", an empty environment, an auxv."""
        with open(f"/proc/{self.pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[stack]"):
                    self.stack_top = int(line.split("-", 1)[1].split()[0], 16)
                elif line.rstrip().endswith("[vdso]"):
                    self.vdso = int(line.split("-", 1)[0], 16)
