"""A terminal: its termios, window size, session and foreground process
group, its line discipline, and the open files of it (Linux's tty_struct
and tty_io.c, tty_jobctrl.c).

In a nutshell: a ``Tty`` is what a pty slave or the console is: input
goes in through its LineDiscipline, reads take it out (0 once it is
``ended``: the console with no input attached); writes go through
the discipline's output processing into ``output``, which the other end
(a pty master) takes.  Both are bounded, so a writer with nobody reading
waits.  One wait queue per terminal carries every change (input, output,
room, hang-up, foreground group); sleepers re-check.

Job control is Linux's: a session leader's open of a terminal nobody
controls makes it its controlling terminal (``Process.tty``) unless
O_NOCTTY; a background process group's read of its controlling terminal
gets SIGTTIN (EIO when ignored, blocked or orphaned), and its write with
TOSTOP, or its termios change, SIGTTOU; the signal characters go to the
foreground group.  Hang-up (``hangup``) sends SIGHUP and SIGCONT to the
session leader and leaves every open file of the terminal hung up: reads
end (0), writes are EIO."""
from __future__ import annotations

import asyncio
import errno
import struct

from services.kernel.core.cred import capable
from services.kernel.core.errors import Errno
from services.kernel.core.waitqueue import ALL_EVENTS, PollTable, WaitQueue
from services.kernel.drivers.tty.ldisc import LineDiscipline
from services.kernel.fs.vfs import OpenFile
from services.kernel.sched import signals
from services.kernel.sched.task import CURRENT
from services.kernel.abi.capability import CAP_SYS_ADMIN
from services.kernel.abi.fcntl import O_NONBLOCK
from services.kernel.abi.ioctls import (
    FIONREAD, TCFLSH, TCGETS, TCGETS2, TCSBRK, TCSBRKP, TCSETS, TCSETS2, TCSETSF, TCSETSF2,
    TCSETSW, TCSETSW2, TCXONC, TIOCCBRK, TIOCGETD, TIOCGPGRP, TIOCGSID, TIOCGWINSZ, TIOCNOTTY,
    TIOCOUTQ, TIOCSBRK, TIOCSCTTY, TIOCSPGRP, TIOCSWINSZ)
from services.kernel.abi.poll import (
    POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM)
from services.kernel.abi.signal import (
    SI_KERNEL, SIG_IGN, SIGCONT, SIGHUP, SIGTTIN, SIGTTOU, SIGWINCH)
from services.kernel.abi.termbits import (
    N_TTY, NOFLSH, TCIFLUSH, TCIOFF, TCIOFLUSH, TCION, TCOFLUSH, TCOOFF, TCOON, TOSTOP,
    VSTART, VSTOP)

OUTPUT_MAX = 8192        # what waits for the other end to read (a pty master)
ECHO_SLACK = 512         # echoes go in past a full output, up to this much, then drop
WIDEST = 8               # what one byte can become on output (a tab under XTABS)
C_INT = struct.Struct("<i")
WINSIZE = 8
_SETS = {TCSETS: (False, 0), TCSETSW: (False, 1), TCSETSF: (False, 2),
         TCSETS2: (True, 0), TCSETSW2: (True, 1), TCSETSF2: (True, 2)}


def kill_pgrp(kernel, pgid: int | None, sig: int) -> None:
    """sig from the kernel to every process of the group (Linux's kill_pgrp, priv)."""
    if pgid is None:
        return
    for p in list(kernel.processes.values()):
        if p.pgid == pgid and not p.zombie:
            signals.send_process(p, sig, {"code": SI_KERNEL})


