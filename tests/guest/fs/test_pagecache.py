"""The page cache: host files filled as far as guests map them, one version per
inode, the directory bounded by a limit.  PageCache is driven directly with
real tmpfs and ext2 inodes, then guests map files through the real services."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import HERE, disk_of, make_tree, skas
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.ext2 import Ext2
from services.kernel.fsimpl.tmpfs import Tmpfs
from services.kernel.fs.pagecache import CHUNK, FILL_AT_ONCE, PageCache
from services.kernel.fs.vfs import Location, Mount
from ext2_images import ImageFile

PAGE = 4096
MiB = 1 << 20


def allocated(d: Path) -> dict[str, int]:
    """What each file of the page cache takes on the host's disk."""
    return {p.name: p.stat().st_blocks * 512 for p in d.iterdir()}


async def tmpfs_file(size: int, data: dict[int, bytes] | None = None, fs=None) -> Location:
    fs = fs or Tmpfs(size=256 * MiB)
    inode = await fs.root.create(b"f%d" % fs.next_ino, 0o100644, 0, 0)
    await inode.truncate(size)
    for offset, chunk in (data or {}).items():
        await inode.write(offset, chunk)
    return Location(Mount(fs, 0x55), inode, b"/f")


async def host_path(cache: PageCache, loc: Location, offset: int = 0,
                    length: int | None = None) -> str:
    """The name of the host file a private map of loc's range maps."""
    return (await cache.map(loc, offset, length))[0].name


def counting_reads(loc: Location) -> list[int]:
    """The offsets the page cache reads loc's inode at, from now on."""
    offsets: list[int] = []
    read = loc.inode.read

    async def counted(offset, length):
        offsets.append(offset)
        return await read(offset, length)
    loc.inode.read = counted
    return offsets


@pytest.fixture(autouse=True)
def in_run_dir(tmp_path, monkeypatch):
    """The cache names files relative to the run directory, as a guest
    process's working directory resolves them."""
    monkeypatch.chdir(tmp_path)


def test_one_page_of_a_sparse_1_gib_file_costs_a_page(tmp_path):
    async def go():
        cache = PageCache(tmp_path)
        loc = await tmpfs_file(1 << 30, {512 * MiB: b"data", 900 * MiB: b"far"})
        path = await host_path(cache, loc, 512 * MiB, PAGE)
        st = os.stat(path)
        assert st.st_size == 1 << 30 and st.st_blocks * 512 <= 2 * PAGE
        with open(path, "rb") as f:
            assert os.pread(f.fileno(), 8, 512 * MiB) == b"data" + bytes(4)
            assert os.pread(f.fileno(), 3, 900 * MiB) == bytes(3)     # not mapped: not filled
        assert stat.S_IMODE(st.st_mode) == 0o644
        assert stat.S_IMODE(os.stat(cache.dir).st_mode) == 0o711
        assert os.path.dirname(path) == "pagecache"
    asyncio.run(go())


def test_a_later_map_fills_only_what_is_missing(tmp_path):
    async def go():
        cache = PageCache(tmp_path)
        loc = await tmpfs_file(4 * CHUNK, {0: b"a" * (4 * CHUNK)})
        reads = counting_reads(loc)
        path = await host_path(cache, loc, 0, PAGE)
        assert reads == [0]
        assert await host_path(cache, loc, CHUNK - PAGE, 2 * PAGE) == path
        assert reads == [0, CHUNK]
        await host_path(cache, loc)
        assert reads == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
        with open(path, "rb") as f:
            assert f.read() == b"a" * (4 * CHUNK)
    asyncio.run(go())


def test_concurrent_first_maps_fill_each_chunk_once_and_agree(tmp_path):
    async def go():
        cache = PageCache(tmp_path)
        content = os.urandom(16 * CHUNK)
        loc = await tmpfs_file(len(content), {0: content})
        reads = counting_reads(loc)
        paths = await asyncio.gather(host_path(cache, loc), host_path(cache, loc, 3 * CHUNK),
                                     host_path(cache, loc, 0, 5 * CHUNK))
        assert len(set(paths)) == 1 and os.listdir(cache.dir) == [os.path.basename(paths[0])]
        assert sorted(reads) == [i * CHUNK for i in range(16)]
        with open(paths[0], "rb") as f:
            assert f.read() == content
    asyncio.run(go())


