"""Each call's arguments by kind (kinds.py), keyed by the syscall policy's
names (common/syscalls.py; tests/unit/entry/test_strace_decoding.py checks every
name against it and every kind against kinds.ARG_KINDS): one kind an argument,
in the order of the call's arguments, `kind@N` when the kind needs
argument N too (a buffer's length), and `-> x` when the call returns an
address.  A call not here prints its six arguments in hex."""
from __future__ import annotations

from dataclasses import dataclass

from services.kernel.entry.strace.kinds import ARG_KINDS, Kind

_SIGNATURE_TEXTS = {
    # files
    "read": "fd rbuf u", "write": "fd wbuf@2 u", "pread64": "fd rbuf u ld",
    "pwrite64": "fd wbuf@2 u ld", "readv": "fd oiov@2 d", "writev": "fd iov@2 d",
    "open": "path oflags omode@1", "openat": "dirfd path oflags omode@2", "creat": "path mode",
    "close": "fd", "lseek": "fd ld whence", "dup": "fd", "dup2": "fd fd", "dup3": "fd fd fdflags",
    "fcntl": "fd fcntl x", "ioctl": "fd ioctl x", "pipe": "fds", "pipe2": "fds fdflags",
    "fsync": "fd", "fdatasync": "fd", "truncate": "path ld", "ftruncate": "fd ld",
    "getdents": "fd dents u", "getdents64": "fd dents u",
    "stat": "path stat", "lstat": "path stat", "fstat": "fd stat",
    "newfstatat": "dirfd path stat atflags", "statx": "dirfd path atflags x statx",
    "access": "path amode", "faccessat": "dirfd path amode",
    "faccessat2": "dirfd path amode atflags",
    "readlink": "path rbuf u", "readlinkat": "dirfd path rbuf u", "getcwd": "ostr u",
    "chdir": "path", "fchdir": "fd", "mkdir": "path mode", "mkdirat": "dirfd path mode",
    "rmdir": "path", "unlink": "path", "unlinkat": "dirfd path atflags",
    "rename": "path path", "renameat": "dirfd path dirfd path",
    "renameat2": "dirfd path dirfd path x", "link": "path path",
    "linkat": "dirfd path dirfd path atflags", "symlink": "path path",
    "symlinkat": "path dirfd path", "chmod": "path mode", "fchmod": "fd mode",
    "fchmodat": "dirfd path mode", "chown": "path d d", "lchown": "path d d",
    "fchown": "fd d d", "fchownat": "dirfd path d d atflags", "umask": "mode",
    # memory
    "mmap": "p u prot mflags fd x -> x", "mprotect": "p u prot", "munmap": "p u",
    # processes
    "execve": "path argv envp", "execveat": "dirfd path argv envp atflags",
    "clone": "clone", "fork": "", "vfork": "", "wait4": "d wstatus wopts p",
    "getpid": "", "getppid": "", "gettid": "", "getuid": "", "geteuid": "", "getgid": "",
    "getegid": "", "getpgrp": "", "setsid": "", "getpgid": "d", "getsid": "d",
    "setpgid": "d d", "set_tid_address": "p", "uname": "uts",
    "nanosleep": "timespec p",
    # signals
    "kill": "d sig", "tkill": "d sig", "tgkill": "d d sig",
    "rt_sigaction": "sig sigact osigact u", "rt_sigprocmask": "how sigset@3 osigset@3 u",
    "rt_sigreturn": "frame", "rt_sigsuspend": "sigset@1 u", "pause": "", "alarm": "u",
    # sockets
    "socket": "family socktype d", "socketpair": "family socktype d fds",
    "connect": "fd sockaddr@2 u", "bind": "fd sockaddr@2 u",
    "sendto": "fd wbuf@2 u x sockaddr@5 u", "recvfrom": "fd rbuf u x p p",
    "accept": "fd p p", "accept4": "fd p p fdflags",
}


@dataclass(frozen=True)
class Signature:
    args: tuple[tuple[Kind, int], ...]    # each argument's kind and the argument it refers to
    hex_result: bool = False


def _parse(text: str) -> Signature:
    text, _, result = text.partition("->")
    args = []
    for word in text.split():
        name, _, ref = word.partition("@")
        args.append((ARG_KINDS[name], int(ref) if ref else -1))
    return Signature(tuple(args), result.strip() == "x")


SIGNATURES: dict[str, Signature] = {name: _parse(text) for name, text in _SIGNATURE_TEXTS.items()}
