"""Character devices: the drivers behind device nodes, found by major:minor.

A device node on any filesystem (the tmpfs on /dev, or one on the disk)
opens the driver its rdev names; an unknown device is ENXIO, as on Linux.
``populate_dev`` fills the tmpfs mounted on /dev at boot."""
from __future__ import annotations

import errno
import os
import stat as S

from services.kernel.drivers.console import ConsoleFile
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import Location, OpenFile, makedev
from services.kernel.abi.mount import MS_NODEV


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


class ConsoleDevice(ConsoleFile):
    """/dev/console, and /dev/tty (every task's controlling terminal is the
    console for now), with the stat of the node it was opened through."""

    def __init__(self, t, loc: Location, flags: int):
        super().__init__(t.kernel.console, flags)
        self.loc = loc

    stat = OpenFile.stat
    statx = OpenFile.statx


def _simple(cls):
    return lambda t, loc, flags: cls(loc, flags)


DRIVERS = {
    (1, 3): _simple(NullFile), (1, 5): _simple(ZeroFile), (1, 7): _simple(FullFile),
    (1, 8): _simple(RandomFile), (1, 9): _simple(RandomFile),
    (5, 0): ConsoleDevice, (5, 1): ConsoleDevice,
}


def open_char(t, loc: Location, flags: int) -> OpenFile:
    """Open the driver of the character device node at loc."""
    if loc.mount.flags & MS_NODEV:
        raise Errno(errno.EACCES)
    rdev = loc.inode.rdev
    driver = DRIVERS.get((os.major(rdev), os.minor(rdev)))
    if driver is None:
        raise Errno(errno.ENXIO)
    return driver(t, loc, flags)


# name, mode, major, minor: what devtmpfs gives a minimal system
DEV_NODES = [
    (b"null", 0o666, 1, 3), (b"zero", 0o666, 1, 5), (b"full", 0o666, 1, 7),
    (b"random", 0o666, 1, 8), (b"urandom", 0o666, 1, 9),
    (b"tty", 0o666, 5, 0), (b"console", 0o600, 5, 1),
]
DEV_LINKS = [
    (b"fd", b"/proc/self/fd"), (b"stdin", b"/proc/self/fd/0"),
    (b"stdout", b"/proc/self/fd/1"), (b"stderr", b"/proc/self/fd/2"),
]


async def populate_dev(root) -> None:
    """The device nodes, the /proc/self/fd links and /dev/shm, in a fresh tmpfs."""
    for name, mode, major, minor in DEV_NODES:
        await root.create(name, S.S_IFCHR | mode, 0, 0, makedev(major, minor))
    for name, target in DEV_LINKS:
        await root.symlink(name, target, 0, 0)
    await root.mkdir(b"shm", 0o1777, 0, 0)
