"""The kernel's syscall table: every call the policy says the kernel serves
(common/syscalls.py: number, name, route, restart class, support level,
note), with its handler.  Calls that run on the host are not here (they never
reach the kernel), nor unimplemented ones (the kernel answers ENOSYS).

A handler takes the task and the six raw arguments and returns an int (the
result), ``HOST`` (run the call on the host), ``Ops`` (address-space ops, then
return), or a coroutine producing one of those; it raises ``Errno`` to fail."""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Callable

from common.syscalls import BY_NAME, Policy
from services.kernel.core.errors import Errno
from services.kernel.syscalls import exec as exec_
from services.kernel.syscalls import (attrs, cred, dirs, fds, fileinfo, fork, futex, ids, inotify,
                                      locks, mm, mount, open_close, pipe, poll, read_write,
                                      signals, timers, wait)


@dataclass(frozen=True)
class Syscall:
    policy: Policy
    handler: Callable

    @property
    def name(self) -> str:
        return self.policy.name


def _refused(_t, *_):
    raise Errno(errno.ENOSYS)


HANDLERS = [
    # name (the policy's), handler
    ("read", read_write.sys_read),
    ("write", read_write.sys_write),
    ("open", open_close.sys_open),
    ("close", open_close.sys_close),
    ("stat", fileinfo.sys_stat),
    ("fstat", fileinfo.sys_fstat),
    ("lstat", fileinfo.sys_lstat),
    ("lseek", read_write.sys_lseek),
    ("mmap", mm.sys_mmap),
    ("mprotect", mm.sys_mprotect),
    ("munmap", mm.sys_munmap),
    ("mremap", mm.sys_mremap),
    ("msync", mm.sys_msync),
    ("madvise", mm.sys_madvise),
    ("arch_prctl", mm.sys_arch_prctl),
    ("rseq", _refused),
    ("rt_sigaction", signals.sys_rt_sigaction),
    ("rt_sigprocmask", signals.sys_rt_sigprocmask),
    ("rt_sigreturn", signals.sys_rt_sigreturn),
    ("ioctl", fds.sys_ioctl),
    ("pread64", read_write.sys_pread64),
    ("readv", read_write.sys_readv),
    ("writev", read_write.sys_writev),
    ("access", attrs.sys_access),
    ("dup", fds.sys_dup),
    ("dup2", fds.sys_dup2),
    ("pause", signals.sys_pause),
    ("nanosleep", timers.sys_nanosleep),
    ("getitimer", timers.sys_getitimer),
    ("alarm", timers.sys_alarm),
    ("setitimer", timers.sys_setitimer),
    ("getrusage", timers.sys_getrusage),
    ("sysinfo", timers.sys_sysinfo),
    ("times", timers.sys_times),
    ("getpid", ids.sys_getpid),
    ("clone", fork.sys_clone),
    ("fork", fork.sys_fork),
    ("vfork", fork.sys_vfork),
    ("execve", exec_.sys_execve),
    ("wait4", wait.sys_wait4),
    ("kill", signals.sys_kill),
    ("uname", ids.sys_uname),
    ("fcntl", fds.sys_fcntl),
    ("flock", locks.sys_flock),
    ("inotify_init", inotify.sys_inotify_init),
    ("inotify_init1", inotify.sys_inotify_init1),
    ("inotify_add_watch", inotify.sys_inotify_add_watch),
    ("inotify_rm_watch", inotify.sys_inotify_rm_watch),
    ("getcwd", attrs.sys_getcwd),
    ("chdir", attrs.sys_chdir),
    ("fchdir", attrs.sys_fchdir),
    ("readlink", dirs.sys_readlink),
    ("getrlimit", ids.sys_getrlimit),
    ("getuid", cred.sys_getuid),
    ("getgid", cred.sys_getgid),
    ("geteuid", cred.sys_geteuid),
    ("getegid", cred.sys_getegid),
    ("setpgid", ids.sys_setpgid),
    ("getppid", ids.sys_getppid),
    ("getpgrp", ids.sys_getpgrp),
    ("setsid", ids.sys_setsid),
    ("getgroups", cred.sys_getgroups),
    ("getresuid", cred.sys_getresuid),
    ("getresgid", cred.sys_getresgid),
    ("getpgid", ids.sys_getpgid),
    ("getsid", ids.sys_getsid),
    ("rt_sigpending", signals.sys_rt_sigpending),
    ("rt_sigsuspend", signals.sys_rt_sigsuspend),
    ("rt_sigqueueinfo", signals.sys_rt_sigqueueinfo),
    ("sigaltstack", signals.sys_sigaltstack),
    ("prctl", ids.sys_prctl),
    ("setrlimit", ids.sys_setrlimit),
    ("gettid", ids.sys_gettid),
    ("tkill", signals.sys_tkill),
    ("getdents64", dirs.sys_getdents64),
    ("futex", futex.sys_futex),
    ("set_tid_address", ids.sys_set_tid_address),
    ("clock_nanosleep", timers.sys_clock_nanosleep),
    ("tgkill", signals.sys_tgkill),
    ("waitid", wait.sys_waitid),
    ("openat", open_close.sys_openat),
    ("newfstatat", fileinfo.sys_newfstatat),
    ("readlinkat", dirs.sys_readlinkat),
    # writable filesystems, /dev and mounts
    ("pwrite64", read_write.sys_pwrite64),
    ("fsync", read_write.sys_fsync),
    ("fdatasync", read_write.sys_fsync),
    ("truncate", read_write.sys_truncate),
    ("ftruncate", read_write.sys_ftruncate),
    ("fallocate", read_write.sys_fallocate),
    ("rename", dirs.sys_rename),
    ("mkdir", dirs.sys_mkdir),
    ("rmdir", dirs.sys_rmdir),
    ("creat", open_close.sys_creat),
    ("link", dirs.sys_link),
    ("unlink", dirs.sys_unlink),
    ("symlink", dirs.sys_symlink),
    ("chmod", attrs.sys_chmod),
    ("fchmod", attrs.sys_fchmod),
    ("chown", attrs.sys_chown),
    ("fchown", attrs.sys_fchown),
    ("lchown", attrs.sys_lchown),
    ("umask", attrs.sys_umask),
    ("utime", attrs.sys_utime),
    ("mknod", dirs.sys_mknod),
    ("statfs", fileinfo.sys_statfs),
    ("fstatfs", fileinfo.sys_fstatfs),
    ("sync", read_write.sys_sync),
    ("mount", mount.sys_mount),
    ("umount2", mount.sys_umount2),
    ("utimes", attrs.sys_utimes),
    ("mkdirat", dirs.sys_mkdirat),
    ("mknodat", dirs.sys_mknodat),
    ("fchownat", attrs.sys_fchownat),
    ("futimesat", attrs.sys_futimesat),
    ("unlinkat", dirs.sys_unlinkat),
    ("renameat", dirs.sys_renameat),
    ("linkat", dirs.sys_linkat),
    ("symlinkat", dirs.sys_symlinkat),
    ("fchmodat", attrs.sys_fchmodat),
    ("utimensat", attrs.sys_utimensat),
    ("preadv", read_write.sys_preadv),
    ("pwritev", read_write.sys_pwritev),
    ("syncfs", read_write.sys_syncfs),
    ("renameat2", dirs.sys_renameat2),
    ("preadv2", read_write.sys_preadv2),
    ("pwritev2", read_write.sys_pwritev2),
    ("fchmodat2", attrs.sys_fchmodat2),
    ("faccessat", attrs.sys_faccessat),
    ("dup3", fds.sys_dup3),
    ("poll", poll.sys_poll),
    ("pipe", pipe.sys_pipe),
    ("select", poll.sys_select),
    ("epoll_create", poll.sys_epoll_create),
    ("epoll_wait", poll.sys_epoll_wait),
    ("epoll_ctl", poll.sys_epoll_ctl),
    ("pselect6", poll.sys_pselect6),
    ("ppoll", poll.sys_ppoll),
    ("epoll_pwait", poll.sys_epoll_pwait),
    ("eventfd", poll.sys_eventfd),
    ("eventfd2", poll.sys_eventfd2),
    ("epoll_create1", poll.sys_epoll_create1),
    ("pipe2", pipe.sys_pipe2),
    ("close_range", fds.sys_close_range),
    ("epoll_pwait2", poll.sys_epoll_pwait2),
    ("prlimit64", ids.sys_prlimit64),
    ("statx", fileinfo.sys_statx),
    ("execveat", exec_.sys_execveat),
    ("clone3", fork.sys_clone3),
    ("faccessat2", attrs.sys_faccessat2),
    # credentials: per thread, Linux's rules
    ("setuid", cred.sys_setuid),
    ("setgid", cred.sys_setgid),
    ("setreuid", cred.sys_setreuid),
    ("setregid", cred.sys_setregid),
    ("setgroups", cred.sys_setgroups),
    ("setresuid", cred.sys_setresuid),
    ("setresgid", cred.sys_setresgid),
    ("setfsuid", cred.sys_setfsuid),
    ("setfsgid", cred.sys_setfsgid),
    ("capget", cred.sys_capget),
    ("capset", cred.sys_capset),
]

TABLE: dict[int, Syscall] = {BY_NAME[call].nr: Syscall(BY_NAME[call], handler)
                             for call, handler in HANDLERS}
