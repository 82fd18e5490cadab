"""Character devices: the drivers behind device nodes, found by major:minor.

A device node on any filesystem (the tmpfs on /dev, or one on the disk)
opens the driver its rdev names; an unknown device is ENXIO, as on Linux.
``populate_dev`` fills the tmpfs mounted on /dev at boot."""
from __future__ import annotations

import errno
import os
import stat as S

from services.kernel.drivers.console import open_console, open_tty0
from services.kernel.drivers.tty.pty import open_master, open_slave
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import Location, OpenFile, makedev
from services.kernel.abi.mount import MS_NODEV
from services.kernel.abi.termbits import TTY_MAJOR, TTYAUX_MAJOR, UNIX98_PTY_SLAVE_MAJOR


class NullFile(OpenFile):
    """/dev/null: reads end at once, writes vanish."""

    async def read(self, count: int, offset: int | None = None) -> bytes:
        return b""

    async def write(self, data: bytes, offset: int | None = None) -> int:
        return len(data)

    def seekable_size(self) -> int:
        return 0


class ZeroFile(NullFile):
    """/dev/zero: endless zeros."""

    async def read(self, count: int, offset: int | None = None) -> bytes:
        return bytes(count)


class FullFile(ZeroFile):
    """/dev/full: zeros to read, and a device that is always full."""

    async def write(self, data: bytes, offset: int | None = None) -> int:
        raise Errno(errno.ENOSPC)


class RandomFile(NullFile):
    """/dev/random and /dev/urandom: the host's CSPRNG (writes are accepted, as
    Linux mixes them in without crediting entropy)."""

    async def read(self, count: int, offset: int | None = None) -> bytes:
        return os.urandom(count)


def open_ctty(t, loc: Location, flags: int, noctty: bool) -> OpenFile:
    """/dev/tty: the caller's controlling terminal, ENXIO if it has none."""
    tty = t.process.tty
    if tty is None:
        raise Errno(errno.ENXIO)
    return tty.reopen(loc, flags)


def _simple(cls):
    return lambda t, loc, flags, noctty: cls(loc, flags)


DRIVERS = {
    (1, 3): _simple(NullFile), (1, 5): _simple(ZeroFile), (1, 7): _simple(FullFile),
    (1, 8): _simple(RandomFile), (1, 9): _simple(RandomFile),
    (TTY_MAJOR, 0): open_tty0,
    (TTYAUX_MAJOR, 0): open_ctty, (TTYAUX_MAJOR, 1): open_console,
    (TTYAUX_MAJOR, 2): lambda t, loc, flags, noctty: open_master(t, loc, flags),
}


def open_char(t, loc: Location, flags: int, noctty: bool = False) -> OpenFile:
    """Open the driver of the character device node at loc (a terminal
    may become the caller's controlling one, unless noctty)."""
    if loc.mount.flags & MS_NODEV:
        raise Errno(errno.EACCES)
    major, minor = os.major(loc.inode.rdev), os.minor(loc.inode.rdev)
    if major == UNIX98_PTY_SLAVE_MAJOR:
        return open_slave(t, minor, loc, flags, noctty)
    driver = DRIVERS.get((major, minor))
    if driver is None:
        raise Errno(errno.ENXIO)
    return driver(t, loc, flags, noctty)


# name, mode, major, minor: what devtmpfs gives a minimal system
DEV_NODES = [
    (b"null", 0o666, 1, 3), (b"zero", 0o666, 1, 5), (b"full", 0o666, 1, 7),
    (b"random", 0o666, 1, 8), (b"urandom", 0o666, 1, 9),
    (b"tty", 0o666, 5, 0), (b"tty0", 0o620, 4, 0), (b"console", 0o600, 5, 1), (b"ptmx", 0o666, 5, 2),
]
DEV_LINKS = [
    (b"fd", b"/proc/self/fd"), (b"stdin", b"/proc/self/fd/0"),
    (b"stdout", b"/proc/self/fd/1"), (b"stderr", b"/proc/self/fd/2"),
]


async def populate_dev(root) -> None:
    """The device nodes, the /proc/self/fd links, /dev/shm and /dev/pts
    (where devpts is mounted), in a fresh tmpfs."""
    for name, mode, major, minor in DEV_NODES:
        await root.create(name, S.S_IFCHR | mode, 0, 0, makedev(major, minor))
    for name, target in DEV_LINKS:
        await root.symlink(name, target, 0, 0)
    await root.mkdir(b"shm", 0o1777, 0, 0)
    await root.mkdir(b"pts", 0o755, 0, 0)
