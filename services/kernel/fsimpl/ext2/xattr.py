"""ext2's extended attributes, in the format of Linux's fs/ext2/xattr.c.

In a nutshell: an inode's attributes live in one block that i_file_acl
names (a 32-byte header: magic 0xEA020000, a reference count, h_blocks 1
and a hash of the entries' hashes; then the entries, sorted by namespace
index, name length and name, each 16 bytes and its name padded to 4,
ending in a zero word; the values at the block's end, each padded to 4),
which inodes with the same attributes may share (the count; a change
copies a shared block first).  Every change here builds the block anew
from its sorted entries: what e2fsck checks (offsets, hashes) holds, and
nothing is left between values.

``mke2fs -d`` also puts attributes in the inode itself, after its extra
fields (ext4's in-inode area, same entries, values at the inode's end),
which Linux's ext2 driver never reads but ext4's (which mounts ext2 images
on most distributions, this host's included) does.  They are read here
too, listed before the block's, and a change takes the name it changes
out of the inode: the area only ever shrinks, and new values go to the
block.  Names of the ACL indexes (2, 3) and unknown ones are kept as they
are but neither listed nor read (no ACLs: noacl's answer)."""
from __future__ import annotations

import errno
import logging
import struct
from dataclasses import dataclass

from services.kernel.abi.xattr import (
    XATTR_NAME_MAX, XATTR_SECURITY_PREFIX, XATTR_TRUSTED_PREFIX, XATTR_USER_PREFIX)
from services.kernel.core.errors import Errno
from services.kernel.fs.xattr import check_flags, stored_prefix
from services.kernel.fsimpl.ext2.layout import U16, U32

log = logging.getLogger("kernel")

XATTR_MAGIC = 0xEA020000
HEADER = struct.Struct("<4I16x")      # magic, refcount, blocks, hash
ENTRY = struct.Struct("<BBHIII")      # name_len, name_index, value_offs, value_block, size, hash
COMPAT_EXT_ATTR = 0x0008             # EXT2_FEATURE_COMPAT_EXT_ATTR
INDEX_PREFIX = {1: XATTR_USER_PREFIX, 4: XATTR_TRUSTED_PREFIX, 6: XATTR_SECURITY_PREFIX}
PREFIX_INDEX = {prefix: index for index, prefix in INDEX_PREFIX.items()}
HASH_BITS = 0xFFFFFFFF


@dataclass(frozen=True)
class Entry:
    index: int          # e_name_index: the namespace
    name: bytes         # the name without its namespace's prefix
    value: bytes

    @property
    def order(self) -> tuple[int, int, bytes]:
        """Where Linux's ext2_xattr_set keeps it in the block."""
        return self.index, len(self.name), self.name


def _pad(n: int) -> int:
    return (n + 3) & ~3


def entry_hash(name: bytes, value: bytes) -> int:
    """ext2_xattr_hash_entry: the name's bytes (unsigned, as Linux has built
    since 6.2 with -funsigned-char; e2fsck takes either), then the value's
    padded 32-bit words."""
    h = 0
    for c in name:
        h = ((h << 5) ^ (h >> 27) ^ c) & HASH_BITS
    for (word,) in struct.iter_unpack("<I", value + bytes(-len(value) % 4)):
        h = ((h << 16) ^ (h >> 16) ^ word) & HASH_BITS
    return h


def block_hash(hashes: list[int]) -> int:
    """ext2_xattr_rehash: 0 when an entry's hash is 0 (the block is then never shared)."""
    h = 0
    for e in hashes:
        if not e:
            return 0
        h = ((h << 16) ^ (h >> 16) ^ e) & HASH_BITS
    return h


def parse(area: bytes, first: int, base: int) -> list[Entry] | None:
    """The entries from offset first in area to a zero word (or the area's
    end), each value at base + its offset; None if one does not fit."""
    entries, pos, end = [], first, len(area)
    while pos + 4 <= end and area[pos:pos + 4] != b"\0\0\0\0":
        if pos + ENTRY.size > end:
            return None
        nlen, index, offs, vblock, vsize, _ = ENTRY.unpack_from(area, pos)
        name = area[pos + ENTRY.size:pos + ENTRY.size + nlen]
        if not nlen or len(name) != nlen or vblock or base + offs + vsize > end:
            return None
        entries.append(Entry(index, bytes(name), bytes(area[base + offs:base + offs + vsize])))
        pos += _pad(ENTRY.size + nlen)
    return entries


def block_bytes(entries: list[Entry]) -> int:
    """What a block of these entries needs."""
    return (HEADER.size + 4 + sum(_pad(ENTRY.size + len(e.name)) for e in entries)
            + sum(_pad(len(e.value)) for e in entries))


def pack(out: bytearray, first: int, base: int, entries: list[Entry]) -> list[int]:
    """Entries from offset first, values down from out's end (offsets from
    base); their hashes."""
    pos, low, hashes = first, len(out), []
    for e in entries:
        offs = 0
        if e.value:
            low -= _pad(len(e.value))
            out[low:low + len(e.value)] = e.value
            offs = low - base
        h = entry_hash(e.name, e.value)
        hashes.append(h)
        ENTRY.pack_into(out, pos, len(e.name), e.index, offs, 0, len(e.value), h)
        out[pos + ENTRY.size:pos + ENTRY.size + len(e.name)] = e.name
        pos += _pad(ENTRY.size + len(e.name))
    return hashes


def build_block(entries: list[Entry], block_size: int) -> bytes:
    out = bytearray(block_size)
    hashes = pack(out, HEADER.size, 0, entries)
    HEADER.pack_into(out, 0, XATTR_MAGIC, 1, 1, block_hash(hashes))
    return bytes(out)


