"""The file cache (services/kernel/mm/filecache.py) under ext2 and read(2)'s
InodeFile.read_into: random reads, writes, truncates and fallocates of one
file, through an arena far smaller than the file (so pages are taken back
all the time), must read what a bytearray model of the file says; a
buffer that stops being writable part way gets the bytes that fit."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
import stat

import pytest

from ext2_images import make_image, session
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import InodeFile, Location, Mount
from services.kernel.mm.filecache import FILE_CACHE, FileCache, FilePages
from services.kernel.mm.memory import GuestMemory

PAGE = 4096


@pytest.fixture
def small_cache():
    FILE_CACHE.resize(24 * PAGE)
    yield FILE_CACHE
    FILE_CACHE.resize(0)


def test_reads_match_a_model_through_writes_truncates_and_eviction(tmp_path, small_cache):
    img = make_image(tmp_path / "fs.img", 4096, "16M")
    rng = random.Random(18)
    model = bytearray()
    buf = ctypes.create_string_buffer(256 << 10)
    mem = GuestMemory(os.getpid())       # our own memory stands for a guest's

    async def body(fs):
        inode = await fs.root.create(b"f", stat.S_IFREG | 0o644, 0, 0)
        opened = InodeFile(Location(Mount(fs, 0), inode, b"/f"), os.O_RDWR)
        hits = 0
        for step in range(1500):
            op = rng.random()
            if op < 0.15:
                at = rng.randrange(0, 300_000)
                data = rng.randbytes(rng.choice([1, 100, PAGE, 3 * PAGE + 5, 40_000]))
                await inode.write(at, data)
                if at > len(model):
                    model.extend(bytes(at - len(model)))
                model[at:at + len(data)] = data
            elif op < 0.2:
                size = rng.randrange(0, 300_000)
                await inode.truncate(size)
                del model[size:]
                model.extend(bytes(size - len(model)))
            elif op < 0.22:
                at, length = rng.randrange(0, 300_000), rng.randrange(1, 50_000)
                await inode.allocate(at, length)
                model.extend(bytes(max(0, at + length - len(model))))
            else:
                at = rng.randrange(0, len(model) + 2 * PAGE)
                count = rng.choice([1, 10, PAGE, PAGE + 1, 16 * PAGE, 30 * PAGE, 200_000])
                before = small_cache.pieces(inode.pages, at, 1) \
                    if inode.pages and at < len(model) else None
                hits += before is not None
                n = await opened.read_into(mem, ctypes.addressof(buf), count, at)
                want = bytes(model[at:at + count])
                assert n == len(want), (step, at, count)
                assert buf.raw[:n] == want, (step, at, count)
        assert hits > 100           # the cache was used, not only filled
    session(img, body)


def test_a_buffer_that_ends_part_way_takes_what_fits(tmp_path, small_cache):
    img = make_image(tmp_path / "fs.img", 4096, "16M")
    area = mmap.mmap(-1, 2 * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    area.madvise(mmap.MADV_DONTNEED)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect(ctypes.c_void_p(base + PAGE), PAGE, 0)      # the second page: no access
    mem = GuestMemory(os.getpid())
    data = os.urandom(3 * PAGE)

    async def body(fs):
        inode = await fs.root.create(b"f", stat.S_IFREG | 0o644, 0, 0)
        await inode.write(0, data)
        opened = InodeFile(Location(Mount(fs, 0), inode, b"/f"), os.O_RDONLY)
        for _ in ("cold", "cached"):
            opened.pos = 0
            assert await opened.read_into(mem, base + 100, 2 * PAGE) == PAGE - 100
            assert opened.pos == PAGE - 100
            assert area[100:PAGE] == data[:PAGE - 100]
            with pytest.raises(Errno) as e:
                await opened.read_into(mem, base + PAGE, 10)
            assert e.value.code == errno.EFAULT
            assert opened.pos == PAGE - 100
    session(img, body)
    libc.mprotect(ctypes.c_void_p(base + PAGE), PAGE, 3)


def test_slots_are_taken_back_by_the_clock_and_runs_are_one_piece():
    cache = FileCache(8 * PAGE)
    a, b = FilePages(), FilePages()
    cache.fill(a, 0, bytes(range(256)) * 96, a.generation)       # 6 pages: slots 0-5
    assert cache.pieces(a, 10, 5 * PAGE) == [(cache.base + 10, 5 * PAGE)]
    # 2 free slots, then the hand clears every referenced bit and takes a's first two
    cache.fill(b, 0, b"b" * (4 * PAGE), b.generation)
    assert sorted(a.slots) == [2, 3, 4, 5] and b.slots == {0: 6, 1: 7, 2: 0, 3: 1}
    assert cache.pieces(b, 0, 4 * PAGE) == [(cache.base + 6 * PAGE, 2 * PAGE),
                                            (cache.base, 2 * PAGE)]
    assert cache.pieces(a, 0, 1) is None
    assert cache.pieces(a, 2 * PAGE + 1, 4 * PAGE - 1) == [(cache.base + 2 * PAGE + 1,
                                                           4 * PAGE - 1)]
    cache.drop(b, PAGE, 2 * PAGE)
    assert sorted(b.slots) == [0, 2, 3]
    cache.fill(b, PAGE, b"x" * PAGE, b.generation - 1)    # read before the drop: not kept
    assert 1 not in b.slots
    cache.fill(a, 0, b"short", a.generation)              # the freed slot, padded with zeros
    assert a.slots[0] == 7
    assert cache.arena[7 * PAGE:8 * PAGE] == b"short" + bytes(PAGE - 5)