class Tty:
    """One terminal of the guest's ``kernel``; a driver (a pty) subclasses it
    for what it keeps of termios and how /dev/tty reopens it."""

    def __init__(self, kernel, termios) -> None:
        self.kernel = kernel
        self.termios = termios
        self.winsize = bytes(WINSIZE)
        self.session: int | None = None   # the sid it controls
        self.pgrp: int | None = None      # the foreground process group
        self.ldisc = LineDiscipline(self)
        self.output = bytearray()
        self.stopped = False              # IXON's ^S, or tcflow(TCOOFF)
        self.hung_up = False
        self.ended = False                # no more input will come: reads end with 0
        self.waitq = WaitQueue()

    # --- what the line discipline calls ------------------------------------------
    def echo(self, data: bytes) -> None:
        """Output nobody writes (echoes, tcflow's STOP and START): it goes in
        past a full buffer, up to ECHO_SLACK, and is dropped beyond."""
        out, _ = self.ldisc.opost(data, max(OUTPUT_MAX + ECHO_SLACK - len(self.output), 0))
        self.put_output(out)

    def isig(self, sig: int) -> None:
        kill_pgrp(self.kernel, self.pgrp, sig)
        if not self.termios.lflag & NOFLSH:
            self.ldisc.flush()

    def flow(self, stopped: bool) -> None:
        if self.stopped != stopped:
            self.stopped = stopped
            self.wake()

    def fixup(self, termios) -> None:
        """What the driver keeps of a new termios (a pty: its cflag)."""

    device = 0        # its device number as /proc/PID/stat's tty_nr gives it

    # --- the two ends --------------------------------------------------------------
    def wake(self) -> None:
        self.waitq.wake(ALL_EVENTS)

    def put_output(self, data: bytes) -> None:
        if data:
            self.output += data
            self.wake()

    def take_output(self, count: int) -> bytes:
        out = bytes(self.output[:count])
        del self.output[:count]
        self.wake()
        return out

    def receive(self, data: bytes) -> int:
        """Typed bytes in (a pty master's write); how many were taken."""
        n = self.ldisc.receive(data)
        self.wake()
        return n

    def output_room(self) -> int:
        return 0 if self.stopped else max(OUTPUT_MAX - len(self.output), 0)

    def writable(self) -> bool:
        return self.output_room() >= WIDEST

    # --- sessions ------------------------------------------------------------------
    def set_ctty(self, proc) -> None:
        """proc (a session leader) controls it now (Linux's __proc_set_tty)."""
        self.session, self.pgrp = proc.sid, proc.pgid
        proc.tty = self
        self.wake()

    def clear_session(self) -> None:
        """No session has it any more, and no process as its terminal."""
        for p in self.kernel.processes.values():
            if p.tty is self:
                p.tty = None
        self.session = self.pgrp = None
        self.wake()

    def disassociate(self, proc, on_exit: bool) -> None:
        """A session leader lets its terminal go (TIOCNOTTY, or its exit):
        SIGHUP to the foreground group, and SIGCONT unless it exits."""
        pgrp = self.pgrp
        self.clear_session()
        kill_pgrp(self.kernel, pgrp, SIGHUP)
        if not on_exit:
            kill_pgrp(self.kernel, pgrp, SIGCONT)

    def hangup(self) -> None:
        """The line is gone (a pty's master closed): SIGHUP and SIGCONT to
        the leaders of the session it controls, every open file hung up."""
        if self.hung_up:
            return
        self.hung_up = True
        leaders = [p for p in self.kernel.processes.values()
                   if p.tty is self and p.sid == p.pid and not p.zombie]
        self.clear_session()
        for p in leaders:
            signals.send_process(p, SIGHUP, {"code": SI_KERNEL})
            signals.send_process(p, SIGCONT, {"code": SI_KERNEL})
        self.wake()


async def job_control(t, tty: Tty, sig: int) -> None:
    """Linux's __tty_check_change: a process of a background group that
    reads (SIGTTIN) or writes (SIGTTOU) its controlling terminal gets the
    signal and waits; ignored or blocked, SIGTTIN is EIO and SIGTTOU lets
    it through; an orphaned group gets EIO.  A handler cuts the wait short
    (the call restarts or is EINTR as the handler's flags say)."""
    if t is None:
        return                      # the kernel's own use
    proc = t.process
    while proc.tty is tty and tty.pgrp is not None and proc.pgid != tty.pgrp:
        if t.sigmask & signals.bit(sig) or signals.handler_of(proc, sig) == SIG_IGN:
            if sig == SIGTTIN:
                raise Errno(errno.EIO)
            return
        if signals.orphaned(proc):
            raise Errno(errno.EIO)
        kill_pgrp(t.kernel, proc.pgid, sig)
        table = PollTable()
        table.add(proc.continued)
        table.add(tty.waitq)
        try:
            await table.sleep(None)     # continued, or the group is in front
        finally:
            table.close()


async def _wait(tty: Tty, f: OpenFile, deadline: float | None = None) -> None:
    """Sleep until the terminal changes (EAGAIN for a nonblocking file), or
    the caller's process is continued after a stop (Linux's reader would
    restart then, and meet job control again)."""
    if f.flags & O_NONBLOCK:
        raise Errno(errno.EAGAIN)
    table = PollTable()
    table.add(tty.waitq)
    t = CURRENT.get()
    if t is not None:
        table.add(t.process.continued)
    try:
        await table.sleep(deadline)
    finally:
        table.close()


