"""Permission checks in-process: fs/vfs.py's permitted (Linux's
generic_permission and acl_permission_check), may_create, may_delete
(check_sticky and the order of may_delete's errors), check_writable and
new_owner (inode_init_owner, mode_strip_sgid), and core/cred.py's helpers
(capable, in_group_p, inode_owner_or_capable, access_override_creds)."""
from __future__ import annotations

import errno
import stat as S
from dataclasses import dataclass

import pytest

from services.kernel.core.cred import (
    ALL_CAPS, Credentials, access_cred, capable, in_group, owner_or_capable)
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import (
    Location, Mount, check_writable, may_create, may_delete, new_owner, permitted)
from services.kernel.abi.fcntl import R_OK, W_OK, X_OK
from services.kernel.abi.capability import (
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL,
    SECURE_NO_SETUID_FIXUP)
from services.kernel.abi.mount import MS_RDONLY

OWNER, GROUP, OTHER = 1000, 100, 2000
RWX = R_OK | W_OK | X_OK


@dataclass
class Node:
    """What the checks read of an inode."""
    mode: int
    uid: int = OWNER
    gid: int = GROUP


def file(perm: int, **kw) -> Node:
    return Node(S.S_IFREG | perm, **kw)


def directory(perm: int, **kw) -> Node:
    return Node(S.S_IFDIR | perm, **kw)


def user(uid: int, gid: int = 500, groups=(), caps: int = 0, **kw) -> Credentials:
    """An unprivileged user with only the capabilities in caps (a bit mask)."""
    return Credentials(uid=uid, gid=gid, euid=uid, egid=gid, suid=uid, sgid=gid,
                       groups=sorted(groups), permitted=caps, effective=caps, **kw)


def bit(cap: int) -> int:
    return 1 << cap


def allowed(node: Node, cred: Credentials) -> set[str]:
    """Which of read, write, exec the cred may do, one at a time."""
    return {name for name, m in (("r", R_OK), ("w", W_OK), ("x", X_OK))
            if permitted(node, cred, m)}


def at(node: Node, readonly: bool = False) -> Location:
    return Location(Mount(fs=None, dev=0, flags=MS_RDONLY if readonly else 0, root=node),
                    node, b"/d")


def err(fn, *args) -> int | None:
    try:
        fn(*args)
    except Errno as e:
        return e.code
    return None


# --- the mode bits ----------------------------------------------------------------------

@pytest.mark.parametrize("perm, want", [(0o700, "rwx"), (0o400, "r"), (0o200, "w"),
                                        (0o100, "x"), (0o077, ""), (0o500, "rx")])
def test_the_owner_gets_the_owner_bits_only(perm, want):
    assert allowed(file(perm), user(OWNER, GROUP)) == set(want)


@pytest.mark.parametrize("perm, want", [(0o070, "rwx"), (0o040, "r"), (0o707, ""),
                                        (0o604, ""), (0o750, "rx")])
def test_a_group_member_gets_the_group_bits_only(perm, want):
    """acl_permission_check: a member of the file's group is judged by the
    group bits even where the other bits would allow more (0o604)."""
    assert allowed(file(perm), user(OTHER, GROUP)) == set(want)


@pytest.mark.parametrize("perm, want", [(0o007, "rwx"), (0o004, "r"), (0o770, ""),
                                        (0o751, "x")])
def test_anyone_else_gets_the_other_bits(perm, want):
    assert allowed(file(perm), user(OTHER, 7)) == set(want)


def test_a_mask_needs_every_bit_it_asks_for():
    node, cred = file(0o640), user(OWNER)
    assert permitted(node, cred, R_OK | W_OK)
    assert not permitted(node, cred, R_OK | X_OK)
    assert permitted(node, cred, 0)                 # F_OK: nothing asked


def test_supplementary_groups_count_as_the_group():
    node = file(0o040)
    assert allowed(node, user(OTHER, 7, groups=[3, GROUP, 900])) == {"r"}
    assert allowed(node, user(OTHER, 7, groups=[3, 900])) == set()


def test_the_fs_ids_decide_not_the_effective_ones():
    """generic_permission compares current_fsuid() and in_group_p (fsgid)."""
    node = file(0o600)
    assert allowed(node, user(OTHER, fsuid=OWNER)) == {"r", "w"}
    assert allowed(node, Credentials(uid=OWNER, euid=OWNER, suid=OWNER, fsuid=OTHER,
                                     gid=7, egid=7, sgid=7, permitted=0, effective=0)) == set()
    group_node = file(0o060)
    assert allowed(group_node, user(OTHER, 7, fsgid=GROUP)) == {"r", "w"}
    assert allowed(group_node, Credentials(uid=OTHER, euid=OTHER, suid=OTHER, gid=GROUP,
                                           egid=GROUP, sgid=GROUP, fsgid=7, permitted=0,
                                           effective=0)) == set()


# --- capabilities ---------------------------------------------------------------------------

