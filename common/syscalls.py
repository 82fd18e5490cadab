"""The syscall policy: for every guest system call, its number, name, route,
restart class, support level and note.  The one place that says what a guest
may call and where each call is served.

In a nutshell: the filter (services/userspace/seccomp.py) is generated from
the routes, the kernel's table (services/kernel/syscalls.py) gives a handler
to every call it serves and nothing else, the kernel's restart rules
(services/kernel/signal.py) come from the restart classes, and `skas
syscalls` prints this table.  Shared because userspace must never import the
kernel's handlers.

Routes:
- ``HOST``: the filter lets it run on the host, whatever its arguments;
- ``CHECKED``: it runs on the host for the arguments the filter checks for
  (the filter holds one check per such call), and traps otherwise;
- ``NOTIFY``: the kernel answers it through the filter's seccomp listener
  (``SECCOMP_RET_USER_NOTIF``) when the guest runs with one, else it traps;
  a call made from the stub's own range always traps;
- ``TRAP``: a ptrace stop in the tracer (``SECCOMP_RET_TRACE``); the kernel
  answers.  Numbers not listed trap too, and the kernel answers ENOSYS.
A call from another ABI (``int 0x80``, x32) kills the process before any
number is looked at.

Which calls are notified is a matter of speed only: the kernel stops a
notified caller for ptrace whenever it needs to (a signal to deliver,
address-space ops).  Notified are the calls the kernel almost always answers
with a number (measured: a guest's getppid 52 -> 6.3 µs, a 64 KiB ext2
write 155 -> 87-95 µs).  Calls that change the address space or the
registers, or that always end in a signal's delivery, trap: the kernel would
have to stop them anyway (comments below say which).
"""
from __future__ import annotations

from dataclasses import dataclass

# routes
HOST, CHECKED, NOTIFY, TRAP = "host", "checked", "notify", "trap"
# support levels: NONE is not implemented (the kernel answers ENOSYS and logs
# it once); REFUSED is ENOSYS on purpose
FULL, PARTIAL, HOST_RUN, REFUSED, NONE = "full", "partial", "host", "refused", "none"
# Restart classes, Linux's: what a call a signal cut short does once a handler
# ran (with no handler, every class runs again).  ERESTARTSYS: again if the
# handler has SA_RESTART, else EINTR; ERESTARTNOHAND: EINTR after any handler;
# ERESTARTNOINTR: always again.
SYS, NOHAND, NOINTR = "ERESTARTSYS", "ERESTARTNOHAND", "ERESTARTNOINTR"


@dataclass(frozen=True)
class Policy:
    nr: int
    name: str
    route: str
    support: str
    note: str = ""
    restart: str = SYS

    @property
    def served(self) -> bool:
        """The kernel has a handler for it (it can reach the kernel, and is
        implemented)."""
        return self.route != HOST and self.support != NONE


XATTR_NOTE = ("user., trusted., security. on ext2 and tmpfs; no POSIX ACLs (system.*: "
              "EOPNOTSUPP); security.capability as any security. name")

