"""An ext2 inode: its attributes, reading and writing its data, truncation,
and its end when the last link and the last open go."""
from __future__ import annotations

import asyncio
import errno
import os
import stat as S
import time
from typing import TYPE_CHECKING

from services.kernel.core.errors import Errno
from services.kernel.fs.inode import Inode as BaseInode
from services.kernel.fs.vfs import set_attrs
from services.kernel.fsimpl.ext2.blockmap import BlockMap
from services.kernel.fsimpl.ext2.dirs import Directory
from services.kernel.fsimpl.ext2.layout import (
    BLOCKPTRS, IDS_HI, INODE, INODE_HEAD, RO_COMPAT_LARGE_FILE, U16, U32, decode_time,
    encode_time, timestamp)
from services.kernel.fsimpl.ext2.xattr import Xattrs

if TYPE_CHECKING:
    from services.kernel.fsimpl.ext2.super import Ext2


class Inode(Directory, BlockMap, Xattrs, BaseInode):
    cache_reads = True     # a read is the block map and the caches: keep what it gave

    def __init__(self, fs: Ext2, ino: int, raw: bytes):
        self.fs = fs
        self.ino = ino
        self.raw = bytearray(raw)
        self.opens = 0
        self.goal = 0               # where the next data block is best allocated
        (self.mode, uid_lo, size_lo, atime, ctime, mtime, self.dtime, gid_lo,
         self.nlink, self.blocks, self.flags, self.i_block, _gen, self.file_acl, size_hi,
         _faddr) = INODE.unpack_from(raw)
        uid_hi, gid_hi = IDS_HI.unpack_from(raw, 120)
        self.uid = uid_lo | uid_hi << 16
        self.gid = gid_lo | gid_hi << 16
        self.size = size_lo | (size_hi << 32 if S.S_ISREG(self.mode) else 0)
        extra = {}
        if len(raw) > 128:
            covered = 128 + U16.unpack_from(raw, 128)[0]
            extra = {off: U32.unpack_from(raw, off)[0]
                     for off in (132, 136, 140) if off + 4 <= min(covered, len(raw))}
        self.ctime, self.ctime_ns = decode_time(ctime, extra.get(132, 0))
        self.mtime, self.mtime_ns = decode_time(mtime, extra.get(136, 0))
        self.atime, self.atime_ns = decode_time(atime, extra.get(140, 0))
        self.blockptrs = BLOCKPTRS.unpack(self.i_block)
        # the last indirect table _leaf found (first and end logical block it
        # maps, its block): a file written or read in order walks the tree
        # once per table, not once per call; any change to i_block or a
        # truncate forgets it, as only those free or move a table
        self._leaf_hint: tuple[int, int, int] | None = None
        self.rdev = self._rdev() if S.S_ISCHR(self.mode) or S.S_ISBLK(self.mode) else 0
        # a directory's names, once read: name -> the logical block its entry is in
        # << 32 | its inode number (one dict, not two: a big one's growth costs twice less)
        self._names: dict[bytes, int] | None = None
        self._room: dict[int, int] = {}     # a directory block's largest gap, by logical block
        self._listed: tuple | None = None   # the last block listed (_listing)
        self._kept: tuple | None = None     # the last block parsed (_parsed)

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

    async def readlink(self) -> bytes:
        xattr_blocks = self.fs.block_size // 512 if self.file_acl else 0
        if self.blocks - xattr_blocks == 0:      # a fast symlink, as Linux tells them
            return self.i_block[:self.size]
        return await self.read(0, self.size)

    async def save(self) -> None:
        """Put the inode back into its inode table block."""
        fs = self.fs
        fs.unsaved.discard(self)
        r = self.raw
        atime, atime_x = encode_time(self.atime, self.atime_ns)
        ctime, ctime_x = encode_time(self.ctime, self.ctime_ns)
        mtime, mtime_x = encode_time(self.mtime, self.mtime_ns)
        INODE_HEAD.pack_into(r, 0, self.mode, self.uid & 0xFFFF, self.size & 0xFFFFFFFF, atime,
                              ctime, mtime, self.dtime, self.gid & 0xFFFF, self.nlink,
                              self.blocks, self.flags)
        r[40:100] = self.i_block
        U32.pack_into(r, 104, self.file_acl)
        if S.S_ISREG(self.mode):
            U32.pack_into(r, 108, self.size >> 32)
            if self.size >= 1 << 31 and not fs.feature_ro_compat & RO_COMPAT_LARGE_FILE:
                fs.feature_ro_compat |= RO_COMPAT_LARGE_FILE
                U32.pack_into(fs.sb, 100, fs.feature_ro_compat)
                fs.meta_dirty = True
        IDS_HI.pack_into(r, 120, self.uid >> 16, self.gid >> 16)
        if len(r) > 128:
            covered = 128 + U16.unpack_from(r, 128)[0]
            for off, val in ((132, ctime_x), (136, mtime_x), (140, atime_x)):
                if off + 4 <= min(covered, len(r)):
                    U32.pack_into(r, off, val)
        group, index = divmod(self.ino - 1, fs.inodes_per_group)
        offset = index * fs.inode_size
        block = fs.inode_tables[group] + offset // fs.block_size
        start = offset % fs.block_size
        (await fs.mutable(block))[start:start + fs.inode_size] = r

    def _set_ptrs(self, ptrs: list[int]) -> None:
        self.blockptrs = tuple(ptrs)
        self._leaf_hint = None
        self.i_block = BLOCKPTRS.pack(*ptrs)

    def _touch(self, m: bool = True) -> None:
        now = timestamp()
        self.ctime, self.ctime_ns = now
        if m:
            self.mtime, self.mtime_ns = now

    async def _padded(self, phys: int, new: bool, skip: int, chunk: bytes) -> bytes:
        """chunk, to be written skip bytes into block phys and not ending
        on a block's end or not starting on one, made whole blocks with what
        the blocks hold around it (zeros if they are new)."""
        bs = self.fs.block_size
        tail = -(skip + len(chunk)) % bs
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
        old_size = self.size
        try:
            while pos < end:
                lb, skip = divmod(pos, bs)
                phys, n, new = await self._bmap_run(lb, (end - 1) // bs + 1 - lb, True)
                stop = min(end, (lb + n) * bs)
                chunk = data[pos - offset:stop - offset]
                if skip or stop % bs:
                    chunk = await self._padded(phys, new, skip, chunk)
                await fs.put(phys, chunk)
                pos = stop
        except Errno as exc:
            if exc.code != errno.ENOSPC or pos == offset:
                await self.save()
                raise
        finally:       # the file cache's copies (from the old end: a hole is now inside)
            self.changed(min(offset, old_size), end)
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

    async def _truncate(self, size: int) -> None:
        bs = self.fs.block_size
        try:
            if size < self.size:
                await self._truncate_blocks(-(-size // bs))
                if size % bs:                      # zero the tail, for a later extension
                    phys, _ = await self._bmap(size // bs, False)
                    if phys:
                        old = await self.fs.data(phys, 1)
                        await self.fs.put(phys, old[:size % bs] + bytes(bs - size % bs))
        finally:
            self.changed(min(size, self.size))
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
            finally:
                self.changed(min(offset, self.size), end)
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
            self.fs.unsaved.add(self)     # packed at write-back, as after a write

    async def fsync(self) -> None:
        await self.fs.sync()

    def hold(self):
        self.opens += 1

        def unhold() -> None:
            self.opens -= 1
            if self.opens:
                return
            if self.nlink == 0 and self.ino in self.fs.inodes:
                asyncio.get_running_loop().create_task(self._evict_locked())
            elif self in self.fs.prealloc:
                asyncio.get_running_loop().create_task(self._release_locked())
        return unhold

    async def _release_locked(self) -> None:
        """The last open file is closed: the blocks this one took ahead go
        back now rather than at the next commit point (as Linux's
        ext2_release_file discards its reservation), so the next file
        written starts where this one ends."""
        async with self.fs.lock:
            if self.opens == 0 and self in self.fs.prealloc:
                await self.fs.release_prealloc(self)

    async def _evict_locked(self) -> None:
        async with self.fs.lock:
            if self.nlink == 0 and self.ino in self.fs.inodes:
                await self._evict()

    async def _evict(self) -> None:
        """The last name and open file are gone: free the blocks and the inode."""
        self.changed(0)
        if self in self.fs.prealloc:
            await self.fs.release_prealloc(self)
        if self._has_block_map():
            await self._truncate_blocks(0)
        if self.file_acl:
            await self.release_xattr_block()
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
