"""The syscall table: number -> name, handler, support level.  The one place
that says what a guest may call.

A handler takes the task and the six raw arguments and returns an int (the
result), ``HOST`` (run the call on the host), ``Ops`` (address-space ops, then
return), or a coroutine producing one of those; it raises ``Errno`` to fail.
Calls the filter runs on the host (anonymous mmap, brk, futex, clocks ...)
are listed too, as ``host``, so this table documents the whole ABI."""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Callable

from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES as _PTRACE_NAMES

from services.kernel.syscalls import exec as exec_
from services.kernel.syscalls import (attrs, cred, dirs, fds, fork, futex, ids, mm, mount,
                                      open_close, pipe, poll, read_write, signal, stat, time,
                                      wait)
from services.kernel.core.errors import Errno
from services.kernel.core.answers import HOST

FULL, PARTIAL, HOST_RUN, REFUSED = "full", "partial", "host", "refused"
# python-ptrace's list stops at Linux 5.x; the newer calls we serve:
SYSCALL_NAMES = {**_PTRACE_NAMES, 435: "clone3", 436: "close_range", 439: "faccessat2",
                 441: "epoll_pwait2", 452: "fchmodat2"}


@dataclass(frozen=True)
class Syscall:
    name: str
    handler: Callable | None
    support: str
    note: str = ""


def _host(_t, *_):
    return HOST


def _refused(_t, *_):
    raise Errno(errno.ENOSYS)


