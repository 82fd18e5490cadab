"""procfs: a read-only view of the kernel's guest state, generated on each read.

Everything shown is the guest's: guest pids, guest paths, the guest's mount
table.  Nothing of the host appears (no host pid, no host path): where a file
is built from the host's (``maps``, the Vm* lines of ``status``, cpu times),
the host's values are filtered or translated first.

Which task is asking (for ``/proc/self``) is ``task.CURRENT``, set by the
kernel's dispatcher for each call.  The filesystem takes its kernel from the
first caller it sees.  Paths are shown as Linux's d_path shows them: the
links (cwd, root, exe, fd/N) and maps from the reader's root (a path
outside it in full, from the VFS root), the mount tables from the root of
the process they are of, without the mounts outside it.

An inode is made at each lookup, so a file's content is generated when it
is read from offset 0 and kept for the reads that follow on the same open.
The numbered entries (processes, threads, fds) are looked up by number and
listed a piece at a time, by number, as Linux lists them: a process with a
million fds costs a lookup no more than one with three.
"""
from __future__ import annotations

import errno
import os
import time
import uuid
from typing import Any, Callable, Iterator

from common.layout import touches_stub
from services.kernel.core.errors import Errno
from services.kernel.fs.inode import FileSystem
from services.kernel.fs.vfs import seen_from
from services.kernel.abi.capability import CAP_SYS_PTRACE
from services.kernel.abi.resource import NR_OPEN, RLIM_INFINITY, RLIMIT_SIGPENDING
from services.kernel.core.cred import capable
from services.kernel.abi.threads import PID_MAX
from services.kernel.fsimpl.synthetic import Dir, File, Link, numbers_from, tree_node
from services.kernel.mm.meminfo import meminfo, memory_use
from services.kernel.sched.cpus import cpu_mask, cpu_range, guest_cpus
from services.kernel.sched.load import cpu_seconds, is_running, run_queue
from services.kernel.sched.task import CURRENT
from services.kernel.sched.timers import BOOT, uptime
from services.kernel.abi.prctl import SUID_DUMP_USER
from services.kernel.abi.mount import (
    MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_RELATIME)

PROC_SUPER_MAGIC = 0x9FA0
HZ = 100
MAPS_NAME_COLUMN = 73      # where Linux's maps starts a name (seq_setwidth in show_map)
NR_FILE = 8192                 # the least file-max Linux sets
VERSION = b"#1 SMP PREEMPT_DYNAMIC"
BOOT_ID = str(uuid.uuid4()).encode()      # this kernel process is one boot of the guest
HOST_STATUS = (b"Vm", b"Rss", b"Speculation", b"voluntary_ctxt", b"nonvoluntary_ctxt")
LIMITS = ((b"Max cpu time", b"seconds"), (b"Max file size", b"bytes"),
          (b"Max data size", b"bytes"), (b"Max stack size", b"bytes"),
          (b"Max core file size", b"bytes"), (b"Max resident set", b"bytes"),
          (b"Max processes", b"processes"), (b"Max open files", b"files"),
          (b"Max locked memory", b"bytes"), (b"Max address space", b"bytes"),
          (b"Max file locks", b"locks"), (b"Max pending signals", b"signals"),
          (b"Max msgqueue size", b"bytes"), (b"Max nice priority", b""),
          (b"Max realtime priority", b""), (b"Max realtime timeout", b"us"))
FILESYSTEMS = ((b"sysfs", False), (b"tmpfs", False), (b"devtmpfs", False), (b"proc", False),
               (b"devpts", False), (b"ext2", True))
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


def all_options(m) -> bytes:
    """A mount's flags and its filesystem's own options, as /proc/mounts
    shows them."""
    extra = m.fs.show_options()
    return mount_options(m.flags) + (b"," + extra if extra else b"")


def _escape(path: bytes) -> bytes:
    """Mount table escaping (space, tab, newline, backslash) as Linux's."""
    out = bytearray()
    for c in path:
        out += b"\\%03o" % c if c in b" \t\n\\" else bytes([c])
    return bytes(out)


