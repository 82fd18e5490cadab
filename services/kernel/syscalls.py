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
from services.kernel import cred, fork, fs, futex, mm, mount, pipe, poll, proc, signal, time, wait
from services.kernel import exec as exec_
from services.kernel.errors import Errno


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
    ("read", fs.sys_read),
    ("write", fs.sys_write),
    ("open", fs.sys_open),
    ("close", fs.sys_close),
    ("stat", fs.sys_stat),
    ("fstat", fs.sys_fstat),
    ("lstat", fs.sys_lstat),
    ("lseek", fs.sys_lseek),
    ("mmap", mm.sys_mmap),
    ("mprotect", mm.sys_mprotect),
    ("munmap", mm.sys_munmap),
    ("mremap", mm.sys_mremap),
    ("msync", mm.sys_msync),
    ("madvise", mm.sys_madvise),
    ("arch_prctl", mm.sys_arch_prctl),
    ("rseq", _refused),
    ("rt_sigaction", signal.sys_rt_sigaction),
    ("rt_sigprocmask", signal.sys_rt_sigprocmask),
    ("rt_sigreturn", signal.sys_rt_sigreturn),
    ("ioctl", fs.sys_ioctl),
    ("pread64", fs.sys_pread64),
    ("readv", fs.sys_readv),
    ("writev", fs.sys_writev),
    ("access", fs.sys_access),
    ("dup", fs.sys_dup),
    ("dup2", fs.sys_dup2),
    ("pause", signal.sys_pause),
    ("nanosleep", time.sys_nanosleep),
    ("getitimer", time.sys_getitimer),
    ("alarm", time.sys_alarm),
    ("setitimer", time.sys_setitimer),
    ("getrusage", time.sys_getrusage),
    ("sysinfo", time.sys_sysinfo),
    ("times", time.sys_times),
    ("getpid", proc.sys_getpid),
    ("clone", fork.sys_clone),
    ("fork", fork.sys_fork),
    ("vfork", fork.sys_vfork),
    ("execve", exec_.sys_execve),
    ("wait4", wait.sys_wait4),
    ("kill", signal.sys_kill),
    ("uname", proc.sys_uname),
    ("fcntl", fs.sys_fcntl),
    ("getcwd", fs.sys_getcwd),
    ("chdir", fs.sys_chdir),
    ("fchdir", fs.sys_fchdir),
    ("readlink", fs.sys_readlink),
    ("getrlimit", proc.sys_getrlimit),
    ("getuid", cred.sys_getuid),
    ("getgid", cred.sys_getgid),
    ("geteuid", cred.sys_geteuid),
    ("getegid", cred.sys_getegid),
    ("setpgid", proc.sys_setpgid),
    ("getppid", proc.sys_getppid),
    ("getpgrp", proc.sys_getpgrp),
    ("setsid", proc.sys_setsid),
    ("getgroups", cred.sys_getgroups),
    ("getresuid", cred.sys_getresuid),
    ("getresgid", cred.sys_getresgid),
    ("getpgid", proc.sys_getpgid),
    ("getsid", proc.sys_getsid),
    ("rt_sigpending", signal.sys_rt_sigpending),
    ("rt_sigsuspend", signal.sys_rt_sigsuspend),
    ("rt_sigqueueinfo", signal.sys_rt_sigqueueinfo),
    ("sigaltstack", signal.sys_sigaltstack),
    ("prctl", proc.sys_prctl),
    ("setrlimit", proc.sys_setrlimit),
    ("gettid", proc.sys_gettid),
    ("tkill", signal.sys_tkill),
    ("getdents64", fs.sys_getdents64),
    ("futex", futex.sys_futex),
    ("set_tid_address", proc.sys_set_tid_address),
    ("clock_nanosleep", time.sys_clock_nanosleep),
    ("tgkill", signal.sys_tgkill),
    ("waitid", wait.sys_waitid),
    ("openat", fs.sys_openat),
    ("newfstatat", fs.sys_newfstatat),
    ("readlinkat", fs.sys_readlinkat),
    # writable filesystems, /dev and mounts
    ("pwrite64", fs.sys_pwrite64),
    ("fsync", fs.sys_fsync),
    ("fdatasync", fs.sys_fsync),
    ("truncate", fs.sys_truncate),
    ("ftruncate", fs.sys_ftruncate),
    ("fallocate", fs.sys_fallocate),
    ("rename", fs.sys_rename),
    ("mkdir", fs.sys_mkdir),
    ("rmdir", fs.sys_rmdir),
    ("creat", fs.sys_creat),
    ("link", fs.sys_link),
    ("unlink", fs.sys_unlink),
    ("symlink", fs.sys_symlink),
    ("chmod", fs.sys_chmod),
    ("fchmod", fs.sys_fchmod),
    ("chown", fs.sys_chown),
    ("fchown", fs.sys_fchown),
    ("lchown", fs.sys_lchown),
    ("umask", fs.sys_umask),
    ("utime", fs.sys_utime),
    ("mknod", fs.sys_mknod),
    ("statfs", fs.sys_statfs),
    ("fstatfs", fs.sys_fstatfs),
    ("sync", fs.sys_sync),
    ("mount", mount.sys_mount),
    ("umount2", mount.sys_umount2),
    ("utimes", fs.sys_utimes),
    ("mkdirat", fs.sys_mkdirat),
    ("mknodat", fs.sys_mknodat),
    ("fchownat", fs.sys_fchownat),
    ("futimesat", fs.sys_futimesat),
    ("unlinkat", fs.sys_unlinkat),
    ("renameat", fs.sys_renameat),
    ("linkat", fs.sys_linkat),
    ("symlinkat", fs.sys_symlinkat),
    ("fchmodat", fs.sys_fchmodat),
    ("utimensat", fs.sys_utimensat),
    ("preadv", fs.sys_preadv),
    ("pwritev", fs.sys_pwritev),
    ("syncfs", fs.sys_syncfs),
    ("renameat2", fs.sys_renameat2),
    ("preadv2", fs.sys_preadv2),
    ("pwritev2", fs.sys_pwritev2),
    ("fchmodat2", fs.sys_fchmodat2),
    ("faccessat", fs.sys_faccessat),
    ("dup3", fs.sys_dup3),
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
    ("close_range", fs.sys_close_range),
    ("epoll_pwait2", poll.sys_epoll_pwait2),
    ("prlimit64", proc.sys_prlimit64),
    ("statx", fs.sys_statx),
    ("execveat", exec_.sys_execveat),
    ("clone3", fork.sys_clone3),
    ("faccessat2", fs.sys_faccessat2),
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