_ENTRIES = [
    # nr, handler, support, note
    (0, read_write.sys_read, FULL, ""),
    (1, read_write.sys_write, FULL, ""),
    (2, open_close.sys_open, PARTIAL, "sockets, block devices ENXIO; no O_TMPFILE"),
    (3, open_close.sys_close, FULL, ""),
    (4, stat.sys_stat, FULL, ""),
    (5, stat.sys_fstat, FULL, ""),
    (6, stat.sys_lstat, FULL, ""),
    (8, read_write.sys_lseek, PARTIAL, "no SEEK_DATA/SEEK_HOLE"),
    (9, mm.sys_mmap, PARTIAL, "files from the page cache, shared ones coherent with read and "
                              "write; private maps are snapshots; anonymous on the host"),
    (10, mm.sys_mprotect, HOST_RUN, "on the host, off the stub's range"),
    (11, mm.sys_munmap, HOST_RUN, "on the host, off the stub's range"),
    (25, mm.sys_mremap, HOST_RUN, "on the host, off the stub's range"),
    (26, mm.sys_msync, FULL, "MS_SYNC writes every shared map of the caller back"),
    (28, mm.sys_madvise, HOST_RUN, "on the host, off the stub's range"),
    (158, mm.sys_arch_prctl, PARTIAL, "FS/GS, CPUID faulting, AMX permissions; on the host"),
    (334, _refused, REFUSED, "ENOSYS: a critical section over the stub could steer "
                             "an injected call (glibc runs without)"),
    (13, signal.sys_rt_sigaction, FULL, ""),
    (14, signal.sys_rt_sigprocmask, FULL, ""),
    (15, signal.sys_rt_sigreturn, FULL, "traps: the frame and mask are the kernel's"),
    (16, fds.sys_ioctl, PARTIAL, "console: termios, window size, pgrp"),
    (17, read_write.sys_pread64, FULL, ""),
    (19, read_write.sys_readv, FULL, ""),
    (20, read_write.sys_writev, FULL, ""),
    (21, attrs.sys_access, FULL, ""),
    (32, fds.sys_dup, FULL, ""),
    (33, fds.sys_dup2, FULL, ""),
    (34, signal.sys_pause, FULL, ""),
    (35, time.sys_nanosleep, FULL, "on the kernel's loop; interrupted by signals, rem written"),
    (36, time.sys_getitimer, FULL, "CPU-time timers to the host's clock tick"),
    (37, time.sys_alarm, FULL, "ITIMER_REAL on the kernel's loop; kept across exec, not fork"),
    (38, time.sys_setitimer, FULL, "CPU-time timers to the host's clock tick"),
    (98, time.sys_getrusage, PARTIAL, "SELF/THREAD: the host thread's times, maxrss, faults; CHILDREN: waited-for children's, from the host's wait4"),
    (99, time.sys_sysinfo, PARTIAL, "host memory figures; no load averages (zero)"),
    (100, time.sys_times, PARTIAL, "ticks since guest boot; host thread times; children as getrusage"),
    (39, ids.sys_getpid, FULL, "virtual pid"),
    (56, fork.sys_clone, PARTIAL, "processes and threads; no namespaces or pidfds"),
    (57, fork.sys_fork, FULL, ""),
    (58, fork.sys_vfork, FULL, "the parent waits in the kernel until the child execs or exits"),
    (59, exec_.sys_execve, PARTIAL, "static and static-PIE ELF, #! scripts"),
    (61, wait.sys_wait4, FULL, ""),
    (62, signal.sys_kill, FULL, "guest pids only"),
    (63, ids.sys_uname, FULL, "the guest's own release and nodename"),
    (72, fds.sys_fcntl, PARTIAL, "locks, F_SETOWN/F_SETSIG, leases, seals: EINVAL; no pipe packet mode"),
    (79, attrs.sys_getcwd, FULL, ""),
    (80, attrs.sys_chdir, FULL, ""),
    (81, attrs.sys_fchdir, FULL, ""),
    (89, dirs.sys_readlink, FULL, ""),
    (97, ids.sys_getrlimit, FULL, ""),
    (102, cred.sys_getuid, FULL, ""),
    (104, cred.sys_getgid, FULL, ""),
    (107, cred.sys_geteuid, FULL, ""),
    (108, cred.sys_getegid, FULL, ""),
    (109, ids.sys_setpgid, FULL, ""),
    (110, ids.sys_getppid, FULL, "virtual pid"),
    (111, ids.sys_getpgrp, FULL, ""),
    (112, ids.sys_setsid, FULL, ""),
    (115, cred.sys_getgroups, FULL, ""),
    (118, cred.sys_getresuid, FULL, ""),
    (120, cred.sys_getresgid, FULL, ""),
    (121, ids.sys_getpgid, FULL, ""),
    (124, ids.sys_getsid, FULL, ""),
    (127, signal.sys_rt_sigpending, FULL, ""),
    (130, signal.sys_rt_sigsuspend, FULL, ""),
    (129, signal.sys_rt_sigqueueinfo, FULL, "guest pids only"),
    (131, signal.sys_sigaltstack, FULL, ""),
    (157, ids.sys_prctl, PARTIAL, "PR_SET_NAME, PR_GET_NAME, keep-caps, the bounding set, "
                                   "securebits"),
    (160, ids.sys_setrlimit, PARTIAL, "per process; only NOFILE, NPROC and STACK (exec's "
                                       "argument space) bound anything"),
    (186, ids.sys_gettid, FULL, "virtual tid"),
    (200, signal.sys_tkill, FULL, "guest tids only"),
    (217, dirs.sys_getdents64, FULL, ""),
    (202, futex.sys_futex, PARTIAL, "on the host; no PI futexes (they store host tids)"),
    (218, ids.sys_set_tid_address, FULL, "virtual tid"),
    (230, time.sys_clock_nanosleep, FULL, "on the kernel's loop; interrupted by signals, rem written"),
    (234, signal.sys_tgkill, FULL, "guest tids only"),
    (247, wait.sys_waitid, FULL, ""),
    (257, open_close.sys_openat, PARTIAL, "sockets, block devices ENXIO; no O_TMPFILE"),
    (262, stat.sys_newfstatat, FULL, ""),
    (267, dirs.sys_readlinkat, FULL, ""),
    # writable filesystems, /dev and mounts
    (18, read_write.sys_pwrite64, FULL, ""),
    (74, read_write.sys_fsync, FULL, ""),
    (75, read_write.sys_fsync, FULL, "fdatasync: as fsync"),
    (76, read_write.sys_truncate, FULL, ""),
    (77, read_write.sys_ftruncate, FULL, ""),
    (285, read_write.sys_fallocate, PARTIAL, "mode 0 on ext2; other modes and filesystems EOPNOTSUPP"),
    (82, dirs.sys_rename, FULL, ""),
    (83, dirs.sys_mkdir, FULL, ""),
    (84, dirs.sys_rmdir, FULL, ""),
    (85, open_close.sys_creat, FULL, ""),
    (86, dirs.sys_link, FULL, ""),
    (87, dirs.sys_unlink, FULL, ""),
    (88, dirs.sys_symlink, FULL, ""),
    (90, attrs.sys_chmod, FULL, ""),
    (91, attrs.sys_fchmod, FULL, ""),
    (92, attrs.sys_chown, FULL, ""),
    (93, attrs.sys_fchown, FULL, ""),
    (94, attrs.sys_lchown, FULL, ""),
    (95, attrs.sys_umask, FULL, ""),
    (132, attrs.sys_utime, FULL, ""),
    (133, dirs.sys_mknod, PARTIAL, "socket and block nodes are made but open as ENXIO"),
    (137, stat.sys_statfs, FULL, ""),
    (138, stat.sys_fstatfs, PARTIAL, "EINVAL for pipes and the boot console"),
    (162, read_write.sys_sync, FULL, ""),
    (165, mount.sys_mount, PARTIAL, "tmpfs, bind, remount, propagation no-ops; no MS_MOVE"),
    (166, mount.sys_umount2, PARTIAL, "no MNT_EXPIRE"),
    (235, attrs.sys_utimes, FULL, ""),
    (258, dirs.sys_mkdirat, FULL, ""),
    (259, dirs.sys_mknodat, PARTIAL, "socket and block nodes are made but open as ENXIO"),
    (260, attrs.sys_fchownat, FULL, ""),
    (261, attrs.sys_futimesat, FULL, ""),
    (263, dirs.sys_unlinkat, FULL, ""),
    (264, dirs.sys_renameat, FULL, ""),
    (265, dirs.sys_linkat, FULL, ""),
    (266, dirs.sys_symlinkat, FULL, ""),
    (268, attrs.sys_fchmodat, FULL, ""),
    (280, attrs.sys_utimensat, FULL, ""),
    (295, read_write.sys_preadv, FULL, ""),
    (296, read_write.sys_pwritev, FULL, ""),
    (306, read_write.sys_syncfs, FULL, ""),
    (316, dirs.sys_renameat2, PARTIAL, "no RENAME_WHITEOUT"),
    (327, read_write.sys_preadv2, PARTIAL, "RWF_HIPRI, RWF_DSYNC, RWF_SYNC only"),
    (328, read_write.sys_pwritev2, PARTIAL, "RWF_HIPRI, RWF_DSYNC, RWF_SYNC only"),
    (452, attrs.sys_fchmodat2, FULL, ""),
    (269, attrs.sys_faccessat, FULL, ""),
    (292, fds.sys_dup3, FULL, ""),
    (7, poll.sys_poll, FULL, ""),
    (22, pipe.sys_pipe, FULL, ""),
    (23, poll.sys_select, FULL, ""),
    (213, poll.sys_epoll_create, FULL, ""),
    (232, poll.sys_epoll_wait, FULL, ""),
    (233, poll.sys_epoll_ctl, PARTIAL, "EPOLLEXCLUSIVE wakes like a normal watch; EPOLLWAKEUP ignored"),
    (270, poll.sys_pselect6, FULL, ""),
    (271, poll.sys_ppoll, FULL, ""),
    (281, poll.sys_epoll_pwait, FULL, ""),
    (284, poll.sys_eventfd, FULL, ""),
    (290, poll.sys_eventfd2, FULL, ""),
    (291, poll.sys_epoll_create1, FULL, ""),
    (293, pipe.sys_pipe2, PARTIAL, "no O_DIRECT packet mode (EINVAL)"),
    (436, fds.sys_close_range, FULL, ""),
    (441, poll.sys_epoll_pwait2, FULL, ""),
    (302, ids.sys_prlimit64, PARTIAL, "as setrlimit; other processes with Linux's "
                                       "permission check; a zombie is ESRCH"),
    (332, stat.sys_statx, FULL, ""),
    (322, exec_.sys_execveat, PARTIAL, "the program is named by its guest path, not /dev/fd/N"),
    (435, fork.sys_clone3, PARTIAL, "as clone; no set_tid or cgroup"),
    (439, attrs.sys_faccessat2, FULL, ""),
    # credentials: per thread, Linux's rules
    (105, cred.sys_setuid, FULL, ""),
    (106, cred.sys_setgid, FULL, ""),
    (113, cred.sys_setreuid, FULL, ""),
    (114, cred.sys_setregid, FULL, ""),
    (116, cred.sys_setgroups, FULL, ""),
    (117, cred.sys_setresuid, FULL, ""),
    (119, cred.sys_setresgid, FULL, ""),
    (122, cred.sys_setfsuid, FULL, ""),
    (123, cred.sys_setfsgid, FULL, ""),
    (125, cred.sys_capget, PARTIAL, "no ambient set, no file capabilities"),
    (126, cred.sys_capset, PARTIAL, "no ambient set, no file capabilities"),
]

# Run on the host by the filter (services/userspace/seccomp.py); listed for the record.
_HOST_CALLS = [12, 24, 60, 96, 201, 228, 229, 231, 273, 318]

TABLE: dict[int, Syscall] = {
    nr: Syscall(SYSCALL_NAMES.get(nr, f"syscall_{nr}"), handler, support, note)
    for nr, handler, support, note in _ENTRIES
}
for _nr in _HOST_CALLS:
    TABLE[_nr] = Syscall(SYSCALL_NAMES[_nr], _host, HOST_RUN, "runs on the host (filter)")


def name(nr: int) -> str:
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")
