"""The credential calls: set*id, setgroups, capget/capset and the capability
prctls, with Linux's rules (services/kernel/core/cred.py)."""
from __future__ import annotations

import errno
import struct
from dataclasses import replace

from services.kernel.core.cred import (
    ALL_CAPS, FS_CAPS, GIDS, MASK, NO_ID, SECURE_ALL_LOCKS, UIDS, Credentials, Ids, capable)
from services.kernel.core.errors import Errno
from services.kernel.abi.capability import (
    CAP_LAST_CAP, CAP_SETGID, CAP_SETPCAP, CAP_V1, CAP_V2, CAP_V3, NGROUPS_MAX, SECURE_ALL_BITS,
    SECURE_KEEP_CAPS, SECURE_NO_SETUID_FIXUP)
from services.kernel.abi.prctl import (
    PR_CAPBSET_DROP, PR_CAPBSET_READ, PR_GET_KEEPCAPS, PR_GET_SECUREBITS, PR_SET_KEEPCAPS)


def _get(cred: Credentials, kind: Ids) -> list[int]:
    return [getattr(cred, name) for name in kind.names]


def _valid(x: int) -> int:
    x &= MASK
    if x == NO_ID:
        raise Errno(errno.EINVAL)
    return x


def _commit(t, kind: Ids, ids: list[int], fs_only: bool = False) -> None:
    old = t.cred
    new = replace(old, **dict(zip(kind.names, ids)))
    if kind is UIDS and not old.securebits & SECURE_NO_SETUID_FIXUP:
        _fix_caps(old, new, fs_only)
    t.commit_creds(new)


def _fix_caps(old: Credentials, new: Credentials, fs_only: bool) -> None:
    """cap_task_fix_setuid: leaving root (as real, effective and saved uid)
    drops the permitted and effective sets unless keep-caps; leaving euid 0
    drops the effective set and coming back raises it to the permitted one;
    an fsuid change drops or raises only the filesystem capabilities."""
    if fs_only:
        if old.fsuid == 0 and new.fsuid != 0:
            new.effective &= ~FS_CAPS
        if old.fsuid != 0 and new.fsuid == 0:
            new.effective |= new.permitted & FS_CAPS
        return
    if 0 in (old.uid, old.euid, old.suid) and 0 not in (new.uid, new.euid, new.suid) \
            and not old.securebits & SECURE_KEEP_CAPS:
        new.permitted = new.effective = 0
    if old.euid == 0 and new.euid != 0:
        new.effective = 0
    if old.euid != 0 and new.euid == 0:
        new.effective = new.permitted


def _setid(t, kind: Ids, value: int) -> int:
    """setuid/setgid: with the capability all four ids change; without it,
    the effective (and fs) id may become the real or the saved one."""
    value = _valid(value)
    real, _, saved, _ = _get(t.cred, kind)
    if capable(t.cred, kind.cap):
        real = saved = value
    elif value not in (real, saved):
        raise Errno(errno.EPERM)
    _commit(t, kind, [real, value, saved, value])
    return 0


def _setreid(t, kind: Ids, real: int, eff: int) -> int:
    """setreuid/setregid: the real id may become the effective one, the
    effective id any of the three; the saved id follows the effective one
    when the real one is set, or the effective one to other than the real."""
    real, eff = real & MASK, eff & MASK
    old = _get(t.cred, kind)
    may = capable(t.cred, kind.cap)
    r, e, s, _ = old
    if real != NO_ID:
        if real not in old[:2] and not may:
            raise Errno(errno.EPERM)
        r = real
    if eff != NO_ID:
        if eff not in old[:3] and not may:
            raise Errno(errno.EPERM)
        e = eff
    if real != NO_ID or eff != NO_ID and eff != old[0]:
        s = e
    _commit(t, kind, [r, e, s, e])
    return 0