_TABLE = [
    # nr, name, route, support, note, restart class (when not ERESTARTSYS)
    (0, "read", NOTIFY, FULL),
    (1, "write", NOTIFY, FULL),
    (2, "open", NOTIFY, PARTIAL, "sockets (as on Linux), block devices ENXIO; no O_TMPFILE"),
    (3, "close", NOTIFY, FULL),
    (4, "stat", NOTIFY, FULL),
    (5, "fstat", NOTIFY, FULL),
    (6, "lstat", NOTIFY, FULL),
    (7, "poll", NOTIFY, FULL, "", NOHAND),
    (8, "lseek", NOTIFY, FULL, "SEEK_DATA/SEEK_HOLE as generic_file_llseek (all data, one hole "
     "at the end; Linux's tmpfs finds real holes)"),
    # Memory calls run on the host off the stub's range (mmap: anonymous
    # ones, or exactly the scratch's own map); the filter's check is coarse
    # and the kernel checks what traps exactly.
    (9, "mmap", CHECKED, PARTIAL, "files from the page cache at any page offset, MAP_FIXED and "
                                  "MAP_FIXED_NOREPLACE too; shared ones coherent with read, write "
                                  "and truncate; a private map of a file no one maps shared is a "
                                  "snapshot (Linux's untouched pages follow writes and truncates); "
                                  "anonymous on the host"),
    (10, "mprotect", CHECKED, HOST_RUN, "on the host, off the stub's range (a shared map of a "
                                        "read-only fd cannot be made writable: EACCES)"),
    (11, "munmap", CHECKED, HOST_RUN, "on the host, off the stub's range"),
    # Calls confined to the caller's own memory and time run on the host.
    (12, "brk", HOST, HOST_RUN),
    (13, "rt_sigaction", NOTIFY, FULL),
    (14, "rt_sigprocmask", NOTIFY, FULL),
    # traps: the signal mask and frame it restores are the kernel's
    (15, "rt_sigreturn", TRAP, FULL, "the frame and mask are the kernel's"),
    (16, "ioctl", NOTIFY, PARTIAL, "ttys and ptys: termios (2 too), flush, flow, window size, "
     "pgrp/sid, controlling tty, FIONREAD/TIOCOUTQ, ptmx's TIOCGPTN/SPTLCK/GPTPEER; "
     "no TIOCPKT/TIOCSTI/TIOCEXCL/TIOCM*; FIOASYNC as fcntl's O_ASYNC"),
    (17, "pread64", NOTIFY, FULL),
    (18, "pwrite64", NOTIFY, FULL),
    (19, "readv", NOTIFY, FULL),
    (20, "writev", NOTIFY, FULL),
    (21, "access", NOTIFY, FULL),
    (22, "pipe", NOTIFY, FULL),
    (23, "select", NOTIFY, FULL, "", NOHAND),
    (24, "sched_yield", HOST, HOST_RUN),
    (25, "mremap", CHECKED, HOST_RUN, "on the host, off the stub's range; growing traps, and a "
                                      "file map's new part is filled from the page cache first "
                                      "(not once its version was replaced: zeros)"),
    (26, "msync", TRAP, FULL, "MS_SYNC writes every shared map of the caller back"),
    (28, "madvise", CHECKED, HOST_RUN, "on the host, off the stub's range; MADV_DONTNEED on a "
                                       "private file map re-reads the page-cache file it maps"),
    (32, "dup", NOTIFY, FULL),
    (33, "dup2", NOTIFY, FULL),
    # pause and rt_sigsuspend trap: they always end in a signal's delivery
    (34, "pause", TRAP, FULL, "", NOHAND),
    # signals, waits and polls are notified: a number, unless a signal must be
    # delivered on the way back (the kernel then stops the caller first)
    (35, "nanosleep", NOTIFY, FULL, "on the kernel's loop; interrupted by signals, rem written",
     NOHAND),
    (36, "getitimer", NOTIFY, FULL, "CPU-time timers to the host's clock tick"),
    (37, "alarm", NOTIFY, FULL, "ITIMER_REAL on the kernel's loop; kept across exec, not fork"),
    (38, "setitimer", NOTIFY, FULL, "CPU-time timers to the host's clock tick"),
    (39, "getpid", NOTIFY, FULL, "virtual pid"),
    (40, "sendfile", NOTIFY, PARTIAL, "from regular files"),
    # clone, fork, vfork, execve, execveat, clone3 trap: they change the
    # address space or the registers
    # sockets: AF_UNIX in the kernel (services/kernel/net); answered with a number,
    # blocking on the kernel's loop like pipes, so notified
    (41, "socket", NOTIFY, PARTIAL, "AF_UNIX only; other families EAFNOSUPPORT"),
    (42, "connect", NOTIFY, FULL, "AF_UNIX: filesystem and abstract names"),
    (43, "accept", NOTIFY, FULL),
    (44, "sendto", NOTIFY, PARTIAL, "no MSG_OOB"),
    (45, "recvfrom", NOTIFY, PARTIAL, "no MSG_OOB"),
    (46, "sendmsg", NOTIFY, PARTIAL, "SCM_RIGHTS and SCM_CREDENTIALS; no MSG_OOB"),
    (47, "recvmsg", NOTIFY, PARTIAL, "SCM_RIGHTS and SCM_CREDENTIALS; no MSG_OOB, no "
                                       "SCM_PIDFD or SCM_SECURITY"),
    (48, "shutdown", NOTIFY, FULL),
    (49, "bind", NOTIFY, FULL, "AF_UNIX: filesystem, abstract and automatic names"),
    (50, "listen", NOTIFY, FULL),
    (51, "getsockname", NOTIFY, FULL),
    (52, "getpeername", NOTIFY, FULL),
    (53, "socketpair", NOTIFY, FULL, "AF_UNIX"),
    (54, "setsockopt", NOTIFY, PARTIAL, "SOL_SOCKET: SO_SNDBUF, SO_RCVBUF, SO_PASSCRED, "
                                          "SO_REUSEADDR, SO_KEEPALIVE; others ENOPROTOOPT"),
    (55, "getsockopt", NOTIFY, PARTIAL, "SOL_SOCKET: TYPE DOMAIN PROTOCOL ERROR PEERCRED "
                                          "PASSCRED SNDBUF RCVBUF ACCEPTCONN REUSEADDR KEEPALIVE"),
    (56, "clone", TRAP, PARTIAL, "processes and threads; CLONE_PIDFD for processes (with "
                                  "CLONE_THREAD EINVAL: no thread pidfds); no namespaces",
     NOINTR),
    (57, "fork", TRAP, FULL, "", NOINTR),
    (58, "vfork", TRAP, FULL, "the parent waits in the kernel until the child execs or exits",
     NOINTR),
    (59, "execve", TRAP, PARTIAL, "static, PIE and dynamic ELF (PT_INTERP), #! scripts; "
                                  "set-ID files (not on nosuid mounts, not under no_new_privs), "
                                  "root's capabilities, AT_SECURE, dumpability; no file "
                                  "capabilities or ambient set"),
    # exit and exit_group run on the host: the kernel learns of the end, with
    # the host wait status, when userspace reaps the process
    (60, "exit", HOST, HOST_RUN),
    # wait4 and waitid trap: as stops they reach the kernel in one message with
    # the child's exit, which userspace reaps in the same turn (measured,
    # fork+_exit+waitpid 270 µs trapped, 290 µs through the listener)
    (61, "wait4", TRAP, FULL),
    (62, "kill", NOTIFY, FULL, "guest pids only"),
    (63, "uname", NOTIFY, FULL, "the guest's own release and nodename"),
    (72, "fcntl", NOTIFY, PARTIAL, "record and OFD locks; F_SETOWN(_EX)/F_SETSIG, O_ASYNC on "
                                   "pipes, Unix sockets and inotify (not the console), F_NOTIFY "
                                   "(dnotify; 8192 watches a guest); an rt signal does not queue "
                                   "twice; leases, seals: EINVAL; no pipe packet mode"),
    (73, "flock", NOTIFY, PARTIAL, "not on anonymous pipes and eventfds (EINVAL)"),
    (74, "fsync", NOTIFY, FULL),
    (75, "fdatasync", NOTIFY, FULL, "as fsync"),
    (76, "truncate", NOTIFY, FULL),
    (77, "ftruncate", NOTIFY, FULL),
    (78, "getdents", NOTIFY, FULL),
    (79, "getcwd", NOTIFY, FULL),
    (80, "chdir", NOTIFY, FULL),
    (81, "fchdir", NOTIFY, FULL),
    (82, "rename", NOTIFY, FULL),
    (83, "mkdir", NOTIFY, FULL),
    (84, "rmdir", NOTIFY, FULL),
    (85, "creat", NOTIFY, FULL),
    (86, "link", NOTIFY, FULL),
    (87, "unlink", NOTIFY, FULL),
    (88, "symlink", NOTIFY, FULL),
    (89, "readlink", NOTIFY, FULL),
    (90, "chmod", NOTIFY, FULL),
    (91, "fchmod", NOTIFY, FULL),
    (92, "chown", NOTIFY, FULL),
    (93, "fchown", NOTIFY, FULL),
    (94, "lchown", NOTIFY, FULL),
    (95, "umask", NOTIFY, FULL),
    (96, "gettimeofday", HOST, HOST_RUN),
    (97, "getrlimit", NOTIFY, FULL),
    (98, "getrusage", NOTIFY, PARTIAL, "SELF/THREAD: the host thread's times, maxrss, faults; "
                                       "CHILDREN: waited-for children's, from the host's wait4"),
    (99, "sysinfo", NOTIFY, FULL, "the guest's memory (mem) and use, load averages sampled "
                                  "when asked; no swap, no high memory"),
    (100, "times", NOTIFY, PARTIAL, "ticks since guest boot; host thread times; children as "
                                    "getrusage"),
    (102, "getuid", NOTIFY, FULL),
    (104, "getgid", NOTIFY, FULL),
    (105, "setuid", NOTIFY, FULL),
    (106, "setgid", NOTIFY, FULL),
    (107, "geteuid", NOTIFY, FULL),
    (108, "getegid", NOTIFY, FULL),
    (109, "setpgid", NOTIFY, FULL),
    (110, "getppid", NOTIFY, FULL, "virtual pid"),
    (111, "getpgrp", NOTIFY, FULL),
    (112, "setsid", NOTIFY, FULL),
    (113, "setreuid", NOTIFY, FULL),
    (114, "setregid", NOTIFY, FULL),
    (115, "getgroups", NOTIFY, FULL),
    (116, "setgroups", NOTIFY, FULL),
    (117, "setresuid", NOTIFY, FULL),
    (118, "getresuid", NOTIFY, FULL),
    (119, "setresgid", NOTIFY, FULL),
    (120, "getresgid", NOTIFY, FULL),
    (121, "getpgid", NOTIFY, FULL),
    (122, "setfsuid", NOTIFY, FULL),
    (123, "setfsgid", NOTIFY, FULL),
    (124, "getsid", NOTIFY, FULL),
    (125, "capget", NOTIFY, PARTIAL, "no ambient set, no file capabilities"),
    (126, "capset", NOTIFY, PARTIAL, "no ambient set, no file capabilities"),
    (127, "rt_sigpending", NOTIFY, FULL),
    (128, "rt_sigtimedwait", NOTIFY, FULL, "the set taken without handlers; EAGAIN at the "
     "timeout", NOHAND),
    (129, "rt_sigqueueinfo", NOTIFY, FULL, "guest pids only"),
    (130, "rt_sigsuspend", TRAP, FULL, "", NOHAND),
    # traps: it needs the caller's rsp, which a notification does not carry
    (131, "sigaltstack", TRAP, FULL),
    (132, "utime", NOTIFY, FULL),
    (133, "mknod", NOTIFY, PARTIAL, "block nodes are made but open as ENXIO"),
    (137, "statfs", NOTIFY, FULL),
    (138, "fstatfs", NOTIFY, PARTIAL, "EINVAL for pipes and the boot console"),
    (140, "getpriority", NOTIFY, PARTIAL, "the nice values setpriority kept; not applied on the host"),
    (141, "setpriority", NOTIFY, PARTIAL, "kept with Linux's permission rules; not applied on the host"),
    (142, "sched_setparam", NOTIFY, PARTIAL, "kept, not applied on the host"),
    (143, "sched_getparam", NOTIFY, FULL),
    (144, "sched_setscheduler", NOTIFY, PARTIAL, "policies kept with Linux's permission rules, "
     "not applied on the host; SCHED_DEADLINE EINVAL (sched_setattr's)"),
    (145, "sched_getscheduler", NOTIFY, FULL),
    (146, "sched_get_priority_max", NOTIFY, FULL),
    (147, "sched_get_priority_min", NOTIFY, FULL),
    (148, "sched_rr_get_interval", NOTIFY, FULL),
    (157, "prctl", NOTIFY, PARTIAL, "PR_SET_NAME, PR_GET_NAME, keep-caps, the bounding set, "
                                    "securebits, PR_SET/GET_DUMPABLE, PR_SET/GET_NO_NEW_PRIVS"),
    # SET/GET FS/GS run on the host; the other codes trap
    (158, "arch_prctl", CHECKED, PARTIAL, "FS/GS, CPUID faulting, AMX permissions; on the host"),
    (160, "setrlimit", NOTIFY, PARTIAL, "per process; only NOFILE, NPROC and STACK (exec's "
                                        "argument space) bound anything"),
    (161, "chroot", NOTIFY, FULL, "the guest task's root, as Linux's (the fchdir escape too); "
                                  "/proc's links are followed as text, not jumped through"),
    (162, "sync", NOTIFY, FULL),
    (165, "mount", TRAP, PARTIAL, "tmpfs, devtmpfs, proc, sysfs, bind, remount, propagation "
                                  "no-ops; no MS_MOVE"),
    (166, "umount2", TRAP, PARTIAL, "no MNT_EXPIRE"),
    (169, "reboot", TRAP, PARTIAL, "halt and power off end the guest, restart boots it "
                                   "again (all four services), CAD_ON/OFF; no kexec, no "
                                   "hibernation (EINVAL)"),
    (186, "gettid", NOTIFY, FULL, "virtual tid"),
    (187, "readahead", NOTIFY, FULL, "nothing to do: the page cache reads what is asked"),
    (188, "setxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (189, "lsetxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (190, "fsetxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (191, "getxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (192, "lgetxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (193, "fgetxattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (194, "listxattr", NOTIFY, FULL),
    (195, "llistxattr", NOTIFY, FULL),
    (196, "flistxattr", NOTIFY, FULL),
    (197, "removexattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (198, "lremovexattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (199, "fremovexattr", NOTIFY, PARTIAL, XATTR_NOTE),
    (200, "tkill", NOTIFY, FULL, "guest tids only"),
    (201, "time", HOST, HOST_RUN),
    # private commands that touch nothing but the words they name run on the
    # host; the rest trap (shared ones then run on the host too, PI ones,
    # which store the owner's host tid in the word, are refused)
    (202, "futex", CHECKED, PARTIAL, "on the host; no PI futexes (they store host tids)"),
    (203, "sched_setaffinity", NOTIFY, PARTIAL, "the guest's mask, kept and inherited; never "
                                                "applied to host processes"),
    (204, "sched_getaffinity", NOTIFY, FULL, "the guest's CPUs are the host's"),
    (213, "epoll_create", NOTIFY, FULL),
    (217, "getdents64", NOTIFY, FULL),
    (218, "set_tid_address", NOTIFY, FULL, "virtual tid"),
    (221, "fadvise64", NOTIFY, FULL, "advice taken, nothing done"),
    (228, "clock_gettime", HOST, HOST_RUN),
    (229, "clock_getres", HOST, HOST_RUN),
    (230, "clock_nanosleep", NOTIFY, FULL, "on the kernel's loop; interrupted by signals, rem "
                                           "written", NOHAND),
    (231, "exit_group", HOST, HOST_RUN),
    (232, "epoll_wait", NOTIFY, FULL, "", NOHAND),
    (233, "epoll_ctl", NOTIFY, PARTIAL, "EPOLLEXCLUSIVE wakes like a normal watch; EPOLLWAKEUP "
                                        "ignored"),
    (234, "tgkill", NOTIFY, FULL, "guest tids only"),
    (235, "utimes", NOTIFY, FULL),
    (247, "waitid", TRAP, FULL, "P_ALL, P_PID, P_PGID, P_PIDFD"),
    (253, "inotify_init", NOTIFY, FULL),
    (254, "inotify_add_watch", NOTIFY, PARTIAL, "IN_DELETE_SELF at the unlink, not at the last "
                                                "close; no IN_UNMOUNT; IN_EXCL_UNLINK ignored"),
    (255, "inotify_rm_watch", NOTIFY, FULL),
    (257, "openat", NOTIFY, PARTIAL, "sockets, block devices ENXIO; no O_TMPFILE"),
    (257, "openat", NOTIFY, PARTIAL, "sockets (as on Linux), block devices ENXIO; no "
                                     "O_TMPFILE"),
    (258, "mkdirat", NOTIFY, FULL),
    (259, "mknodat", NOTIFY, PARTIAL, "block nodes are made but open as ENXIO"),
    (260, "fchownat", NOTIFY, FULL),
    (261, "futimesat", NOTIFY, FULL),
    (262, "newfstatat", NOTIFY, FULL),
    (263, "unlinkat", NOTIFY, FULL),
    (264, "renameat", NOTIFY, FULL),
    (265, "linkat", NOTIFY, FULL),
    (266, "symlinkat", NOTIFY, FULL),
    (267, "readlinkat", NOTIFY, FULL),
    (268, "fchmodat", NOTIFY, FULL),
    (269, "faccessat", NOTIFY, FULL),
    (270, "pselect6", NOTIFY, FULL, "", NOHAND),
    (271, "ppoll", NOTIFY, FULL, "", NOHAND),
    (273, "set_robust_list", HOST, HOST_RUN),
    (275, "splice", NOTIFY, PARTIAL, "between pipes, and pipes and regular files"),
    (276, "tee", NOTIFY, FULL),
    (277, "sync_file_range", NOTIFY, FULL, "WRITE alone: nothing to start (writes go to ubd_io "
     "as they come); WAIT_AFTER: the file's fsync"),
    (280, "utimensat", NOTIFY, FULL),
    (281, "epoll_pwait", NOTIFY, FULL, "", NOHAND),
    (282, "signalfd", NOTIFY, FULL, "the reader's pending signals, as Linux's"),
    (283, "timerfd_create", NOTIFY, FULL, "*_ALARM clocks need CAP_WAKE_ALARM"),
    (284, "eventfd", NOTIFY, FULL),
    (285, "fallocate", NOTIFY, PARTIAL, "mode 0 on ext2; other modes and filesystems EOPNOTSUPP"),
    (286, "timerfd_settime", NOTIFY, PARTIAL, "a timer on the kernel's loop (milliseconds; "
                                               "missed periods are counted); CANCEL_ON_SET "
                                               "never cancels: the guest cannot set the clock"),
    (287, "timerfd_gettime", NOTIFY, FULL),
    (288, "accept4", NOTIFY, FULL),
    (289, "signalfd4", NOTIFY, FULL, "the reader's pending signals, as Linux's"),
    (290, "eventfd2", NOTIFY, FULL),
    (291, "epoll_create1", NOTIFY, FULL),
    (292, "dup3", NOTIFY, FULL),
    (293, "pipe2", NOTIFY, PARTIAL, "no O_DIRECT packet mode (EINVAL)"),
    (294, "inotify_init1", NOTIFY, FULL),
    (295, "preadv", NOTIFY, FULL),
    (296, "pwritev", NOTIFY, FULL),
    (299, "recvmmsg", NOTIFY, PARTIAL, "as recvmsg; the timeout looked at after each message"),
    (302, "prlimit64", NOTIFY, PARTIAL, "as setrlimit; other processes with Linux's "
                                        "permission check; a zombie is ESRCH"),
    (306, "syncfs", NOTIFY, FULL),
    (309, "getcpu", NOTIFY, FULL, "the CPU the host thread last ran on, within the task's "
                                  "mask; node 0"),
    (307, "sendmmsg", NOTIFY, PARTIAL, "as sendmsg"),
    (316, "renameat2", NOTIFY, PARTIAL, "no RENAME_WHITEOUT"),
    (318, "getrandom", HOST, HOST_RUN),
    (319, "memfd_create", NOTIFY, PARTIAL, "on a tmpfs mounted nowhere; no seals (F_ADD_SEALS "
                                           "EINVAL), no MFD_HUGETLB or MFD_NOEXEC_SEAL"),
    (322, "execveat", TRAP, PARTIAL, "the program is named by its guest path, not /dev/fd/N"),
    (326, "copy_file_range", NOTIFY, FULL),
    (327, "preadv2", NOTIFY, PARTIAL, "RWF_HIPRI, RWF_DSYNC, RWF_SYNC only"),
    (328, "pwritev2", NOTIFY, PARTIAL, "RWF_HIPRI, RWF_DSYNC, RWF_SYNC only"),
    (332, "statx", NOTIFY, FULL),
    # traps, refused: a critical section over the stub would let the host
    # move rip from an injected call's int3 into guest code
    (334, "rseq", TRAP, REFUSED, "ENOSYS: a critical section over the stub could steer "
                                 "an injected call (glibc runs without)"),
    # pidfds (services/kernel/sched/pidfd.py): answered with a number
    (424, "pidfd_send_signal", NOTIFY, PARTIAL, "pidfds from pidfd_open and clone only (not "
                                                "/proc/PID directories); no PIDFD_SELF_*"),
    (434, "pidfd_open", NOTIFY, PARTIAL, "PIDFD_NONBLOCK; no PIDFD_THREAD (EINVAL)"),
    (435, "clone3", TRAP, PARTIAL, "as clone; no set_tid or cgroup", NOINTR),
    (436, "close_range", NOTIFY, FULL),
    (438, "pidfd_getfd", NOTIFY, FULL, "the guest's own open files, never a host fd"),
    (439, "faccessat2", NOTIFY, FULL),
    (441, "epoll_pwait2", NOTIFY, FULL, "", NOHAND),
    (452, "fchmodat2", NOTIFY, FULL),
    # runs on the host exactly as the stub's PREPARE code makes it after every
    # exec (sealing the stub's range: harmless from anyone); the rest trap
    (462, "mseal", CHECKED, NONE, "the stub's own seal only, on the host; otherwise ENOSYS"),
    (463, "setxattrat", NOTIFY, PARTIAL, XATTR_NOTE),
    (464, "getxattrat", NOTIFY, PARTIAL, XATTR_NOTE),
    (465, "listxattrat", NOTIFY, FULL),
    (466, "removexattrat", NOTIFY, PARTIAL, XATTR_NOTE),
]

TABLE: dict[int, Policy] = {row[0]: Policy(*row) for row in _TABLE}
BY_NAME: dict[str, Policy] = {p.name: p for p in TABLE.values()}
# the calls the filter sends to the listener; the kernel needs them too: such
# a call that a stop cuts short before the kernel has seen it shows
# -ERESTARTSYS like a host call cut short, but nothing of it has happened, so
# it always runs again
NOTIFIED = frozenset(p.nr for p in TABLE.values() if p.route == NOTIFY)


# The futex commands that touch nothing but the words they name: no PI
# (which stores the owner's host tid in the word), no requeue to PI.  The
# filter runs their private forms on the host; the kernel answers their
# shared forms "run on the host" too (services/kernel/syscalls/futex.py).
FUTEX_LOCAL_OPS = {"WAIT": 0, "WAKE": 1, "REQUEUE": 3, "CMP_REQUEUE": 4, "WAKE_OP": 5,
                   "WAIT_BITSET": 9, "WAKE_BITSET": 10}


def routed(route: str) -> list[Policy]:
    """The calls with this route, by number."""
    return [TABLE[nr] for nr in sorted(TABLE) if TABLE[nr].route == route]


def restarting(restart: str) -> frozenset[str]:
    """The names of the calls of this restart class."""
    return frozenset(p.name for p in TABLE.values() if p.restart == restart)


def policy(nr: int) -> Policy:
    """Any number's policy: a number not listed traps, unimplemented."""
    return TABLE.get(nr) or Policy(nr, name(nr), TRAP, NONE)


def name(nr: int) -> str:
    entry = TABLE.get(nr)
    if entry:
        return entry.name
    # python-ptrace's names, for calls nobody serves: imported when first
    # needed, as importing its package runs `ldconfig -p` (about 30 ms)
    from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")
