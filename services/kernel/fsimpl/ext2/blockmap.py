"""An inode's block map: 12 direct blocks, then single, double and triple
indirect tables; runs of contiguous blocks mapped, allocated and freed in
one pass."""
from __future__ import annotations

import errno
import stat as S
import struct

from services.kernel.core.errors import Errno
from services.kernel.core.gathering import gather_all
from services.kernel.fsimpl.ext2.layout import MAX_RUN_BYTES, NDIR_BLOCKS, Ext2Error


class BlockMap:
    """Inode's block-map methods (services/kernel/fsimpl/ext2/inode.py)."""

    async def _map(self, first: int, count: int) -> list[int]:
        """Physical blocks of logical blocks first.. first+count-1 (0 for a hole),
        taken a whole indirect table at a time."""
        per = self.fs.block_size // 4
        end = first + count
        if end > NDIR_BLOCKS + per and count > per:
            await self._prefetch_tables(first, end, per)
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

    async def _prefetch_tables(self, first: int, end: int, per: int) -> None:
        """The double-indirect range's tables that map first..end-1, read
        all at once into the metadata cache, rather than one round trip to
        ubd_io after another as _map comes to each (with 1 KiB blocks a
        table maps 256 KiB: an exec's 2 MiB program waited for eight)."""
        lo, hi = max(first, NDIR_BLOCKS + per), min(end, NDIR_BLOCKS + per + per * per)
        dind = self.blockptrs[NDIR_BLOCKS + 1]
        if lo >= hi or not dind:
            return
        base = NDIR_BLOCKS + per
        tables = await self._slots(dind, (lo - base) // per, (hi - 1 - base) // per + 1)
        await gather_all([self.fs.block(t) for t in tables if t])

    async def read(self, offset: int, length: int) -> bytes:
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        bs = self.fs.block_size
        first = offset // bs
        ptrs = await self._map(first, (end - 1) // bs + 1 - first)
        max_run = MAX_RUN_BYTES // bs
        parts = []                  # each run's data, or a hole's length
        i, n = 0, len(ptrs)
        while i < n:
            phys, run = ptrs[i], 1
            if phys:
                while i + run < n and run < max_run and ptrs[i + run] == phys + run:
                    run += 1
                parts.append(self.fs.data(phys, run))
            else:
                while i + run < n and not ptrs[i + run]:
                    run += 1
                parts.append(run * bs)
            i += run
        # the runs' reads at once: a file in several runs (broken by its
        # indirect tables, say) waits for one round trip to ubd_io, not one each
        read = iter(await gather_all([p for p in parts if type(p) is not int]))
        parts = [bytes(p) if type(p) is int else next(read) for p in parts]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        skip = offset - first * bs
        return data[skip:skip + end - offset]       # no copy if it is all of it

    async def _new_blocks(self, count: int, zero: bool) -> tuple[int, int]:
        """A run of up to count new blocks where this file's next ones best
        go (first, how many), zeroed if zero (for tables)."""
        fs = self.fs
        goal = self.goal or (fs.first_data + (self.ino - 1) // fs.inodes_per_group
                             * fs.blocks_per_group)
        if S.S_ISREG(self.mode):
            block, n = await fs.take_blocks(self, goal, count)
        else:
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
        fs = self.fs
        return struct.unpack_from(f"<{end - i}I", fs.cached(holder) or await fs.block(holder),
                                  4 * i)

    async def _set_slots(self, holder: int | None, i: int, values) -> None:
        """Set entries i.. of indirect table holder (None: of i_block)."""
        if holder is None:
            ptrs = list(self.blockptrs)
            ptrs[i:i + len(values)] = values
            self._set_ptrs(ptrs)
        else:
            fs = self.fs
            struct.pack_into(f"<{len(values)}I", fs.mutable_now(holder) or await fs.mutable(holder),
                             4 * i, *values)

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
        hint = self._leaf_hint
        if hint is not None and hint[0] <= lb < hint[1]:
            i = lb - hint[0]
            return hint[2], i, min(hint[1] - hint[0], i + count)
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
        self._leaf_hint = (lb - i, lb - i + per, holder)
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

    async def _tree(self, block: int, depth: int, doomed: list[int]) -> None:
        """Add an indirect table of this depth (1: pointers to data) and every
        block below it to doomed."""
        ptrs = self.fs.ptrs.unpack(await self.fs.block(block))
        if depth > 1:
            for p in ptrs:
                if p:
                    await self._tree(p, depth - 1, doomed)
        else:
            doomed.extend(filter(None, ptrs))        # (a 64 MiB file's 16,384 at C speed)
        doomed.append(block)

    async def _trim(self, block: int, depth: int, keep: int, doomed: list[int]) -> bool:
        """Add what the table covers past its first keep (> 0) logical blocks to
        doomed and clear its pointers to them; whether it still maps anything
        below keep.  If not, the table itself goes to doomed too (unwritten),
        as Linux's ext2_find_shared frees a table on the cut's branch whose
        entries before the cut are all zero (all_zeroes)."""
        per = self.fs.block_size // 4
        sub = per ** (depth - 1)
        table = list(self.fs.ptrs.unpack(await self.fs.block(block)))
        changed = kept = False
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
            elif lo + sub > keep and depth > 1 and \
                    not await self._trim(p, depth - 1, keep - lo, doomed):
                table[i] = 0
                changed = True
            else:
                kept = True
        if not kept:
            doomed.append(block)
        elif changed:
            await self.fs.put(block, self.fs.ptrs.pack(*table))
        return kept

    async def _truncate_blocks(self, keep: int) -> None:
        """Free every block past the first keep logical ones, tables included
        (a table left mapping nothing too), all in one go."""
        self._leaf_hint = None
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
                elif keep < base + span and \
                        not await self._trim(ptrs[slot], depth, keep - base, doomed):
                    ptrs[slot] = 0
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