def _setresid(t, kind: Ids, real: int, eff: int, saved: int) -> int:
    """setresuid/setresgid: each id may become any of the three (anything,
    with the capability); the fs id follows the effective one."""
    want = [real & MASK, eff & MASK, saved & MASK]
    old = _get(t.cred, kind)
    if want[0] in (NO_ID, old[0]) and (want[1] == NO_ID or want[1] == old[1] == old[3]) \
            and want[2] in (NO_ID, old[2]):
        return 0
    if not capable(t.cred, kind.cap) and any(x != NO_ID and x not in old[:3] for x in want):
        raise Errno(errno.EPERM)
    r, e, s = (o if x == NO_ID else x for x, o in zip(want, old))
    _commit(t, kind, [r, e, s, e])
    return 0


def _setfsid(t, kind: Ids, value: int) -> int:
    """setfsuid/setfsgid: to any of the other three ids (anything, with the
    capability); returns the old one, whether or not it changed."""
    value &= MASK
    old = _get(t.cred, kind)
    if value != NO_ID and value != old[3] and (value in old or capable(t.cred, kind.cap)):
        _commit(t, kind, [*old[:3], value], fs_only=True)
    return old[3]


def sys_setuid(t, uid, *_):
    return _setid(t, UIDS, uid)


def sys_setgid(t, gid, *_):
    return _setid(t, GIDS, gid)


def sys_setreuid(t, ruid, euid, *_):
    return _setreid(t, UIDS, ruid, euid)


def sys_setregid(t, rgid, egid, *_):
    return _setreid(t, GIDS, rgid, egid)


def sys_setresuid(t, ruid, euid, suid, *_):
    return _setresid(t, UIDS, ruid, euid, suid)


def sys_setresgid(t, rgid, egid, sgid, *_):
    return _setresid(t, GIDS, rgid, egid, sgid)


def sys_setfsuid(t, uid, *_):
    return _setfsid(t, UIDS, uid)


def sys_setfsgid(t, gid, *_):
    return _setfsid(t, GIDS, gid)


def sys_getuid(t, *_):
    return t.cred.uid


def sys_geteuid(t, *_):
    return t.cred.euid


def sys_getgid(t, *_):
    return t.cred.gid


def sys_getegid(t, *_):
    return t.cred.egid


def _put_ids(t, ids: list[int], ptrs: tuple[int, int, int]) -> int:
    for addr, value in zip(ptrs, ids):
        t.mem.write(addr, struct.pack("<I", value))
    return 0


def sys_getresuid(t, ruid, euid, suid, *_):
    return _put_ids(t, _get(t.cred, UIDS), (ruid, euid, suid))


def sys_getresgid(t, rgid, egid, sgid, *_):
    return _put_ids(t, _get(t.cred, GIDS), (rgid, egid, sgid))


