"""Which guest calls the filter sends to the seccomp listener (the kernel
answers them there, services/kernel/entry/listener.py) rather than stopping them
for the tracer (services/userspace/seccomp.py builds the filter).

Shared because the kernel must know them too: such a call that a stop cuts
short before the kernel has seen it shows -ERESTARTSYS like a host call
cut short, but nothing of it has happened, so it always runs again.
"""
from __future__ import annotations

# The calls the kernel almost always answers with a number (measured: a
# guest's getppid 52 -> 6.3 µs, a 64 KiB ext2 write 155 -> 87-95 µs).  Calls
# that change the address space or the registers (exec, fork, clone, mmap,
# rt_sigreturn, sigaltstack, which needs the caller's rsp) or that always
# end in a signal's delivery (pause, rt_sigsuspend) stay ptrace stops: the
# kernel would have to stop them anyway.  wait4 and waitid stay too: as
# stops they reach the kernel in one message with the child's exit, which
# userspace reaps in the same turn (measured, fork+_exit+waitpid 270 µs
# trapped, 290 µs through the listener).
NOTIFIED = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6,
    "lseek": 8, "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21,
    "pipe": 22, "dup": 32, "dup2": 33, "getpid": 39, "uname": 63, "fcntl": 72,
    "fsync": 74, "fdatasync": 75, "truncate": 76, "ftruncate": 77, "getcwd": 79,
    "chdir": 80, "fchdir": 81, "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85,
    "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "chmod": 90, "fchmod": 91,
    "chown": 92, "fchown": 93, "lchown": 94, "umask": 95, "getrlimit": 97, "getuid": 102,
    "getgid": 104, "geteuid": 107, "getegid": 108, "getppid": 110, "getpgrp": 111,
    "getgroups": 115, "getresuid": 118, "getresgid": 120, "getpgid": 121, "getsid": 124,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "capget": 125,
    "capset": 126,
    "utime": 132, "mknod": 133, "statfs": 137, "fstatfs": 138, "sync": 162, "gettid": 186,
    "getdents64": 217, "utimes": 235, "openat": 257, "mkdirat": 258, "mknodat": 259,
    "fchownat": 260, "futimesat": 261, "newfstatat": 262, "unlinkat": 263, "renameat": 264,
    "linkat": 265, "symlinkat": 266, "readlinkat": 267, "fchmodat": 268, "faccessat": 269,
    "utimensat": 280, "fallocate": 285, "dup3": 292, "pipe2": 293, "preadv": 295,
    "pwritev": 296, "prlimit64": 302, "syncfs": 306, "renameat2": 316, "preadv2": 327,
    "pwritev2": 328, "statx": 332, "close_range": 436, "faccessat2": 439, "fchmodat2": 452,
    # signals, waits and polls: a number, unless a signal must be delivered
    # on the way back (the kernel then stops the caller first)
    "rt_sigaction": 13, "rt_sigprocmask": 14, "ioctl": 16, "poll": 7, "select": 23,
    "nanosleep": 35, "getitimer": 36, "alarm": 37, "setitimer": 38, "kill": 62,
    "getrusage": 98, "sysinfo": 99, "times": 100, "setpgid": 109, "setsid": 112,
    "rt_sigpending": 127, "rt_sigqueueinfo": 129, "prctl": 157, "setrlimit": 160,
    "tkill": 200, "epoll_create": 213, "set_tid_address": 218, "clock_nanosleep": 230,
    "epoll_wait": 232, "epoll_ctl": 233, "tgkill": 234, "pselect6": 270,
    "ppoll": 271, "epoll_pwait": 281, "eventfd": 284, "eventfd2": 290,
    "epoll_create1": 291, "epoll_pwait2": 441,
}
NOTIFIED_NRS = frozenset(NOTIFIED.values())
