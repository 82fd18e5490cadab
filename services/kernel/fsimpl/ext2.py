"""ext2 in the on-disk format mke2fs and e2fsck agree on.

In a nutshell: the superblock (byte 1024) and group descriptors are read and
checked at mount; inodes are found through their group's inode table and
cached by number; file data goes through the block map (12 direct blocks,
then single, double and triple indirect), holes read as zeros, and runs of
contiguous blocks are fetched from the device in one request.  Directories
with ``dir_index`` are read linearly, which their format allows.

Metadata (inode tables, indirect blocks) and single data blocks (directory
blocks, small files) have separate block caches; runs of file data are left
to the device's own page cache, so that streaming a big file pushes neither
out, and its data is not copied through two caches.
A directory is listed from its blocks, a position being a byte offset, as
Linux's ext2 lists one.  Its names, and the block each is in, are read once
for lookups (under the lock) and kept up to date as entries come and go, so
that a lookup, unlink or rename in a big directory parses one block at most.
Whatever walks a directory's blocks lets the loop have a turn every
``DIR_STEP`` records or so (a big directory holds it a bounded time), and
a change takes those turns before it changes anything.

Writing: changed blocks are kept dirty in memory, at most
``DIRTY_LIMIT`` of them, and written back, adjacent ones merged, when there are
more, on ``sync`` (which then writes the superblock and group descriptors and
ends with a device FLUSH), ``Inode.fsync`` and ``unmount``.  Blocks and inodes
are allocated through the group bitmaps, the group and superblock free counts
(and each group's directory count) kept right.  A write goes run by run:
as many contiguous blocks as are free are allocated (bitmaps scanned a byte,
not a bit, at a time), entered in the block map in one pass and put in one
piece (measured, 64 KiB written: ~150 µs of CPU block by block, ~50 so).
An indexed (dir_index) directory that is changed loses its EXT2_INDEX_FL,
as Linux's ext2 does, so it is read linearly afterwards and stays valid.
Mutations hold the filesystem's lock, so each is atomic with respect to the
others.
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import itertools
import os
import stat as S
import struct
import time
from collections import OrderedDict
from typing import Iterator, Protocol

from services.kernel.abi.fcntl import RENAME_EXCHANGE, RENAME_NOREPLACE
from services.kernel.core.errors import Errno
from services.kernel.fs.inode import FileSystem
from services.kernel.fs.inode import Inode as BaseInode
from services.kernel.fs.vfs import DIR_STEP, set_attrs


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
RO_COMPAT_LARGE_FILE = 0x0002
INDEX_FL = 0x1000          # EXT2_INDEX_FL: the directory has an htree
DIRTY_LIMIT = 1024         # dirty blocks held before they are written back
LINK_MAX = 65000           # links to an inode, as Linux's ext4 driver (serving ext2) allows
FT_FROM_MODE = {S.S_IFREG: 1, S.S_IFDIR: 2, S.S_IFCHR: 3, S.S_IFBLK: 4, S.S_IFIFO: 5,
                S.S_IFSOCK: 6, S.S_IFLNK: 7}
_GD = struct.Struct("<3I3H")   # block bitmap, inode bitmap, inode table, free blocks/inodes, dirs
_INODE_HEAD = struct.Struct("<HHIIIIIHHII")
MAX_RUN_BYTES = 1 << 20    # data fetched in one device request
CACHE_BLOCKS = 1024
INO_BITS = 0xFFFFFFFF
# the cost of a directory walk's work, in blocks passed over (known to be full, ~0.15 µs)
RECORD_WORK = 4            # a record parsed and used
BLOCK_WORK = 32            # a block mapped and read

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


def _max_size(bits: int) -> int:
    """Linux's ext2_max_size for blocks of 1 << bits bytes: what the block map
    addresses, unless i_blocks (32 bits of 512-byte sectors, indirect blocks
    included) runs out first."""
    ppb = 1 << (bits - 2)
    limit = ((1 << 32) - 1) >> (bits - 9)
    blocks = NDIR_BLOCKS + ppb + ppb ** 2 + ppb ** 3
    if blocks + 3 + 2 * ppb + ppb ** 2 <= limit:
        return blocks << bits
    rest = limit - NDIR_BLOCKS - ppb
    if rest < ppb ** 2:
        meta = 2 + -(-rest // ppb)
    else:
        rest -= ppb ** 2
        meta = 3 + ppb + -(-rest // ppb) + -(-rest // ppb ** 2)
    return (limit - meta) << bits


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


def _now() -> tuple[int, int]:
    return divmod(time.time_ns(), 1_000_000_000)


def _encode_time(sec: int, ns: int) -> tuple[int, int]:
    """The 32-bit seconds and the extra field (epoch bits, ns << 2) Linux stores."""
    lo = sec & 0xFFFFFFFF
    epoch = ((sec - ((lo ^ 0x80000000) - 0x80000000)) >> 32) & 3
    return lo, (ns << 2) | epoch


def _find_zero(bm: bytes, start: int, nbits: int) -> int | None:
    """The first clear bit from start (then from 0) below nbits."""
    for begin in (start, 0):
        bit = _first_clear(bm, begin, nbits)
        if bit is not None:
            return bit
    return None


def _first_clear(bm: bytes, bit: int, nbits: int) -> int | None:
    """The first clear bit at or after bit below nbits: bytes of set bits are
    skipped by bytes.lstrip, at C speed (a bit at a time cost ~5 µs a block)."""
    while bit < nbits:
        byte = bm[bit >> 3] | ((1 << (bit & 7)) - 1)       # the bits before count as set
        if byte != 0xFF:
            found = (bit & ~7) + ((byte + 1) & ~byte).bit_length() - 1
            return found if found < nbits else None
        rest = bm[(bit >> 3) + 1:(nbits + 7) >> 3]
        bit = ((bit >> 3) + 1 + len(rest) - len(rest.lstrip(b"\xff"))) * 8
    return None


def _clear_run(bm: bytes, bit: int, end: int) -> int:
    """How many bits from bit (a clear one) up to end are clear in a row."""
    i = bit + 1
    while i < end:
        if not i & 7:                                       # whole clear bytes at once
            rest = bm[i >> 3:(end + 7) >> 3]
            i += (len(rest) - len(rest.lstrip(b"\0"))) * 8
            if i >= end:
                break
        if bm[i >> 3] >> (i & 7) & 1:
            break
        i += 1
    return min(i, end) - bit


def _bytes_within(bit: int, end: int) -> tuple[int, int]:
    """The bits bit..end-1 as whole bytes: where they start and end (bits)."""
    lo = min(end, (bit + 7) & ~7)
    return lo, max(lo, end & ~7)


def _set_run(bm: bytearray, bit: int, count: int, on: bool = True) -> None:
    """Set (or clear) count bits from bit: the whole bytes among them in one slice."""
    end = bit + count
    lo, hi = _bytes_within(bit, end)
    for b in itertools.chain(range(bit, lo), range(hi, end)):
        if on:
            bm[b >> 3] |= 1 << (b & 7)
        else:
            bm[b >> 3] &= ~(1 << (b & 7)) & 0xFF
    bm[lo >> 3:hi >> 3] = (b"\xff" if on else b"\0") * ((hi - lo) >> 3)


def _all_set(bm: bytes, bit: int, count: int) -> bool:
    """Whether the count bits from bit are all set."""
    end = bit + count
    lo, hi = _bytes_within(bit, end)
    return (all(bm[b >> 3] >> (b & 7) & 1 for b in itertools.chain(range(bit, lo), range(hi, end)))
            and not bm[lo >> 3:hi >> 3].lstrip(b"\xff"))


def _runs(numbers: list[int], longest: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive numbers in a sorted list without repeats (first,
    how many), at most longest each: found by bisection, not one by one
    (a 64 MiB file's 16,384 blocks are a handful of runs)."""
    i, n = 0, len(numbers)
    while i < n:
        first = numbers[i]
        end = bisect.bisect_right(range(i, min(n, i + longest)), 0,
                                  key=lambda j: numbers[j] - first - (j - i)) + i
        yield first, end - i
        i = end