def test_a_fill_gives_the_loop_to_other_calls_between_chunks(tmp_path):
    async def go():
        cache = PageCache(tmp_path)
        loc = await tmpfs_file(32 * CHUNK, {0: b"b" * (32 * CHUNK)})
        turns = 0

        async def bystander():
            nonlocal turns
            while not fill.done():
                turns += 1
                await asyncio.sleep(0)
        fill = asyncio.ensure_future(host_path(cache, loc))
        await asyncio.gather(fill, bystander())
        return turns
    assert asyncio.run(go()) >= 32


def test_a_fill_reads_up_to_fill_at_once_chunks_together(tmp_path):
    """A map of many chunks has a few chunks' reads in flight at once (an
    exec's program is read in one round trip's time, not one per chunk),
    never more than FILL_AT_ONCE, and the file is whole."""
    async def go():
        cache = PageCache(tmp_path)
        content = os.urandom(10 * CHUNK)
        loc = await tmpfs_file(len(content), {0: content})
        read, flying, most = loc.inode.read, [0], [0]

        async def slow(offset, length):
            flying[0] += 1
            most[0] = max(most[0], flying[0])
            try:
                await asyncio.sleep(0.001)
                return await read(offset, length)
            finally:
                flying[0] -= 1
        loc.inode.read = slow
        path = await host_path(cache, loc)
        with open(path, "rb") as f:
            assert f.read() == content
        return most[0]
    assert asyncio.run(go()) == FILL_AT_ONCE


def test_a_new_version_unlinks_the_old_one(tmp_path):
    async def go():
        cache = PageCache(tmp_path)
        loc = await tmpfs_file(2 * CHUNK, {0: b"o" * (2 * CHUNK)})
        old = await host_path(cache, loc)
        with open(old, "rb") as f:
            await loc.inode.write(5, b"n")
            new = await host_path(cache, loc)
            assert new != old and os.listdir(cache.dir) == [os.path.basename(new)]
            assert f.read(8) == b"o" * 8               # the old file lives on while open
        with open(new, "rb") as f:
            assert f.read(8) == b"ooooonoo"
        assert cache.allocated == allocated(cache.dir)[os.path.basename(new)]
    asyncio.run(go())


def test_least_recently_used_versions_go_past_the_limit(tmp_path):
    async def go():
        cache = PageCache(tmp_path, limit=3 * CHUNK)
        fs = Tmpfs(size=64 * MiB)
        a, b, c, d = [await tmpfs_file(CHUNK, {0: bytes([65 + i]) * CHUNK}, fs)
                      for i in range(4)]
        name = {}
        for loc in (a, b, c):
            name[loc.inode.ino] = os.path.basename(await host_path(cache, loc))
        await host_path(cache, a)                       # a used again: b is the oldest now
        await host_path(cache, d)
        kept = set(allocated(cache.dir))
        assert name[b.inode.ino] not in kept and len(kept) == 3
        assert sum(allocated(cache.dir).values()) == cache.allocated <= 3 * CHUNK
    asyncio.run(go())


def test_one_map_bigger_than_the_limit_is_enomem(tmp_path, caplog):
    async def go():
        cache = PageCache(tmp_path, limit=2 * CHUNK)
        loc = await tmpfs_file(4 * CHUNK, {0: b"z" * (4 * CHUNK)})
        with pytest.raises(Errno) as e:
            await host_path(cache, loc, 0, 3 * CHUNK)
        assert e.value.code == errno.ENOMEM
        assert os.listdir(cache.dir) == [] and cache.allocated == 0
        await host_path(cache, loc, CHUNK, CHUNK)        # what fits still maps
    with caplog.at_level(logging.WARNING, logger="kernel"):
        asyncio.run(go())
    assert f"pagecache_limit ({2 * CHUNK} bytes)" in caplog.text


def test_an_earlier_kernels_files_are_cleared(tmp_path):
    (tmp_path / "pagecache").mkdir()
    (tmp_path / "pagecache" / "55-2-1.0-10").write_bytes(b"stale")
    PageCache(tmp_path)
    assert os.listdir(tmp_path / "pagecache") == []


