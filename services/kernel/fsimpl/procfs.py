"""procfs: a read-only view of the kernel's guest state, generated on each read.

Everything shown is the guest's: guest pids, guest paths, the guest's mount
table.  Nothing of the host appears (no host pid, no host path): where a file
is built from the host's (``maps``, the Vm* lines of ``status``, cpu times),
the host's values are filtered or translated first.

Which task is asking (for ``/proc/self``) is ``task.CURRENT``, set by the
kernel's dispatcher for each call.  The filesystem takes its kernel from the
first caller it sees.

An inode is made at each lookup, so a file's content is generated when it
is read from offset 0 and kept for the reads that follow on the same open.
The numbered entries (processes, threads, fds) are looked up by number and
listed a piece at a time, by number, as Linux lists them: a process with a
million fds costs a lookup no more than one with three.
"""
from __future__ import annotations

import asyncio
import bisect
import errno
import os
import stat as S
import time
from typing import Any, Callable

from common.layout import touches_stub
from services.kernel.core.errors import Errno
from services.kernel.fs.inode import FileSystem, Inode
from services.kernel.sched.task import CURRENT
from services.kernel.fs.vfs import DIR_STEP, d_type
from services.kernel.abi.prctl import SUID_DUMP_USER
from services.kernel.abi.mount import (
    MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME)

PROC_SUPER_MAGIC = 0x9FA0
HZ = 100
NUMBERED = 256          # a directory's position for number n: NUMBERED + n
MAPS_NAME_COLUMN = 73      # where Linux's maps starts a name (seq_setwidth in show_map)
SPECIAL_MAPS = (b"[heap]", b"[stack]", b"[vdso]", b"[vvar]", b"[vsyscall]", b"[vvar_vclock]")


def calling_task() -> Any:
    """The guest task whose system call is being served, or None (boot)."""
    return CURRENT.get()