class Ext2(FileSystem):
    writable = True        # the root is mounted read-write unless the guest asks "ro"

    def __init__(self, dev: BlockSource):
        self.dev = dev
        self.meta_cache = BlockCache(CACHE_BLOCKS)
        self.data_cache = BlockCache(CACHE_BLOCKS)
        self.inodes: dict[int, Inode] = {}
        self.dirty: dict[int, bytes] = {}
        self.unsaved: set[Inode] = set()   # written to: put in their tables at write-back
        self.lock = asyncio.Lock()
        self.meta_dirty = False      # superblock or group descriptors changed

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
        fs.max_size = _max_size(10 + log_bs)
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
        fs.group_free = [[blocks, inodes] for _, blocks, inodes in groups]
        descs = [_GD.unpack_from(gdt, g * _GROUP.size) for g in range(fs.ngroups)]
        fs.block_bitmaps = [d[0] for d in descs]
        fs.inode_bitmaps = [d[1] for d in descs]
        fs.used_dirs = [d[5] for d in descs]
        fs.sb = bytearray(raw)
        fs.gdt = bytearray(gdt)
        fs.first_data = first_data
        fs.first_ino = _U32.unpack_from(raw, 84)[0] if rev >= 1 else 11
        fs.rev = rev
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
        data = self.dirty.get(block) or self.meta_cache.get(block)
        if data is None:
            if not 0 < block < self.blocks_count:
                raise Ext2Error(errno.EUCLEAN, f"block {block} outside the filesystem")
            data = await self._fetch(block * self.block_size, self.block_size)
            self.meta_cache.put(block, data)
        return data

    async def data(self, block: int, count: int) -> bytes:
        """count contiguous data blocks: from the data cache if it holds them all,
        else in one device request.  Only single blocks are kept in the data
        cache (directory blocks, a small file's, the ends of a partial write):
        a run is file data read in bulk, which would push those out, and
        which the device's own page cache (ubd's) keeps."""
        cached = []
        for b in range(block, block + count):
            data = self.dirty.get(b) or self.data_cache.get(b)
            if data is None:
                break
            cached.append(data)
        else:
            return b"".join(cached)
        if not 0 < block <= self.blocks_count - count:
            raise Ext2Error(errno.EUCLEAN, f"blocks {block}+{count} outside the filesystem")
        bs = self.block_size
        data = await self._fetch(block * bs, count * bs)
        if self.dirty:
            parts = [self.dirty.get(block + i) or data[i * bs:(i + 1) * bs] for i in range(count)]
            data = b"".join(parts)
        if count == 1 and block not in self.dirty:
            self.data_cache.put(block, data)
        return data

    # --- writing back -------------------------------------------------------------
    async def put(self, block: int, data: bytes) -> None:
        """New contents of block and the blocks after it (data: whole blocks,
        a run of them put at once), held dirty until written back."""
        bs = self.block_size
        count = len(data) // bs
        if not (count and len(data) == count * bs and 0 < block <= self.blocks_count - count):
            raise Ext2Error(errno.EUCLEAN, f"bad write of block {block}")
        blocks = range(block, block + count)
        self._uncache(blocks)
        if count == 1:
            self.dirty[block] = bytes(data)
        else:
            data = bytes(data)
            self.dirty.update(zip(blocks, [data[at:at + bs] for at in range(0, len(data), bs)]))
        if len(self.dirty) > DIRTY_LIMIT:
            await self.write_back()

    async def mutable(self, block: int) -> bytearray:
        """A metadata block to change in place (a bitmap, an inode table, an
        indirect table): its dirty copy, made one if it has none.  Change it
        before the next await (a write-back may take it then); callers hold
        the lock.  Measured: a 64 KiB write changes three such blocks, and
        copying and putting each cost more than the data's own put."""
        data = self.dirty.get(block)
        if type(data) is bytearray:
            return data
        if len(self.dirty) >= DIRTY_LIMIT:
            await self.write_back()
        data = bytearray(await self.block(block))
        self._uncache((block,))
        self.dirty[block] = data
        return data

    def _uncache(self, blocks: range | tuple[int, ...]) -> None:
        """Drop blocks from the clean caches (their dirty copies replace them)."""
        for cache in (self.meta_cache.blocks, self.data_cache.blocks):
            if not cache.keys().isdisjoint(blocks):
                for b in blocks:
                    cache.pop(b, None)

    def _forget(self, blocks: list[int]) -> None:
        """Freed blocks: their contents no longer matter.  Each cache is
        searched through whichever is smaller, it or the blocks."""
        doomed = None
        for cache in (self.meta_cache.blocks, self.data_cache.blocks, self.dirty):
            if len(cache) < len(blocks):
                doomed = doomed or set(blocks)
                for b in [b for b in cache if b in doomed]:
                    del cache[b]
            else:
                for b in blocks:
                    cache.pop(b, None)

    async def write_back(self) -> None:
        """Write every dirty block, runs of adjacent ones in one request.  They
        are not kept in a cache here: the device's page cache keeps what is
        written, and a big file streamed out would push everything else out.
        Under the lock, as every change is: nothing is dirtied meanwhile."""
        assert self.lock.locked(), "ext2 written back without its lock"
        while self.unsaved:
            await self.unsaved.pop().save()
        dirty = self.dirty
        bs = self.block_size
        for first, count in list(_runs(sorted(dirty), MAX_RUN_BYTES // bs)):
            run = range(first, first + count)
            await self.dev.write_parts(first * bs, list(map(dirty.__getitem__, run)))
            for block in run:
                del dirty[block]

    async def sync(self) -> None:
        """Dirty blocks, then the group descriptors and superblock, then a FLUSH;
        under the lock, so that no change (an unlinked file freed as its last
        user exits, say) lands between the blocks and the counts written."""
        async with self.lock:
            await self.write_back()
            if self.meta_dirty:
                self.meta_dirty = False
                for g in range(self.ngroups):
                    _GD.pack_into(self.gdt, g * _GROUP.size, self.block_bitmaps[g],
                                  self.inode_bitmaps[g], self.inode_tables[g],
                                  self.group_free[g][0], self.group_free[g][1],
                                  self.used_dirs[g])
                await self.dev.write((self.first_data + 1) * self.block_size, bytes(self.gdt))
                struct.pack_into("<II", self.sb, 12, sum(b for b, _ in self.group_free),
                                 sum(i for _, i in self.group_free))
                struct.pack_into("<I", self.sb, 48, int(time.time()))     # s_wtime
                await self.dev.write(1024, bytes(self.sb))
            await self.dev.flush()

    async def unmount(self) -> None:
        """The last sync: no file is open any more, so unlinked ones that
        still were are freed first (ext2 has no orphan list for a later mount)."""
        async with self.lock:
            for inode in [i for i in self.inodes.values() if i.nlink == 0 and i.opens]:
                await inode._evict()
        await self.sync()

    # --- allocation ----------------------------------------------------------------
    def _group_blocks(self, g: int) -> int:
        return min(self.blocks_per_group,
                   self.blocks_count - self.first_data - g * self.blocks_per_group)

    async def alloc_blocks(self, goal: int, count: int) -> tuple[int, int]:
        """A run of up to count free blocks (first, how many): the first free
        block at or after goal in its group if there is one, and as many free
        ones right after it; ENOSPC if no block is free."""
        first, bpg = self.first_data, self.blocks_per_group
        if not first <= goal < self.blocks_count:
            goal = first
        g0 = (goal - first) // bpg
        for k in range(self.ngroups):
            g = (g0 + k) % self.ngroups
            if self.group_free[g][0] <= 0:
                continue
            bm = await self.block(self.block_bitmaps[g])
            start = goal - first - g * bpg if k == 0 else 0
            nbits = self._group_blocks(g)
            bit = _find_zero(bm, start, nbits)
            if bit is None:
                continue
            n = _clear_run(bm, bit, min(nbits, bit + count))
            _set_run(await self.mutable(self.block_bitmaps[g]), bit, n)
            self.group_free[g][0] -= n
            self.meta_dirty = True
            return first + g * bpg + bit, n
        raise Errno(errno.ENOSPC)

    async def free_blocks(self, blocks: list[int]) -> None:
        """Free blocks, in any order: run by run, each bitmap block changed
        once (a 64 MiB file's truncate was 16,384 puts of a bitmap, 27 ms),
        and none at all if one of the blocks is outside the filesystem,
        already free, or listed twice."""
        order = sorted(blocks)
        if not order:
            return
        for block in (order[0], order[-1]):
            if not self.first_data <= block < self.blocks_count:
                raise Ext2Error(errno.EUCLEAN, f"freeing block {block} outside the filesystem")
        if len(set(order)) != len(order):
            twice = next(a for a, b in zip(order, order[1:]) if a == b)
            raise Ext2Error(errno.EUCLEAN, f"freeing block {twice}, already free "
                                             "(it is listed twice)")
        bpg = self.blocks_per_group
        runs = []                                    # (group, first bit, how many)
        for first, count in _runs(order, len(order)):
            bit = first - self.first_data
            while count:                             # split where a group ends
                g, at = divmod(bit, bpg)
                n = min(count, bpg - at)
                runs.append((g, at, n))
                bit, count = bit + n, count - n
        for g, at, n in runs:
            if not _all_set(await self.block(self.block_bitmaps[g]), at, n):
                bm = await self.block(self.block_bitmaps[g])
                free = next(b for b in range(at, at + n) if not bm[b >> 3] >> (b & 7) & 1)
                raise Ext2Error(errno.EUCLEAN, f"freeing block "
                                f"{self.first_data + g * bpg + free}, already free")
        for g, at, n in runs:
            _set_run(await self.mutable(self.block_bitmaps[g]), at, n, on=False)
            self.group_free[g][0] += n
        self.meta_dirty = True
        self._forget(order)

    async def alloc_inode(self, near: int, is_dir: bool) -> int:
        """A free inode number, from the group of inode near if it has one."""
        g0 = (near - 1) // self.inodes_per_group
        for k in range(self.ngroups):
            g = (g0 + k) % self.ngroups
            if self.group_free[g][1] <= 0:
                continue
            bm = await self.block(self.inode_bitmaps[g])
            start = max(0, self.first_ino - 1 - g * self.inodes_per_group)
            bit = _find_zero(bm, start, self.inodes_per_group)
            if bit is not None and g * self.inodes_per_group + bit + 1 < self.first_ino:
                bit = None
            if bit is None:
                continue
            ino = g * self.inodes_per_group + bit + 1
            if ino > self.inodes_count:
                continue
            (await self.mutable(self.inode_bitmaps[g]))[bit >> 3] |= 1 << (bit & 7)
            self.group_free[g][1] -= 1
            self.used_dirs[g] += is_dir
            self.meta_dirty = True
            return ino
        raise Errno(errno.ENOSPC)

    async def free_inode(self, ino: int, is_dir: bool) -> None:
        g, bit = divmod(ino - 1, self.inodes_per_group)
        if not (await self.block(self.inode_bitmaps[g]))[bit >> 3] >> (bit & 7) & 1:
            raise Ext2Error(errno.EUCLEAN, f"freeing inode {ino}, already free")
        (await self.mutable(self.inode_bitmaps[g]))[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF
        self.group_free[g][1] += 1
        self.used_dirs[g] -= is_dir
        self.meta_dirty = True
        self.unsaved.discard(self.inodes.pop(ino, None))

    async def new_inode(self, parent: Inode, mode: int, uid: int, gid: int) -> Inode:
        ino = await self.alloc_inode(parent.ino, S.S_ISDIR(mode))
        raw = bytearray(self.inode_size)
        if self.inode_size > 128:
            _U16.pack_into(raw, 128, 32 if self.inode_size >= 160 else 0)
        struct.pack_into("<I", raw, 100, int.from_bytes(os.urandom(4), "little"))  # generation
        inode = Inode(self, ino, bytes(raw))
        inode.mode, inode.uid, inode.gid = mode, uid, gid
        now = _now()
        inode.atime, inode.atime_ns = now
        inode.mtime, inode.mtime_ns = now
        inode.ctime, inode.ctime_ns = now
        self.inodes[ino] = inode
        return inode

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


class Inode(BaseInode):
    def __init__(self, fs: Ext2, ino: int, raw: bytes):
        self.fs = fs
        self.ino = ino
        self.raw = bytearray(raw)
        self.opens = 0
        self.goal = 0               # where the next data block is best allocated
        (self.mode, uid_lo, size_lo, atime, ctime, mtime, self.dtime, gid_lo,
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
        # a directory's names, once read: name -> the logical block its entry is in
        # << 32 | its inode number (one dict, not two: a big one's growth costs twice less)
        self._names: dict[bytes, int] | None = None
        self._room: dict[int, int] = {}     # a directory block's largest gap, by logical block
        self._listed: tuple | None = None   # the last block listed (_listing)

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
        ptrs: list[int] = []
        lb = first
        while lb < end:
            leaf = await self._leaf(lb, end - lb, False)
            if leaf is None:                # a missing table: a hole to its end
                take = min(end - lb, per - (lb - NDIR_BLOCKS) % per)
                ptrs += [0] * take
            else:
                holder, i, stop = leaf
                ptrs += await self._slots(holder, i, stop)
                take = stop - i
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
        parts = []
        i, n = 0, len(ptrs)
        while i < n:
            phys, run = ptrs[i], 1
            if phys:
                while i + run < n and run < max_run and ptrs[i + run] == phys + run:
                    run += 1
                parts.append(await self.fs.data(phys, run))
            else:
                while i + run < n and not ptrs[i + run]:
                    run += 1
                parts.append(bytes(run * bs))
            i += run
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        skip = offset - first * bs
        return data[skip:skip + end - offset]       # no copy if it is all of it

    # --- directories and links ---------------------------------------------------------
    async def iterate(self, pos: int):
        """The entries from byte position pos of the directory on, a block's
        at a time, read from its blocks as Linux's ext2_readdir reads them.
        A record never moves (a removed one is merged into the record before
        it, a new one splits a gap), so a listing that goes on from a
        position lists no entry that stays twice and misses none, whatever
        changed meanwhile.  Without the filetype feature, d_type comes from
        the inode."""
        fs = self.fs
        bs = fs.block_size
        lb, skip = divmod(pos, bs)
        work, step = 0, DIR_STEP * RECORD_WORK
        while lb < self.size // bs:         # as it is now: blocks added meanwhile are listed
            phys, _ = await self._bmap(lb, False)
            if phys:
                offsets, batch = await self._listing(lb, await fs.data(phys, 1))
                if skip:
                    batch = batch[bisect.bisect_left(offsets, skip):]
                if batch:
                    yield batch
                work += BLOCK_WORK + RECORD_WORK * len(offsets)
            if work >= step:
                work = 0
                await asyncio.sleep(0)
            lb, skip = lb + 1, 0

    async def _listing(self, lb: int, blk: bytes) -> tuple[list[int], list[tuple]]:
        """The entries of directory block lb (contents blk) as iterate gives
        them, and the offset of each; the last block's are kept while its
        contents are the same object (a change puts new bytes), so that a
        small directory listed again is not parsed again."""
        kept = self._listed
        if kept is not None and kept[0] is blk and kept[1] == lb:
            return kept[2], kept[3]
        base = lb * self.fs.block_size
        records = [r for r in self._block_records(blk)[0] if r[2]]
        if self.fs.feature_incompat & INCOMPAT_FILETYPE:
            batch = [(blk[at + 8:at + 8 + name_len], ino, DT_FROM_FT.get(blk[at + 7], 0),
                      base + at + rec_len) for at, _, ino, rec_len, name_len in records]
        else:
            batch = [(blk[at + 8:at + 8 + name_len], ino,
                      DT_FROM_MODE.get(S.S_IFMT((await self.fs.inode(ino)).mode), 0),
                      base + at + rec_len) for at, _, ino, rec_len, name_len in records]
        offsets = [r[0] for r in records]
        self._listed = (blk, lb, offsets, batch)
        return offsets, batch

    async def readdir(self) -> list[tuple[bytes, int, int]]:
        """Every entry (name, ino, d_type): a whole listing."""
        return [(name, ino, dtype) async for batch in self.iterate(0)
                for name, ino, dtype, _ in batch]

    async def lookup(self, name: bytes) -> Inode | None:
        """From the directory's names, read once (under the lock: _load) and
        kept up to date; "." and ".." without reading a big directory."""
        if self._names is None:
            if name == b".":
                return self
            if name == b"..":
                phys, _ = await self._bmap(0, False)
                blk = await self.fs.data(phys, 1) if phys else b""
                for at, _, ino, _, name_len in self._block_records(blk)[0][:2]:
                    if ino and blk[at + 8:at + 8 + name_len] == b"..":
                        return await self.fs.inode(ino)
            async with self.fs.lock:
                return await self._find(name)
        entry = self._names.get(name)
        return None if entry is None else await self.fs.inode(entry & INO_BITS)

    async def _find(self, name: bytes) -> Inode | None:
        """lookup, for a caller that holds the lock."""
        await self._load()
        entry = self._names.get(name)
        return None if entry is None else await self.fs.inode(entry & INO_BITS)

    async def _load(self) -> None:
        """Read the directory's names and where each is, once, a step at a
        time (_records), noting the room in each block on the way.  The
        caller holds the lock, as every change does: none is missed meanwhile."""
        assert self.fs.lock.locked(), "a directory read for lookups without the ext2 lock"
        if self._names is not None:
            return
        names: dict[bytes, int] = {}
        async for lb, _, blk, records in self._records():
            for at, _, ino, _, name_len in records:
                if ino:
                    names[blk[at + 8:at + 8 + name_len]] = lb << 32 | ino
        self._names = names

    async def readlink(self) -> bytes:
        xattr_blocks = self.fs.block_size // 512 if self.file_acl else 0
        if self.blocks - xattr_blocks == 0:      # a fast symlink, as Linux tells them
            return self.i_block[:self.size]
        return await self.read(0, self.size)

    # --- writing ------------------------------------------------------------------------
    async def save(self) -> None:
        """Put the inode back into its inode table block."""
        fs = self.fs
        fs.unsaved.discard(self)
        r = self.raw
        atime, atime_x = _encode_time(self.atime, self.atime_ns)
        ctime, ctime_x = _encode_time(self.ctime, self.ctime_ns)
        mtime, mtime_x = _encode_time(self.mtime, self.mtime_ns)
        _INODE_HEAD.pack_into(r, 0, self.mode, self.uid & 0xFFFF, self.size & 0xFFFFFFFF, atime,
                              ctime, mtime, self.dtime, self.gid & 0xFFFF, self.nlink,
                              self.blocks, self.flags)
        r[40:100] = self.i_block
        _U32.pack_into(r, 104, self.file_acl)
        if S.S_ISREG(self.mode):
            _U32.pack_into(r, 108, self.size >> 32)
            if self.size >= 1 << 31 and not fs.feature_ro_compat & RO_COMPAT_LARGE_FILE:
                fs.feature_ro_compat |= RO_COMPAT_LARGE_FILE
                _U32.pack_into(fs.sb, 100, fs.feature_ro_compat)
                fs.meta_dirty = True
        _IDS_HI.pack_into(r, 120, self.uid >> 16, self.gid >> 16)
        if len(r) > 128:
            covered = 128 + _U16.unpack_from(r, 128)[0]
            for off, val in ((132, ctime_x), (136, mtime_x), (140, atime_x)):
                if off + 4 <= min(covered, len(r)):
                    _U32.pack_into(r, off, val)
        group, index = divmod(self.ino - 1, fs.inodes_per_group)
        offset = index * fs.inode_size
        block = fs.inode_tables[group] + offset // fs.block_size
        start = offset % fs.block_size
        (await fs.mutable(block))[start:start + fs.inode_size] = r

    def _set_ptrs(self, ptrs: list[int]) -> None:
        self.blockptrs = tuple(ptrs)
        self.i_block = _BLOCKPTRS.pack(*ptrs)

    def _touch(self, m: bool = True) -> None:
        now = _now()
        self.ctime, self.ctime_ns = now
        if m:
            self.mtime, self.mtime_ns = now

    async def _new_blocks(self, count: int, zero: bool) -> tuple[int, int]:
        """A run of up to count new blocks where this file's next ones best
        go (first, how many), zeroed if zero (for tables)."""
        fs = self.fs
        goal = self.goal or (fs.first_data + (self.ino - 1) // fs.inodes_per_group
                             * fs.blocks_per_group)
        block, n = await fs.alloc_blocks(goal, count)
        self.goal = block + n
        self.blocks += n * (fs.block_size // 512)
        if zero:
            await fs.put(block, bytes(n * fs.block_size))
        return block, n

    async def _free(self, *blocks: int) -> None:
        await self.fs.free_blocks(list(blocks))
        self.blocks -= len(blocks) * (self.fs.block_size // 512)

    async def _slots(self, holder: int | None, i: int, end: int) -> tuple[int, ...]:
        """Entries i..end-1 of indirect table holder (None: of i_block)."""
        if holder is None:
            return self.blockptrs[i:end]
        return struct.unpack_from(f"<{end - i}I", await self.fs.block(holder), 4 * i)

    async def _set_slots(self, holder: int | None, i: int, values) -> None:
        """Set entries i.. of indirect table holder (None: of i_block)."""
        if holder is None:
            ptrs = list(self.blockptrs)
            ptrs[i:i + len(values)] = values
            self._set_ptrs(ptrs)
        else:
            struct.pack_into(f"<{len(values)}I", await self.fs.mutable(holder), 4 * i, *values)

    async def _table_at(self, holder: int | None, i: int, create: bool) -> int:
        """The indirect table in entry i of holder: if none, a new zeroed one
        entered there if create, else 0."""
        (table,) = await self._slots(holder, i, i + 1)
        if not table and create:
            table, _ = await self._new_blocks(1, True)
            await self._set_slots(holder, i, (table,))
        return table

    async def _leaf(self, lb: int, count: int,
                    create: bool) -> tuple[int | None, int, int] | None:
        """Where logical block lb's entry is: (table, None for i_block; its
        index; the end of the entries of lb.. lb+count-1 in that table), the
        tables on the way allocated if create; None if one is missing."""
        if lb < NDIR_BLOCKS:
            return None, lb, min(NDIR_BLOCKS, lb + count)
        per = self.fs.block_size // 4
        rel, depth, span = lb - NDIR_BLOCKS, 1, per
        while rel >= span:
            rel -= span
            depth += 1
            span *= per
            if depth > 3:
                if create:
                    raise Errno(errno.EFBIG)
                raise Ext2Error(errno.EUCLEAN, f"inode {self.ino}: size beyond its block map")
        holder, i = None, NDIR_BLOCKS - 1 + depth
        for level in range(depth - 1, -1, -1):
            holder = await self._table_at(holder, i, create)
            if not holder:
                return None
            i = rel // per ** level % per
        return holder, i, min(per, i + count)

    async def _bmap_run(self, lb: int, count: int, create: bool) -> tuple[int, int, bool]:
        """The physical block of logical block lb, how many of the next (up
        to count, in one table) follow it on the disk, and whether they are
        new: a hole is allocated if create (as many blocks in a row as are
        free), else 0.  Indirect tables are allocated on the way."""
        leaf = await self._leaf(lb, count, create)
        if leaf is None:
            return 0, 1, False
        holder, i, end = leaf
        ptrs = await self._slots(holder, i, end)
        run = 1
        if ptrs[0]:
            while run < len(ptrs) and ptrs[run] == ptrs[0] + run:
                run += 1
            return ptrs[0], run, False
        if not create:
            return 0, 1, False
        while run < len(ptrs) and not ptrs[run]:
            run += 1
        phys, n = await self._new_blocks(run, False)
        await self._set_slots(holder, i, range(phys, phys + n))
        return phys, n, True

    async def _bmap(self, lb: int, create: bool) -> tuple[int, bool]:
        """The physical block of logical block lb, allocated if create (then
        whether it is new)."""
        phys, _, new = await self._bmap_run(lb, 1, create)
        return phys, new

    async def _padded(self, phys: int, new: bool, skip: int, chunk: bytes) -> bytes:
        """chunk, to be written skip bytes into block phys, made whole blocks
        with what the blocks hold around it (zeros if they are new)."""
        bs = self.fs.block_size
        tail = -(skip + len(chunk)) % bs
        if not (skip or tail):
            return chunk
        if new:
            return bytes(skip) + chunk + bytes(tail)
        head = (await self.fs.data(phys, 1))[:skip] if skip else b""
        last = phys + (skip + len(chunk) - 1) // bs
        rest = (await self.fs.data(last, 1))[bs - tail:] if tail else b""
        return head + chunk + rest

    async def _write(self, offset: int, data: bytes) -> int:
        """Run by run of contiguous blocks: each mapped (allocated) and put at once."""
        fs = self.fs
        bs = fs.block_size
        pos, end = offset, offset + len(data)
        try:
            while pos < end:
                lb, skip = divmod(pos, bs)
                phys, n, new = await self._bmap_run(lb, (end - 1) // bs + 1 - lb, True)
                stop = min(end, (lb + n) * bs)
                await fs.put(phys, await self._padded(phys, new, skip,
                                                      data[pos - offset:stop - offset]))
                pos = stop
        except Errno as exc:
            if exc.code != errno.ENOSPC or pos == offset:
                await self.save()
                raise
        if pos > self.size:
            self.size = pos
        self._touch()
        fs.unsaved.add(self)     # packing it on every write cost ~3 µs of ~20
        return pos - offset

    async def write(self, offset: int, data: bytes) -> int:
        """As Linux: EFBIG at the largest file size, a short write up to it."""
        if offset >= self.fs.max_size:
            raise Errno(errno.EFBIG)
        async with self.fs.lock:
            return await self._write(offset, bytes(data[:self.fs.max_size - offset]))

    async def _tree(self, block: int, depth: int, doomed: list[int]) -> None:
        """Add an indirect table of this depth (1: pointers to data) and every
        block below it to doomed."""
        for p in self.fs.ptrs.unpack(await self.fs.block(block)):
            if p:
                if depth > 1:
                    await self._tree(p, depth - 1, doomed)
                else:
                    doomed.append(p)
        doomed.append(block)

    async def _trim(self, block: int, depth: int, keep: int, doomed: list[int]) -> None:
        """Add what the table covers past its first keep (> 0) logical blocks to
        doomed, and clear its pointers to them."""
        per = self.fs.block_size // 4
        sub = per ** (depth - 1)
        table = list(self.fs.ptrs.unpack(await self.fs.block(block)))
        changed = False
        for i, p in enumerate(table):
            if not p:
                continue
            lo = i * sub
            if lo >= keep:
                if depth > 1:
                    await self._tree(p, depth - 1, doomed)
                else:
                    doomed.append(p)
                table[i] = 0
                changed = True
            elif lo + sub > keep and depth > 1:
                await self._trim(p, depth - 1, keep - lo, doomed)
        if changed:
            await self.fs.put(block, self.fs.ptrs.pack(*table))

    async def _truncate_blocks(self, keep: int) -> None:
        """Free every block past the first keep logical ones, tables included,
        all in one go."""
        ptrs = list(self.blockptrs)
        doomed = []
        for i in range(keep, NDIR_BLOCKS):
            if ptrs[i]:
                doomed.append(ptrs[i])
                ptrs[i] = 0
        per = self.fs.block_size // 4
        base, span = NDIR_BLOCKS, per
        for depth, slot in ((1, 12), (2, 13), (3, 14)):
            if ptrs[slot]:
                if keep <= base:
                    await self._tree(ptrs[slot], depth, doomed)
                    ptrs[slot] = 0
                elif keep < base + span:
                    await self._trim(ptrs[slot], depth, keep - base, doomed)
            base += span
            span *= per
        await self._free(*doomed)
        self._set_ptrs(ptrs)

    def _has_block_map(self) -> bool:
        """Whether i_block holds block pointers (not a device number or fast symlink)."""
        if S.S_ISCHR(self.mode) or S.S_ISBLK(self.mode) or S.S_ISFIFO(self.mode) \
                or S.S_ISSOCK(self.mode):
            return False
        if S.S_ISLNK(self.mode):
            xattr_blocks = self.fs.block_size // 512 if self.file_acl else 0
            return self.blocks - xattr_blocks > 0
        return True

    async def _truncate(self, size: int) -> None:
        bs = self.fs.block_size
        if size < self.size:
            await self._truncate_blocks(-(-size // bs))
            if size % bs:                      # zero the tail, for a later extension
                phys, _ = await self._bmap(size // bs, False)
                if phys:
                    old = await self.fs.data(phys, 1)
                    await self.fs.put(phys, old[:size % bs] + bytes(bs - size % bs))
        self.size = size
        self._touch()
        await self.save()

    async def truncate(self, size: int) -> None:
        if not S.S_ISREG(self.mode):
            raise Errno(errno.EINVAL)
        if size > self.fs.max_size:
            raise Errno(errno.EFBIG)
        async with self.fs.lock:
            await self._truncate(size)

    async def allocate(self, offset: int, length: int) -> None:
        """fallocate mode 0: every block of the range backed (holes get zeroed
        blocks), the size grown to its end.  Out of space, it gives back what
        it took past the old end and says ENOSPC.  (Linux's ext2 has no
        fallocate, and glibc's posix_fallocate then writes zeros: the guest
        sees the same file either way.)"""
        end = offset + length
        if end > self.fs.max_size:
            raise Errno(errno.EFBIG)
        bs = self.fs.block_size
        async with self.fs.lock:
            try:
                lb, last = offset // bs, -(-end // bs)
                while lb < last:
                    phys, n, new = await self._bmap_run(lb, last - lb, True)
                    if new:
                        await self.fs.put(phys, bytes(n * bs))
                    lb += n
            except Errno:
                await self._truncate_blocks(-(-self.size // bs))
                await self.save()
                raise
            if end > self.size:
                self.size = end
            self._touch()
            await self.save()

    async def setattr(self, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None, atime: tuple[int, int] | None = None,
                      mtime: tuple[int, int] | None = None) -> None:
        async with self.fs.lock:
            set_attrs(self, mode, uid, gid, atime, mtime)
            self._touch(m=False)
            await self.save()

    async def fsync(self) -> None:
        await self.fs.sync()

    def hold(self):
        self.opens += 1

        def unhold() -> None:
            self.opens -= 1
            if self.opens == 0 and self.nlink == 0 and self.ino in self.fs.inodes:
                asyncio.get_running_loop().create_task(self._evict_locked())
        return unhold

    async def _evict_locked(self) -> None:
        async with self.fs.lock:
            if self.nlink == 0 and self.ino in self.fs.inodes:
                await self._evict()

    async def _evict(self) -> None:
        """The last name and open file are gone: free the blocks and the inode."""
        if self._has_block_map():
            await self._truncate_blocks(0)
        if self.file_acl:                      # an xattr block, shared by a reference count
            xattr = bytearray(await self.fs.block(self.file_acl))
            refs = _U32.unpack_from(xattr, 4)[0]
            if refs <= 1:
                await self._free(self.file_acl)
            else:
                _U32.pack_into(xattr, 4, refs - 1)
                await self.fs.put(self.file_acl, xattr)
                self.blocks -= self.fs.block_size // 512
            self.file_acl = 0
        self.size = 0
        self.dtime = int(time.time()) & 0xFFFFFFFF
        self._touch()
        await self.save()
        await self.fs.free_inode(self.ino, S.S_ISDIR(self.mode))

    async def _drop_link(self) -> None:
        self.nlink -= 1
        self._touch(m=False)
        if self.nlink == 0 and self.opens == 0:
            await self._evict()
        else:
            await self.save()

    # --- directory entries ----------------------------------------------------------------
    def _check_dir(self) -> None:
        if not self.is_dir():
            raise Errno(errno.ENOTDIR)

    def _unindex(self) -> None:
        """Changed without its htree kept up: read linearly from now on."""
        self.flags &= ~INDEX_FL

    def _block_records(self, blk: bytes) -> tuple[list[tuple[int, int | None, int, int, int]], int]:
        """The records of a directory block, checked (EUCLEAN) before any is
        used: (offset, previous record's offset, ino, rec_len, name_len) of
        each, and the largest gap in the block."""
        bs = len(blk)
        filetype = self.fs.feature_incompat & INCOMPAT_FILETYPE
        records = []
        pos, prev, room = 0, None, 0
        while pos < bs:
            if bs - pos < 8:
                raise Ext2Error(errno.EUCLEAN, f"corrupt directory {self.ino}")
            ino, rec_len, name_len, ftype = _DIRENT.unpack_from(blk, pos)
            if not filetype:
                name_len |= ftype << 8
            if rec_len < 8 or rec_len % 4 or pos + rec_len > bs or (ino and 8 + name_len > rec_len):
                raise Ext2Error(errno.EUCLEAN, f"corrupt directory {self.ino}")
            records.append((pos, prev, ino, rec_len, name_len))
            gap = rec_len - ((8 + name_len + 3) & ~3) if ino else rec_len
            if gap > room:
                room = gap
            prev, pos = pos, pos + rec_len
        return records, room

    async def _records(self, need: int = 0):
        """The directory's blocks in order, with their records: (logical
        block, block number, block bytes, records as _block_records gives
        them), for a caller that holds the lock.  Blocks known to have no
        gap of need bytes are skipped: each block's largest gap is kept in
        _room (until the block changes), so that adding to a big directory
        does not parse all of it each time.  A directory of any size holds
        the loop a bounded time: it has a turn once the work done since the
        last is worth DIR_STEP records (RECORD_WORK, BLOCK_WORK), between
        blocks: at most a block more (a 4 KiB block holds at most 341
        records).  iterate steps the same way."""
        fs = self.fs
        bs = fs.block_size
        work = 0
        lb = 0
        step = DIR_STEP * RECORD_WORK
        while lb < self.size // bs:
            if self._room.get(lb, bs) < need:
                work += 1
            else:
                phys, _ = await self._bmap(lb, False)
                if phys:
                    blk = await fs.data(phys, 1)
                    records, room = self._block_records(blk)
                    self._room[lb] = room
                    yield lb, phys, blk, records
                    work += BLOCK_WORK + RECORD_WORK * len(records)
            if work >= step:
                work = 0
                await asyncio.sleep(0)
            lb += 1

    async def _entry_block(self, name: bytes) -> tuple[int, int, bytes]:
        """The logical block, block number and contents of the block that
        holds name's entry (ENOENT if there is none).  The caller holds the lock."""
        await self._load()
        entry = self._names.get(name)
        if entry is None:
            raise Errno(errno.ENOENT)
        lb = entry >> 32
        phys, _ = await self._bmap(lb, False)
        if not phys:
            raise Ext2Error(errno.EUCLEAN, f"directory {self.ino}: entry in a hole")
        return lb, phys, await self.fs.data(phys, 1)

    def _ft(self, inode: Inode) -> int:
        """The file type byte of an entry for inode (0 without the feature)."""
        if self.fs.feature_incompat & INCOMPAT_FILETYPE:
            return FT_FROM_MODE.get(S.S_IFMT(inode.mode), 0)
        return 0

    async def _find_room(self, name: bytes) -> tuple | None:
        """Where an entry for name would go: the first record with room to
        split (logical block, block number, block bytes, offset, ino,
        rec_len, name_len), or None for a new block.  Its steps (turns of the
        loop) are taken before anything is changed: a signal can end the call
        there, and nothing is left half done."""
        need = (8 + len(name) + 3) & ~3
        async with contextlib.aclosing(self._records(need)) as blocks:
            async for lb, phys, blk, records in blocks:
                for pos, _, ino, rec_len, name_len in records:
                    used = (8 + name_len + 3) & ~3 if ino else 0
                    if rec_len - used >= need:
                        return lb, phys, blk, pos, ino, rec_len, name_len
        return None

    async def _add_entry(self, name: bytes, inode: Inode, room: tuple | None) -> None:
        """Into the record _find_room found, split, else a new block (ENOSPC
        if there is none: nothing is entered then)."""
        fs = self.fs
        bs = fs.block_size
        ft = self._ft(inode)
        self._unindex()
        if room is not None:
            lb, phys, blk, pos, ino, rec_len, name_len = room
            self._room.pop(lb, None)
            new = bytearray(blk)
            at = pos
            if ino:
                at = pos + ((8 + name_len + 3) & ~3)
                _U16.pack_into(new, pos + 4, at - pos)
            _DIRENT.pack_into(new, at, inode.ino, rec_len - (at - pos), len(name), ft)
            new[at + 8:at + 8 + len(name)] = name
            await fs.put(phys, new)
            return await self._added(name, inode, lb)
        lb = self.size // bs
        try:
            phys, _ = await self._bmap(lb, True)
        except Errno:
            await self.save()           # an indirect block it may have got on the way
            raise
        new = bytearray(bs)
        _DIRENT.pack_into(new, 0, inode.ino, bs, len(name), ft)
        new[8:8 + len(name)] = name
        await fs.put(phys, new)
        self.size += bs
        await self._added(name, inode, lb)

    async def _added(self, name: bytes, inode: Inode, lb: int) -> None:
        if self._names is not None:
            self._names[name] = lb << 32 | inode.ino
        self._touch()
        await self.save()

    async def _remove_entry(self, name: bytes) -> None:
        """Merge the record into the previous one (or free it if first)."""
        self._unindex()
        lb, phys, blk = await self._entry_block(name)
        for pos, prev, ino, rec_len, name_len in self._block_records(blk)[0]:
            if ino and blk[pos + 8:pos + 8 + name_len] == name:
                self._room.pop(lb, None)
                new = bytearray(blk)
                if prev is None:
                    _U32.pack_into(new, pos, 0)
                else:
                    _U16.pack_into(new, prev + 4, pos - prev + rec_len)
                await self.fs.put(phys, new)
                del self._names[name]
                self._touch()
                await self.save()
                return
        raise Ext2Error(errno.EUCLEAN, f"directory {self.ino}: an entry not where it was")

    async def _set_entry(self, name: bytes, inode: Inode) -> None:
        """Point the existing entry name at inode, in place (rename over a
        name, as Linux's ext2_set_link: nothing to allocate, so nothing fails)."""
        lb, phys, blk = await self._entry_block(name)
        for pos, _, ino, _, name_len in self._block_records(blk)[0]:
            if ino and blk[pos + 8:pos + 8 + name_len] == name:
                new = bytearray(blk)
                _U32.pack_into(new, pos, inode.ino)
                new[pos + 7] = self._ft(inode)
                await self.fs.put(phys, new)
                self._names[name] = lb << 32 | inode.ino
                self._touch()
                await self.save()
                return
        raise Ext2Error(errno.EUCLEAN, f"directory {self.ino}: an entry not where it was")

    async def _enter_new(self, name: bytes, inode: Inode, fill, room: tuple | None) -> Inode:
        """Fill an inode made just now (fill: its first write, awaited here)
        and enter it where _find_room said; if either runs out of space, the
        inode is freed again, as if never made."""
        try:
            await fill
            await self._add_entry(name, inode, room)
            return inode
        except Errno:
            inode.nlink = 0
            await inode._evict()
            raise

    def _may_link(self) -> None:
        """One more link (a name, or a new subdirectory's ".."), as the 16-bit
        count and Linux allow."""
        if self.nlink >= LINK_MAX:
            raise Errno(errno.EMLINK)

    async def _must_be_absent(self, name: bytes) -> tuple | None:
        """EEXIST if name is entered, else where it would go (_find_room)."""
        self._check_dir()
        if await self._find(name) is not None:
            raise Errno(errno.EEXIST)
        return await self._find_room(name)

    async def create(self, name: bytes, mode: int, uid: int, gid: int, rdev: int = 0) -> Inode:
        async with self.fs.lock:
            room = await self._must_be_absent(name)
            inode = await self.fs.new_inode(self, mode, uid, gid)
            inode.nlink = 1
            if S.S_ISCHR(mode) or S.S_ISBLK(mode):
                major, minor = os.major(rdev), os.minor(rdev)
                ptrs = [0] * 15
                if major < 256 and minor < 256:
                    ptrs[0] = major << 8 | minor
                else:
                    ptrs[1] = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
                inode._set_ptrs(ptrs)
                inode.rdev = rdev
            return await self._enter_new(name, inode, inode.save(), room)

    async def mkdir(self, name: bytes, mode: int, uid: int, gid: int) -> Inode:
        async with self.fs.lock:
            room = await self._must_be_absent(name)
            self._may_link()
            inode = await self.fs.new_inode(self, S.S_IFDIR | (mode & 0o7777), uid, gid)
            inode.nlink = 2
            await self._enter_new(name, inode, inode._first_block(self), room)
            self.nlink += 1
            await self.save()
            return inode

    async def _first_block(self, parent: Inode) -> None:
        """A new directory's block of "." and ".."."""
        bs = self.fs.block_size
        phys, _ = await self._bmap(0, True)
        ft = self._ft(self)
        blk = bytearray(bs)
        _DIRENT.pack_into(blk, 0, self.ino, 12, 1, ft)
        blk[8:9] = b"."
        _DIRENT.pack_into(blk, 12, parent.ino, bs - 12, 2, ft)
        blk[20:22] = b".."
        await self.fs.put(phys, blk)
        self.size = bs
        await self.save()

    async def symlink(self, name: bytes, target: bytes, uid: int, gid: int) -> Inode:
        async with self.fs.lock:
            room = await self._must_be_absent(name)
            inode = await self.fs.new_inode(self, S.S_IFLNK | 0o777, uid, gid)
            inode.nlink = 1
            if len(target) < 60:           # a fast symlink, in i_block
                inode.i_block = target.ljust(60, b"\0")
                inode.blockptrs = _BLOCKPTRS.unpack(inode.i_block)
                inode.size = len(target)
                return await self._enter_new(name, inode, inode.save(), room)
            return await self._enter_new(name, inode, inode._target(target), room)

    async def _target(self, target: bytes) -> None:
        """A new slow symlink's target: all of it, or ENOSPC (not a short link)."""
        if await self._write(0, target) < len(target):
            raise Errno(errno.ENOSPC)

    async def link(self, name: bytes, inode: Inode) -> None:
        async with self.fs.lock:
            room = await self._must_be_absent(name)
            if inode.nlink == 0:
                raise Errno(errno.ENOENT)
            inode._may_link()
            await self._add_entry(name, inode, room)
            inode.nlink += 1
            inode._touch(m=False)
            await inode.save()

    async def unlink(self, name: bytes) -> None:
        async with self.fs.lock:
            self._check_dir()
            inode = await self._find(name)
            if inode is None:
                raise Errno(errno.ENOENT)
            if inode.is_dir():
                raise Errno(errno.EISDIR)
            await self._remove_entry(name)
            await inode._drop_link()

    async def _is_empty(self) -> bool:
        """Whether only "." and ".." are left (the caller holds the lock)."""
        await self._load()
        return all(n in (b".", b"..") for n in self._names)   # looks at three names at most

    async def rmdir(self, name: bytes) -> None:
        async with self.fs.lock:
            self._check_dir()
            inode = await self._find(name)
            if inode is None:
                raise Errno(errno.ENOENT)
            if not inode.is_dir():
                raise Errno(errno.ENOTDIR)
            if not await inode._is_empty():
                raise Errno(errno.ENOTEMPTY)
            await self._remove_entry(name)
            await self._drop_subdir(inode)

    async def _drop_subdir(self, victim: Inode) -> None:
        """An empty subdirectory whose entry is gone: its ".." no longer
        counts here; it is freed now, or at its last close."""
        self.nlink -= 1
        await self.save()
        victim.nlink = 0
        victim._touch(m=False)
        if victim.opens == 0:
            await victim._evict()
        else:
            await victim.save()

    async def _set_dotdot(self, parent: Inode) -> None:
        """A moved directory's ".." entry (the second of its first block)."""
        phys, _ = await self._bmap(0, False)
        blk = bytearray(await self.fs.data(phys, 1))
        rec = _U16.unpack_from(blk, 4)[0]
        _U32.pack_into(blk, rec, parent.ino)
        await self.fs.put(phys, blk)
        self._unindex()
        if self._names is not None:
            self._names[b".."] = parent.ino         # in the first block

    async def rename(self, name: bytes, new_dir: Inode, new_name: bytes, flags: int = 0) -> None:
        async with self.fs.lock:
            self._check_dir()
            new_dir._check_dir()
            src = await self._find(name)
            if src is None:
                raise Errno(errno.ENOENT)
            dst = await new_dir._find(new_name)
            if flags & RENAME_NOREPLACE and dst is not None:
                raise Errno(errno.EEXIST)
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise Errno(errno.ENOENT)
                if src is dst:
                    return
                await new_dir._set_entry(new_name, src)
                await self._set_entry(name, dst)
                if self is not new_dir:
                    for moved, old, new in ((src, self, new_dir), (dst, new_dir, self)):
                        if moved.is_dir():
                            await moved._set_dotdot(new)
                            old.nlink -= 1
                            new.nlink += 1
                    await self.save()
                    await new_dir.save()
                src._touch(m=False)
                dst._touch(m=False)
                await src.save()
                await dst.save()
                return
            if dst is src:
                return
            if dst is not None:
                if dst.is_dir() and not src.is_dir():
                    raise Errno(errno.EISDIR)
                if src.is_dir() and not dst.is_dir():
                    raise Errno(errno.ENOTDIR)
                if dst.is_dir() and not await dst._is_empty():
                    raise Errno(errno.ENOTEMPTY)
                await new_dir._set_entry(new_name, src)
            else:
                if src.is_dir() and self is not new_dir:
                    new_dir._may_link()
                room = await new_dir._find_room(new_name)
                await new_dir._add_entry(new_name, src, room)   # first: ENOSPC leaves all as it was
            await self._remove_entry(name)
            if src.is_dir() and self is not new_dir:
                await src._set_dotdot(new_dir)
                self.nlink -= 1
                new_dir.nlink += 1
                await self.save()
                await new_dir.save()
            src._touch(m=False)
            await src.save()
            if dst is not None:
                if dst.is_dir():
                    await new_dir._drop_subdir(dst)
                else:
                    await dst._drop_link()
