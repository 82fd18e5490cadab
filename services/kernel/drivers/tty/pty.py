"""Pseudo-terminals: /dev/ptmx opens a master, /dev/pts/N its slave
(Linux's pty.c, the Unix98 kind).

In a nutshell: a ``Pty`` is a slave ``Tty`` and what its master side
needs: the master's writes are the slave's typed input, the master's
reads take the slave's processed output.  Termios, window size and
foreground-group ioctls on the master act on the slave, as Linux's.  A
new pty is locked (TIOCSPTLCK unlocks it) and numbered with the lowest
free index, at most NR_UNIX98_PTY_MAX of them (ENOSPC past that).  The
master's close hangs the slave up; the slave's last close makes master
reads EIO once drained (until it is opened again).  A pty's index is free
again when neither side is open.  The table is the guest's: every devpts
mount shows the same ptys (Linux's one instance when mounted without
newinstance)."""
from __future__ import annotations

import asyncio
import errno
import struct

from services.kernel.core.errors import Errno
from services.kernel.drivers.tty.termios import Termios
from services.kernel.drivers.tty.tty import (
    C_INT, Tty, TtyFile, _wait, open_ctty, tty_ioctl)
from services.kernel.fs.vfs import OpenFile
from services.kernel.abi.ioctls import TIOCGPTLCK, TIOCGPTN, TIOCGPTPEER, TIOCSPTLCK
from services.kernel.abi.fcntl import O_ACCMODE, O_CLOEXEC, O_NOCTTY, O_NONBLOCK
from services.kernel.abi.poll import POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from services.kernel.abi.termbits import (
    B38400, CREAD, CS8, CSIZE, NR_UNIX98_PTY_MAX, PARENB, UNIX98_PTY_SLAVE_MAJOR)

MASTER_PIECE = 4096        # of a master's write taken at a time
PEER_FLAGS = O_ACCMODE | O_NONBLOCK | O_NOCTTY | O_CLOEXEC


class Pty:
    """One pty pair: the slave terminal and the master's state."""

    def __init__(self, kernel, index: int, uid: int, gid: int) -> None:
        self.index = index
        self.slave = PtySlave(kernel, Termios(cflag=B38400 | CS8 | CREAD))
        self.slave.pty = self
        self.locked = True
        self.master_open = True
        self.slave_files = 0
        self.slave_closed = False      # the slave's last file closed (master reads EIO)
        self.uid, self.gid = uid, gid      # its /dev/pts node's owner


class PtySlave(Tty):
    pty: Pty

    @property
    def device(self) -> int:
        """136:N as Linux's new_encode_dev packs it."""
        n = self.pty.index
        return n & 0xFF | UNIX98_PTY_SLAVE_MAJOR << 8 | (n & ~0xFF) << 12

    def reopen(self, loc, flags: int) -> SlaveFile:
        """/dev/tty naming it: another open of the slave."""
        if self.hung_up:
            raise Errno(errno.EIO)
        return SlaveFile(self.pty, loc, flags)

    def fixup(self, termios) -> None:
        """A pty's character size and parity are fixed (pty_set_termios)."""
        termios.cflag = termios.cflag & ~(CSIZE | PARENB) | CS8 | CREAD


class PtyTable:
    """The guest's ptys by index."""

    def __init__(self) -> None:
        self.ptys: dict[int, Pty] = {}
        self.max = NR_UNIX98_PTY_MAX

    def new(self, kernel, uid: int, gid: int) -> Pty:
        if len(self.ptys) >= self.max:
            raise Errno(errno.ENOSPC)
        index = next(i for i in range(len(self.ptys) + 1) if i not in self.ptys)
        pty = self.ptys[index] = Pty(kernel, index, uid, gid)
        return pty

    def indices(self) -> list[int]:
        return sorted(self.ptys)

    def get(self, index: int) -> Pty | None:
        return self.ptys.get(index)

    def release(self, pty: Pty) -> None:
        if not pty.master_open and not pty.slave_files and self.ptys.get(pty.index) is pty:
            del self.ptys[pty.index]