async def read_input(tty: Tty, f: OpenFile, count: int) -> bytes:
    """A read of the terminal's input: a line when canonical, else as VMIN
    and VTIME say (MIN bytes, or TIME tenths of a second after the last
    one; MIN 0: whatever is there within TIME).  EIO once the other end is
    gone, for a reader it finds waiting."""
    ld = tty.ldisc
    if ld.canonical:
        while not ld.lines:
            if tty.hung_up:
                raise Errno(errno.EIO)
            if tty.ended:
                return b""
            await _wait(tty, f)
            await job_control(CURRENT.get(), tty, SIGTTIN)
            if not ld.canonical:
                return await read_input(tty, f, count)
        out = ld.take_line(count)
        tty.wake()
        return out
    loop = asyncio.get_running_loop()
    vmin, vtime = tty.termios.cc[6], tty.termios.cc[5] / 10
    deadline = loop.time() + vtime if vtime and not vmin else None
    out = bytearray()
    try:
        while True:
            if ld.raw:
                out += ld.take_raw(count - len(out))
                tty.wake()
                if vtime and vmin:
                    deadline = loop.time() + vtime      # the timer runs between bytes
            if len(out) >= min(vmin or 1, count) or not vmin and not vtime:
                return bytes(out)
            if deadline is not None and loop.time() >= deadline:
                return bytes(out)
            if tty.hung_up:
                if out:
                    return bytes(out)
                raise Errno(errno.EIO)
            if tty.ended:
                return bytes(out)
            if ld.canonical:
                return bytes(out) if out else await read_input(tty, f, count)
            if out and f.flags & O_NONBLOCK:
                return bytes(out)
            await _wait(tty, f, deadline)
            if not out:
                await job_control(CURRENT.get(), tty, SIGTTIN)
    except asyncio.CancelledError:
        if out:
            return bytes(out)
        raise


async def write_output(tty: Tty, f: OpenFile, read, total: int) -> int:
    """A write to the terminal, through its output processing, as its
    output buffer has room; a signal, O_NONBLOCK or a bad address after
    some bytes ends it with their count."""
    done = 0
    while done < total:
        try:
            if tty.hung_up:
                raise Errno(errno.EIO)
            if not tty.writable():      # room for the next byte, whatever it becomes
                await _wait(tty, f)
                continue
            room = tty.output_room()
            data = read(done, min(total - done, room))
        except (Errno, asyncio.CancelledError):
            if done:
                return done
            raise
        out, n = tty.ldisc.opost(data, room)
        tty.put_output(out)
        done += n
    return done


class TtyFile(OpenFile):
    """An open terminal (a pty slave, or /dev/tty naming one)."""

    def __init__(self, tty: Tty, loc, flags: int):
        super().__init__(loc, flags)
        self.tty = tty

    @property
    def gone(self) -> bool:
        """Whether it was open when its terminal hung up (hung_up_tty_fops)."""
        return self.tty.hung_up

    async def read(self, count: int, offset: int | None = None) -> bytes:
        if self.gone:
            return b""
        await job_control(CURRENT.get(), self.tty, SIGTTIN)
        if not count:
            return b""
        return await read_input(self.tty, self, count)

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        tty = self.tty
        if self.gone:
            raise Errno(errno.EIO)
        if tty.termios.lflag & TOSTOP:
            await job_control(CURRENT.get(), tty, SIGTTOU)
        return await write_output(tty, self, read, total)

    def poll(self, table=None) -> int:
        tty = self.tty
        if table is not None:
            table.add(tty.waitq)
        if self.gone:
            return POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLERR | POLLHUP
        mask = POLLIN | POLLRDNORM if tty.ldisc.readable() or tty.ended else 0
        if tty.writable():
            mask |= POLLOUT | POLLWRNORM
        return mask

    async def ioctl(self, task, request: int, arg: int) -> int:
        if self.gone:
            raise Errno(errno.ENOTTY if request == TIOCSPGRP else errno.EIO)
        return await tty_ioctl(task, self, self.tty, False, request, arg)


def _is_ctty(t, tty: Tty) -> bool:
    return t.process.tty is tty


