"""The syscall table: number -> name, handler, support level.  The one place
that says what a guest may call.

A handler takes the task and the six raw arguments and returns an int (the
result), ``HOST`` (run the call on the host), ``Ops`` (address-space ops, then
return), or a coroutine producing one of those; it raises ``Errno`` to fail.
Calls the filter runs on the host (anonymous mmap, brk, futex, clocks ...)
are listed too, as ``host``, so this table documents the whole ABI."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

from services.kernel import fs, mm, proc, signal, time
from services.kernel.proc import HOST

FULL, PARTIAL, HOST_RUN = "full", "partial", "host"


@dataclass(frozen=True)
class Syscall:
    name: str
    handler: Callable | None
    support: str
    note: str = ""


def _host(_t, *_):
    return HOST


_ENTRIES = [
    # nr, handler, support, note
    (0, fs.sys_read, FULL, ""),
    (1, fs.sys_write, FULL, ""),
    (2, fs.sys_open, PARTIAL, "read-only root filesystem"),
    (3, fs.sys_close, FULL, ""),
    (4, fs.sys_stat, FULL, ""),
    (5, fs.sys_fstat, FULL, ""),
    (6, fs.sys_lstat, FULL, ""),
    (8, fs.sys_lseek, PARTIAL, "no SEEK_DATA/SEEK_HOLE"),
    (9, mm.sys_mmap, PARTIAL, "files: private or read-only shared maps"),
    (13, signal.sys_rt_sigaction, PARTIAL, "recorded; delivery comes with processes"),
    (14, signal.sys_rt_sigprocmask, PARTIAL, "recorded; delivery comes with processes"),
    (16, fs.sys_ioctl, PARTIAL, "console: termios, window size, pgrp"),
    (17, fs.sys_pread64, FULL, ""),
    (19, fs.sys_readv, FULL, ""),
    (20, fs.sys_writev, FULL, ""),
    (21, fs.sys_access, FULL, ""),
    (32, fs.sys_dup, FULL, ""),
    (33, fs.sys_dup2, FULL, ""),
    (35, time.sys_nanosleep, PARTIAL, "not interruptible by signals yet"),
    (39, proc.sys_getpid, FULL, "virtual pid"),
    (59, proc.sys_execve, PARTIAL, "static and static-PIE ELF, #! scripts"),
    (60, proc.sys_exit, PARTIAL, "single-threaded processes"),
    (63, proc.sys_uname, FULL, "the guest's own release and nodename"),
    (72, fs.sys_fcntl, PARTIAL, "no locks"),
    (79, fs.sys_getcwd, FULL, ""),
    (80, fs.sys_chdir, FULL, ""),
    (81, fs.sys_fchdir, FULL, ""),
    (89, fs.sys_readlink, FULL, ""),
    (97, proc.sys_getrlimit, FULL, ""),
    (102, proc.sys_getuid, FULL, ""),
    (104, proc.sys_getgid, FULL, ""),
    (107, proc.sys_geteuid, FULL, ""),
    (108, proc.sys_getegid, FULL, ""),
    (110, proc.sys_getppid, FULL, "virtual pid"),
    (111, proc.sys_getpgrp, FULL, ""),
    (115, proc.sys_getgroups, FULL, ""),
    (118, proc.sys_getresuid, FULL, ""),
    (120, proc.sys_getresgid, FULL, ""),
    (121, proc.sys_getpgid, PARTIAL, "own process only"),
    (124, proc.sys_getsid, PARTIAL, "own process only"),
    (131, signal.sys_sigaltstack, PARTIAL, "recorded"),
    (157, proc.sys_prctl, PARTIAL, "PR_SET_NAME, PR_GET_NAME"),
    (160, proc.sys_setrlimit, FULL, ""),
    (186, proc.sys_gettid, FULL, "virtual tid"),
    (217, fs.sys_getdents64, FULL, ""),
    (218, proc.sys_set_tid_address, FULL, "virtual tid"),
    (230, time.sys_clock_nanosleep, PARTIAL, "not interruptible by signals yet"),
    (231, proc.sys_exit_group, FULL, ""),
    (257, fs.sys_openat, PARTIAL, "read-only root filesystem"),
    (262, fs.sys_newfstatat, FULL, ""),
    (267, fs.sys_readlinkat, FULL, ""),
    (269, fs.sys_faccessat, FULL, ""),
    (292, fs.sys_dup3, FULL, ""),
    (302, proc.sys_prlimit64, PARTIAL, "own process only"),
    (332, fs.sys_statx, FULL, ""),
    (439, fs.sys_faccessat2, FULL, ""),
]

# Run on the host by the filter (services/userspace/seccomp.py); listed for the record.
_HOST_CALLS = [12, 10, 11, 25, 28, 24, 15, 96, 158, 201, 228, 229, 273, 318, 334]

TABLE: dict[int, Syscall] = {
    nr: Syscall(SYSCALL_NAMES.get(nr, f"syscall_{nr}"), handler, support, note)
    for nr, handler, support, note in _ENTRIES
}
for _nr in _HOST_CALLS:
    TABLE[_nr] = Syscall(SYSCALL_NAMES[_nr], _host, HOST_RUN, "runs on the host (filter)")


def name(nr: int) -> str:
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")
