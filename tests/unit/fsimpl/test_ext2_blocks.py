"""ext2's bitmaps and block maps (fsimpl/ext2.py) in-process, over images
mke2fs makes, judged by debugfs, dumpe2fs and e2fsck -fn: logical to
physical blocks through the direct, single, double and triple indirect
tables (_bmap, _bmap_run), allocation near a goal, freeing, and truncation
freeing exactly what Linux's ext2_truncate_blocks frees.

Names used from services.kernel.fsimpl.ext2: Ext2, Ext2Error, NDIR_BLOCKS,
all_set, bytes_within, clear_run, find_zero, has_super, max_size,
runs, set_run; of an Ext2: mount, root, block, block_size, blocks_count,
first_data, blocks_per_group, block_bitmaps, group_free, max_size,
alloc_blocks, free_blocks, sync, unmount, lock, statfs; of its Inode:
create, write, read, truncate, save, lookup, blocks, size, blockptrs,
_bmap, _bmap_run."""
from __future__ import annotations

import asyncio
import errno
import os
import random
import re
import stat
import subprocess

import pytest

from ext2_images import ImageDevice, fsck, session
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.ext2 import Ext2, Ext2Error
from services.kernel.fsimpl.ext2.bitmaps import (all_set, bytes_within, clear_run, find_zero,
                                                 block_runs, set_run)
from services.kernel.fsimpl.ext2.layout import NDIR_BLOCKS, has_super, max_size


def mkfs(path, block_size: int, size: str = "8M", source=None, *extra: str):
    cmd = ["mke2fs", "-q", "-F", "-t", "ext2", "-b", str(block_size), "-I", "256", *extra]
    if source is not None:
        cmd += ["-d", str(source)]
    subprocess.run(cmd + [str(path), size], check=True, capture_output=True)
    return path


def debugfs(img, *requests: str) -> list[str]:
    """Each request's output, from one debugfs run."""
    out = subprocess.run(["debugfs", "-f", "-", str(img)], input="\n".join(requests) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return re.split(r"^debugfs: .*\n", out, flags=re.M)[1:]


def cat(img, path: str) -> bytes:
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(img)], capture_output=True,
                          check=True).stdout


def bmap(img, path: str, lbs) -> list[int]:
    if not lbs:
        return []
    return [int(out.split()[0]) for out in debugfs(img, *(f"bmap {path} {lb}" for lb in lbs))]


def file_blocks(img, path: str) -> tuple[int, int, dict[str, list[int]]]:
    """debugfs stat: (blocks listed, i_blocks in 512-byte units, the tables
    by kind in listing order)."""
    out = debugfs(img, f"stat {path}")[0]
    tables: dict[str, list[int]] = {"IND": [], "DIND": [], "TIND": []}
    for kind, block in re.findall(r"\((IND|DIND|TIND)\):(\d+)", out):
        tables[kind].append(int(block))
    total = re.search(r"TOTAL: (\d+)", out)
    return (int(total.group(1)) if total else 0,
            int(re.search(r"Blockcount: (\d+)", out).group(1)), tables)


def free_blocks(img) -> set[int]:
    """Every free block, from dumpe2fs's group listing."""
    out = subprocess.run(["dumpe2fs", str(img)], capture_output=True, text=True,
                         check=True).stdout
    free = set()
    for ranges in re.findall(r"^\s+Free blocks: (.*)$", out, flags=re.M):
        for part in filter(None, (p.strip() for p in ranges.split(","))):
            lo, _, hi = part.partition("-")
            free.update(range(int(lo), int(hi or lo) + 1))
    return free


