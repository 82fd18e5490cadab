"""Credentials as Linux keeps them, per thread (struct cred): real,
effective, saved and filesystem user and group ids, supplementary groups,
capability sets and securebits; the calls that read and change them, with
Linux's rules (kernel/sys.c, kernel/groups.c, kernel/capability.c,
security/commoncap.c); and the checks the rest of the kernel asks.

A call never changes a thread's Credentials in place: it builds new ones
(Linux's prepare_creds/commit_creds), so whoever holds the old ones keeps
them.  Each thread has its own: glibc's setuid makes every thread call it
(its SIGSETXID broadcast), as on Linux."""
from __future__ import annotations

import stat as S
from dataclasses import dataclass, field, replace
from services.kernel.abi.capability import (
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL,
    CAP_LAST_CAP, CAP_LINUX_IMMUTABLE, CAP_MAC_OVERRIDE, CAP_MKNOD, CAP_SETGID, CAP_SETUID,
    CAP_SYS_PTRACE,
    SECURE_ALL_BITS, SECURE_KEEP_CAPS, SECURE_NOROOT, SECURE_NO_SETUID_FIXUP)
from services.kernel.abi.prctl import (
    PR_CAPBSET_DROP, PR_CAPBSET_READ, PR_GET_KEEPCAPS, PR_GET_SECUREBITS, PR_SET_KEEPCAPS,
    PR_SET_SECUREBITS)


MASK = 0xFFFFFFFF
NO_ID = MASK                     # (uid_t)-1: "leave as it is", never a valid id

ALL_CAPS = (1 << CAP_LAST_CAP + 1) - 1
# CAP_FS_SET: what an fsuid change away from (back to) root drops (raises)
FS_CAPS = sum(1 << c for c in (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
                               CAP_FSETID, CAP_LINUX_IMMUTABLE, CAP_MKNOD, CAP_MAC_OVERRIDE))

SECURE_ALL_LOCKS = SECURE_ALL_BITS << 1

PRCTLS = {PR_GET_KEEPCAPS, PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP,
          PR_GET_SECUREBITS, PR_SET_SECUREBITS}



@dataclass
class Credentials:
    """One thread's identity.  fsuid/fsgid follow euid/egid unless given;
    root starts with every capability, anyone else with none."""
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    suid: int = 0
    sgid: int = 0
    groups: list[int] = field(default_factory=list)
    fsuid: int | None = None
    fsgid: int | None = None
    permitted: int | None = None
    effective: int | None = None
    inheritable: int = 0
    bounding: int = ALL_CAPS
    securebits: int = 0

    def __post_init__(self) -> None:
        self.fsuid = self.euid if self.fsuid is None else self.fsuid
        self.fsgid = self.egid if self.fsgid is None else self.fsgid
        root_caps = ALL_CAPS if self.euid == 0 else 0
        self.permitted = root_caps if self.permitted is None else self.permitted
        self.effective = root_caps if self.effective is None else self.effective


def capable(cred: Credentials, cap: int) -> bool:
    return bool(cred.effective >> cap & 1)


def in_group(cred: Credentials, gid: int) -> bool:
    """in_group_p: the filesystem group or a supplementary one."""
    return gid == cred.fsgid or gid in cred.groups


def owner_or_capable(cred: Credentials, inode) -> bool:
    """inode_owner_or_capable: chmod, utimes, O_NOATIME."""
    return cred.fsuid == inode.uid or capable(cred, CAP_FOWNER)


def may_kill(cred: Credentials, target: Credentials) -> bool:
    """kill_ok_by_cred: the sender's real or effective uid is the target's
    real or saved one, or the sender has CAP_KILL."""
    return bool({cred.uid, cred.euid} & {target.uid, target.suid}) or capable(cred, CAP_KILL)


