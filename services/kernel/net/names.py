"""AF_UNIX names: which socket is bound to an abstract name or to a socket
inode of a filesystem (Linux's unix_socket_table).

A filesystem name is the inode bind made, found again by (filesystem, inode
number): a connect walks the path in the VFS and asks here who is bound to
what it found.  The name goes when its socket is closed, not when the inode
is unlinked (an unlinked name cannot be walked to any more)."""
from __future__ import annotations

import errno
import struct
from typing import Any

from services.kernel.core.errors import Errno
from services.kernel.abi.socket import AF_UNIX

FAMILY = struct.pack("<H", AF_UNIX)
AUTOBIND_NAMES = 1 << 20             # "\0" and five hex digits, as Linux's autobind

_abstract: dict[bytes, Any] = {}     # the name (its leading NUL too) -> socket
_inodes: dict[tuple, Any] = {}       # (filesystem, inode number) -> socket
_next_auto = 0


def bind_abstract(sock, name: bytes) -> None:
    if name in _abstract:
        raise Errno(errno.EADDRINUSE)
    _abstract[name] = sock
    sock.addr = FAMILY + name
    sock.name_key = ("abstract", name)


def autobind(sock) -> None:
    """An abstract name of five hex digits no socket has (EAGAIN when all are taken)."""
    global _next_auto
    for _ in range(AUTOBIND_NAMES):
        name = b"\0%05x" % _next_auto
        _next_auto = (_next_auto + 1) % AUTOBIND_NAMES
        if name not in _abstract:
            bind_abstract(sock, name)
            return
    raise Errno(errno.EAGAIN)


def bind_inode(sock, key: tuple, path: bytes) -> None:
    """sock is bound to the socket inode key (made by bind at path)."""
    _inodes[key] = sock
    sock.addr = FAMILY + path + b"\0"
    sock.name_key = ("inode", key)


def find_abstract(name: bytes):
    return _abstract.get(name)


def find_inode(key: tuple):
    return _inodes.get(key)


def unbind(sock) -> None:
    """sock's name is free again (its socket is closed)."""
    if sock.name_key is None:
        return
    kind, key = sock.name_key
    table = _abstract if kind == "abstract" else _inodes
    if table.get(key) is sock:
        del table[key]
    sock.name_key = None
