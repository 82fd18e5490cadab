"""mke2fs images driven in the test's own process: the image file as the
block device (doubles for ubd_io), made, checked and read back with
e2fsprogs."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess

from services.kernel.fsimpl.ext2 import Ext2


class ImageFile:
    """Reads the image file directly: a double for the ubd_io service."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.reads = 0

    async def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        return os.pread(self.fd, length, offset)


class ImageDevice:
    """The image file, read and written directly: a double for ubd_io."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.ops: list[str] = []
        self.uncommitted = 0     # written straight to the file: never anything uncommitted
        self.fresh: list[tuple[int, int]] = []    # (offset, length) of each WRITE_FRESH
        self.forgotten: list[tuple[int, int]] = []    # (offset, length) of each forget

    async def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    async def write(self, offset: int, data: bytes, fresh: bool = False) -> None:
        self.ops.append("write")
        if fresh:
            self.fresh.append((offset, len(data)))
        assert os.pwrite(self.fd, data, offset) == len(data)

    async def write_parts(self, offset: int, parts: list[bytes], fresh: bool = False) -> None:
        await self.write(offset, b"".join(parts), fresh)

    def forget(self, offset: int, length: int) -> None:
        """No cache here to drop the range from: kept for the test to see."""
        self.forgotten.append((offset, length))

    async def flush(self) -> None:
        self.ops.append("flush")
        os.fsync(self.fd)

    async def commit(self) -> None:
        self.ops.append("commit")

    def close(self) -> None:
        os.close(self.fd)


def make_image(path, block_size=1024, size="64M", source=None, index=False):
    cmd = ["mke2fs", "-q", "-F", "-t", "ext2", "-b", str(block_size), "-I", "256"]
    if source is not None:
        cmd += ["-d", str(source)]
    subprocess.run(cmd + [str(path), size], check=True)
    if index:
        subprocess.run(["e2fsck", "-fyD", str(path)], check=False, capture_output=True)
    fsck(path)
    return path


def fsck(img) -> None:
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def debugfs(img, request: str) -> bytes:
    return subprocess.run(["debugfs", "-R", request, str(img)], check=True,
                          capture_output=True).stdout


def live_names(img, path: str) -> list[str]:
    """The names in a directory that debugfs lists with an inode: a removed
    entry that starts a block keeps its name with inode 0, as on Linux, and
    debugfs shows it too."""
    listing = debugfs(img, f"ls {path}").decode()
    return [name for ino, name in re.findall(r"(\d+)\s+\(\d+\)\s+(\S+)", listing)
            if ino != "0"]


def counts(img) -> tuple[int, int]:
    out = subprocess.run(["dumpe2fs", "-h", str(img)], check=True, capture_output=True,
                         text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
    return int(field["Free blocks"]), int(field["Free inodes"])


def session(img, body):
    """Mount img, run body(fs), sync, close the device; body's result."""
    async def go():
        dev = ImageDevice(img)
        try:
            fs = await Ext2.mount(dev)
            result = await body(fs)
            await fs.unmount()
            assert dev.ops[-1] == "flush"
            return result
        finally:
            dev.close()
    return asyncio.run(go())


async def dir_entries(directory) -> list[tuple[bytes, int, int]]:
    """Every entry of a directory inode (name, ino, d_type), from its
    iterate(): a whole getdents listing."""
    return [(name, ino, dtype) async for batch in directory.iterate(0)
            for name, ino, dtype, _ in batch]
