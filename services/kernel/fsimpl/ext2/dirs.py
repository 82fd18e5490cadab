"""A directory's entries: listing from positions, the names read once in
steps, and the entry changes of create, link, unlink, rmdir and rename."""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import os
import stat as S
from typing import TYPE_CHECKING

from services.kernel.abi.fcntl import RENAME_EXCHANGE, RENAME_NOREPLACE
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import DIR_STEP
from services.kernel.fsimpl.ext2.layout import (
    BLOCK_WORK, BLOCKPTRS, DIRENT, DT_FROM_FT, DT_FROM_MODE, FT_FROM_MODE, INCOMPAT_FILETYPE,
    INDEX_FL, INO_BITS, LINK_MAX, RECORD_WORK, U16, U32, Ext2Error)

if TYPE_CHECKING:
    from services.kernel.fsimpl.ext2.inode import Inode


class Directory:
    """Inode's directory methods (services/kernel/fsimpl/ext2/inode.py)."""

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
            ino, rec_len, name_len, ftype = DIRENT.unpack_from(blk, pos)
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

    def _parsed(self, lb: int, blk: bytes) -> tuple[list[tuple], list[int]]:
        """Directory block lb's records (as _block_records gives them) and
        each one's gap, noting its largest gap in _room.  The last block
        parsed is kept, while its contents are the same object (a change
        puts new bytes, and _add_entry keeps the parse up to date): files
        created one after another in a directory go into its last block, and
        parsing it for each (100 entries: ~50 µs) was most of a create."""
        kept = self._kept
        if kept is not None and kept[0] == lb and kept[1] is blk:
            return kept[2], kept[3]
        records, room = self._block_records(blk)
        gaps = [rec_len - ((8 + name_len + 3) & ~3) if ino else rec_len
                for _, _, ino, rec_len, name_len in records]
        self._room[lb] = room
        self._kept = (lb, blk, records, gaps)
        return records, gaps

    async def _records(self, need: int = 0):
        """The directory's blocks in order, with their records: (logical
        block, block number, block bytes, records as _block_records gives
        them), for a caller that holds the lock.  Blocks known to have no
        gap of need bytes are skipped: each block's largest gap is kept in
        _room (until the block changes), so that adding to a big directory
        does not parse all of it each time; the last block parsed or added
        to is kept parsed (_parsed).  A directory of any size holds
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
                    records = self._parsed(lb, blk)[0]
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
        split (logical block, block number, block bytes, its index in the
        block, offset, ino, rec_len, name_len), or None for a new block.  Its steps (turns of the
        loop) are taken before anything is changed: a signal can end the call
        there, and nothing is left half done."""
        need = (8 + len(name) + 3) & ~3
        async with contextlib.aclosing(self._records(need)) as blocks:
            async for lb, phys, blk, records in blocks:
                gaps = self._parsed(lb, blk)[1]
                for k, gap in enumerate(gaps):
                    if gap >= need:
                        return (lb, phys, blk, k) + records[k][:1] + records[k][2:]
        return None

    async def _add_entry(self, name: bytes, inode: Inode, room: tuple | None) -> None:
        """Into the record _find_room found, split, else a new block (ENOSPC
        if there is none: nothing is entered then)."""
        fs = self.fs
        bs = fs.block_size
        ft = self._ft(inode)
        self._unindex()
        if room is not None:
            lb, phys, blk, k, pos, ino, rec_len, name_len = room
            self._room.pop(lb, None)
            new = bytearray(blk)
            at = pos
            if ino:
                at = pos + ((8 + name_len + 3) & ~3)
                U16.pack_into(new, pos + 4, at - pos)
            DIRENT.pack_into(new, at, inode.ino, rec_len - (at - pos), len(name), ft)
            new[at + 8:at + 8 + len(name)] = name
            parsed = self._parsed(lb, blk)
            await fs.put(phys, new)
            self._split(lb, fs.dirty.get(phys), parsed, k, at, inode.ino, len(name))
            return await self._added(name, inode, lb)
        lb = self.size // bs
        try:
            phys, _ = await self._bmap(lb, True)
        except Errno:
            await self.save()           # an indirect block it may have got on the way
            raise
        new = bytearray(bs)
        DIRENT.pack_into(new, 0, inode.ino, bs, len(name), ft)
        new[8:8 + len(name)] = name
        await fs.put(phys, new)
        self.size += bs
        await self._added(name, inode, lb)

    def _split(self, lb: int, blk: bytes | None, parsed: tuple[list[tuple], list[int]], k: int,
               at: int, ino: int, name_len: int) -> None:
        """Keep block lb parsed (_parsed) after _add_entry put a new entry
        (at, for inode ino) into its record k: blk is the block's new
        contents as the cache holds them (None if already written back)."""
        self._kept = None
        if blk is None:
            return
        records, gaps = list(parsed[0]), list(parsed[1])
        pos, prev, old_ino, rec_len, old_len = records[k]
        entry = (at, prev if at == pos else pos, ino, rec_len - (at - pos), name_len)
        gap = entry[3] - ((8 + name_len + 3) & ~3)
        if at == pos:
            records[k], gaps[k] = entry, gap
        else:
            records[k], gaps[k] = (pos, prev, old_ino, at - pos, old_len), 0
            records.insert(k + 1, entry)
            gaps.insert(k + 1, gap)
            if k + 2 < len(records):
                records[k + 2] = (records[k + 2][0], at) + records[k + 2][2:]
        self._room[lb] = max(gaps)
        self._kept = (lb, blk, records, gaps)

    async def _added(self, name: bytes, inode: Inode, lb: int) -> None:
        if self._names is not None:
            self._names[name] = lb << 32 | inode.ino
        self._touch()
        self.fs.unsaved.add(self)     # packed at write-back: tar's creates saved it each time

    async def _remove_entry(self, name: bytes) -> None:
        """Merge the record into the previous one (or free it if first)."""
        self._unindex()
        lb, phys, blk = await self._entry_block(name)
        for pos, prev, ino, rec_len, name_len in self._block_records(blk)[0]:
            if ino and blk[pos + 8:pos + 8 + name_len] == name:
                self._room.pop(lb, None)
                new = bytearray(blk)
                if prev is None:
                    U32.pack_into(new, pos, 0)
                else:
                    U16.pack_into(new, prev + 4, pos - prev + rec_len)
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
                U32.pack_into(new, pos, inode.ino)
                new[pos + 7] = self._ft(inode)
                await self.fs.put(phys, new)
                self._names[name] = lb << 32 | inode.ino
                self._touch()
                await self.save()
                return
        raise Ext2Error(errno.EUCLEAN, f"directory {self.ino}: an entry not where it was")

    async def _enter_new(self, name: bytes, inode: Inode, fill, room: tuple | None) -> Inode:
        """Fill an inode made just now (fill: its first write, awaited here;
        None if it has none) and enter it where _find_room said; if either
        runs out of space, the inode is freed again, as if never made."""
        try:
            if fill is not None:
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
            self.fs.unsaved.add(inode)      # packed into its table at write-back
            return await self._enter_new(name, inode, None, room)

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
        DIRENT.pack_into(blk, 0, self.ino, 12, 1, ft)
        blk[8:9] = b"."
        DIRENT.pack_into(blk, 12, parent.ino, bs - 12, 2, ft)
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
                inode.blockptrs = BLOCKPTRS.unpack(inode.i_block)
                inode.size = len(target)
                self.fs.unsaved.add(inode)
                return await self._enter_new(name, inode, None, room)
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
        rec = U16.unpack_from(blk, 4)[0]
        U32.pack_into(blk, rec, parent.ino)
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
