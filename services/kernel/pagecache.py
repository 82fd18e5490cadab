"""The page cache: guest file contents as host files that userspace can mmap.

One file per cached inode version, in the guest's run directory, so that
``MAP_PRIVATE`` maps of executables share the host's page cache across execs
(DESIGN §3)."""
from __future__ import annotations

import os
from pathlib import Path

from services.kernel.vfs import Location

CHUNK = 1 << 20


class PageCache:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / "pagecache"
        self.dir.mkdir(mode=0o711, exist_ok=True)   # the guest's host uid maps its files
        self.files: dict[str, str] = {}

    async def host_path(self, loc: Location) -> str:
        """The file's name relative to the run directory, as userspace opens
        it in a guest process (whose working directory is that, or its
        jail's root, which has this directory in it)."""
        inode = loc.inode
        key = f"{loc.mount.dev:x}-{inode.ino}-{inode.ctime}.{inode.ctime_ns}-{inode.size}"
        path = self.files.get(key)
        if path is None:
            path = str(self.dir / key)
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
            try:
                for off in range(0, inode.size, CHUNK):
                    os.write(fd, await inode.read(off, CHUNK))
            finally:
                os.close(fd)
            os.replace(tmp, path)
            self.files[key] = path
        return f"{self.dir.name}/{key}"
