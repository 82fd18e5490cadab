"""devpts: /dev/pts, the pty slaves' nodes and its own ptmx.

In a nutshell: a directory of character devices 136:N, one for each pty
the guest has open (the table is given: the drivers' PtyTable, which this
rank may not import), plus ``ptmx`` (5:2).  Inode numbers are Linux's:
the root 1, ptmx 2, pty N N+3.  Mount options as Linux's: ``mode=`` of
the slave nodes (0600), ``gid=`` (the opener's group if not given),
``ptmxmode=`` (0000); ``newinstance`` and ``max=`` are accepted, and every
mount shows the guest's one set of ptys."""
from __future__ import annotations

import errno
import stat as S
from typing import Any

from services.kernel.core.errors import Errno
from services.kernel.fs.inode import FileSystem
from services.kernel.fs.vfs import makedev
from services.kernel.fsimpl.synthetic import Dir, Node, numbers_from
from services.kernel.abi.termbits import DEVPTS_SUPER_MAGIC, TTYAUX_MAJOR, UNIX98_PTY_SLAVE_MAJOR


class DevPts(FileSystem):
    writable = False

    def __init__(self, ptys: Any, options: bytes = b"") -> None:
        self.ptys = ptys
        self.mode, self.gid, self.ptmxmode = 0o600, None, 0
        for opt in filter(None, options.split(b",")):
            key, _, value = opt.partition(b"=")
            try:
                if key in (b"mode", b"ptmxmode"):
                    setattr(self, key.decode(), int(value, 8) & 0o777)
                elif key == b"gid":
                    self.gid = int(value)
                elif key not in (b"newinstance", b"max", b"uid"):
                    raise ValueError
            except ValueError:
                raise Errno(errno.EINVAL) from None
        self.nodes: dict[int, tuple[Any, Node]] = {}
        self.root = Dir(self, 1, self.entries, mode=0o755,
                        numbers=lambda n, count: numbers_from(ptys.indices(), n, count),
                        number=self.node)
        self.ptmx = Node(self, 2, S.S_IFCHR | self.ptmxmode)
        self.ptmx.rdev = makedev(TTYAUX_MAJOR, 2)

    def show_options(self) -> bytes:
        gid = b"" if self.gid is None else b"gid=%d," % self.gid
        return b"%smode=%03o,ptmxmode=%03o" % (gid, self.mode, self.ptmxmode)

    def statfs(self) -> dict:
        return {"bsize": 4096, "frsize": 4096, "blocks": 0, "bfree": 0, "bavail": 0,
                "files": 0, "ffree": 0, "namelen": 255, "magic": DEVPTS_SUPER_MAGIC}

    def entries(self) -> dict:
        return {b"ptmx": lambda: self.ptmx}

    def node(self, index: int) -> Node | None:
        """Pty index's node, the same inode for as long as that pty lives."""
        pty = self.ptys.get(index)
        if pty is None:
            self.nodes.pop(index, None)
            return None
        held = self.nodes.get(index)
        if held is None or held[0] is not pty:
            node = Node(self, index + 3, S.S_IFCHR | self.mode, pty.uid,
                        pty.gid if self.gid is None else self.gid)
            node.rdev = makedev(UNIX98_PTY_SLAVE_MAJOR, index)
            held = self.nodes[index] = (pty, node)
        return held[1]