def _host(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def mount_options(flags: int) -> bytes:
    opts = [b"ro" if flags & MS_RDONLY else b"rw"]
    for bit, name in ((MS_NOSUID, b"nosuid"), (MS_NODEV, b"nodev"), (MS_NOEXEC, b"noexec"),
                      (MS_NOATIME, b"noatime"), (MS_NODIRATIME, b"nodiratime"),
                      (MS_RELATIME, b"relatime")):
        if flags & bit:
            opts.append(name)
    return b",".join(opts)


def _escape(path: bytes) -> bytes:
    """Mount table escaping (space, tab, newline, backslash) as Linux's."""
    out = bytearray()
    for c in path:
        out += b"\\%03o" % c if c in b" \t\n\\" else bytes([c])
    return bytes(out)


class Node(Inode):
    """What every procfs inode has."""

    def __init__(self, fs: ProcFs, ino: int, mode: int, uid: int = 0, gid: int = 0):
        self.fs = fs
        self.ino = ino
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.size = 0
        self.nlink = 2 if S.S_ISDIR(mode) else 1
        self.blocks = 0
        self.rdev = 0
        self.atime, self.atime_ns = divmod(time.time_ns(), 1_000_000_000)
        self.mtime, self.mtime_ns = self.ctime, self.ctime_ns = self.atime, self.atime_ns

    async def read(self, offset: int, length: int) -> bytes:
        raise Errno(errno.EINVAL)

    async def iterate(self, pos: int):
        raise Errno(errno.ENOTDIR)
        yield

    async def lookup(self, name: bytes) -> Any:
        return None

    async def readlink(self) -> bytes:
        raise Errno(errno.EINVAL)


class File(Node):
    def __init__(self, fs, ino, gen: Callable[[], bytes], mode: int = 0o444, uid=0, gid=0):
        super().__init__(fs, ino, S.S_IFREG | mode, uid, gid)
        self.gen = gen
        self.content: bytes | None = None

    async def read(self, offset: int, length: int) -> bytes:
        if offset == 0 or self.content is None:
            self.content = self.gen()
        return self.content[offset:offset + length]


class Link(Node):
    def __init__(self, fs, ino, target: Callable[[], bytes], uid=0, gid=0):
        super().__init__(fs, ino, S.S_IFLNK | 0o777, uid, gid)
        self.target = target

    async def readlink(self) -> bytes:
        target = self.target()
        if not target:
            raise Errno(errno.ENOENT)
        return target


class Dir(Node):
    """A directory of named entries (entries(): name -> maker of the inode)
    and numbered ones after them (numbers(n, count): at most count numbers,
    the first n or more, in order; number(n): its inode, None if there is
    none).  Positions as Linux's: "." 0, ".." 1, the named entries from 2,
    number n at NUMBERED + n, so a listing goes on where it stopped while
    processes and fds come and go."""

    def __init__(self, fs, ino, entries: Callable[[], dict], parent: Any = None, mode=0o555,
                 uid=0, gid=0, numbers: Callable[[int, int], list[int]] | None = None,
                 number: Callable[[int], Any] | None = None):
        super().__init__(fs, ino, S.S_IFDIR | mode, uid, gid)
        self.entries = entries
        self.parent = parent or self
        self.numbers, self.number = numbers, number

    async def lookup(self, name: bytes) -> Any:
        if name == b".":
            return self
        if name == b"..":
            return self.parent
        if self.numbers is not None and name.isdigit() and (name == b"0" or name[:1] != b"0"):
            return self.number(int(name))
        make = self.entries().get(name)
        return make() if make is not None else None

    async def iterate(self, pos: int):
        """The entries from position pos on, the named ones in one batch, the
        numbered DIR_STEP at a time with a turn of the loop in between."""
        batch = [(b".", self.ino, d_type(S.S_IFDIR), 1),
                 (b"..", self.parent.ino, d_type(S.S_IFDIR), 2)][pos:]
        for i, (name, make) in enumerate(self.entries().items()):
            if i + 2 >= pos and (inode := make()) is not None:
                batch.append((name, inode.ino, d_type(inode.mode), i + 3))
        n = max(pos - NUMBERED, 0)
        while True:
            numbers = self.numbers(n, DIR_STEP) if self.numbers is not None else []
            for k in numbers:
                if (inode := self.number(k)) is not None:
                    batch.append((b"%d" % k, inode.ino, d_type(inode.mode), NUMBERED + k + 1))
            if batch:
                yield batch
            if len(numbers) < DIR_STEP:
                return
            batch = []
            n = numbers[-1] + 1
            await asyncio.sleep(0)


def _from(numbers, n: int, count: int) -> list[int]:
    """At most count of the sorted numbers, the first n or more."""
    i = bisect.bisect_left(numbers, n)
    return numbers[i:i + count]


class ProcFs(FileSystem):
    writable = False

    def __init__(self, kernel: Any = None):
        self.kernel = kernel
        self.boot = time.monotonic()
        self.boot_wall = time.time()
        self.root = Dir(self, 1, self.root_entries, numbers=self.pids, number=self.pid_entry)

    @classmethod
    def from_options(cls, options: bytes, _tmpfs_pages: Any = None) -> ProcFs:
        return cls()

    def statfs(self) -> dict:
        return {"bsize": 4096, "frsize": 4096, "blocks": 0, "bfree": 0, "bavail": 0,
                "files": 0, "ffree": 0, "namelen": 255, "magic": PROC_SUPER_MAGIC}

    # --- who is asking ------------------------------------------------------------
    def caller(self) -> Any:
        t = calling_task()
        if t is not None and self.kernel is None:
            self.kernel = t.kernel
        return t

    def k(self) -> Any:
        if self.kernel is None:
            self.caller()
        if self.kernel is None:
            raise Errno(errno.ENOENT)
        return self.kernel

    # --- the root -------------------------------------------------------------------
    GLOBAL = (b"cpuinfo", b"meminfo", b"uptime", b"loadavg", b"stat", b"version",
              b"filesystems", b"mounts")

    def root_entries(self) -> dict:
        self.caller()
        if self.kernel is None:
            return {}
        out: dict[bytes, Callable] = {}
        gens = {b"cpuinfo": lambda: _host("/proc/cpuinfo"), b"meminfo": lambda: _host("/proc/meminfo"),
                b"uptime": self.uptime, b"loadavg": self.loadavg, b"stat": self.stat,
                b"version": self.version, b"filesystems": self.filesystems,
                b"mounts": self.mounts}
        for i, name in enumerate(self.GLOBAL):
            out[name] = lambda i=i, name=name: File(self, 2 + i, gens[name])
        out[b"self"] = lambda: Link(self, 20, self.self_target)
        out[b"thread-self"] = lambda: Link(self, 21, self.thread_self_target)
        return out

    def pids(self, n: int, count: int) -> list[int]:
        self.caller()
        return _from(sorted(self.kernel.processes), n, count) if self.kernel is not None else []

    def pid_entry(self, pid: int) -> Dir | None:
        self.caller()
        return self.pid_dir(pid) if self.kernel is not None else None

    def self_target(self) -> bytes:
        t = self.caller()
        return str(t.tgid).encode() if t is not None else b""

    def thread_self_target(self) -> bytes:
        t = self.caller()
        return f"{t.tgid}/task/{t.tid}".encode() if t is not None else b""

    # --- global files -----------------------------------------------------------------
    def uptime(self) -> bytes:
        up = time.monotonic() - self.boot
        return b"%.2f %.2f\n" % (up, up * (os.cpu_count() or 1))

    def loadavg(self) -> bytes:
        k = self.k()
        running = sum(1 for t in k.tasks.values() if self.state(t) == "R")
        return b"0.00 0.00 0.00 %d/%d %d\n" % (running, len(k.tasks), k.next_tid - 1)

    def stat(self) -> bytes:
        k = self.k()
        cpus = [line for line in _host("/proc/stat").splitlines() if line.startswith(b"cpu")]
        running = sum(1 for t in k.tasks.values() if self.state(t) == "R")
        tail = [b"intr 0", b"ctxt 0", b"btime %d" % int(self.boot_wall),
                b"processes %d" % (k.next_tid - 1), b"procs_running %d" % running,
                b"procs_blocked 0", b"softirq 0 0 0 0 0 0 0 0 0 0 0"]
        return b"\n".join(cpus + tail) + b"\n"

    def version(self) -> bytes:
        release = getattr(self.k().cfg, "release", "6.1.0")
        return (f"Linux version {release} (skas@skas) (gcc) #1 SMP PREEMPT_DYNAMIC\n").encode()

    def filesystems(self) -> bytes:
        return b"nodev\ttmpfs\nnodev\tproc\n\text2\n"

    def mounts(self) -> bytes:
        out = []
        for m in self.k().vfs.mounts:
            point = m.point.path if m.point is not None else b"/"
            out.append(b"%s %s %s %s 0 0" % (_escape(m.source or b"none"), _escape(point),
                                               m.fstype or b"none", mount_options(m.flags)))
        return b"\n".join(out) + b"\n"

    # --- processes --------------------------------------------------------------------
    def process(self, pid: int) -> Any:
        proc = self.k().processes.get(pid)
        if proc is None:
            raise Errno(errno.ESRCH)
        return proc

    @staticmethod
    def leader(proc) -> Any:
        """The thread that speaks for a process: its first, or any left."""
        if proc.pid in proc.threads:
            return proc.threads[proc.pid]
        return next(iter(proc.threads.values()), None)

    def state(self, t) -> str:
        if t is None or t.process.zombie:
            return "Z"
        if t is calling_task():
            return "R"
        return "S" if t.flight.call is not None and not t.flight.call.done() else "R"

    def ino(self, pid: int, n: int) -> int:
        return (pid << 8 | n) + 0x100

    def pid_dir(self, pid: int, tid: int | None = None) -> Dir | None:
        proc = self.k().processes.get(pid)
        if proc is None:
            return None
        t = proc.threads.get(tid) if tid is not None else self.leader(proc)
        if tid is not None and t is None:
            return None
        # task_dump_owner: the effective ids; every file but the r-x
        # directories (PID, task, task/TID) root's when not dumpable
        duid, dgid = (t.cred.euid, t.cred.egid) if t is not None else (0, 0)
        uid, gid = (duid, dgid) if proc.dumpable == SUID_DUMP_USER else (0, 0)
        key = tid if tid is not None else pid

        def entries() -> dict:
            files = {b"stat": lambda: self.pid_stat(pid, tid), b"status": lambda: self.pid_status(pid, tid),
                     b"cmdline": lambda: self.mm_range(pid, "arg_start", "arg_end"),
                     b"comm": lambda: self.pid_comm(pid, tid), b"mounts": self.mounts,
                     b"maps": lambda: self.pid_maps(pid), b"statm": lambda: self.pid_statm(pid)}
            out: dict[bytes, Callable] = {}
            for i, (name, gen) in enumerate(files.items()):
                out[name] = lambda i=i, gen=gen: File(self, self.ino(key, i + 1), gen, 0o444, uid, gid)
            out[b"environ"] = lambda: File(self, self.ino(key, 20),
                                           lambda: self.mm_range(pid, "env_start", "env_end"),
                                           0o400, uid, gid)
            out[b"exe"] = lambda: Link(self, self.ino(key, 21), lambda: self.task_of(pid, tid).exe, uid, gid)
            out[b"cwd"] = lambda: Link(self, self.ino(key, 22),
                                       lambda: self.task_of(pid, tid).cwd.path, uid, gid)
            out[b"root"] = lambda: Link(self, self.ino(key, 23), lambda: b"/", uid, gid)
            out[b"fd"] = lambda: self.fd_dir(pid, tid, key, uid, gid, d)
            if tid is None:
                out[b"task"] = lambda: Dir(
                    self, self.ino(key, 25), dict, d, 0o555, duid, dgid,
                    numbers=lambda n, count: _from(sorted(self.threads_of(pid)), n, count),
                    number=lambda n: self.pid_dir(pid, n))
            return out

        d = Dir(self, self.ino(key, 0), entries, self.root, 0o555, duid, dgid)
        return d

    def threads_of(self, pid: int) -> dict:
        proc = self.k().processes.get(pid)
        return proc.threads if proc is not None else {}

    def task_of(self, pid: int, tid: int | None) -> Any:
        proc = self.process(pid)
        t = proc.threads.get(tid) if tid is not None else self.leader(proc)
        if t is None:
            raise Errno(errno.ENOENT)
        return t

    def fd_dir(self, pid, tid, key, uid, gid, parent) -> Dir:
        def files() -> Any:
            try:
                return self.task_of(pid, tid).files
            except Errno:
                return None

        def numbers(n: int, count: int) -> list[int]:
            table = files()
            return table.in_use(n, count) if table is not None else []

        def number(fd: int) -> Link | None:
            table = files()
            entry = table.fds.get(fd) if table is not None else None
            if entry is None:
                return None
            f = entry[0]
            return Link(self, self.ino(key, 32) + fd, lambda: self.fd_target(f), uid, gid)
        return Dir(self, self.ino(key, 24), dict, parent, 0o500, uid, gid, numbers, number)

    @staticmethod
    def fd_target(f) -> bytes:
        if f.loc is not None and f.loc.path:
            return f.loc.path
        if f.link_name is not None:
            return f.link_name
        kind = type(f).__name__.lower().replace("file", "") or "file"
        return b"anon_inode:[%s]" % kind.encode()

    def pid_comm(self, pid, tid) -> bytes:
        return self.task_of(pid, tid).comm + b"\n"

    def mm_range(self, pid: int, start: str, end: str) -> bytes:
        proc = self.process(pid)
        t = self.leader(proc)
        ranges = self.ranges(t)
        if not ranges or t.mem is None or proc.zombie:
            return b""
        a, b = ranges[start], ranges[end]
        try:
            return t.mem.read(a, max(0, b - a))
        except (OSError, Errno):
            return b""

    def host_status(self, t) -> dict[bytes, bytes]:
        out = {}
        if t is None or not t.host_pid:
            return out
        for line in _host(f"/proc/{t.host_pid}/status").splitlines():
            name, _, value = line.partition(b":")
            if name.startswith((b"Vm", b"Rss")):
                out[name] = value.strip()
        return out

    def host_stat(self, t) -> list[bytes]:
        """Fields 3.. of the host's stat line (after the comm) for the numbers."""
        if t is None or not t.host_pid:
            return []
        raw = _host(f"/proc/{t.host_pid}/stat")
        return raw[raw.rfind(b")") + 2:].split() if raw else []

    def sigmasks(self, proc, t) -> tuple[int, int, int, int]:
        pending = 0
        for n in list(proc.pending) + (list(t.pending) if t is not None else []):
            pending |= 1 << (n - 1)
        ign = cgt = 0
        for n, act in proc.sigactions.items():
            handler = int.from_bytes(act[:8], "little") if act else 0
            if handler == 1:
                ign |= 1 << (n - 1)
            elif handler > 1:
                cgt |= 1 << (n - 1)
        return pending, (t.sigmask if t is not None else 0), ign, cgt

    def pid_stat(self, pid: int, tid: int | None) -> bytes:
        proc = self.process(pid)
        t = proc.threads.get(tid) if tid is not None else self.leader(proc)
        state = self.state(t) if not proc.zombie else "Z"
        comm = (t.comm if t is not None else b"")
        host = self.host_stat(t) if state != "Z" else []

        def h(n: int) -> int:     # Linux's field n (1-based) from the host's line
            try:
                return int(host[n - 3])
            except (IndexError, ValueError):
                return 0
        ranges = self.ranges(t)
        pending, blocked, ign, cgt = self.sigmasks(proc, t)
        start = int((proc.start_time - self.boot) * HZ)
        parent = proc.parent.pid if proc.parent is not None else 0
        fields = [pid if tid is None else tid, None, state, parent, proc.pgid, proc.sid,
                  0, -1, 0x400000, h(10), 0, h(12), 0, h(14), h(15), 0, 0, 20, 0,
                  len(proc.threads), 0, max(start, 0), h(23), h(24), h(25),
                  0, 0, ranges.get("start_stack", 0), 0, 0,
                  pending, blocked, ign, cgt, 0, 0, 0, proc.exit_signal, 0, 0, 0, 0, 0, 0,
                  0, 0, 0, ranges.get("arg_start", 0), ranges.get("arg_end", 0),
                  ranges.get("env_start", 0), ranges.get("env_end", 0),
                  (proc.status or 0) if proc.zombie else 0]
        head = b"%d (%s) %s" % (fields[0], comm, state.encode())
        return head + b" " + b" ".join(b"%d" % v for v in fields[3:]) + b"\n"

    def pid_statm(self, pid: int) -> bytes:
        t = self.leader(self.process(pid))
        raw = _host(f"/proc/{t.host_pid}/statm") if t is not None and t.host_pid else b""
        return raw or b"0 0 0 0 0 0 0\n"

    def pid_status(self, pid: int, tid: int | None) -> bytes:
        proc = self.process(pid)
        t = proc.threads.get(tid) if tid is not None else self.leader(proc)
        state = self.state(t) if not proc.zombie else "Z"
        names = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)"}
        c = t.cred if t is not None else None
        pending, blocked, ign, cgt = self.sigmasks(proc, t)
        lines = [f"Name:\t{(t.comm if t else b'').decode(errors='replace')}",
                 f"Umask:\t{(t.umask if t else 0o22):04o}",
                 f"State:\t{names[state]}", f"Tgid:\t{pid}", "Ngid:\t0",
                 f"Pid:\t{tid if tid is not None else pid}",
                 f"PPid:\t{proc.parent.pid if proc.parent is not None else 0}", "TracerPid:\t0"]
        if c is not None:
            lines += [f"Uid:\t{c.uid}\t{c.euid}\t{c.suid}\t{c.fsuid}",
                      f"Gid:\t{c.gid}\t{c.egid}\t{c.sgid}\t{c.fsgid}",
                      f"FDSize:\t{max(64, len(t.files.fds))}",
                      "Groups:\t" + " ".join(map(str, c.groups)) + " "]
        if state != "Z":
            lines += [f"{k.decode()}:\t{v.decode()}" for k, v in self.host_status(t).items()]
        lines += [f"Threads:\t{len(proc.threads)}", "SigQ:\t0/31767",
                  f"SigPnd:\t{pending:016x}", "ShdPnd:\t0000000000000000",
                  f"SigBlk:\t{blocked:016x}", f"SigIgn:\t{ign:016x}", f"SigCgt:\t{cgt:016x}",
                  f"CapInh:\t{c.inheritable if c else 0:016x}",
                  f"CapPrm:\t{c.permitted if c else 0:016x}",
                  f"CapEff:\t{c.effective if c else 0:016x}",
                  f"CapBnd:\t{c.bounding if c else 0:016x}", "CapAmb:\t0000000000000000",
                  f"NoNewPrivs:\t{int(t.no_new_privs) if t else 0}", "Seccomp:\t0",
                  "voluntary_ctxt_switches:\t0",
                  "nonvoluntary_ctxt_switches:\t0"]
        return ("\n".join(lines) + "\n").encode()

    def pid_maps(self, pid: int) -> bytes:
        """The host's maps in the guest's terms: a page-cache file becomes the
        guest file it holds (path, dev, inode: fs/pagecache.py ``named``);
        the stub and every other host file are left out; anonymous maps and
        the [special] ones stay as the host shows them."""
        proc = self.process(pid)
        t = self.leader(proc)
        if t is None or not t.host_pid or proc.zombie:
            return b""
        out = []
        for line, parts, v in self.k().pagecache.host_maps(t.host_pid):
            lo, _, hi = parts[0].partition(b"-")
            if touches_stub(int(lo, 16), int(hi, 16) - int(lo, 16)):
                continue
            path = parts[5].strip() if len(parts) > 5 else b""
            if v is not None:
                dev, ino = v.ident
                line = b"%s %s %s %02x:%02x %d " % (parts[0], parts[1], parts[2], os.major(dev),
                                                    os.minor(dev), ino)
                out.append(line.ljust(MAPS_NAME_COLUMN) + v.path)
            elif not path or path in SPECIAL_MAPS:     # anonymous, [heap], [stack] ...
                out.append(line)
            # else a host file the guest has no name for: left out
        return b"\n".join(out) + (b"\n" if out else b"")

    @staticmethod
    def ranges(t) -> dict:
        """What exec recorded of t's image (fork copies it)."""
        return t.mm_ranges if t is not None else {}
