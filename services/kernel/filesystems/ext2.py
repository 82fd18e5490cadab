"""ext2, read-only for now, in the on-disk format mke2fs and e2fsck agree on.

In a nutshell: the superblock (byte 1024) and group descriptors are read at
mount; inodes are found through their group's inode table and cached by
number; file data goes through the block map (12 direct blocks, then single,
double and triple indirect), holes read as zeros, and runs of contiguous
blocks are fetched from the device in one request.  Directories with
``dir_index`` are read linearly, which their format allows.
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
    """The device does not hold an ext2 filesystem we can mount."""


EXT2_MAGIC = 0xEF53
ROOT_INO = 2
NDIR_BLOCKS = 12
# incompat features we understand: FILETYPE (0x2).  META_BG (0x10) and the
# ext3/4 ones (journal recovery, extents, 64bit, flex_bg's partners) are refused.
INCOMPAT_SUPPORTED = 0x0002
MAX_RUN = 256          # blocks fetched in one device request
CACHE_BLOCKS = 4096

_SUPER = struct.Struct("<11I")   # counts, first data block, block size, group sizes
_GROUP = struct.Struct("<IIIHHH")
_INODE = struct.Struct("<HHIIIIIHHII4x60sIIII")
_DIRENT = struct.Struct("<IHBB")
DT_FROM_MODE = {S.S_IFREG: 8, S.S_IFDIR: 4, S.S_IFLNK: 10, S.S_IFCHR: 2, S.S_IFBLK: 6,
                S.S_IFIFO: 1, S.S_IFSOCK: 12}
DT_FROM_FT = {1: 8, 2: 4, 3: 2, 4: 6, 5: 1, 6: 12, 7: 10}


class Ext2:
    def __init__(self, dev: BlockSource):
        self.dev = dev
        self.cache: OrderedDict[int, bytes] = OrderedDict()
        self.inodes: dict[int, Inode] = {}

    @classmethod
    async def mount(cls, dev: BlockSource) -> Ext2:
        fs = cls(dev)
        try:
            raw = await dev.read(1024, 1024)
        except OSError as exc:
            raise Ext2Error(errno.EIO, f"cannot read the superblock: {exc}") from None
        (fs.inodes_count, fs.blocks_count, _r, fs.free_blocks, fs.free_inodes, first_data,
         log_bs, _lf, fs.blocks_per_group, _fpg, fs.inodes_per_group) = \
            _SUPER.unpack_from(raw)
        magic = struct.unpack_from("<H", raw, 56)[0]
        if magic != EXT2_MAGIC:
            raise Ext2Error(errno.EINVAL, "not an ext2 filesystem (bad magic)")
        rev = struct.unpack_from("<I", raw, 76)[0]
        fs.inode_size = struct.unpack_from("<H", raw, 88)[0] if rev >= 1 else 128
        fs.feature_compat, fs.feature_incompat, fs.feature_ro_compat = \
            struct.unpack_from("<III", raw, 92)
        unknown = fs.feature_incompat & ~INCOMPAT_SUPPORTED
        if unknown:
            raise Ext2Error(errno.EINVAL, f"unsupported incompatible features {unknown:#x}")
        fs.block_size = 1024 << log_bs
        fs.ngroups = -(-(fs.blocks_count - first_data) // fs.blocks_per_group)
        gdt_block = first_data + 1
        gdt = await fs._read_blocks(gdt_block, -(-fs.ngroups * 32 // fs.block_size))
        fs.inode_tables = [_GROUP.unpack_from(gdt, g * 32)[2] for g in range(fs.ngroups)]
        fs.root = await fs.inode(ROOT_INO)
        if not fs.root.is_dir():
            raise Ext2Error(errno.EUCLEAN, "root inode is not a directory")
        return fs

    def statfs(self) -> dict:
        return {"bsize": self.block_size, "frsize": self.block_size, "blocks": self.blocks_count,
                "bfree": self.free_blocks, "bavail": self.free_blocks,
                "files": self.inodes_count, "ffree": self.free_inodes, "namelen": 255,
                "magic": EXT2_MAGIC}

    # --- blocks -------------------------------------------------------------
    async def _read_blocks(self, block: int, count: int) -> bytes:
        """count contiguous blocks from block; cached ones are not re-read."""
        if count == 1:
            return await self.block(block)
        data = await self.dev.read(block * self.block_size, count * self.block_size)
        bs = self.block_size
        for i in range(count):
            self._remember(block + i, data[i * bs:(i + 1) * bs])
        return data

    async def block(self, block: int) -> bytes:
        data = self.cache.get(block)
        if data is not None:
            self.cache.move_to_end(block)
            return data
        if block >= self.blocks_count:
            raise Ext2Error(errno.EUCLEAN, f"block {block} beyond the end of the filesystem")
        data = await self.dev.read(block * self.block_size, self.block_size)
        self._remember(block, data)
        return data

    def _remember(self, block: int, data: bytes) -> None:
        self.cache[block] = data
        if len(self.cache) > CACHE_BLOCKS:
            self.cache.popitem(last=False)

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
        (self.mode, uid_lo, size_lo, self.atime, self.ctime, self.mtime, _dtime, gid_lo,
         self.nlink, self.blocks, self.flags, self.i_block, _gen, self.file_acl, size_hi,
         _faddr) = _INODE.unpack_from(raw)
        uid_hi, gid_hi = struct.unpack_from("<HH", raw, 116 + 4)
        self.uid = uid_lo | uid_hi << 16
        self.gid = gid_lo | gid_hi << 16
        self.size = size_lo | (size_hi << 32 if S.S_ISREG(self.mode) else 0)
        self.atime_ns = self.mtime_ns = self.ctime_ns = 0
        if len(raw) > 128:
            extra = struct.unpack_from("<H", raw, 128)[0]
            for name, off in (("ctime", 132), ("mtime", 136), ("atime", 140)):
                if 128 + extra >= off + 4:
                    ext = struct.unpack_from("<I", raw, off)[0]
                    setattr(self, name + "_ns", ext >> 2)
                    setattr(self, name, getattr(self, name) + ((ext & 3) << 32))
        for name in ("atime", "ctime", "mtime"):     # the 32-bit fields are signed
            value = getattr(self, name)
            if value & 0x80000000 and value < 1 << 32:
                setattr(self, name, value - (1 << 32))
        self.blockptrs = struct.unpack("<15I", self.i_block)
        self.rdev = self._rdev() if S.S_ISCHR(self.mode) or S.S_ISBLK(self.mode) else 0
        self._names: dict[bytes, int] | None = None     # lookup index of a directory

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
    async def _map(self, lblock: int) -> int:
        """Physical block of logical block lblock (0 for a hole)."""
        per = self.fs.block_size // 4
        if lblock < NDIR_BLOCKS:
            return self.blockptrs[lblock]
        lblock -= NDIR_BLOCKS
        for depth, slot in ((1, 12), (2, 13), (3, 14)):
            span = per ** depth
            if lblock < span:
                block = self.blockptrs[slot]
                for level in range(depth - 1, -1, -1):
                    if block == 0:
                        return 0
                    index = (lblock // per ** level) % per
                    table = await self.fs.block(block)
                    block = struct.unpack_from("<I", table, index * 4)[0]
                return block
            lblock -= span
        raise Ext2Error(errno.EFBIG, "block beyond triple indirect range")

    async def read(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        bs = self.fs.block_size
        first, last = offset // bs, (end - 1) // bs
        out = bytearray()
        lb = first
        while lb <= last:
            phys = await self._map(lb)
            run = 1
            while lb + run <= last and run < MAX_RUN:
                nxt = await self._map(lb + run)
                if (phys == 0) != (nxt == 0) or (phys and nxt != phys + run):
                    break
                run += 1
            if phys == 0:
                out += bytes(run * bs)
            else:
                out += await self.fs._read_blocks(phys, run)
            lb += run
        skip = offset - first * bs
        return bytes(out[skip:skip + end - offset])

    # --- directories and links ---------------------------------------------------------
    async def readdir(self) -> list[tuple[bytes, int, int]]:
        data = await self.read(0, self.size)
        entries = []
        filetype = self.fs.feature_incompat & 0x2
        bs = self.fs.block_size
        pos = 0
        while pos + 8 <= len(data):
            ino, rec_len, name_len, ftype = _DIRENT.unpack_from(data, pos)
            if rec_len < 8 or pos % bs + rec_len > bs:
                raise Ext2Error(errno.EUCLEAN, f"corrupt directory {self.ino}")
            if ino:
                if not filetype:
                    name_len |= ftype << 8
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
        if self.blocks - xattr_blocks == 0:
            return self.i_block[:self.size]
        return await self.read(0, self.size)