def may_attach(cred: Credentials, target: Credentials, dumpable: bool) -> bool:
    """ptrace_may_access(PTRACE_MODE_ATTACH_REALCREDS) on another process,
    with commoncap's check: the caller's real uid and gid are all of the
    target's (real, effective, saved) and the target is dumpable, and the
    target's permitted capabilities are within the caller's permitted ones;
    or the caller has CAP_SYS_PTRACE."""
    if capable(cred, CAP_SYS_PTRACE):
        return True
    return ({target.uid, target.euid, target.suid} == {cred.uid}
            and {target.gid, target.egid, target.sgid} == {cred.gid}
            and dumpable and not target.permitted & ~cred.permitted)


def access_cred(cred: Credentials) -> Credentials:
    """access(2) checks with the real ids, and with root's capabilities only
    for a real root (access_override_creds)."""
    new = replace(cred, fsuid=cred.uid, fsgid=cred.gid)
    if not cred.securebits & SECURE_NO_SETUID_FIXUP:
        new.effective = cred.permitted if cred.uid == 0 else 0
    return new


def on_exec(cred: Credentials, inode, nosuid: bool, no_new_privs: bool) -> tuple[Credentials, bool]:
    """The credentials a program starts with, and whether its start is
    secure (AT_SECURE), as bprm_fill_uid and cap_bprm_creds_from_file:
    set-user-ID and set-group-ID bits unless the mount is nosuid or the
    task has no_new_privs; root's capabilities (the bounding set and the
    inheritable one) for a real or effective root unless SECURE_NOROOT,
    effective only for an effective root; no file capabilities, no ambient
    set.  Under no_new_privs an exec that would change ids or add
    capabilities gets neither (effective ids back to the real ones, the
    permitted set within the old one).  Saved and filesystem ids become
    the effective ones; keep-caps is cleared.  "Would change ids", as the
    host's Linux 6.18 reads it (since "exec: Correct the permission check
    for unsafe exec", 2025): the effective uid changes, or the effective
    gid becomes one the caller is not in.  Secure (AT_SECURE) as before
    that: the effective ids are not the real ones, or a non-root real uid
    holds capabilities."""
    new = replace(cred, permitted=0, effective=0)
    if not nosuid and not no_new_privs:
        if inode.mode & S.S_ISUID:
            new.euid = inode.uid
        if inode.mode & S.S_ISGID and inode.mode & S.S_IXGRP:
            new.egid = inode.gid
    raise_effective = False
    if not cred.securebits & SECURE_NOROOT:
        if 0 in (new.uid, new.euid):
            new.permitted = cred.bounding | cred.inheritable
        raise_effective = new.euid == 0
    id_changed = new.euid != cred.euid or not in_group(cred, new.egid)
    setid = new.euid != new.uid or new.egid != new.gid
    if no_new_privs and (id_changed or new.permitted & ~cred.permitted):
        new.euid, new.egid = new.uid, new.gid
        new.permitted &= cred.permitted
    if raise_effective:
        new.effective = new.permitted
    new.suid = new.fsuid = new.euid
    new.sgid = new.fsgid = new.egid
    new.securebits &= ~SECURE_KEEP_CAPS
    return new, setid or (new.uid != 0 and (raise_effective or bool(new.permitted)))


def loses_dumpable(old: Credentials, new: Credentials) -> bool:
    """commit_creds: a change of effective or filesystem ids, or capabilities
    the old permitted set did not hold, make the process not dumpable."""
    return (old.euid != new.euid or old.egid != new.egid or old.fsuid != new.fsuid
            or old.fsgid != new.fsgid or bool(new.permitted & ~old.permitted))


# --- set*id: one set of rules for user and group ids -----------------------------------

@dataclass(frozen=True)
class Ids:
    names: tuple[str, str, str, str]     # real, effective, saved, filesystem
    cap: int


UIDS = Ids(("uid", "euid", "suid", "fsuid"), CAP_SETUID)
GIDS = Ids(("gid", "egid", "sgid", "fsgid"), CAP_SETGID)


# --- get*id ----------------------------------------------------------------------------


# --- supplementary groups --------------------------------------------------------------


# --- capabilities ----------------------------------------------------------------------