class ProcFs(FileSystem):
    writable = False

    def __init__(self, kernel: Any = None):
        self.kernel = kernel
        self.sys_inos: dict[bytes, int] = {}
        self.root = Dir(self, 1, self.root_entries, numbers=self.pids, number=self.pid_entry)

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
    def root_entries(self) -> dict:
        self.caller()
        if self.kernel is None:
            return {}
        gens = {b"cmdline": self.cmdline, b"cpuinfo": self.cpuinfo,
                b"filesystems": self.filesystems, b"loadavg": self.loadavg,
                b"meminfo": lambda: meminfo(memory_use(self.k())), b"stat": self.stat,
                b"uptime": self.uptime, b"version": self.version}
        out: dict[bytes, Callable] = {
            name: (lambda i=i, gen=gen: File(self, 2 + i, gen))
            for i, (name, gen) in enumerate(gens.items())}
        out[b"mounts"] = lambda: Link(self, 19, lambda: b"self/mounts")
        out[b"self"] = lambda: Link(self, 20, self.self_target)
        out[b"thread-self"] = lambda: Link(self, 21, self.thread_self_target)
        out[b"sys"] = lambda: tree_node(self, b"/sys", self.sys_tree(), self.root)
        return out

    def path_ino(self, path: bytes) -> int:
        """/proc/sys's inodes: numbers between the root's files and the pids'."""
        return self.sys_inos.setdefault(path, 32 + len(self.sys_inos))

    def sys_tree(self) -> dict:
        """/proc/sys: the settings programs read (read-only here)."""
        cfg = self.k().cfg
        return {b"kernel": {
                    b"hostname": lambda: cfg.hostname.encode() + b"\n",
                    b"osrelease": lambda: cfg.release.encode() + b"\n",
                    b"ostype": lambda: b"Linux\n", b"version": lambda: VERSION + b"\n",
                    b"pid_max": lambda: b"%d\n" % PID_MAX,
                    b"random": {b"boot_id": lambda: BOOT_ID + b"\n",
                                b"uuid": lambda: str(uuid.uuid4()).encode() + b"\n"}},
                b"fs": {b"file-max": lambda: b"%d\n" % self.file_max(),
                        b"nr_open": lambda: b"%d\n" % NR_OPEN},
                b"vm": {b"overcommit_memory": lambda: b"0\n"}}

    def file_max(self) -> int:
        """Linux's files_maxfiles_init: a file per 10 KiB of memory, 8192 at least."""
        return max(self.k().cfg.mem // 10240, NR_FILE)

    def pids(self, n: int, count: int) -> list[int]:
        self.caller()
        return numbers_from(sorted(self.kernel.processes), n, count) if self.kernel is not None else []

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
        _, _, idle = cpu_seconds(self.k())
        return b"%.2f %.2f\n" % (uptime(), idle)

    def loadavg(self) -> bytes:
        k = self.k()
        running, total = run_queue(k, calling_task())
        loads = k.load.sample(running)
        return b"%.2f %.2f %.2f %d/%d %d\n" % (*loads, running, total, k.next_tid - 1)

    def stat(self) -> bytes:
        """The guest's CPU time (sched/load.py), all of it and evenly by CPU."""
        k = self.k()
        n = guest_cpus()
        user, system, idle = cpu_seconds(k)

        def line(name: bytes, share: float) -> bytes:
            ticks = (round(user * HZ * share), round(system * HZ * share),
                     round(idle * HZ * share))
            return b"%s %d 0 %d %d 0 0 0 0 0 0" % (name, *ticks)
        running, _ = run_queue(k, calling_task())
        lines = [line(b"cpu ", 1.0)] + [line(b"cpu%d" % i, 1 / n) for i in range(n)]
        lines += [b"intr 0", b"ctxt 0", b"btime %d" % round(time.time() - uptime()),
                  b"processes %d" % (k.next_tid - 1), b"procs_running %d" % running,
                  b"procs_blocked 0", b"softirq 0 0 0 0 0 0 0 0 0 0 0"]
        return b"\n".join(lines) + b"\n"

    def version(self) -> bytes:
        release = self.k().cfg.release.encode()
        return b"Linux version %s (skas@skas) (gcc) %s\n" % (release, VERSION)

    def cmdline(self) -> bytes:
        """The guest's kernel command line, as UML's would read: no host path."""
        cfg = self.k().cfg
        init = cfg.init[0] if cfg.init else "/sbin/init"
        return (f"ubd0=ubda root=/dev/ubda {'ro' if cfg.read_only else 'rw'} "
                f"mem={cfg.mem >> 20}M init={init}\n").encode()

    def cpuinfo(self) -> bytes:
        """The host's first CPU's description (its model, flags: the guest
        runs on it, as UML shows), once per guest CPU, numbered as the guest's;
        what tells one host machine from another (microcode) left out."""
        first = _host("/proc/cpuinfo").split(b"\n\n")[0].splitlines()
        n = guest_cpus()
        per_cpu = {b"processor": b"%d", b"core id": b"%d", b"apicid": b"%d",
                   b"initial apicid": b"%d", b"physical id": b"0", b"siblings": b"%d" % n,
                   b"cpu cores": b"%d" % n}
        blocks = []
        for i in range(n):
            lines = []
            for line in first:
                name, sep, _ = line.partition(b":")
                key = name.strip()
                if key == b"microcode":
                    continue
                if key in per_cpu:
                    value = per_cpu[key] % i if b"%d" in per_cpu[key] else per_cpu[key]
                    line = name + sep + b" " + value
                lines.append(line)
            blocks.append(b"\n".join(lines) + b"\n")
        return b"\n".join(blocks) + b"\n"

    def filesystems(self) -> bytes:
        return b"".join(b"%s\t%s\n" % (b"" if device else b"nodev", name)
                        for name, device in FILESYSTEMS)

    def seen(self, path: bytes) -> bytes:
        """A path as the reading task sees it (Linux's d_path)."""
        me = calling_task()
        return (seen_from(path, me.root) if me is not None else None) or path

    def visible_mounts(self, pid: int, tid: int | None) -> Iterator[tuple[Any, bytes]]:
        """(mount, where it is) for each mount the task sees from its root."""
        root = self.task_of(pid, tid).root
        for m in self.k().vfs.mounts:
            point = seen_from(m.point.path if m.point is not None else b"/", root)
            if point is not None:
                yield m, point

    def mounts(self, pid: int, tid: int | None) -> bytes:
        """/proc/PID/mounts (and /proc/mounts): Linux's show_vfsmnt."""
        out = []
        for m, point in self.visible_mounts(pid, tid):
            out.append(b"%s %s %s %s 0 0" % (_escape(m.source or b"none"), _escape(point),
                                               m.fstype or b"none", all_options(m)))
        return b"\n".join(out) + b"\n"

    def mountinfo(self, pid: int, tid: int | None) -> bytes:
        """/proc/PID/mountinfo: Linux's show_mountinfo (every mount private,
        so no optional fields)."""
        out = []
        for m, point in self.visible_mounts(pid, tid):
            parent = m.point.mount.id if m.point is not None else m.id
            extra = m.fs.show_options()
            sb = (b"ro" if m.readonly else b"rw") + (b"," + extra if extra else b"")
            out.append(b"%d %d %d:%d %s %s %s - %s %s %s" % (
                m.id, parent, os.major(m.dev), os.minor(m.dev), _escape(m.root_path),
                _escape(point), mount_options(m.flags), m.fstype or b"none",
                _escape(m.source or b"none"), sb))
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
        return "R" if is_running(t, calling_task()) else "S"

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
                     b"comm": lambda: self.pid_comm(pid, tid),
                     b"mounts": lambda: self.mounts(pid, tid),
                     b"maps": lambda: self.pid_maps(pid), b"statm": lambda: self.pid_statm(pid),
                     b"mountinfo": lambda: self.mountinfo(pid, tid), b"limits": lambda: self.pid_limits(pid)}
            out: dict[bytes, Callable] = {}
            for i, (name, gen) in enumerate(files.items()):
                out[name] = lambda i=i, gen=gen: File(self, self.ino(key, i + 1), gen, 0o444, uid, gid)
            out[b"environ"] = lambda: File(
                self, self.ino(key, 20),
                lambda: self.inspected(pid, tid, lambda t: self.mm_range(pid, "env_start", "env_end")),
                0o400, uid, gid)
            out[b"exe"] = lambda: Link(self, self.ino(key, 21),
                                       lambda: self.inspected(pid, tid, lambda t: self.seen(t.exe)), uid, gid)
            out[b"cwd"] = lambda: Link(self, self.ino(key, 22),
                                       lambda: self.inspected(pid, tid, lambda t: self.seen(t.cwd.path)), uid, gid)
            out[b"root"] = lambda: Link(self, self.ino(key, 23),
                                        lambda: self.inspected(pid, tid, lambda t: self.seen(t.root.path)), uid, gid)
            out[b"fd"] = lambda: self.fd_dir(pid, tid, key, uid, gid, d)
            if tid is None:
                out[b"task"] = lambda: Dir(
                    self, self.ino(key, 25), dict, d, 0o555, duid, dgid,
                    numbers=lambda n, count: numbers_from(sorted(self.threads_of(pid)), n, count),
                    number=lambda n: self.pid_dir(pid, n))
            return out

        d = Dir(self, self.ino(key, 0), entries, self.root, 0o555, duid, dgid)
        return d

    def inspected(self, pid: int, tid: int | None, what: Callable[[Any], bytes]) -> bytes:
        """what(task) if the caller may look into the task's memory and files
        (Linux's ptrace_may_access for reading: itself, the same uids and
        gids, or CAP_SYS_PTRACE), else EACCES."""
        t = self.task_of(pid, tid)
        me = calling_task()
        if me is not None and me.process is not t.process and not capable(me.cred, CAP_SYS_PTRACE):
            c, mine = t.cred, me.cred
            if not ({c.uid, c.euid, c.suid} == {mine.fsuid} and {c.gid, c.egid, c.sgid} == {mine.fsgid}):
                raise Errno(errno.EACCES)
        return what(t)

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

    def fd_target(self, f) -> bytes:
        if f.loc is not None and f.loc.path:
            return self.seen(f.loc.path)
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
        """The lines of t's host status that are the guest's too (HOST_STATUS)."""
        out = {}
        if t is None or not t.host_pid:
            return out
        for line in _host(f"/proc/{t.host_pid}/status").splitlines():
            name, _, value = line.partition(b":")
            if name.startswith(HOST_STATUS):
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
        start = int((proc.start_time - BOOT) * HZ)
        parent = proc.parent.pid if proc.parent is not None else 0
        tty = proc.tty            # its controlling terminal: tty_nr and tpgid
        tty_nr, tpgid = (tty.device, tty.pgrp or -1) if tty is not None else (0, -1)
        fields = [pid if tid is None else tid, None, state, parent, proc.pgid, proc.sid,
                  tty_nr, tpgid, 0x400000, h(10), 0, h(12), 0, h(14), h(15), 0, 0, 20, 0,
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
        """Linux 6.1's lines in its order (proc_pid_status).  The memory
        lines, speculation state and context switches are the host
        process's; nothing says a tracer or a seccomp filter is there
        (TracerPid and Seccomp are 0: the guest is not sandboxed by anything it
        can see; NoNewPrivs is the guest's own prctl)."""
        proc = self.process(pid)
        t = proc.threads.get(tid) if tid is not None else self.leader(proc)
        state = self.state(t) if not proc.zombie else "Z"
        names = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)"}
        c = t.cred if t is not None else None
        pending, blocked, ign, cgt = self.sigmasks(proc, t)
        me = tid if tid is not None else pid
        parent = proc.parent.pid if proc.parent is not None else 0
        lines = [f"Name:\t{(t.comm if t else b'').decode(errors='replace')}"]
        if t is not None:
            lines.append(f"Umask:\t{t.umask:04o}")
        lines += [f"State:\t{names[state]}", f"Tgid:\t{pid}", "Ngid:\t0", f"Pid:\t{me}",
                  f"PPid:\t{parent}", "TracerPid:\t0"]
        if c is not None:
            lines += [f"Uid:\t{c.uid}\t{c.euid}\t{c.suid}\t{c.fsuid}",
                      f"Gid:\t{c.gid}\t{c.egid}\t{c.sgid}\t{c.fsgid}",
                      f"FDSize:\t{-(-max(len(t.files.fds), 1) // 64) * 64}",
                      "Groups:\t" + " ".join(map(str, c.groups)) + " "]
        lines += [f"NStgid:\t{pid}", f"NSpid:\t{me}", f"NSpgid:\t{proc.pgid}",
                  f"NSsid:\t{proc.sid}"]
        host = self.host_status(t) if state != "Z" else {}
        if state != "Z":
            lines += [f"{k.decode()}:\t{v.decode()}" for k, v in host.items()
                      if k.startswith((b"Vm", b"Rss"))]
            lines += ["HugetlbPages:\t       0 kB", "CoreDumping:\t0", "THP_enabled:\t1"]
        n = guest_cpus()
        limit = proc.rlimits[RLIMIT_SIGPENDING][0]
        lines += [f"Threads:\t{len(proc.threads)}", f"SigQ:\t{len(proc.pending)}/{limit}",
                  f"SigPnd:\t{pending:016x}", "ShdPnd:\t0000000000000000",
                  f"SigBlk:\t{blocked:016x}", f"SigIgn:\t{ign:016x}", f"SigCgt:\t{cgt:016x}",
                  f"CapInh:\t{c.inheritable if c else 0:016x}",
                  f"CapPrm:\t{c.permitted if c else 0:016x}",
                  f"CapEff:\t{c.effective if c else 0:016x}",
                  f"CapBnd:\t{c.bounding if c else 0:016x}", "CapAmb:\t0000000000000000",
                  f"NoNewPrivs:\t{int(t.no_new_privs) if t else 0}", "Seccomp:\t0", "Seccomp_filters:\t0"]
        lines += [f"{k.decode()}:\t{v.decode()}" for k, v in host.items()
                  if k.startswith(b"Speculation")]
        lines += [f"Cpus_allowed:\t{cpu_mask(n)}", f"Cpus_allowed_list:\t{cpu_range(n)}",
                  "Mems_allowed:\t00000001", "Mems_allowed_list:\t0"]
        lines += [f"{k.decode()}:\t{v.decode()}" for k, v in host.items()
                  if k.endswith(b"ctxt_switches")]
        return ("\n".join(lines) + "\n").encode()

    def pid_limits(self, pid: int) -> bytes:
        """/proc/PID/limits, in Linux's columns."""
        rows = [b"%-25s %-20s %-20s %-10s" % (b"Limit", b"Soft Limit", b"Hard Limit", b"Units")]
        for (name, unit), (soft, hard) in zip(LIMITS, self.process(pid).rlimits):
            cols = [b"unlimited" if v == RLIM_INFINITY else b"%d" % v for v in (soft, hard)]
            rows.append((b"%-25s %-20s %-20s " % (name, *cols)) +
                        (b"%-10s" % unit if unit else b""))
        return b"\n".join(rows) + b"\n"

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
                out.append(line.ljust(MAPS_NAME_COLUMN) + self.seen(v.path))
            elif not path or path in SPECIAL_MAPS:     # anonymous, [heap], [stack] ...
                out.append(line)
            # else a host file the guest has no name for: left out
        return b"\n".join(out) + (b"\n" if out else b"")

    @staticmethod
    def ranges(t) -> dict:
        """What exec recorded of t's image (fork copies it)."""
        return t.mm_ranges if t is not None else {}