PTYS = PtyTable()


class MasterFile(OpenFile):
    """An open /dev/ptmx: the master side of a new pty."""

    def __init__(self, pty: Pty, loc, flags: int):
        super().__init__(loc, flags)
        self.pty = pty

    def release(self) -> None:
        pty = self.pty
        pty.master_open = False
        pty.slave.hangup()
        PTYS.release(pty)

    async def read(self, count: int, offset: int | None = None) -> bytes:
        tty = self.pty.slave
        if not count:
            return b""
        while not tty.output:
            if self.pty.slave_closed:
                raise Errno(errno.EIO)
            await _wait(tty, self)
        return tty.take_output(count)

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        """Typed input for the slave, as its line discipline takes it: a
        full input waits for the slave's reader (bytes not taken are read
        again from guest memory then)."""
        tty = self.pty.slave
        done = 0
        while done < total:
            try:
                if not tty.ldisc.room():
                    await _wait(tty, self)
                    continue
                done += tty.receive(read(done, min(total - done, MASTER_PIECE)))
            except (Errno, asyncio.CancelledError):
                if done:
                    return done
                raise
        return done

    def poll(self, table=None) -> int:
        tty = self.pty.slave
        if table is not None:
            table.add(tty.waitq)
        mask = POLLIN | POLLRDNORM if tty.output else 0
        if self.pty.slave_closed:
            mask |= POLLHUP
        if tty.ldisc.room():
            mask |= POLLOUT | POLLWRNORM
        return mask

    async def ioctl(self, task, request: int, arg: int) -> int:
        pty = self.pty
        if request == TIOCGPTN:
            task.mem.write(arg, struct.pack("<I", pty.index))
            return 0
        if request == TIOCSPTLCK:
            pty.locked = bool(C_INT.unpack(task.mem.read(arg, 4))[0])
            return 0
        if request == TIOCGPTLCK:
            task.mem.write(arg, C_INT.pack(pty.locked))
            return 0
        if request == TIOCGPTPEER:
            return await _open_peer(task, self, arg)
        return await tty_ioctl(task, self, pty.slave, True, request, arg)


class SlaveFile(TtyFile):
    """An open /dev/pts/N."""

    def __init__(self, pty: Pty, loc, flags: int):
        super().__init__(pty.slave, loc, flags)
        self.pty = pty
        pty.slave_files += 1
        pty.slave_closed = False

    def release(self) -> None:
        pty = self.pty
        pty.slave_files -= 1
        if not pty.slave_files:
            pty.slave_closed = True
            pty.slave.wake()
            PTYS.release(pty)


def open_master(t, loc, flags: int) -> MasterFile:
    """/dev/ptmx: a new pty, its master (never a controlling terminal)."""
    return MasterFile(PTYS.new(t.kernel, t.cred.fsuid, t.cred.fsgid), loc, flags)


def open_slave(t, index: int, loc, flags: int, noctty: bool) -> SlaveFile:
    """/dev/pts/N: EIO while locked or once its master is gone."""
    pty = PTYS.get(index)
    if pty is None:
        raise Errno(errno.ENXIO)
    if pty.locked or not pty.master_open:
        raise Errno(errno.EIO)
    f = SlaveFile(pty, loc, flags)
    open_ctty(t, pty.slave, noctty)
    return f


async def _open_peer(t, master: MasterFile, flags: int) -> int:
    """TIOCGPTPEER: the slave opened from its master (no path lookup by the
    caller), found at /dev/pts/N from the caller's root."""
    if flags & ~PEER_FLAGS:
        raise Errno(errno.EINVAL)
    pty = master.pty
    loc = await t.kernel.vfs.lookup(t.root, b"/dev/pts/%d" % pty.index, t.cred, t.root)
    f = open_slave(t, pty.index, loc, flags & ~(O_CLOEXEC | O_NOCTTY), bool(flags & O_NOCTTY))
    try:
        return t.files.install(f, cloexec=bool(flags & O_CLOEXEC))
    except Errno:
        f.release()
        raise