def content(lb: int, bs: int) -> bytes:
    return (b"%08d" % lb) * (bs // 8)


def boundaries(per: int) -> list[int]:
    """Logical blocks at each edge of the map: the direct blocks, the single
    indirect table, the double (its first and last tables) and the triple."""
    d, s, t = NDIR_BLOCKS, NDIR_BLOCKS + per, NDIR_BLOCKS + per + per * per
    return [0, 11, d, s - 1, s, s + per - 1, s + per, t - 1, t,
            t + 2 * per * per + 3 * per + 5]


def tables_for(lbs, per: int) -> set[tuple]:
    """The indirect tables a file with data at lbs has, and no others: the
    single (I), the double (D) and its tables, the triple (T) and its."""
    out = set()
    for lb in lbs:
        rel = lb - NDIR_BLOCKS
        if rel < 0:
            continue
        if rel < per:
            out.add(("I",))
            continue
        rel -= per
        if rel < per * per:
            out |= {("D",), ("D", rel // per)}
            continue
        rel -= per * per
        out |= {("T",), ("T", rel // per ** 2), ("T", rel // per ** 2, rel // per % per)}
    return out


def table_of(lb: int, per: int) -> tuple:
    """Which table holds lb's own entry (i_block for a direct block)."""
    rel = lb - NDIR_BLOCKS
    if rel < 0:
        return ("i_block",)
    if rel < per:
        return ("I",)
    rel -= per
    if rel < per * per:
        return ("D", rel // per)
    rel -= per * per
    return ("T", rel // per)


# --- pure helpers -------------------------------------------------------------------------

def bits_of(bm: bytes, nbits: int) -> list[int]:
    return [bm[i >> 3] >> (i & 7) & 1 for i in range(nbits)]


def test_set_run_and_all_set_against_bit_by_bit():
    rng = random.Random(21)
    for _ in range(1500):
        size = rng.randint(1, 24)
        bm = bytearray(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(size))
        bit = rng.randrange(8 * size)
        count = rng.randint(1, 8 * size - bit)
        before = bits_of(bm, 8 * size)
        assert all_set(bm, bit, count) == all(before[bit:bit + count])
        on = rng.random() < 0.5
        set_run(bm, bit, count, on)
        after = bits_of(bm, 8 * size)
        assert after == before[:bit] + [int(on)] * count + before[bit + count:]
        assert all_set(bm, bit, count) == on


def test_bytes_within_are_the_whole_bytes_of_a_range():
    assert bytes_within(0, 16) == (0, 16)
    assert bytes_within(3, 21) == (8, 16)
    assert bytes_within(3, 7) == (7, 7)           # no whole byte: empty, inside the range
    assert bytes_within(8, 9) == (8, 8)


def test_find_zero_wraps_to_the_start_and_stops_at_nbits():
    bm = bytes([0xFF, 0b1110_1111, 0xFF])
    assert find_zero(bm, 0, 24) == 12
    assert find_zero(bm, 13, 24) == 12             # nothing after 13: from 0 again
    assert find_zero(bm, 0, 12) is None            # bit 12 is not below nbits
    assert find_zero(bytes([0xFF, 0x7F]), 0, 15) is None
    assert clear_run(bytes([0b0000_0011, 0, 0b1000_0000]), 2, 24) == 21
    assert clear_run(bytes(4), 5, 9) == 4          # cut at end


def test_runs_split_consecutive_numbers_at_gaps_and_at_the_longest():
    rng = random.Random(5)
    for _ in range(500):
        numbers = sorted(rng.sample(range(300), rng.randint(0, 120)))
        longest = rng.randint(1, 40)
        want, i = [], 0
        while i < len(numbers):
            n = 1
            while i + n < len(numbers) and n < longest and numbers[i + n] == numbers[i] + n:
                n += 1
            want.append((numbers[i], n))
            i += n
        assert list(block_runs(numbers, longest)) == want


def test_max_size_is_linux_ext2_max_size():
    """ext2_max_size: the block map's reach, unless i_blocks' 2^32 sectors
    (indirect blocks included) run out first (4 KiB blocks)."""
    assert max_size(10) == 17_247_252_480            # 16 GiB and a little
    assert max_size(11) == 275_415_851_008           # 256 GiB and a little
    assert max_size(12) == 2_196_873_666_560         # just under 2 TiB


def test_backup_superblocks_are_where_mke2fs_puts_them(tmp_path):
    """sparse_super: groups 0, 1 and the powers of 3, 5 and 7 (28 groups
    of 256 blocks here)."""
    img = mkfs(tmp_path / "g.img", 1024, "7M", None, "-g", "256", "-N", "64")
    out = subprocess.run(["dumpe2fs", str(img)], capture_output=True, text=True,
                         check=True).stdout
    groups = re.split(r"^Group (\d+):", out, flags=re.M)[1:]
    has = {int(n): "superblock at" in text for n, text in zip(groups[::2], groups[1::2])}
    assert len(has) == 28 and sum(has.values()) == 8    # 0 1 3 5 7 9 25 27
    assert {g: has_super(g) for g in has} == has
    assert [g for g in range(400) if has_super(g)] == [0, 1, 3, 5, 7, 9, 25, 27, 49, 81,
                                                        125, 243, 343]


# --- the block map ----------------------------------------------------------------------

@pytest.mark.parametrize("bs", [1024, 4096])
def test_bmap_agrees_with_debugfs_on_a_mke2fs_file(tmp_path, bs):
    per = bs // 4
    lbs = boundaries(per)
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "f", "wb") as f:
        for lb in lbs:
            f.seek(lb * bs)
            f.write(content(lb, bs))
    img = mkfs(tmp_path / "fs.img", bs, "8M", src)
    probe = sorted(set(lbs) | {lb + 1 for lb in lbs} | {1, 100, 5000})
    want = dict(zip(probe, bmap(img, "/f", probe)))
    _, _, tables = file_blocks(img, "/f")
    assert all(want[lb] for lb in lbs) and want[1] == 0

    async def body(fs):
        f = await fs.root.lookup(b"f")
        assert list(f.blockptrs[12:15]) == [tables["IND"][0], tables["DIND"][0],
                                             tables["TIND"][0]]
        for lb in probe:
            assert await f._bmap(lb, False) == (want[lb], False), lb
        for lb in lbs:
            assert await f.read(lb * bs, bs) == content(lb, bs)
        assert await f.read(bs, 16) == bytes(16)            # a hole reads zeros
    session(img, body)


@pytest.mark.parametrize("bs", [1024, 4096])
def test_a_file_written_through_every_level_is_what_debugfs_and_e2fsck_see(tmp_path, bs):
    per = bs // 4
    lbs = boundaries(per)
    img = mkfs(tmp_path / "fs.img", bs)
    free_before = len(free_blocks(img))

    async def body(fs):
        f = await fs.root.create(b"g", stat.S_IFREG | 0o644, 0, 0)
        for lb in lbs:
            assert await f.write(lb * bs, content(lb, bs)) == bs
        return [(await f._bmap(lb, False))[0] for lb in lbs], f.blocks
    phys, blocks = session(img, body)
    fsck(img)
    assert bmap(img, "/g", lbs) == phys
    total, sectors, _ = file_blocks(img, "/g")
    assert total == len(lbs) + len(tables_for(lbs, per))
    assert sectors == blocks == total * bs // 512
    assert free_before - len(free_blocks(img)) == total
    with open(img, "rb") as image:
        for lb, p in zip(lbs, phys):
            assert os.pread(image.fileno(), bs, p * bs) == content(lb, bs)


def test_bmap_run_counts_contiguous_blocks_within_one_table(tmp_path):
    """_bmap_run: how many blocks after lb follow it on the disk, at most
    count and never past the end of the table holding lb's entry."""
    bs, per = 1024, 256
    n = NDIR_BLOCKS + per + 300                    # direct, single, into the double
    img = mkfs(tmp_path / "fs.img", bs)

    async def write(fs):
        f = await fs.root.create(b"c", stat.S_IFREG | 0o644, 0, 0)
        assert await f.write(0, os.urandom(n * bs)) == n * bs
    session(img, write)
    phys = bmap(img, "/c", range(n))
    assert len(set(phys)) == n and 0 not in phys

    def expected(lb: int, count: int) -> int:
        run = 1
        while (run < count and lb + run < n and phys[lb + run] == phys[lb] + run
               and table_of(lb + run, per) == table_of(lb, per)):
            run += 1
        return run

    async def check(fs):
        f = await fs.root.lookup(b"c")
        for lb in range(n):
            for count in (1, 3, n - lb, 1000):
                assert await f._bmap_run(lb, count, False) == (phys[lb], expected(lb, count),
                                                               False), (lb, count)
        assert await f._bmap_run(n, 5, False) == (0, 1, False)            # past the end
        assert await f._bmap_run(NDIR_BLOCKS + per + per * per, 5, False) == (0, 1, False)
    session(img, check)
    # the runs really end where a table does: 11 -> 12 and 267 -> 268 are apart
    assert phys[12] != phys[11] + 1 and phys[268] != phys[267] + 1


def test_bmap_run_fills_a_hole_up_to_the_next_block_in_its_table(tmp_path):
    bs = 1024
    img = mkfs(tmp_path / "fs.img", bs)

    async def body(fs):
        f = await fs.root.create(b"h", stat.S_IFREG | 0o644, 0, 0)
        await f.write(19 * bs, content(19, bs))
        await f.write(40 * bs, content(40, bs))
        blocks = f.blocks
        async with fs.lock:
            first, n, new = await f._bmap_run(20, 100, True)
            assert (n, new) == (20, True)                  # lbs 20..39: the hole, no more
            assert await f._bmap_run(20, 100, False) == (first, 20, False)
            # a hole under tables that do not exist yet: they are made on the way
            far = NDIR_BLOCKS + 256 + 256 * 3 + 10         # in the double indirect's 4th table
            assert await f._bmap(far, False) == (0, False)
            p, n2, new2 = await f._bmap_run(far, 5, True)
            assert new2 and n2 == 5
            assert f.blocks == blocks + (20 + 2 + 5) * bs // 512     # DIND and its IND
            f.size = (far + 5) * bs
            await f.save()
        return first, p, far
    first, p, far = session(img, body)
    fsck(img)
    assert bmap(img, "/h", range(20, 40)) == list(range(first, first + 20))
    assert bmap(img, "/h", range(far, far + 5)) == list(range(p, p + 5))


def test_past_the_triple_indirect_table_is_efbig(tmp_path):
    img = mkfs(tmp_path / "fs.img", 1024)
    last = NDIR_BLOCKS + 256 + 256 ** 2 + 256 ** 3 - 1

    async def body(fs):
        assert fs.max_size == (last + 1) * 1024
        f = await fs.root.create(b"e", stat.S_IFREG | 0o644, 0, 0)
        async with fs.lock:
            assert await f._bmap(last, False) == (0, False)
            with pytest.raises(Errno) as e:
                await f._bmap_run(last + 1, 1, True)
            assert e.value.code == errno.EFBIG
            with pytest.raises(Ext2Error) as e:
                await f._bmap_run(last + 1, 1, False)
            assert e.value.errno == errno.EUCLEAN
        with pytest.raises(Errno) as e:
            await f.write(fs.max_size, b"x")
        assert e.value.code == errno.EFBIG
        assert await f.write(fs.max_size - 3, b"abcdef") == 3     # short, up to the limit
        assert f.size == fs.max_size
    session(img, body)
    fsck(img)


# --- allocating and freeing ------------------------------------------------------------------

def group_of(fs, block: int) -> int:
    return (block - fs.first_data) // fs.blocks_per_group


def test_alloc_blocks_takes_the_first_free_run_at_the_goal_in_its_group(tmp_path):
    img = mkfs(tmp_path / "fs.img", 1024, "16M")         # two groups of 8192
    free = free_blocks(img)
    original = set(free)
    got: list[tuple[int, int]] = []

    async def body(fs):
        bpg, first = fs.blocks_per_group, fs.first_data
        used0 = min(b for b in free if group_of(fs, b) == 0) // 2   # in the inode table
        mid0 = min(b for b in free if group_of(fs, b) == 0) + 500
        start1 = first + bpg                                  # a backup superblock
        assert used0 not in free and mid0 in free and start1 not in free
        goals = [(first, 1), (used0, 7), (mid0, 3), (mid0, 3), (start1, 50),
                 (fs.blocks_count + 9, 2), (0, 4), (mid0 - 1, 10)]
        for goal, count in goals:
            g = goal if first <= goal < fs.blocks_count else first
            group = group_of(fs, g)
            want = min(b for b in free if b >= g and group_of(fs, b) == group)
            run = 1
            while (run < count and want + run in free
                   and group_of(fs, want + run) == group):
                run += 1
            before = fs.group_free[group][0]
            assert await fs.alloc_blocks(goal, count) == (want, run), (goal, count)
            assert fs.group_free[group][0] == before - run
            free.difference_update(range(want, want + run))
            got.append((want, run))
        await fs.sync()
        taken = [b for first_b, n in got for b in range(first_b, first_b + n)]
        out = debugfs(img, *(f"testb {b}" for b in taken))
        assert all("marked in use" in o for o in out)
        await fs.free_blocks(taken)
        assert fs.statfs()["bfree"] == len(original)
    session(img, body)
    fsck(img)
    assert free_blocks(img) == original


def test_allocating_everything_takes_exactly_the_free_blocks_then_enospc(tmp_path):
    img = mkfs(tmp_path / "fs.img", 1024, "2M")
    free = free_blocks(img)

    async def body(fs):
        assert fs.statfs()["bfree"] == len(free)
        taken: list[int] = []
        while True:
            try:
                first, n = await fs.alloc_blocks(fs.first_data, 10_000)
            except Errno as e:
                assert e.code == errno.ENOSPC
                break
            taken += range(first, first + n)
        assert sorted(taken) == sorted(free)
        assert fs.statfs()["bfree"] == 0
        await fs.free_blocks(taken[::-1])                    # in any order
        assert fs.statfs()["bfree"] == len(free)
    session(img, body)
    fsck(img)
    assert free_blocks(img) == free


def test_a_growing_file_takes_blocks_ahead_in_few_allocations_and_gives_back_the_rest(tmp_path):
    """Two files appended to in turn, 64 KiB at a time: each is allocated
    runs ahead of its writes (as many more blocks as it has, up to
    PREALLOC_BYTES), so both lie in a few long runs, not one interleaved
    with the other, in far fewer allocations than writes.  The blocks held
    ahead count as free (statfs), a commit point gives them back (the image
    e2fsck sees after a sync, still mounted, has none marked in use), and
    nothing is left taken at the end."""
    img = mkfs(tmp_path / "fs.img", 1024, "16M")
    free = free_blocks(img)
    chunk = 64 << 10
    data = {b"a": os.urandom(24 * chunk), b"b": os.urandom(24 * chunk)}

    async def body(fs):
        calls = []
        real = fs._alloc_blocks

        async def counted(goal, count):
            calls.append(count)
            return await real(goal, count)
        fs._alloc_blocks = counted
        files = {name: await fs.root.create(name, stat.S_IFREG | 0o644, 0, 0) for name in data}
        for at in range(0, 24 * chunk, chunk):
            for name, f in files.items():
                await f.write(at, data[name][at:at + chunk])
            used = sum(f.blocks // 2 for f in files.values())
            assert fs.statfs()["bfree"] == len(free) - used
            if at == 12 * chunk:
                assert fs.prealloc                   # held ahead ...
                await fs.sync()
                assert not fs.prealloc               # ... and given back by the commit point
                fsck(img)
        assert len(calls) <= 24                 # 48 writes (and their tables)
    session(img, body)
    fsck(img)
    for name, content_ in data.items():
        assert cat(img, "/" + name.decode()) == content_
        lbs = bmap(img, "/" + name.decode(), range(24 * chunk // 1024))
        runs = 1 + sum(1 for x, y in zip(lbs, lbs[1:]) if y != x + 1)
        assert runs <= 12, runs                 # (each indirect table breaks a run)
    blocks = {name: file_blocks(img, "/" + name.decode())[0] for name in data}
    assert len(free) - len(free_blocks(img)) == sum(blocks.values())   # nothing else taken


def test_closing_a_file_gives_back_the_blocks_it_held_ahead(tmp_path):
    """The last close of a file written to gives back what it held ahead
    (not only the next commit point): the next file written starts right
    after it."""
    img = mkfs(tmp_path / "fs.img", 1024, "16M")
    chunk = 64 << 10

    async def body(fs):
        a = await fs.root.create(b"a", stat.S_IFREG | 0o644, 0, 0)
        unhold = a.hold()
        for at in range(0, 8 * chunk, chunk):
            await a.write(at, os.urandom(chunk))
        assert a in fs.prealloc
        unhold()
        await asyncio.sleep(0)                  # the release takes the lock ...
        async with fs.lock:
            assert a not in fs.prealloc         # ... and has run
        b = await fs.root.create(b"b", stat.S_IFREG | 0o644, 0, 0)
        await b.write(0, os.urandom(chunk))
    session(img, body)
    fsck(img)
    _, _, tables = file_blocks(img, "/a")
    a_blocks = bmap(img, "/a", range(8 * chunk // 1024)) + sum(tables.values(), [])
    assert bmap(img, "/b", [0]) == [max(a_blocks) + 1]


def test_blocks_held_ahead_are_given_to_another_file_rather_than_enospc(tmp_path):
    """A file holding blocks ahead does not make another run out of space:
    the other takes every block that is not in use, then ENOSPC."""
    img = mkfs(tmp_path / "fs.img", 1024, "2M")

    async def body(fs):
        a = await fs.root.create(b"a", stat.S_IFREG | 0o644, 0, 0)
        for at in range(0, 256 << 10, 16 << 10):
            await a.write(at, os.urandom(16 << 10))
        assert fs.prealloc
        b = await fs.root.create(b"b", stat.S_IFREG | 0o644, 0, 0)
        room = fs.statfs()["bfree"] * 1024
        assert await b.write(0, bytes(room)) < room     # its tables take some of it
        with pytest.raises(Errno) as e:
            await b.write(b.size, b"x")
        assert e.value.code == errno.ENOSPC
        assert fs.statfs()["bfree"] == 0 and not fs.prealloc
    session(img, body)
    fsck(img)
    assert free_blocks(img) == set()


def test_a_bad_free_changes_nothing(tmp_path):
    """free_blocks refuses, whole, a list with a block already free, one
    listed twice or one outside the filesystem."""
    img = mkfs(tmp_path / "fs.img", 1024)
    free = free_blocks(img)

    async def body(fs):
        a, n = await fs.alloc_blocks(fs.first_data, 2)
        assert n == 2
        g = group_of(fs, a)
        counts = [list(c) for c in fs.group_free]
        spare = next(b for b in sorted(free) if b > a + 1)
        for bad, what in (([a, a + 1, spare], "already free"), ([a, a + 1, a], "twice"),
                          ([a, fs.blocks_count], "outside"), ([0, a], "outside")):
            with pytest.raises(Ext2Error) as e:
                await fs.free_blocks(bad)
            assert e.value.errno == errno.EUCLEAN and what in str(e.value), bad
            assert [list(c) for c in fs.group_free] == counts
            bm = await fs.block(fs.block_bitmaps[g])
            assert all_set(bm, a - fs.first_data - g * fs.blocks_per_group, 2)
        await fs.free_blocks([a + 1, a])
    session(img, body)
    fsck(img)
    assert free_blocks(img) == free


# --- truncation ----------------------------------------------------------------------------

SPARSE = [0, 5, 11, 12, 100, 267, 268, 300, 523, 524, 1000, 65803, 65804, 66104, 131347]


def truncated(tmp_path, keep: int):
    """A 1 KiB-block file with data at SPARSE, written by mke2fs, truncated
    here to keep blocks: (the blocks it has left by debugfs, its i_blocks,
    the blocks freed, the blocks Linux leaves: the kept data and the tables
    it needs)."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "f", "wb") as f:
        for lb in SPARSE:
            f.seek(lb * 1024)
            f.write(content(lb, 1024))
    img = mkfs(tmp_path / "fs.img", 1024, "8M", src)
    before = len(free_blocks(img))
    total, _, _ = file_blocks(img, "/f")
    assert total == len(SPARSE) + len(tables_for(SPARSE, 256))

    async def body(fs):
        f = await fs.root.lookup(b"f")
        await f.truncate(keep * 1024)
        return f.blocks
    blocks = session(img, body)
    fsck(img)
    left, sectors, _ = file_blocks(img, "/f")
    kept = [lb for lb in SPARSE if lb < keep]
    want = len(kept) + len(tables_for(kept, 256))
    assert sectors == blocks
    return left, sectors, len(free_blocks(img)) - before, total, want, img, kept


@pytest.mark.parametrize("keep", [0, 1, 6, 12, 13, 101, 268, 269, 301, 524, 525, 1001,
                                  65804, 65805, 66000, 66105, 131348, 200000])
def test_truncate_frees_the_blocks_past_the_end_and_the_tables_left_unneeded(tmp_path, keep):
    """The blocks left are the kept data and the tables that reach it, as
    Linux leaves them (checked against Linux 6.18's ext2 on these cuts)."""
    left, sectors, freed, total, want, img, kept = truncated(tmp_path, keep)
    assert left == want and sectors == want * 2
    assert freed == total - want
    with open(img, "rb") as image:
        for lb, p in zip(kept, bmap(img, "/f", kept)):
            assert os.pread(image.fileno(), 1024, p * 1024) == content(lb, 1024)


@pytest.mark.parametrize("keep", [900, 131345])
def test_truncate_frees_a_table_that_straddles_the_end_with_nothing_kept_under_it(
        tmp_path, keep):
    """A table the new end cuts through goes too when none of its entries
    below the end is mapped, as Linux's ext2_find_shared frees it
    (all_zeroes) and e2fsprogs' punch does: a cut at 900 KiB leaves 14
    blocks on Linux 6.18, one at 131345 KiB 24."""
    left, sectors, freed, total, want, _, _ = truncated(tmp_path, keep)
    assert left == want and freed == total - want


def test_truncate_inside_a_block_zeroes_its_tail_for_a_later_extension(tmp_path):
    bs = 1024
    img = mkfs(tmp_path / "fs.img", bs)

    async def body(fs):
        f = await fs.root.create(b"t", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, b"A" * (3 * bs))
        await f.truncate(bs + 100)
        assert f.blocks == 2 * bs // 512
        await f.truncate(3 * bs)                    # grows with a hole after block 1
        assert f.blocks == 2 * bs // 512
        return await f.read(0, 3 * bs)
    data = session(img, body)
    assert data == b"A" * (bs + 100) + bytes(2 * bs - 100)
    fsck(img)
    assert cat(img, "/t") == data


def test_a_table_freed_by_truncate_is_not_written_through_when_it_is_someone_elses(tmp_path):
    """A file written in order remembers its last indirect table (_leaf's
    hint).  Truncated, the table is freed; once another file holds that
    block, writing the first file past its direct blocks again must make a
    new table, not write pointers into the other file's data."""
    bs = 1024
    img = mkfs(tmp_path / "fs.img", bs)

    async def body(fs):
        a = await fs.root.create(b"a", stat.S_IFREG | 0o644, 0, 0)
        await a.write(0, b"".join(content(lb, bs) for lb in range(20)))
        table = a.blockptrs[NDIR_BLOCKS]
        assert table and a._leaf_hint is not None
        await a.truncate(0)
        await fs.sync()                  # what truncate freed may be taken again
        b = await fs.root.create(b"b", stat.S_IFREG | 0o644, 0, 0)
        await b.write(0, b"B" * (20 * bs))
        taken = [(await b._bmap(lb, False))[0] for lb in range(20)] + [b.blockptrs[NDIR_BLOCKS]]
        assert table in taken            # (else this test shows nothing)
        await a.write(NDIR_BLOCKS * bs, content(NDIR_BLOCKS, bs))
        assert a.blockptrs[NDIR_BLOCKS] not in taken
        return await a.read(0, (NDIR_BLOCKS + 1) * bs), await b.read(0, 20 * bs)
    a_data, b_data = session(img, body)
    assert a_data == bytes(NDIR_BLOCKS * bs) + content(NDIR_BLOCKS, bs)
    assert b_data == b"B" * (20 * bs)
    fsck(img)
    assert cat(img, "/a") == a_data and cat(img, "/b") == b_data


class CountingDevice(ImageDevice):
    """An image whose reads take a loop turn each, counting how many are
    in flight at once."""

    def __init__(self, path):
        super().__init__(path)
        self.in_flight = self.most = 0
        self.reads = 0

    async def read(self, offset: int, length: int) -> bytes:
        self.in_flight += 1
        self.reads += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0)
            return await super().read(offset, length)
        finally:
            self.in_flight -= 1


def test_a_file_in_several_runs_is_read_with_its_runs_and_tables_at_once(tmp_path):
    """With 1 KiB blocks mke2fs -d lays a 2 MiB file out in runs broken by
    its indirect tables: one read(2) of it asks the device for its tables
    together, then its runs together, not one after another; and gets the
    file's bytes."""
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(2 << 20)
    (src / "f").write_bytes(data)
    img = mkfs(tmp_path / "fs.img", 1024, "8M", src)

    async def go():
        dev = CountingDevice(img)
        try:
            fs = await Ext2.mount(dev)
            f = await fs.root.lookup(b"f")
            dev.most = dev.reads = 0
            got = await f.read(0, len(data))
            return got, dev.most, dev.reads
        finally:
            dev.close()
    got, most, reads = asyncio.run(go())
    assert got == data
    assert most >= 8 and reads >= 8        # the eight tables of 2 MiB together, at least


def test_a_file_in_thousands_of_runs_is_read_a_few_runs_at_a_time(tmp_path):
    """A guest decides how many runs a file is in (1,200 one-block files,
    every other one removed, leave the free space in one-block holes, which
    the next file fills): one read of it keeps at most gathering.AT_ONCE
    requests in flight, not one per run, and gets the file's bytes."""
    from services.kernel.core.gathering import AT_ONCE
    img = mkfs(tmp_path / "fs.img", 1024, "8M")
    blocks = [os.urandom(1024) for _ in range(600)]

    async def go():
        dev = CountingDevice(img)
        try:
            fs = await Ext2.mount(dev)
            for i in range(2 * len(blocks)):
                small = await fs.root.create(b"%d" % i, stat.S_IFREG | 0o644, 0, 0)
                await small.write(0, blocks[i // 2])
            await fs.sync()
            for i in range(0, 2 * len(blocks), 2):
                await fs.root.unlink(b"%d" % i)
            await fs.sync()
            a = await fs.root.create(b"a", stat.S_IFREG | 0o644, 0, 0)
            await a.write(0, b"".join(blocks))
            await fs.sync()
            fs.meta_cache.blocks.clear()
            fs.data_cache.blocks.clear()
            dev.most = dev.reads = 0
            got = await a.read(0, len(blocks) * 1024)
            return got, dev.most, dev.reads
        finally:
            dev.close()
    got, most, reads = asyncio.run(go())
    assert got == b"".join(blocks)
    assert reads >= 300 and 2 <= most <= AT_ONCE <= 16      # not one in flight per run