async def tty_ioctl(t, f: OpenFile, tty: Tty, master: bool, request: int, arg: int) -> int:
    """The terminal ioctls (tty_ioctl and n_tty_ioctl), on the terminal
    itself or, from a pty master, on its slave (tty): the master side
    answers for the slave, as Linux's real_tty."""
    mem = t.mem
    if request in (TCGETS, TCGETS2):
        mem.write(arg, tty.termios.pack(request == TCGETS2))
        return 0
    if request in _SETS:
        two, how = _SETS[request]
        await job_control(t, tty, SIGTTOU)
        new = tty.termios.unpacked(mem.read(arg, tty.termios.size(two)), two)
        if how == 2:
            tty.ldisc.flush()
        set_termios(tty, new)
        return 0
    if request in (TCSBRK, TCSBRKP):
        await job_control(t, tty, SIGTTOU)
        return 0                   # no line to break: a pty's break_ctl is none
    if request in (TIOCSBRK, TIOCCBRK):
        return 0
    if request == TCXONC:
        await job_control(t, tty, SIGTTOU)
        if arg in (TCOOFF, TCOON):
            tty.flow(arg == TCOOFF)
        elif arg in (TCIOFF, TCION):
            tty.echo(bytes([tty.termios.cc[VSTOP if arg == TCIOFF else VSTART]]))
        else:
            raise Errno(errno.EINVAL)
        return 0
    if request == TCFLSH:
        await job_control(t, tty, SIGTTOU)
        if arg not in (TCIFLUSH, TCOFLUSH, TCIOFLUSH):
            raise Errno(errno.EINVAL)
        flush_in = arg in (TCIFLUSH, TCIOFLUSH)
        flush_out = arg in (TCOFLUSH, TCIOFLUSH)
        if master:                 # the master's input is the slave's output
            flush_in, flush_out = flush_out, flush_in
        if flush_in:
            tty.ldisc.flush()
        if flush_out:
            tty.output.clear()
        tty.wake()
        return 0
    if request == FIONREAD:
        n = len(tty.output) if master else tty.ldisc.inq()
        mem.write(arg, C_INT.pack(n))
        return 0
    if request == TIOCOUTQ:
        mem.write(arg, C_INT.pack(0))     # a pty holds nothing on its way out
        return 0
    if request == TIOCGETD:
        mem.write(arg, C_INT.pack(N_TTY))
        return 0
    if request == TIOCGWINSZ:
        mem.write(arg, tty.winsize)
        return 0
    if request == TIOCSWINSZ:
        ws = mem.read(arg, WINSIZE)
        if ws != tty.winsize:
            tty.winsize = ws
            kill_pgrp(t.kernel, tty.pgrp, SIGWINCH)
        return 0
    if request in (TIOCGPGRP, TIOCGSID):
        if not master and not _is_ctty(t, tty):
            raise Errno(errno.ENOTTY)
        value = tty.pgrp if request == TIOCGPGRP else tty.session
        if value is None and request == TIOCGSID:
            raise Errno(errno.ENOTTY)
        mem.write(arg, C_INT.pack(value or 0))
        return 0
    if request == TIOCSPGRP:
        return await _set_pgrp(t, tty, arg)
    if request == TIOCSCTTY:
        return _set_ctty(t, f, tty, arg)
    if request == TIOCNOTTY:
        if master or not _is_ctty(t, tty):
            raise Errno(errno.ENOTTY)
        proc = t.process
        if proc.sid == proc.pid:
            tty.disassociate(proc, on_exit=False)
        proc.tty = None
        return 0
    raise Errno(errno.ENOTTY)


def set_termios(tty: Tty, new) -> None:
    old = tty.termios
    tty.fixup(new)
    tty.termios = new
    tty.ldisc.set_termios(old)
    tty.wake()


async def _set_pgrp(t, tty: Tty, arg: int) -> int:
    try:
        await job_control(t, tty, SIGTTOU)
    except Errno as e:
        raise Errno(errno.ENOTTY if e.code == errno.EIO else e.code) from None
    pgrp = C_INT.unpack(t.mem.read(arg, 4))[0]
    if pgrp < 0:
        raise Errno(errno.EINVAL)
    if not _is_ctty(t, tty) or tty.session != t.sid:
        raise Errno(errno.ENOTTY)
    members = [p for p in t.kernel.processes.values() if p.pgid == pgrp and not p.reaped]
    if not members:
        raise Errno(errno.ESRCH)
    if members[0].sid != t.sid:
        raise Errno(errno.EPERM)
    tty.pgrp = pgrp
    tty.wake()
    return 0


def _set_ctty(t, f: OpenFile, tty: Tty, arg: int) -> int:
    """TIOCSCTTY: a session leader without a terminal takes this one; one
    another session controls is taken only with arg 1 and CAP_SYS_ADMIN."""
    proc = t.process
    leader = proc.sid == proc.pid
    if leader and tty.session == proc.sid:
        return 0
    if not leader or proc.tty is not None:
        raise Errno(errno.EPERM)
    if tty.session is not None:
        if arg == 1 and capable(t.cred, CAP_SYS_ADMIN):
            tty.clear_session()
        else:
            raise Errno(errno.EPERM)
    if not f.readable and not capable(t.cred, CAP_SYS_ADMIN):
        raise Errno(errno.EPERM)
    tty.set_ctty(proc)
    return 0


def open_ctty(t, tty: Tty, noctty: bool) -> None:
    """An open of a terminal by a session leader with none takes it as its
    controlling terminal, if no session has it and O_NOCTTY is not given."""
    proc = t.process
    if not noctty and proc.sid == proc.pid and proc.tty is None and tty.session is None:
        tty.set_ctty(proc)