def test_cap_dac_override_reads_and_writes_anything():
    cred = user(OTHER, caps=bit(CAP_DAC_OVERRIDE))
    assert allowed(file(0o000), cred) == {"r", "w"}
    assert allowed(directory(0o000), cred) == {"r", "w", "x"}


@pytest.mark.parametrize("perm", [0o100, 0o010, 0o001])
def test_cap_dac_override_executes_a_file_with_any_execute_bit(perm):
    assert permitted(file(perm, uid=OWNER), user(OTHER, caps=bit(CAP_DAC_OVERRIDE)), X_OK)


def test_cap_dac_override_does_not_execute_a_file_with_no_execute_bit():
    cred = user(OTHER, caps=bit(CAP_DAC_OVERRIDE))
    assert not permitted(file(0o666), cred, X_OK)
    assert not permitted(file(0o666), cred, R_OK | X_OK)


def test_cap_dac_read_search_reads_files_and_reads_and_searches_directories():
    cred = user(OTHER, caps=bit(CAP_DAC_READ_SEARCH))
    assert allowed(file(0o000), cred) == {"r"}
    assert not permitted(file(0o000), cred, R_OK | W_OK)
    assert not permitted(file(0o111), cred, R_OK | X_OK)      # only MAY_READ alone for files
    assert allowed(directory(0o000), cred) == {"r", "x"}
    assert permitted(directory(0o000), cred, R_OK | X_OK)
    assert not permitted(directory(0o000), cred, W_OK | X_OK)


def test_root_is_judged_by_its_capabilities_not_its_uid():
    root = Credentials()
    assert root.effective == ALL_CAPS
    assert allowed(file(0o000, uid=OWNER), root) == {"r", "w"}
    assert allowed(file(0o001, uid=OWNER), root) == {"r", "w", "x"}
    powerless = Credentials(permitted=0, effective=0)
    assert allowed(file(0o000, uid=OWNER), powerless) == set()
    assert allowed(file(0o004, uid=OWNER), powerless) == {"r"}


def test_capable_tests_the_effective_set():
    cred = user(OTHER, caps=bit(CAP_KILL) | bit(CAP_FOWNER))
    assert capable(cred, CAP_KILL) and capable(cred, CAP_FOWNER)
    assert not capable(cred, CAP_DAC_OVERRIDE)
    cred.effective = bit(CAP_DAC_OVERRIDE)                   # permitted but not effective
    assert not capable(cred, CAP_KILL) and capable(cred, CAP_DAC_OVERRIDE)
    assert Credentials(uid=5, euid=5, suid=5).effective == 0


def test_in_group_is_the_fs_gid_or_a_supplementary_group():
    cred = user(OTHER, 7, groups=[40, 41], fsgid=8)
    assert in_group(cred, 8) and in_group(cred, 40) and in_group(cred, 41)
    assert not in_group(cred, 7)                             # the egid, not the fsgid


def test_owner_or_capable_is_the_fs_uid_or_cap_fowner():
    node = file(0o600)
    assert owner_or_capable(user(OWNER), node)
    assert owner_or_capable(user(OTHER, fsuid=OWNER), node)
    assert not owner_or_capable(user(OWNER, fsuid=OTHER), node)
    assert not owner_or_capable(user(OTHER, caps=bit(CAP_DAC_OVERRIDE)), node)
    assert owner_or_capable(user(OTHER, caps=bit(CAP_FOWNER)), node)


# --- access(2)'s credentials --------------------------------------------------------------

def test_access_checks_with_the_real_ids():
    setuid_program = Credentials(uid=OTHER, gid=7, euid=OWNER, egid=GROUP, suid=OWNER,
                                 sgid=GROUP, permitted=0, effective=0)
    checked = access_cred(setuid_program)
    assert (checked.fsuid, checked.fsgid) == (OTHER, 7)
    assert allowed(file(0o600), setuid_program) == {"r", "w"}
    assert allowed(file(0o600), checked) == set()
    assert (setuid_program.fsuid, setuid_program.fsgid) == (OWNER, GROUP)   # left as it was


def test_access_gives_root_capabilities_only_to_a_real_root():
    setuid_root = Credentials(uid=OTHER, gid=7, euid=0, egid=0, suid=0, sgid=0)
    assert setuid_root.effective == ALL_CAPS
    assert access_cred(setuid_root).effective == 0
    assert not permitted(file(0o600), access_cred(setuid_root), R_OK)
    real_root = Credentials(uid=0, euid=OTHER, suid=0, permitted=ALL_CAPS, effective=0)
    assert access_cred(real_root).effective == ALL_CAPS          # cap_effective = permitted
    assert permitted(file(0o600), access_cred(real_root), R_OK)


def test_access_keeps_the_capabilities_under_secure_no_setuid_fixup():
    cred = Credentials(uid=OTHER, gid=7, euid=0, egid=0, suid=0, sgid=0,
                       securebits=SECURE_NO_SETUID_FIXUP)
    assert access_cred(cred).effective == ALL_CAPS


