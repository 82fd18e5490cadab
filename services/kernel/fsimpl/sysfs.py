"""sysfs, the little of it that programs read: the guest's CPUs and disks.

In a nutshell: a read-only tree, made when first looked at and again
when a disk is plugged in or out (`skas ctl NAME config`/`remove`), of

- devices/system/cpu/{online,possible,present} ("0-N": the guest's CPUs,
  sched/load.py's guest_cpus) and a cpuN directory for each;
- devices/virtual/block/ubdX/{dev,size,ro,removable} for each disk (size in
  512-byte sectors, UML's names ubda, ubdb ...), and the links to them
  from block/ and class/block/;
- kernel/mm/transparent_hugepage/enabled: the host's setting, since the
  guest's memory is the host's and the host decides;
- fs/, empty: no cgroup filesystem, so nothing looks for one.

Nothing of the host's devices, buses or CPUs beyond the guest's shows.
The kernel is taken from the first caller, as procfs does."""
from __future__ import annotations

from typing import Any

from services.kernel.fs.inode import FileSystem
from services.kernel.fsimpl.synthetic import Dir, tree_node
from services.kernel.sched.cpus import cpu_range, guest_cpus
from services.kernel.sched.task import CURRENT
from services.kernel.fs.vfs import UBD_MAJOR

SYSFS_MAGIC = 0x62656572
SECTOR = 512
ATTR_SIZE = 4096           # what stat says of every sysfs attribute, as Linux's
HOST_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def disk_name(n: int) -> bytes:
    """UML's name for ubd disk n: ubda, ubdb ..."""
    return b"ubd" + bytes([ord("a") + n]) if n < 26 else b"ubd%d" % n


def _host_thp() -> bytes | None:
    try:
        with open(HOST_THP, "rb") as f:
            return f.read()
    except OSError:
        return None


class SysFs(FileSystem):
    writable = False

    def __init__(self) -> None:
        self.kernel: Any = None
        self.spec: dict | None = None
        self.disks: set[int] = set()      # the disks the spec shows
        self.inos: dict[bytes, int] = {}
        self.root = Dir(self, 1, self.top, mode=0o555)
        self.inos[b""] = 1

    def statfs(self) -> dict:
        return {"bsize": 4096, "frsize": 4096, "blocks": 0, "bfree": 0, "bavail": 0,
                "files": 0, "ffree": 0, "namelen": 255, "magic": SYSFS_MAGIC}

    def top(self) -> dict:
        """The root's entries, the tree made at the first look."""
        if self.kernel is None:
            t = CURRENT.get()
            if t is None:
                return {}
            self.kernel = t.kernel
        if self.spec is None or self.disks != set(self.kernel.disks):
            self.disks = set(self.kernel.disks)    # a disk plugged in or out: made anew
            self.spec = self.build()
        return {name: (lambda name=name, sub=sub: tree_node(self, b"/" + name, sub, self.root,
                                                            0o755, ATTR_SIZE))
                for name, sub in self.spec.items()}

    def build(self) -> dict:
        """The whole tree, as tree_node takes it."""
        n = guest_cpus()
        cpus: dict[bytes, Any] = {name: (lambda n=n: cpu_range(n).encode() + b"\n")
                                  for name in (b"online", b"possible", b"present")}
        cpus.update({b"cpu%d" % i: {} for i in range(n)})
        block: dict[bytes, Any] = {}
        for number, disk in sorted(self.kernel.disks.items()):
            block[disk_name(number)] = {
                b"dev": lambda number=number: b"%d:%d\n" % (UBD_MAJOR, number * 16),
                b"size": lambda disk=disk: b"%d\n" % (disk.size // SECTOR),
                b"ro": lambda: b"0\n", b"removable": lambda: b"0\n"}
        names = sorted(block)
        mm: dict[bytes, Any] = {}
        if _host_thp() is not None:
            mm[b"transparent_hugepage"] = {b"enabled": lambda: _host_thp() or b""}
        return {b"block": {name: b"../devices/virtual/block/" + name for name in names},
                b"class": {b"block": {name: b"../../devices/virtual/block/" + name
                                      for name in names},
                           b"tty": {b"console": b"../../devices/virtual/tty/console"}},
                b"devices": {b"system": {b"cpu": cpus},
                             b"virtual": {b"block": block, b"tty": {b"console": {
                                 b"active": lambda: b"tty0\n"}}}},
                b"fs": {},
                b"kernel": {b"mm": mm}}

    def path_ino(self, path: bytes) -> int:
        return self.inos.setdefault(path, len(self.inos) + 1)
