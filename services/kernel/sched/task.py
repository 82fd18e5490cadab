"""Guest tasks and processes: virtual pids, the process tree, credentials,
files, memory, signal state."""
from __future__ import annotations

import asyncio
import contextvars
import itertools
import struct
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from services.kernel.core.cred import Credentials, loses_dumpable
from services.kernel.core.services import KernelServices
from services.kernel.fs.files import FdTable
from services.kernel.mm.memory import GuestMemory
from services.kernel.core.waitqueue import WaitQueue
from services.kernel.sched.cpus import all_cpus
from services.kernel.abi.prctl import SUID_DUMP_DISABLE, SUID_DUMP_USER
from services.kernel.abi.resource import (NR_OPEN, RLIM_INFINITY, RLIM_NLIMITS, RLIMIT_CORE,
                                          RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE,
                                          RLIMIT_NOFILE, RLIMIT_RTPRIO, RLIMIT_STACK)

NO_ALTSTACK = struct.pack("<QIIQ", 0, 2, 0, 0)     # SS_DISABLE
# The guest's CPUs are the host's (what /proc/cpuinfo shows), numbered as there.

# (soft, hard) by resource, what init starts with: stack, core and memlock
# as Linux's INIT_RLIMITS, 1024 fds up to nr_open, no nice or real-time raising
# without privilege, the rest unbounded.
_INIT = {RLIMIT_STACK: (8 << 20, RLIM_INFINITY), RLIMIT_CORE: (0, RLIM_INFINITY),
         RLIMIT_NOFILE: (1024, NR_OPEN), RLIMIT_MEMLOCK: (8 << 20, 8 << 20),
         RLIMIT_MSGQUEUE: (819200, 819200), RLIMIT_NICE: (0, 0), RLIMIT_RTPRIO: (0, 0)}
INIT_RLIMITS = tuple(_INIT.get(r, (RLIM_INFINITY, RLIM_INFINITY)) for r in range(RLIM_NLIMITS))

# pidfs's inode numbers: one per process, never reused (Linux numbers each
# struct pid so, and a pidfd's st_ino tells whether two name one process).
_PIDFS_INOS = itertools.count(2)

# The task whose system call is being served: set by the dispatcher, and
# inherited by the asyncio task a waiting handler runs in (/proc/self needs it).
CURRENT: contextvars.ContextVar = contextvars.ContextVar("current_task", default=None)

if TYPE_CHECKING:
    from services.kernel.fs.vfs import Location


class Process:
    """A thread group and its place in the process tree: what Linux keeps in
    signal_struct and the parent/children links.  Its pid is its first
    thread's tid; it outlives its threads as a zombie until reaped."""

    def __init__(self, kernel: KernelServices, pid: int, parent: Process | None, pgid: int, sid: int):
        self.kernel = kernel
        self.pid = pid
        self.parent = parent
        self.children: list[Process] = []
        self.threads: dict[int, Task] = {}
        self.pgid = pgid
        self.sid = sid
        self.sigactions: dict[int, bytes] = {}
        self.pending: dict[int, dict] = {}  # signals sent to the process, not yet taken
        self.exit_signal = 17          # SIGCHLD to the parent when it ends
        self.stopped = False           # by SIGSTOP & co: its tasks are held, not resumed
        self.stop_sig = 0
        self.report: str | None = None      # "stop" or "cont", for the parent's wait
        self.exit_code: int | None = None   # wait status the kernel decided (exit_group, signal)
        self.status: int | None = None      # wait status once it is a zombie
        self.child_changed = WaitQueue()    # wait4 sleeps here
        self.signal_queued = WaitQueue()    # a signal joined a pending set: signalfd's readers
        self.start_time = time.monotonic()
        self.itimers: dict = {}             # which -> time.ITimer (setitimer, alarm)
        self.usage = Usage()                # of its ended threads
        self.children_usage = Usage()       # of the children it waited for, and theirs
        self.maps: set = set()              # live files it may map (pagecache.PageCache.hold)
        self.rlimits = list(INIT_RLIMITS)   # (soft, hard) by resource: inherited at fork, kept at exec
        # Linux keeps it in the mm: inherited at fork, set at exec, cleared
        # by a change of credentials (Task.commit_creds); not dumpable,
        # its /proc files are root's
        self.dumpable = SUID_DUMP_USER
        self.reaped = False                 # its pid went back: pidfds to it say ESRCH
        self.pidfd_wait = WaitQueue()       # pidfd pollers: woken at its end and its reaping
        self.pidfs_ino = next(_PIDFS_INOS)
        self.tty = None                     # its controlling terminal (drivers/tty): fork keeps it
        self.continued = WaitQueue()        # woken by SIGCONT (a background tty reader waits)

    @property
    def zombie(self) -> bool:
        return self.status is not None

    def __repr__(self) -> str:
        return f"<Process {self.pid}{' zombie' if self.zombie else ''}>"


class Usage:
    """Resources used, as the host's wait4 reports them for each ended thread:
    what getrusage(RUSAGE_CHILDREN), times() and wait4's rusage add up."""

    def __init__(self) -> None:
        self.utime_us = self.stime_us = self.maxrss_kb = self.minflt = self.majflt = 0

    def add(self, utime_us: int, stime_us: int, maxrss_kb: int, minflt: int,
            majflt: int) -> None:
        self.utime_us += utime_us
        self.stime_us += stime_us
        self.maxrss_kb = max(self.maxrss_kb, maxrss_kb)
        self.minflt += minflt
        self.majflt += majflt

    def fields(self) -> tuple[int, int, int, int, int]:
        return self.utime_us, self.stime_us, self.maxrss_kb, self.minflt, self.majflt