def _split(name: bytes) -> tuple[int, bytes]:
    prefix = stored_prefix(name)
    return PREFIX_INDEX[prefix], name[len(prefix):]


class Xattrs:
    """The attribute calls of ext2's Inode (which has fs, raw, file_acl,
    blocks, _free, _touch and save)."""

    def _corrupt(self, where: str) -> Errno:
        log.warning("ext2: inode %d: bad extended attribute %s", self.ino, where)
        return Errno(errno.EIO)

    def _ibody_start(self) -> int | None:
        """Where the in-inode area's magic is, if the inode has room for one."""
        raw = self.raw
        if len(raw) <= 128:
            return None
        start = 128 + U16.unpack_from(raw, 128)[0]
        return start if start + 8 <= len(raw) else None

    def _ibody(self) -> list[Entry]:
        start = self._ibody_start()
        if start is None or U32.unpack_from(self.raw, start)[0] != XATTR_MAGIC:
            return []
        entries = parse(self.raw, start + 4, start + 4)
        if entries is None:
            raise self._corrupt("in the inode")
        return entries

    def _set_ibody(self, entries: list[Entry]) -> None:
        start = self._ibody_start()
        area = bytearray(len(self.raw) - start)
        if entries:
            U32.pack_into(area, 0, XATTR_MAGIC)
            pack(area, 4, 4, entries)           # offsets from the first entry
        self.raw[start:] = area

    async def _block_entries(self) -> list[Entry]:
        if not self.file_acl:
            return []
        data = await self.fs.block(self.file_acl)
        magic, _refs, nblocks, _ = HEADER.unpack_from(data)
        entries = parse(data, HEADER.size, 0) if magic == XATTR_MAGIC and nblocks == 1 else None
        if entries is None:
            raise self._corrupt(f"block {self.file_acl}")
        return entries

    async def _all_entries(self) -> list[Entry]:
        return self._ibody() + await self._block_entries()

    async def getxattr(self, name: bytes) -> bytes:
        index, short = _split(name)
        async with self.fs.lock:
            for e in await self._all_entries():
                if e.index == index and e.name == short:
                    return e.value
        raise Errno(errno.ENODATA)

    async def listxattr(self) -> list[bytes]:
        async with self.fs.lock:
            return [INDEX_PREFIX[e.index] + e.name for e in await self._all_entries()
                    if e.index in INDEX_PREFIX]

    async def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        await self._change(name, value, flags)

    async def removexattr(self, name: bytes) -> None:
        await self._change(name, None, 0)

    async def _change(self, name: bytes, value: bytes | None, flags: int) -> None:
        """Set (value) or remove (None) name, as ext2_xattr_set: ERANGE for a
        value larger than a block, EEXIST/ENODATA by flags, ENOSPC if the
        block cannot hold it."""
        index, short = _split(name)
        fs = self.fs
        if len(short) > XATTR_NAME_MAX or value is not None and len(value) > fs.block_size:
            raise Errno(errno.ERANGE)
        async with fs.lock:
            body, block = self._ibody(), await self._block_entries()
            new_body = [e for e in body if (e.index, e.name) != (index, short)]
            new_block = [e for e in block if (e.index, e.name) != (index, short)]
            exists = len(new_body) + len(new_block) < len(body) + len(block)
            if value is None and not exists:
                raise Errno(errno.ENODATA)
            check_flags(exists, flags)
            if value is not None:
                new_block = sorted(new_block + [Entry(index, short, bytes(value))],
                                   key=lambda e: e.order)
                if block_bytes(new_block) > fs.block_size:
                    raise Errno(errno.ENOSPC)
            if new_block != block:
                await self._write_block(new_block)       # may fail (ENOSPC): first
            if new_body != body:
                self._set_ibody(new_body)
            self._touch(m=False)
            await self.save()

    async def _write_block(self, entries: list[Entry]) -> None:
        """The attribute block with these entries: rewritten in place when
        this inode alone holds it, else a new one (the shared one's count
        going down); none at all without entries."""
        fs = self.fs
        if self.file_acl and entries and U32.unpack_from(await fs.block(self.file_acl), 4)[0] == 1:
            await fs.put(self.file_acl, build_block(entries, fs.block_size))
            return
        block = 0
        if entries:       # the new block first: out of space, nothing has changed
            group_start = (fs.first_data
                           + (self.ino - 1) // fs.inodes_per_group * fs.blocks_per_group)
            block, _ = await fs.alloc_blocks(group_start, 1)   # as ext2_xattr_set2's goal
            await fs.put(block, build_block(entries, fs.block_size))
        if self.file_acl:
            await self.release_xattr_block()
        if not block:
            return
        self.blocks += fs.block_size // 512
        self.file_acl = block
        if not fs.feature_compat & COMPAT_EXT_ATTR:
            fs.feature_compat |= COMPAT_EXT_ATTR
            U32.pack_into(fs.sb, 92, fs.feature_compat)
            fs.meta_dirty = True

    async def release_xattr_block(self) -> None:
        """Let go of the attribute block: freed if this inode was its last
        holder, else its count goes down."""
        fs = self.fs
        data = bytearray(await fs.block(self.file_acl))
        refs = U32.unpack_from(data, 4)[0]
        if refs <= 1:
            await self._free(self.file_acl)
        else:
            U32.pack_into(data, 4, refs - 1)
            await fs.put(self.file_acl, data)
            self.blocks -= fs.block_size // 512
        self.file_acl = 0
