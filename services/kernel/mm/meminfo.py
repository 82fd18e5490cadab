"""The guest's memory, as /proc/meminfo and sysinfo(2) show it.

The guest has the memory its config gives (``mem``, UML's mem=), whatever
the host has; what it uses of it is what its processes hold (the sum of
their host /proc/PID/status Rss lines: anonymous pages, page tables), the
page cache's files and the file cache's pages (Cached), the tmpfs mounts'
pages (Shmem, counted in Cached as Linux counts them) and the block device
cache (Buffers).  Free is the
rest; available adds what could be dropped (the caches, not tmpfs).
Never the host's figures: a guest must not learn the host's memory size.

Processes that share pages after fork each count them, so a guest of many
forked processes shows more used than Linux would: never less."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.kernel.abi.arch import PAGE
from services.kernel.mm.filecache import FILE_CACHE

VMALLOC_TOTAL_KB = 34359738367          # x86_64's vmalloc space, 4-level page tables
HUGEPAGE_KB = 2048


@dataclass
class MemoryUse:
    """Bytes, all of them."""
    total: int
    anon: int = 0
    mapped: int = 0
    page_tables: int = 0
    committed: int = 0
    cached: int = 0          # page cache and tmpfs
    shmem: int = 0           # tmpfs
    buffers: int = 0

    @property
    def free(self) -> int:
        return max(0, self.total - self.anon - self.page_tables - self.cached - self.buffers)

    @property
    def available(self) -> int:
        return min(self.total, self.free + self.cached - self.shmem + self.buffers)


def _host_status_kb(host_pid: int, names: tuple[bytes, ...]) -> dict[bytes, int]:
    """Those kB lines of a host process's /proc status (a gone process: none)."""
    try:
        with open(f"/proc/{host_pid}/status", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, value = line.partition(b":")
        if name in names and value.split()[:1] and value.split()[0].isdigit():
            out[name] = int(value.split()[0])
    return out


PROCESS_LINES = (b"RssAnon", b"RssFile", b"RssShmem", b"VmPTE", b"VmData", b"VmStk")


def memory_use(kernel: Any) -> MemoryUse:
    """What the guest uses of its memory now."""
    use = MemoryUse(kernel.cfg.mem)
    for proc in list(kernel.processes.values()):
        live = next((t for t in proc.threads.values() if t.host_pid), None)
        if live is None:
            continue
        kb = _host_status_kb(live.host_pid, PROCESS_LINES)
        use.anon += kb.get(b"RssAnon", 0) << 10
        use.mapped += (kb.get(b"RssFile", 0) + kb.get(b"RssShmem", 0)) << 10
        use.page_tables += kb.get(b"VmPTE", 0) << 10
        use.committed += (kb.get(b"VmData", 0) + kb.get(b"VmStk", 0)) << 10
    budget = kernel.vfs.tmpfs_pages if kernel.vfs is not None else None
    use.shmem = budget.pages * PAGE if budget is not None else 0
    use.cached = kernel.pagecache.allocated + FILE_CACHE.used * PAGE + use.shmem
    use.buffers = sum(len(d.cache.pages) for d in kernel.disks.values()) * PAGE
    return use


def meminfo(use: MemoryUse) -> bytes:
    """/proc/meminfo: Linux 6.1's lines, in its order, in its format."""
    kb = {"MemTotal": use.total, "MemFree": use.free, "MemAvailable": use.available,
          "Buffers": use.buffers, "Cached": use.cached, "SwapCached": 0,
          "Active": use.anon + use.cached - use.shmem, "Inactive": use.shmem + use.buffers,
          "Active(anon)": use.anon, "Inactive(anon)": use.shmem,
          "Active(file)": use.cached - use.shmem, "Inactive(file)": use.buffers,
          "Unevictable": 0, "Mlocked": 0, "SwapTotal": 0, "SwapFree": 0, "Dirty": 0,
          "Writeback": 0, "AnonPages": use.anon, "Mapped": use.mapped, "Shmem": use.shmem,
          "KReclaimable": 0, "Slab": 0, "SReclaimable": 0, "SUnreclaim": 0,
          "KernelStack": 0, "PageTables": use.page_tables, "NFS_Unstable": 0, "Bounce": 0,
          "WritebackTmp": 0, "CommitLimit": use.total // 2, "Committed_AS": use.committed,
          "VmallocTotal": VMALLOC_TOTAL_KB << 10, "VmallocUsed": 0, "VmallocChunk": 0,
          "Percpu": 0, "AnonHugePages": 0, "ShmemHugePages": 0, "ShmemPmdMapped": 0,
          "FileHugePages": 0, "FilePmdMapped": 0}
    lines = [f"{name + ':':<16}{value >> 10:>8} kB" for name, value in kb.items()]
    lines += [f"{name + ':':<16}{0:>8}" for name in
              ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")]
    lines += [f"{'Hugepagesize:':<16}{HUGEPAGE_KB:>8} kB", f"{'Hugetlb:':<16}{0:>8} kB"]
    return ("\n".join(lines) + "\n").encode()