class FsContext:
    """root, cwd and umask (Linux's fs_struct): shared by threads
    (CLONE_FS), copied by fork, kept across exec.  The root is where
    absolute paths start, the VFS root until a chroot; the cwd may lie
    outside it, as on Linux."""

    def __init__(self, cwd: Location, root: Location, umask: int = 0o022):
        self.cwd = cwd
        self.root = root
        self.umask = umask

    def copy(self) -> FsContext:
        return FsContext(self.cwd, self.root, self.umask)


class InFlight:
    """What the kernel keeps of the call a task is in, and of how it stands
    with userspace, apart from the task's guest state (the entry's, mostly:
    services/kernel/entry/kernel.py)."""

    def __init__(self) -> None:
        self.request_id = 0          # the userspace request this task is stopped in
        self.call: asyncio.Future | None = None   # the syscall handler it waits in, if any
        self.in_kernel = True        # stopped for the kernel (a call, a trap), not running
        self.in_ops = False          # waiting for userspace to run ops: not interruptible
        self.signalled = False       # its call was cut short by a signal
        self.user_sp = 0             # rsp at the trapped call
        self.held: tuple | None = None   # the message that resumes it, while its process is stopped
        # A call that came through the seccomp listener (kernel.on_call):
        self.notif: tuple | None = None  # (listener, id) while the task waits in the listener
        self.unsent: tuple | None = None     # an answer only a ptrace stop can give
        self.stopping: asyncio.Future | None = None   # userspace is stopping it for us


@dataclass
class SchedParams:
    """What sched_setscheduler and setpriority set for a thread.  The guest's
    threads run on the host at the host's default: these are kept and
    reported, not applied (a guest must not raise its host priority)."""
    policy: int = 0
    priority: int = 0
    nice: int = 0
    reset_on_fork: bool = False

    def for_child(self) -> SchedParams:
        """SCHED_RESET_ON_FORK: the child starts at SCHED_OTHER and no
        negative nice; else it inherits all."""
        if self.reset_on_fork:
            return SchedParams(nice=max(self.nice, 0))
        return replace(self)


class Task:
    """One guest thread of execution, in a Process: its guest state; the
    call it is in is its ``flight``."""

    def __init__(self, kernel: KernelServices, tid: int, process: Process, cred: Credentials,
                 files: FdTable, fs: FsContext):
        self.kernel = kernel
        self.tid = tid
        self.process = process
        self.cred = cred
        self.no_new_privs = False    # PR_SET_NO_NEW_PRIVS: inherited by fork and exec, never unset
        self.files = files
        self.fs = fs
        self.host_pid = 0
        self.mem: GuestMemory | None = None
        self.comm = b""
        self.exe = b""
        self.flight = InFlight()
        self.sigmask = 0
        self.saved_sigmask: int | None = None   # sigsuspend's: restored after the handler
        self.pending: dict[int, dict] = {}      # signals sent to this thread
        self.signal_wait = WaitQueue()
        self.sigwaiting = 0          # the set a sigtimedwait waits for (Linux's real_blocked)
        self.altstack = NO_ALTSTACK
        self.brk = 0
        self.mm_ranges: dict = {}    # the argument and environment ranges, for /proc
        self.clear_child_tid = 0
        self.sched = SchedParams()   # policy, rt priority and nice: the kernel's record only
        self.vfork_done: asyncio.Future | None = None   # the vfork parent waits on it
        self.created_by: Task | None = None   # the task whose clone op makes it
        self.clone_pidfd: tuple | None = None  # (fd, file) CLONE_PIDFD gave its creator
        self.affinity = all_cpus()   # sched_setaffinity's mask: kept, not applied on the host
        process.threads[tid] = self

    @property
    def tgid(self) -> int:
        return self.process.pid

    @property
    def ppid(self) -> int:
        parent = self.process.parent
        return parent.pid if parent is not None else 0

    @property
    def pgid(self) -> int:
        return self.process.pgid

    @property
    def sid(self) -> int:
        return self.process.sid

    @property
    def sigactions(self) -> dict[int, bytes]:
        return self.process.sigactions

    @property
    def cwd(self) -> Location:
        return self.fs.cwd

    @cwd.setter
    def cwd(self, loc: Location) -> None:
        self.fs.cwd = loc

    @property
    def root(self) -> Location:
        return self.fs.root

    @property
    def umask(self) -> int:
        return self.fs.umask

    @umask.setter
    def umask(self, value: int) -> None:
        self.fs.umask = value

    def commit_creds(self, new: Credentials) -> None:
        """The thread's new credentials, as Linux's commit_creds: ids or
        capabilities gained or changed make the process not dumpable (as
        fs.suid_dumpable's default, 0, has it)."""
        if loses_dumpable(self.cred, new):
            self.process.dumpable = SUID_DUMP_DISABLE
        self.cred = new

    def attach(self, host_pid: int) -> None:
        self.host_pid = host_pid
        self.mem = GuestMemory(host_pid)

    def __repr__(self) -> str:
        return f"<Task {self.tid} {self.comm.decode(errors='replace')}>"