def sys_getgroups(t, size, listp, *_):
    groups = t.cred.groups
    size &= MASK
    if size >= 1 << 31:
        raise Errno(errno.EINVAL)
    if size and size < len(groups):
        raise Errno(errno.EINVAL)
    if size and groups:
        t.mem.write(listp, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def sys_setgroups(t, size, listp, *_):
    """Needs CAP_SETGID; the list is kept sorted, as Linux keeps it."""
    if not capable(t.cred, CAP_SETGID):
        raise Errno(errno.EPERM)
    size &= MASK
    if size > NGROUPS_MAX:
        raise Errno(errno.EINVAL)
    groups = sorted(struct.unpack(f"<{size}I", t.mem.read(listp, 4 * size))) if size else []
    if NO_ID in groups:
        raise Errno(errno.EINVAL)
    t.commit_creds(replace(t.cred, groups=groups))
    return 0


def _cap_words(t, header: int) -> int:
    """How many 32-bit words of each set the header's version carries; an
    unknown version is answered with the one we speak, and EINVAL."""
    version, = struct.unpack("<I", t.mem.read(header, 4))
    if version == CAP_V1:
        return 1
    if version in (CAP_V2, CAP_V3):
        return 2
    t.mem.write(header, struct.pack("<I", CAP_V3))
    raise Errno(errno.EINVAL)


def _header_pid(t, header: int) -> int:
    pid, = struct.unpack("<i", t.mem.read(header + 4, 4))
    return pid


def sys_capget(t, header, data, *_):
    """Any thread's sets (pid is a tid; 0 is the caller).  No data and an
    unknown version: the version is written and the call succeeds, as
    libcap probes it."""
    try:
        words = _cap_words(t, header)
    except Errno as e:
        if e.code == errno.EINVAL and not data:
            return 0
        raise
    if not data:
        return 0
    pid = _header_pid(t, header)
    if pid < 0:
        raise Errno(errno.EINVAL)
    target = t if pid in (0, t.tid) else t.kernel.tasks.get(pid)
    if target is None:
        raise Errno(errno.ESRCH)
    c = target.cred
    t.mem.write(data, b"".join(struct.pack("<III", c.effective >> 32 * i & MASK,
                                           c.permitted >> 32 * i & MASK,
                                           c.inheritable >> 32 * i & MASK)
                               for i in range(words)))
    return 0


def sys_capset(t, header, data, *_):
    """The caller's own sets only: permitted may only shrink, effective stay
    within it, inheritable within inheritable | bounding (and, without
    CAP_SETPCAP, within inheritable | permitted)."""
    words = _cap_words(t, header)
    if _header_pid(t, header) not in (0, t.tid):
        raise Errno(errno.EPERM)
    raw = struct.unpack(f"<{3 * words}I", t.mem.read(data, 12 * words))
    eff, prm, inh = (sum(raw[3 * i + k] << 32 * i for i in range(words)) & ALL_CAPS
                     for k in range(3))
    old = t.cred
    if inh & ~(old.inheritable | old.permitted) and not capable(old, CAP_SETPCAP) \
            or inh & ~(old.inheritable | old.bounding) \
            or prm & ~old.permitted or eff & ~prm:
        raise Errno(errno.EPERM)
    t.commit_creds(replace(old, effective=eff, permitted=prm, inheritable=inh))
    return 0


def sys_prctl(t, option, arg2, *_):
    """The capability prctls: keep-caps, the bounding set, securebits."""
    c = t.cred
    if option == PR_GET_KEEPCAPS:
        return int(bool(c.securebits & SECURE_KEEP_CAPS))
    if option == PR_CAPBSET_READ:
        if arg2 > CAP_LAST_CAP:
            raise Errno(errno.EINVAL)
        return c.bounding >> arg2 & 1
    if option == PR_GET_SECUREBITS:
        return c.securebits
    if option == PR_SET_KEEPCAPS:
        if arg2 > 1:
            raise Errno(errno.EINVAL)
        if c.securebits & SECURE_KEEP_CAPS << 1:
            raise Errno(errno.EPERM)
        bits = c.securebits & ~SECURE_KEEP_CAPS | (SECURE_KEEP_CAPS if arg2 else 0)
        t.commit_creds(replace(c, securebits=bits))
    elif option == PR_CAPBSET_DROP:
        if not capable(c, CAP_SETPCAP):
            raise Errno(errno.EPERM)
        if arg2 > CAP_LAST_CAP:
            raise Errno(errno.EINVAL)
        t.commit_creds(replace(c, bounding=c.bounding & ~(1 << arg2)))
    else:   # PR_SET_SECUREBITS: no locked bit changed, no lock undone, none unknown
        old = c.securebits
        if (old & SECURE_ALL_LOCKS) >> 1 & (old ^ arg2) or old & SECURE_ALL_LOCKS & ~arg2 \
                or arg2 & ~(SECURE_ALL_LOCKS | SECURE_ALL_BITS) or not capable(c, CAP_SETPCAP):
            raise Errno(errno.EPERM)
        t.commit_creds(replace(c, securebits=arg2))
    return 0