def test_an_ext2_file_is_filled_where_mapped_and_its_holes_stay_holes(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(40 * MiB)
        f.write(b"tail")
    img = tmp_path / "fs.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-d", str(tree), str(img), "64M"], check=True)

    async def go():
        fs = await Ext2.mount(ImageFile(img))
        inode = await fs.root.lookup(b"sparse")
        cache = PageCache(tmp_path)
        loc = Location(Mount(fs, 0x801), inode, b"/sparse")
        await host_path(cache, loc, 0, PAGE)
        path = await host_path(cache, loc, 40 * MiB, PAGE)
        with open(path, "rb") as f:
            assert os.pread(f.fileno(), 8, 0) == b"head" + bytes(4)
            assert os.pread(f.fileno(), 8, 40 * MiB - 4) == bytes(4) + b"tail"
        assert os.stat(path).st_blocks * 512 <= 2 * PAGE
    asyncio.run(go())


# --- guests --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pcdisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "pctree", ["pagecache"]),
                       "128M")


@contextmanager
def waiting_guest(disk: Path, tmp_path: Path, *cmd: str):
    """skas run of cmd, which prints a line and waits for a signal: that line
    and the guest's page-cache directory while it waits; then SIGTERM."""
    p = subprocess.Popen([sys.executable, "-m", "deploy.cli", "run", "--disk", str(disk), "--",
                          *cmd], stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
                         env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        line = p.stdout.readline()
        (run_dir,) = tmp_path.glob("skas-run-*")
        yield line, run_dir / "pagecache"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)


def versions_of(cache: Path, size: int) -> dict[str, int]:
    """The page-cache files of inodes of this size, and what each takes."""
    return {name: n for name, n in allocated(cache).items() if name.endswith(f"-{size}")}


def test_a_guest_maps_a_page_of_a_1_gib_sparse_file(pcdisk, tmp_path):
    with waiting_guest(pcdisk, tmp_path, "/bin/pagecache", "sparse", "/tmp/sparse") as (line, pc):
        assert line == "mapped: one page of data\n"
        (taken,) = versions_of(pc, 1 << 30).values()
        assert taken <= 2 * PAGE
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in pc.iterdir())


def test_rewriting_and_mapping_a_file_100_times_keeps_one_version(pcdisk, tmp_path):
    with waiting_guest(pcdisk, tmp_path, "/bin/pagecache", "rewrite", "/rewritten",
                       "100") as (line, pc):
        assert line == "rewrote 100 times\n"
        (taken,) = versions_of(pc, 8 * MiB).values()
        assert taken <= 8 * MiB + 64 * 1024


def test_two_first_maps_of_one_version_at_once_agree(pcdisk, tmp_path):
    r = skas("run", "--disk", str(pcdisk), "--log-dir", str(tmp_path), "--",
             "/bin/pagecache", "race", "/race")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(r.stdout.splitlines()) == ["child: agrees", "parent: agrees"]
    log = (tmp_path / "kernel.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_a_map_of_an_unlinked_version_still_reads_its_bytes(pcdisk, tmp_path):
    with waiting_guest(pcdisk, tmp_path, "/bin/pagecache", "unlinked", "/twice") as (line, pc):
        assert line == "old map: 1048576 of 1048576 bytes 'o'; new map: 1048576 'n'\n"
        assert len(versions_of(pc, MiB)) == 1
        maps = [line for pid in os.listdir("/proc") if pid.isdigit()
                for line in _maps(pid) if " /pagecache/" in line and line.endswith(" (deleted)")]
        assert maps, "the first version is mapped from an unlinked host file"


def _maps(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return []


def test_a_private_writable_map_of_a_file_is_the_guests_own(pcdisk, tmp_path):
    """MAP_PRIVATE with PROT_WRITE maps (it was EACCES: the kernel took
    MAP_SHARED_VALIDATE's bits for "shared"); MAP_SHARED with PROT_WRITE of
    a read-only fd is EACCES, as on Linux."""
    r = skas("run", "--disk", str(pcdisk), "--", "/bin/pagecache", "private", "/private")
    assert r.stdout == ("map mine file ffff\n"
                        "shared writable of a read-only fd: Permission denied\n"), r.stderr
