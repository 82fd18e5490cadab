"""Extended attributes as Linux's VFS checks them before a filesystem is
asked (fs/xattr.c's xattr_permission, commoncap's cap_inode_setxattr and
xattr_resolve_name), so that every filesystem gets the same rules:

- ``user.``: only regular files and directories have them (others: ENODATA
  to read, EPERM to write); reading needs read permission, writing write
  permission, and in a sticky directory the owner (or CAP_FOWNER);
- ``trusted.``: CAP_SYS_ADMIN (without it: ENODATA, EPERM, and unlisted);
- ``security.``: anyone reads, writing needs CAP_SYS_ADMIN (no LSM);
- ``system.``: POSIX ACLs, which no filesystem here has (mounted as noacl:
  EOPNOTSUPP);
- any other prefix: EOPNOTSUPP from the filesystem, after the permission
  check Linux makes for it.
"""
from __future__ import annotations

import errno
import stat as S

from services.kernel.abi.capability import CAP_SYS_ADMIN
from services.kernel.abi.fcntl import R_OK, W_OK
from services.kernel.abi.xattr import (
    XATTR_CREATE, XATTR_REPLACE, XATTR_SECURITY_PREFIX, XATTR_SYSTEM_PREFIX,
    XATTR_TRUSTED_PREFIX, XATTR_USER_PREFIX)
from services.kernel.core.cred import Credentials, capable, owner_or_capable
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import permitted

# the namespaces ext2 and tmpfs store (Linux's handlers, without the ACL ones)
STORED = (XATTR_USER_PREFIX, XATTR_TRUSTED_PREFIX, XATTR_SECURITY_PREFIX)


def stored_prefix(name: bytes) -> bytes:
    """The namespace of a name a filesystem stores (xattr_resolve_name):
    EOPNOTSUPP for one it has no handler for, EINVAL for the bare prefix."""
    for prefix in STORED:
        if name.startswith(prefix):
            if len(name) == len(prefix):
                raise Errno(errno.EINVAL)
            return prefix
    raise Errno(errno.EOPNOTSUPP)


def _may(inode, name: bytes, cred: Credentials, write: bool) -> None:
    """xattr_permission, then (writing) cap_inode_setxattr's security.* rule."""
    if name.startswith((XATTR_SECURITY_PREFIX, XATTR_SYSTEM_PREFIX)):
        if write and name.startswith(XATTR_SECURITY_PREFIX) and not capable(cred, CAP_SYS_ADMIN):
            raise Errno(errno.EPERM)
        return
    if name.startswith(XATTR_TRUSTED_PREFIX):
        if not capable(cred, CAP_SYS_ADMIN):
            raise Errno(errno.EPERM if write else errno.ENODATA)
        return
    mode = inode.mode
    if name.startswith(XATTR_USER_PREFIX):
        if not (S.S_ISREG(mode) or S.S_ISDIR(mode)):
            raise Errno(errno.EPERM if write else errno.ENODATA)
        if write and S.S_ISDIR(mode) and mode & S.S_ISVTX and not owner_or_capable(cred, inode):
            raise Errno(errno.EPERM)
    if not permitted(inode, cred, W_OK if write else R_OK):
        raise Errno(errno.EACCES)


async def value_of(inode, name: bytes, cred: Credentials) -> bytes:
    if name.startswith(XATTR_SYSTEM_PREFIX):
        raise Errno(errno.EOPNOTSUPP)        # no ACLs: noacl's answer, before any check
    _may(inode, name, cred, False)
    return await inode.getxattr(name)


async def set_value(inode, name: bytes, value: bytes, flags: int, cred: Credentials) -> None:
    """The caller checked the flags (EINVAL before the name is read) and
    the mount (EROFS before anything else)."""
    _may(inode, name, cred, True)
    await inode.setxattr(name, value, flags)


async def remove(inode, name: bytes, cred: Credentials) -> None:
    _may(inode, name, cred, True)
    await inode.removexattr(name)


async def names(inode, cred: Credentials) -> list[bytes]:
    """What listxattr shows: no permission needed, trusted.* only to
    CAP_SYS_ADMIN (as ext2's and tmpfs's list handlers hide them)."""
    found = await inode.listxattr()
    if capable(cred, CAP_SYS_ADMIN):
        return found
    return [n for n in found if not n.startswith(XATTR_TRUSTED_PREFIX)]


def check_flags(exists: bool, flags: int) -> None:
    """XATTR_CREATE wants the name new, XATTR_REPLACE wants it there."""
    if flags & XATTR_CREATE and exists:
        raise Errno(errno.EEXIST)
    if flags & XATTR_REPLACE and not exists:
        raise Errno(errno.ENODATA)