# --- creating and removing names ---------------------------------------------------------------

def test_a_read_only_mount_is_erofs():
    assert err(check_writable, at(directory(0o777), readonly=True)) == errno.EROFS
    assert err(check_writable, at(directory(0o777))) is None


def test_may_create_needs_write_and_search_on_the_directory():
    owner = user(OWNER)
    assert err(may_create, at(directory(0o300)), owner) is None
    assert err(may_create, at(directory(0o500)), owner) == errno.EACCES
    assert err(may_create, at(directory(0o600)), owner) == errno.EACCES
    assert err(may_create, at(directory(0o003)), user(OTHER)) is None
    assert err(may_create, at(directory(0o000)), user(OTHER, caps=bit(CAP_DAC_OVERRIDE))) \
        is None
    assert err(may_create, at(directory(0o000)), user(OTHER, caps=bit(CAP_DAC_READ_SEARCH))) \
        == errno.EACCES


def test_may_create_on_a_read_only_mount_is_erofs_before_eacces():
    assert err(may_create, at(directory(0o000), readonly=True), user(OTHER)) == errno.EROFS


STICKY_TMP = directory(0o1777, uid=0, gid=0)


@pytest.mark.parametrize("who, code", [
    (user(OWNER), None),                                      # owns the file
    (user(OTHER), errno.EPERM),                               # owns neither
    (user(0, caps=0), None),                                  # owns the directory (uid 0)
    (user(OTHER, caps=bit(CAP_FOWNER)), None),
    (user(OTHER, caps=bit(CAP_DAC_OVERRIDE)), errno.EPERM),   # not the capability for it
    (user(OTHER, fsuid=OWNER), None),                         # the fsuid decides
    (user(OWNER, fsuid=OTHER), errno.EPERM),
])
def test_a_sticky_directory_lets_only_owners_remove(who, code):
    victim = file(0o666, uid=OWNER)
    assert err(may_delete, at(STICKY_TMP), victim, who, False) == code


def test_without_the_sticky_bit_write_and_search_on_the_directory_suffice():
    assert err(may_delete, at(directory(0o777, uid=0)), file(0o600, uid=OWNER), user(OTHER),
               False) is None


def test_may_delete_checks_in_linux_order():
    """may_delete: the directory's permission (EACCES), then the sticky rule
    (EPERM), then the kind of victim (ENOTDIR, EISDIR)."""
    sub = directory(0o755, uid=OWNER)
    reg = file(0o644, uid=OWNER)
    stranger = user(OTHER)
    assert err(may_delete, at(directory(0o555, uid=0)), sub, stranger, False) == errno.EACCES
    assert err(may_delete, at(STICKY_TMP), sub, stranger, False) == errno.EPERM
    assert err(may_delete, at(STICKY_TMP), reg, stranger, True) == errno.EPERM
    assert err(may_delete, at(directory(0o777)), reg, stranger, True) == errno.ENOTDIR
    assert err(may_delete, at(directory(0o777)), sub, stranger, False) == errno.EISDIR
    assert err(may_delete, at(directory(0o777)), sub, stranger, True) is None
    assert err(may_delete, at(directory(0o777), readonly=True), reg, stranger, False) \
        == errno.EROFS


# --- the owner of a new inode -------------------------------------------------------------------

def test_a_new_inode_belongs_to_the_fs_ids():
    cred = user(OWNER, 7, fsuid=3, fsgid=4)
    assert new_owner(directory(0o777, gid=GROUP), cred, S.S_IFREG | 0o644) == \
        (S.S_IFREG | 0o644, 3, 4)


def test_a_setgid_directory_passes_on_its_group_and_to_directories_the_bit():
    parent = directory(0o2775, gid=GROUP)
    cred = user(OTHER, 7, groups=[GROUP])
    assert new_owner(parent, cred, S.S_IFREG | 0o644) == (S.S_IFREG | 0o644, OTHER, GROUP)
    assert new_owner(parent, cred, S.S_IFDIR | 0o755) == (S.S_IFDIR | 0o2755, OTHER, GROUP)


def test_a_non_member_loses_set_group_id_on_a_group_executable_file():
    """mode_strip_sgid: S_ISGID|S_IXGRP in a setgid directory whose group the
    creator is not in, without CAP_FSETID."""
    parent = directory(0o2777, gid=GROUP)
    mode = S.S_IFREG | 0o2755
    assert new_owner(parent, user(OTHER, 7), mode)[0] == S.S_IFREG | 0o755
    assert new_owner(parent, user(OTHER, 7, groups=[GROUP]), mode)[0] == mode
    assert new_owner(parent, user(OTHER, 7, caps=bit(CAP_FSETID)), mode)[0] == mode
    assert new_owner(parent, user(OTHER, 7), S.S_IFREG | 0o2745)[0] == S.S_IFREG | 0o2745
    assert new_owner(directory(0o777, gid=GROUP), user(OTHER, 7), mode)[0] == mode
