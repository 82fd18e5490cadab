"""What each service keeps of the host's privileges: only what it uses.

A service started by root (``skas run`` as root, or a root supervisord)
keeps uid 0 (its run directory and sockets are root's) but drops every
capability it does not use, from its bounding set too, before its first
thread exists (capabilities are per thread), and sets no_new_privs.  Should
a guest ever get code to run in a service, it would find these and no more:

- kernel: CAP_SYS_PTRACE, to read and write guest memory
  (``process_vm_readv``) and the host's maps of guest processes, which run
  as another uid.
- userspace: CAP_SYS_PTRACE (it traces and injects into processes of
  another uid), CAP_KILL (it kills them), and for confining the first guest
  process (services/userspace/jail.py) CAP_SYS_ADMIN (namespaces, mounts),
  CAP_SETUID, CAP_SETGID and CAP_SETPCAP (its bounding set).
- ubd_io: CAP_SYS_PTRACE, to map the kernel's shared write buffer through
  /proc/KERNEL/fd/N (the kernel keeps a capability ubd_io would otherwise
  lack); it opens its disk images before it drops the rest.
- sigio: nothing.

A service not started by root has no capabilities to drop; it sets
no_new_privs all the same.
"""
from __future__ import annotations

import ctypes
import os

CAP = {"KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "SYS_PTRACE": 19, "SYS_ADMIN": 21}
KEEP = {
    "kernel": {"SYS_PTRACE"},
    "userspace": {"SYS_PTRACE", "KILL", "SYS_ADMIN", "SETUID", "SETGID", "SETPCAP"},
    "ubd_io": {"SYS_PTRACE"},
    "sigio": set(),
}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST = 63

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop(service: str) -> None:
    """Keep only KEEP[service] (nothing, for a service not listed: a test
    double), for this thread and every thread it makes."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if os.geteuid() != 0:
        return
    keep = sum(1 << CAP[name] for name in KEEP.get(service, ()))
    for cap in range(CAP_LAST + 1):
        if not keep >> cap & 1:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)     # EINVAL past the host's last
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)(_Data(keep & 0xFFFFFFFF, keep & 0xFFFFFFFF, 0),
                       _Data(keep >> 32, keep >> 32, 0))
    _check(_libc.capset(ctypes.byref(header), data), "capset")

