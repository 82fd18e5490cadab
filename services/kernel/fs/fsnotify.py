"""Where file events come from (Linux's fsnotify.h): the calls that create,
remove, rename, open, read, write, change or close a file say so here, once
each, and the watches on the inode and on its directory hear of it.

In a nutshell: an inode with watches has them in ``inode.watches`` (watch
object -> None, an ordered set); a watch belongs to an instance
(fs/inotify.py) that queues what it is told, or is a directory's dnotify
watch (fs/dnotify.py) that signals its owner.  An event about a file goes to
its directory's watches first, with the file's name, then to the file's own
(Linux's fsnotify_parent); events about a directory carry IN_ISDIR.  With
no watch anywhere in the guest (``watching`` is 0) every call here returns
at its first line, so a guest that never uses inotify pays one test of an
int per call."""
from __future__ import annotations

import itertools
import stat as S
from typing import Any

from services.kernel.abi.inotify import (
    IN_ATTRIB, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_ISDIR, IN_MOVE_SELF, IN_MOVED_FROM,
    IN_MOVED_TO, FS_RENAME)

watching = 0                      # watches in the guest (fs/inotify.py keeps it)
_cookies = itertools.count(1)     # ties an IN_MOVED_FROM to its IN_MOVED_TO


def _send(inode: Any, mask: int, name: bytes = b"", cookie: int = 0) -> None:
    watches = inode.watches
    if watches:
        for w in list(watches):
            w.deliver(mask, name, cookie)


def _isdir(inode: Any) -> int:
    return IN_ISDIR if S.S_ISDIR(inode.mode) else 0


def on_file(loc: Any, mask: int) -> None:
    """Something happened to the file at loc (IN_MODIFY, IN_OPEN, a close
    ...): its directory hears it with its name, then the file itself."""
    if not watching:
        return
    mask |= _isdir(loc.inode)
    if loc.parent is not None:
        _send(loc.parent, mask, loc.path.rpartition(b"/")[2])
    _send(loc.inode, mask)


def on_inode(inode: Any, mask: int) -> None:
    """An event the inode's own watches hear, and not its directory's."""
    if watching:
        _send(inode, mask | _isdir(inode))


def created(dir_inode: Any, name: bytes, isdir: bool) -> None:
    if watching:
        _send(dir_inode, IN_CREATE | (IN_ISDIR if isdir else 0), name)


def linked(dir_inode: Any, name: bytes, inode: Any) -> None:
    """link(2): the file's link count changed, and a name appeared."""
    if watching:
        on_inode(inode, IN_ATTRIB)
        _send(dir_inode, IN_CREATE | _isdir(inode), name)


def _gone_if_unlinked(inode: Any) -> None:
    """The inode's last name went: IN_DELETE_SELF, and its watches end
    (IN_IGNORED).  Linux waits for the last close of an open file; here it
    is at once.  It carries no IN_ISDIR, as on Linux."""
    if not inode.nlink or S.S_ISDIR(inode.mode):
        _send(inode, IN_DELETE_SELF)
        for w in list(inode.watches or ()):
            w.end()


def removed(dir_inode: Any, name: bytes, inode: Any) -> None:
    """unlink or rmdir of name, which was inode, as Linux's vfs_unlink and
    vfs_rmdir: IN_ATTRIB (a file's link count), IN_DELETE_SELF, then
    IN_DELETE in the directory."""
    if not watching:
        return
    isdir = S.S_ISDIR(inode.mode)
    if not isdir:
        on_inode(inode, IN_ATTRIB)
    _gone_if_unlinked(inode)
    _send(dir_inode, IN_DELETE | (IN_ISDIR if isdir else 0), name)


def moved(old_dir: Any, old_name: bytes, new_dir: Any, new_name: bytes, inode: Any,
          replaced: Any = None) -> None:
    """rename: FS_RENAME to the old directory (dnotify's DN_RENAME),
    IN_MOVED_FROM and IN_MOVED_TO with one cookie, the replaced file's
    IN_ATTRIB (and its end), IN_MOVE_SELF, as Linux's fsnotify_move."""
    if not watching:
        return
    cookie, isdir = next(_cookies) & 0xFFFFFFFF, _isdir(inode)
    _send(old_dir, FS_RENAME | isdir, old_name)
    _send(old_dir, IN_MOVED_FROM | isdir, old_name, cookie)
    _send(new_dir, IN_MOVED_TO | isdir, new_name, cookie)
    if replaced is not None:
        on_inode(replaced, IN_ATTRIB)
    on_inode(inode, IN_MOVE_SELF)
    if replaced is not None:
        _gone_if_unlinked(replaced)
