"""ext2, read-only for now, in the on-disk format mke2fs and e2fsck agree on.

In a nutshell: the superblock (byte 1024) and group descriptors are read and
checked at mount; inodes are found through their group's inode table and
cached by number; file data goes through the block map (12 direct blocks,
then single, double and triple indirect), holes read as zeros, and runs of
contiguous blocks are fetched from the device in one request.  Directories
with ``dir_index`` are read linearly, which their format allows.

Metadata (inode tables, indirect blocks) and file data have separate block
caches, so that reading a big file cannot push the inode tables out.
Directories keep their parsed entries, the filesystem being read-only.
"""
from __future__ import annotations

import errno
import os
import stat as S
import struct
from collections import OrderedDict
from typing import Protocol


class BlockSource(Protocol):
    async def read(self, offset: int, length: int) -> bytes: ...


class Ext2Error(OSError):
    """The device does not hold an ext2 filesystem we can read, or it is corrupt."""


EXT2_MAGIC = 0xEF53
ROOT_INO = 2
NDIR_BLOCKS = 12
INCOMPAT_FILETYPE = 0x0002
# the incompatible features we cannot read, named for the mount error
INCOMPAT_NAMES = {0x0001: "compression", 0x0004: "needs_recovery", 0x0008: "journal_dev",
                  0x0010: "meta_bg", 0x0040: "extent", 0x0080: "64bit", 0x0100: "mmp",
                  0x0200: "flex_bg", 0x0400: "ea_inode", 0x1000: "dirdata",
                  0x2000: "metadata_csum_seed", 0x4000: "large_dir", 0x8000: "inline_data",
                  0x10000: "encrypt", 0x20000: "casefold"}
RO_COMPAT_SPARSE_SUPER = 0x0001
MAX_RUN_BYTES = 1 << 20    # data fetched in one device request
CACHE_BLOCKS = 1024

# counts, first data block, block size, group sizes; magic; revision; inode size;
# features; reserved GDT blocks (for growing the filesystem)
_SUPER = struct.Struct("<11I12xH18xI8xH2x3I102xH")
_GROUP = struct.Struct("<8xI2H16x")    # inode table, free blocks, free inodes
_INODE = struct.Struct("<HHIIIIIHHII4x60sIIII")
_IDS_HI = struct.Struct("<HH")        # osd2 uid/gid high halves, at 120
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_BLOCKPTRS = struct.Struct("<15I")
_DIRENT = struct.Struct("<IHBB")
DT_FROM_MODE = {S.S_IFREG: 8, S.S_IFDIR: 4, S.S_IFLNK: 10, S.S_IFCHR: 2, S.S_IFBLK: 6,
                S.S_IFIFO: 1, S.S_IFSOCK: 12}
DT_FROM_FT = {1: 8, 2: 4, 3: 2, 4: 6, 5: 1, 6: 12, 7: 10}


def _has_super(group: int) -> bool:
    """With sparse_super, groups 0, 1 and powers of 3, 5 and 7 carry superblock backups."""
    if group <= 1:
        return True
    for base in (3, 5, 7):
        n = group
        while n % base == 0:
            n //= base
        if n == 1:
            return True
    return False


def _decode_time(base: int, extra: int) -> tuple[int, int]:
    """Seconds and nanoseconds as Linux decodes them: the 32-bit seconds are signed,
    the low 2 bits of the extra field add epochs of 2**32 s, the rest is ns << 2."""
    return (base ^ 0x80000000) - 0x80000000 + ((extra & 3) << 32), extra >> 2


