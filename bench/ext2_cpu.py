"""CPU time the kernel's storage code spends per operation, in this process:
ext2 on a UbdDevice whose link is the image file itself (no ubd_io, no
guest, no listener), so that the figures do not move with the host's load
as the guest's do.  Not a test.

    .venv/bin/python bench/ext2_cpu.py [--rounds N]

- write: a 64 MiB file in 64 KiB writes, then fsync, the third of three
  files (the first two fill the device cache, as the guest bench's first
  round does); the image's own pwrite and fsync time is left out.
- read: that file read back in 64 KiB reads from the caches, each copied
  to another process's memory as to a guest's (process_vm_writev).
- extract: what tar does in the kernel for each small file it extracts:
  lookup (absent), create, write 1 KiB, chown, chmod, utimes; 2000 files,
  100 to a directory, then written back.

The image is e2fsck'd at the end."""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import stat as S
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.protocol import Message  # noqa: E402
from services.kernel.drivers.ubd import UbdDevice  # noqa: E402
from services.kernel.fs.vfs import InodeFile, Location, Mount  # noqa: E402
from services.kernel.fsimpl.ext2 import Ext2  # noqa: E402
from services.kernel.mm.filecache import FILE_CACHE  # noqa: E402
from services.kernel.mm.memory import GuestMemory  # noqa: E402

CHUNK = 64 << 10
WRITES = 1024            # 64 MiB


class ImageLink:
    """ubd_io's answers from the image file, with the time spent on it."""
    endpoint = "tcp://in-process"      # no shared write buffer: the data comes in the request
    resends = 0

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDWR)
        self.spent = 0.0

    async def request(self, kind: str, body: dict, traceparent=None) -> Message:
        start = time.process_time()
        data = b""
        if body["op"] == "READ":
            data = os.pread(self.fd, body["length"], body["offset"])
        elif body["op"] in ("WRITE", "WRITE_FRESH"):
            os.pwrite(self.fd, body["data"], body["offset"])
        elif body["op"] == "FLUSH":
            os.fsync(self.fd)
        self.spent += time.process_time() - start
        return Message("block_done", 0, "ubd_io", {"status": 0, "data": data})


async def measure(img: Path) -> dict[str, float]:
    """µs of CPU per operation."""
    link = ImageLink(img)
    FILE_CACHE.resize(128 << 20)         # the guest config's default file_cache_limit
    fs = await Ext2.mount(UbdDevice(link, 0))
    root = fs.root
    buf = ctypes.create_string_buffer(CHUNK)
    child = os.fork()
    if child == 0:               # the "guest" whose memory reads are copied to
        time.sleep(3600)
        os._exit(0)
    mem = GuestMemory(child)
    out = {}
    try:
        data = bytes(range(256)) * (CHUNK // 256)
        for n in range(3):
            if n:
                await root.unlink(b"big%d" % (n - 1))
            f = await root.create(b"big%d" % n, S.S_IFREG | 0o644, 0, 0)
            start, link.spent = time.process_time(), 0.0
            for i in range(WRITES):
                await f.write(i * CHUNK, data)
            await f.fsync()
            out["write 64 KiB (the fsync's share included)"] = \
                (time.process_time() - start - link.spent) / WRITES
        for _ in range(2):        # the second pass is the one kept
            start = time.process_time()
            for i in range(WRITES):
                mem.write(ctypes.addressof(buf), await f.read(i * CHUNK, CHUNK))
            out["read 64 KiB, cached, copied to a process"] = \
                (time.process_time() - start) / WRITES
        opened = InodeFile(Location(Mount(fs, 0), f, b"/big2"), os.O_RDONLY)
        for name in ("first read into the file cache", "from the file cache"):
            start = time.process_time()
            for i in range(WRITES):
                await opened.read_into(mem, ctypes.addressof(buf), CHUNK, i * CHUNK)
            out[f"read(2) 64 KiB, {name}, copied"] = (time.process_time() - start) / WRITES
        small = bytes(1024)
        start, link.spent = time.process_time(), 0.0
        for d in range(20):
            sub = await root.mkdir(b"d%02d" % d, 0o755, 0, 0)
            for i in range(100):
                name = b"f%04d" % (d * 100 + i)
                assert await sub.lookup(name) is None
                x = await sub.create(name, S.S_IFREG | 0o644, 0, 0)
                await x.write(0, small)
                await x.setattr(uid=0, gid=0)
                await x.setattr(mode=0o644)
                await x.setattr(atime=(1, 0), mtime=(1, 0))
        async with fs.lock:
            await fs.write_back()
        out["extract a small file (lookup, create, write 1 KiB, 3 setattr)"] = \
            (time.process_time() - start - link.spent) / 2000
        await fs.sync()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    return {k: v * 1e6 for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs, each on a fresh image")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="skas-ext2-cpu-") as tmp:
        img = Path(tmp) / "fs.img"
        for _ in range(args.rounds):
            subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "4096", "-I", "256",
                            str(img), "1G"], check=True, capture_output=True)
            runs.append(asyncio.run(measure(img)))
            check = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
            if check.returncode:
                sys.exit("e2fsck found errors:\n" + check.stdout)
    for name in runs[0]:
        values = sorted(r[name] for r in runs)
        print(f"{name:<64} {values[len(values) // 2]:8.1f} µs CPU (median of {len(runs)})")


if __name__ == "__main__":
    main()