class BlockCache:
    """Block contents by number, the least recently used dropped past a limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.blocks: OrderedDict[int, bytes] = OrderedDict()

    def get(self, block: int) -> bytes | None:
        data = self.blocks.get(block)
        if data is not None:
            self.blocks.move_to_end(block)
        return data

    def put(self, block: int, data: bytes) -> None:
        self.blocks[block] = data
        if len(self.blocks) > self.limit:
            self.blocks.popitem(last=False)


class Ext2:
    def __init__(self, dev: BlockSource):
        self.dev = dev
        self.meta_cache = BlockCache(CACHE_BLOCKS)
        self.data_cache = BlockCache(CACHE_BLOCKS)
        self.inodes: dict[int, Inode] = {}

    @classmethod
    async def mount(cls, dev: BlockSource) -> Ext2:
        fs = cls(dev)
        raw = await fs._fetch(1024, 1024)
        (fs.inodes_count, fs.blocks_count, fs.r_blocks, _free_blocks, _free_inodes, first_data,
         log_bs, _lf, fs.blocks_per_group, _fpg, fs.inodes_per_group, magic, rev,
         inode_size, fs.feature_compat, fs.feature_incompat, fs.feature_ro_compat,
         reserved_gdt) = _SUPER.unpack_from(raw)
        if magic != EXT2_MAGIC:
            raise Ext2Error(errno.EINVAL, "not an ext2 filesystem (bad magic)")
        unknown = fs.feature_incompat & ~INCOMPAT_FILETYPE
        if unknown:
            names = [INCOMPAT_NAMES.get(1 << b, f"{1 << b:#x}")
                     for b in range(32) if unknown >> b & 1]
            raise Ext2Error(errno.EINVAL, "unsupported incompatible features: " + ", ".join(names))
        if log_bs > 6:
            raise Ext2Error(errno.EINVAL, f"unsupported block size 1024 << {log_bs}")
        bs = fs.block_size = 1024 << log_bs
        fs.inode_size = inode_size if rev >= 1 else 128
        if fs.inode_size < 128 or fs.inode_size > bs or fs.inode_size & (fs.inode_size - 1):
            raise Ext2Error(errno.EUCLEAN, f"bad inode size {fs.inode_size}")
        if not (0 < fs.blocks_per_group <= 8 * bs and 0 < fs.inodes_per_group <= 8 * bs
                and first_data < fs.blocks_count):
            raise Ext2Error(errno.EUCLEAN, "corrupt superblock geometry")
        fs.ngroups = -(-(fs.blocks_count - first_data) // fs.blocks_per_group)
        if fs.inodes_count > fs.ngroups * fs.inodes_per_group:
            raise Ext2Error(errno.EUCLEAN, "more inodes than the groups hold")
        gdt_blocks = -(-fs.ngroups * _GROUP.size // bs)
        gdt = await fs._fetch((first_data + 1) * bs, gdt_blocks * bs)
        groups = [_GROUP.unpack_from(gdt, g * _GROUP.size) for g in range(fs.ngroups)]
        fs.inode_tables = [table for table, _, _ in groups]
        fs.group_free = [(blocks, inodes) for _, blocks, inodes in groups]
        itb_per_group = fs.inodes_per_group // (bs // fs.inode_size)
        if any(t == 0 or t + itb_per_group > fs.blocks_count for t in fs.inode_tables):
            raise Ext2Error(errno.EUCLEAN, "inode table outside the filesystem")
        sparse = fs.feature_ro_compat & RO_COMPAT_SPARSE_SUPER
        # what Linux's statfs leaves out of f_blocks: metadata that is always there
        fs.overhead = first_data + fs.ngroups * (2 + itb_per_group) + sum(
            1 + gdt_blocks + reserved_gdt for g in range(fs.ngroups)
            if not sparse or _has_super(g))
        fs.ptrs = struct.Struct(f"<{bs // 4}I")
        fs.root = await fs.inode(ROOT_INO)
        if not fs.root.is_dir():
            raise Ext2Error(errno.EUCLEAN, "root inode is not a directory")
        return fs

    def statfs(self) -> dict:
        """As Linux 6.x reports an ext2 mount (ext4's statfs, which serves ext2):
        free counts summed over the groups, f_blocks without the fixed metadata
        (reserved GDT blocks included), f_bavail without the root-reserved blocks."""
        bfree = sum(blocks for blocks, _ in self.group_free)
        return {"bsize": self.block_size, "frsize": self.block_size,
                "blocks": self.blocks_count - self.overhead, "bfree": bfree,
                "bavail": max(0, bfree - self.r_blocks), "files": self.inodes_count,
                "ffree": sum(inodes for _, inodes in self.group_free), "namelen": 255,
                "magic": EXT2_MAGIC}

    # --- blocks -------------------------------------------------------------
    async def _fetch(self, offset: int, length: int) -> bytes:
        data = await self.dev.read(offset, length)
        if len(data) != length:
            raise Ext2Error(errno.EIO, f"short read at byte {offset}: the device ends early")
        return data

    async def block(self, block: int) -> bytes:
        """One metadata block, through the metadata cache."""
        data = self.meta_cache.get(block)
        if data is None:
            if not 0 < block < self.blocks_count:
                raise Ext2Error(errno.EUCLEAN, f"block {block} outside the filesystem")
            data = await self._fetch(block * self.block_size, self.block_size)
            self.meta_cache.put(block, data)
        return data

    async def table(self, block: int) -> tuple[int, ...]:
        """An indirect block's pointers."""
        return self.ptrs.unpack(await self.block(block))

    async def data(self, block: int, count: int) -> bytes:
        """count contiguous data blocks: from the data cache if it holds them all,
        else in one device request."""
        cached = []
        for b in range(block, block + count):
            data = self.data_cache.get(b)
            if data is None:
                break
            cached.append(data)
        else:
            return b"".join(cached)
        if not 0 < block <= self.blocks_count - count:
            raise Ext2Error(errno.EUCLEAN, f"blocks {block}+{count} outside the filesystem")
        bs = self.block_size
        data = await self._fetch(block * bs, count * bs)
        for i in range(max(0, count - self.data_cache.limit), count):
            self.data_cache.put(block + i, data[i * bs:(i + 1) * bs])
        return data

    async def inode(self, ino: int) -> Inode:
        cached = self.inodes.get(ino)
        if cached is not None:
            return cached
        if not 1 <= ino <= self.inodes_count:
            raise Ext2Error(errno.EUCLEAN, f"inode number {ino} out of range")
        group, index = divmod(ino - 1, self.inodes_per_group)
        offset = index * self.inode_size
        raw = await self.block(self.inode_tables[group] + offset // self.block_size)
        start = offset % self.block_size
        inode = Inode(self, ino, raw[start:start + self.inode_size])
        self.inodes[ino] = inode
        return inode


class Inode:
    def __init__(self, fs: Ext2, ino: int, raw: bytes):
        self.fs = fs
        self.ino = ino
        (self.mode, uid_lo, size_lo, atime, ctime, mtime, _dtime, gid_lo,
         self.nlink, self.blocks, self.flags, self.i_block, _gen, self.file_acl, size_hi,
         _faddr) = _INODE.unpack_from(raw)
        uid_hi, gid_hi = _IDS_HI.unpack_from(raw, 120)
        self.uid = uid_lo | uid_hi << 16
        self.gid = gid_lo | gid_hi << 16
        self.size = size_lo | (size_hi << 32 if S.S_ISREG(self.mode) else 0)
        extra = {}
        if len(raw) > 128:
            covered = 128 + _U16.unpack_from(raw, 128)[0]
            extra = {off: _U32.unpack_from(raw, off)[0]
                     for off in (132, 136, 140) if off + 4 <= min(covered, len(raw))}
        self.ctime, self.ctime_ns = _decode_time(ctime, extra.get(132, 0))
        self.mtime, self.mtime_ns = _decode_time(mtime, extra.get(136, 0))
        self.atime, self.atime_ns = _decode_time(atime, extra.get(140, 0))
        self.blockptrs = _BLOCKPTRS.unpack(self.i_block)
        self.rdev = self._rdev() if S.S_ISCHR(self.mode) or S.S_ISBLK(self.mode) else 0
        self._entries: list[tuple[bytes, int, int]] | None = None   # a directory's, once read
        self._names: dict[bytes, int] | None = None

    def is_dir(self) -> bool:
        return S.S_ISDIR(self.mode)

    def is_reg(self) -> bool:
        return S.S_ISREG(self.mode)

    def is_lnk(self) -> bool:
        return S.S_ISLNK(self.mode)

    def _rdev(self) -> int:
        old, new = self.blockptrs[0], self.blockptrs[1]
        if old:
            return os.makedev((old >> 8) & 0xFF, old & 0xFF)
        return os.makedev((new & 0xFFF00) >> 8, (new & 0xFF) | ((new >> 12) & 0xFFF00))

    # --- the block map ---------------------------------------------------------
    async def _map(self, first: int, count: int) -> list[int]:
        """Physical blocks of logical blocks first.. first+count-1 (0 for a hole),
        taken a whole indirect table at a time."""
        per = self.fs.block_size // 4
        end = first + count
        ptrs = list(self.blockptrs[first:min(end, NDIR_BLOCKS)])
        lb = max(first, NDIR_BLOCKS)
        while lb < end:
            rel, slot, span = lb - NDIR_BLOCKS, NDIR_BLOCKS, per
            while rel >= span:
                rel -= span
                slot += 1
                span *= per
                if slot > 14:
                    raise Ext2Error(errno.EUCLEAN, f"inode {self.ino}: size beyond its block map")
            block = self.blockptrs[slot]
            span //= per
            while span > 1 and block:       # down to the table of pointers to data
                block = (await self.fs.table(block))[rel // span % per]
                span //= per
            start = rel % per
            take = min(per - start, end - lb)
            if block:
                ptrs += (await self.fs.table(block))[start:start + take]
            else:
                ptrs += [0] * take
            lb += take
        return ptrs

    async def read(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        bs = self.fs.block_size
        first = offset // bs
        ptrs = await self._map(first, (end - 1) // bs + 1 - first)
        max_run = MAX_RUN_BYTES // bs
        out = bytearray()
        i, n = 0, len(ptrs)
        while i < n:
            phys, run = ptrs[i], 1
            if phys:
                while i + run < n and run < max_run and ptrs[i + run] == phys + run:
                    run += 1
                out += await self.fs.data(phys, run)
            else:
                while i + run < n and not ptrs[i + run]:
                    run += 1
                out += bytes(run * bs)
            i += run
        skip = offset - first * bs
        return bytes(out[skip:skip + end - offset])

    # --- directories and links ---------------------------------------------------------
    async def readdir(self) -> list[tuple[bytes, int, int]]:
        if self._entries is None:
            self._entries = await self._parse_dir()
        return list(self._entries)

    async def _parse_dir(self) -> list[tuple[bytes, int, int]]:
        data = await self.read(0, self.size)
        entries = []
        filetype = self.fs.feature_incompat & INCOMPAT_FILETYPE
        bs = self.fs.block_size
        pos = 0
        while pos + 8 <= len(data):
            ino, rec_len, name_len, ftype = _DIRENT.unpack_from(data, pos)
            if not filetype:
                name_len |= ftype << 8
            if (rec_len < 8 or rec_len % 4 or pos % bs + rec_len > bs
                    or (ino and 8 + name_len > rec_len)):
                raise Ext2Error(errno.EUCLEAN, f"corrupt directory {self.ino} at byte {pos}")
            if ino:
                name = data[pos + 8:pos + 8 + name_len]
                if filetype:
                    dtype = DT_FROM_FT.get(ftype, 0)
                else:
                    dtype = DT_FROM_MODE.get(S.S_IFMT((await self.fs.inode(ino)).mode), 0)
                entries.append((name, ino, dtype))
            pos += rec_len
        return entries

    async def lookup(self, name: bytes) -> Inode | None:
        if self._names is None:
            self._names = {entry: ino for entry, ino, _ in await self.readdir()}
        ino = self._names.get(name)
        return None if ino is None else await self.fs.inode(ino)

    async def readlink(self) -> bytes:
        xattr_blocks = self.fs.block_size // 512 if self.file_acl else 0
        if self.blocks - xattr_blocks == 0:      # a fast symlink, as Linux tells them
            return self.i_block[:self.size]
        return await self.read(0, self.size)
