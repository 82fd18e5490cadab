"""MAP_SHARED file maps, coherent with read and write as on Linux (issue 20,
item 7: they were snapshots).  tests/progs/shared_maps.c runs natively and
in guests, on ext2 and tmpfs, with and without the listener, and must print
the same; stores left in a map reach the disk; the live files that carry
them go when no process can map them, with what they held written back."""
from __future__ import annotations

import asyncio
import errno
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from conftest import build, disk_of, make_tree, skas
from deploy import disk as diskmod
from services.kernel.fsimpl.tmpfs import Tmpfs
from services.kernel.core.errors import Errno
from services.kernel.fs.pagecache import PageCache
from services.kernel.fs.vfs import Location, Mount, data_of

PAGE = 4096
MiB = 1 << 20


@pytest.fixture(scope="module")
def shdisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "shtree", ["shared_maps"]))


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("shared-native")
    prog = build("shared_maps.c", d / "shared_maps", "-static")
    (d / "files").mkdir()
    return subprocess.run([str(prog), "all", str(d / "files")], capture_output=True,
                          text=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("where,flags", [("/", ()), ("/tmp", ("--tmpfs", "/tmp")),
                                         ("/", ("--ptrace-only",))],
                         ids=["ext2", "tmpfs", "ext2-ptrace-only"])
def test_shared_maps_are_coherent_as_on_linux(shdisk, native, where, flags):
    r = skas("run", *flags, "--disk", str(shdisk), "--", "/bin/shared_maps", "all", where)
    assert r.returncode == 0, r.stderr
    assert "map sees write: WRITE" in native     # the program checks what it claims to
    assert r.stdout == native


def test_stores_left_in_a_map_reach_the_disk(tmp_path, shdisk):
    """No msync, no munmap: the process's end writes its stores back."""
    disk = tmp_path / "disk.img"
    shutil.copy(shdisk, disk)
    r = skas("run", "--disk", str(disk), "--", "/bin/shared_maps", "leave", "/left")
    assert r.returncode == 0, r.stderr
    r = skas("run", "--disk", str(disk), "--", "/bin/shared_maps", "show", "/left")
    assert r.stdout == "shows: left in the map\n", r.stderr
    diskmod.check(disk)


# --- the live files, driven directly -------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)      # names are relative to the run directory
    return PageCache(tmp_path)


async def _file(size: int) -> Location:
    fs = Tmpfs(size=64 * MiB)
    inode = await fs.root.create(b"f", 0o100644, 0, 0)
    await inode.write(0, b"a" * size)
    return Location(Mount(fs, 0x55), inode, b"/f")


def test_a_live_file_follows_its_inode_and_goes_with_its_last_holder(cache, tmp_path):
    async def go():
        loc = await _file(2 * MiB)
        one, two = SimpleNamespace(maps=set()), SimpleNamespace(maps=set())
        v, new = await cache.map(loc, 0, PAGE, holder=one, shared=True, writable=True)
        assert new and v.name.startswith("shared/") and loc.inode.live is v
        cache.inherit(one, two)
        host = tmp_path / v.name
        assert oct(host.stat().st_mode & 0o777) == "0o666"
        await data_of(loc.inode).write(1, b"W")            # a write reaches the map
        assert host.read_bytes()[:3] == b"aWa"
        with open(host, "r+b") as f:                        # a map's store ...
            f.write(b"S")
        assert await data_of(loc.inode).read(0, 2) == b"SW"  # ... is what read sees
        assert await loc.inode.read(0, 2) == b"aW"          # not yet the inode's
        await data_of(loc.inode).truncate(PAGE)
        assert host.stat().st_size == PAGE
        before = (loc.inode.mtime, loc.inode.mtime_ns)
        cache.release(one)
        assert loc.inode.live is v                          # two may still map it
        cache.release(two)
        await v.retired
        assert loc.inode.live is None and not host.exists()
        assert await loc.inode.read(0, 2) == b"SW"          # written back
        assert (loc.inode.mtime, loc.inode.mtime_ns) != before
        assert not list((tmp_path / "shared").iterdir())
    asyncio.run(go())


def test_a_map_while_the_last_holder_writes_back_waits_and_sees_the_bytes(cache, tmp_path):
    async def go():
        loc = await _file(PAGE)
        one, two = SimpleNamespace(maps=set()), SimpleNamespace(maps=set())
        v, _ = await cache.map(loc, 0, PAGE, holder=one, shared=True, writable=True)
        with open(tmp_path / v.name, "r+b") as f:
            f.write(b"S")
        cache.release(one)                  # the write-back starts ...
        w, _ = await cache.map(loc, 0, PAGE, holder=two, shared=True)   # ... and this waits
        assert w is not v and v.gone
        assert (tmp_path / w.name).read_bytes()[:2] == b"Sa"
    asyncio.run(go())


def test_a_private_map_of_a_shared_file_maps_its_live_file(cache):
    async def go():
        loc = await _file(PAGE)
        holder = SimpleNamespace(maps=set())
        private, _ = await cache.map(loc, 0, PAGE, holder=holder)
        assert private.name.startswith("pagecache/")
        shared, _ = await cache.map(loc, 0, PAGE, holder=holder, shared=True)
        again, new = await cache.map(loc, 0, PAGE, holder=holder)
        assert again is shared and not new and private.gone   # the snapshot would go stale
    asyncio.run(go())


def test_live_files_are_held_to_the_page_cache_limit(tmp_path, monkeypatch):
    """Live files cannot be evicted, so a map whose fill would leave them
    over pagecache_limit is ENOMEM, and the file it made goes again: shared
    maps cannot copy a guest's disk to the host's without bound."""
    monkeypatch.chdir(tmp_path)
    cache = PageCache(tmp_path, limit=2 * MiB)

    async def go():
        holder = SimpleNamespace(maps=set())
        small, big = await _file(MiB), await _file(3 * MiB)
        v, _ = await cache.map(small, 0, MiB, holder=holder, shared=True)
        with pytest.raises(Errno) as caught:
            await cache.map(big, 0, 3 * MiB, holder=holder, shared=True)
        assert caught.value.code == errno.ENOMEM
        assert holder.maps == {v}                       # the small one is still mapped
        failed = big.inode.live
        await failed.retired
        assert big.inode.live is None and [p.name for p in (tmp_path / "shared").iterdir()] == [v.key]
    asyncio.run(go())


def test_the_cache_names_its_files_for_proc_maps_while_they_may_be_mapped(cache, monkeypatch):
    """/proc/PID/maps names a page-cache file by the guest file it holds:
    renames move the name, unlink marks it deleted, and an unlinked host
    file stays known for the last DEPARTED of them (its maps may live on)."""
    monkeypatch.setattr("services.kernel.fs.pagecache.DEPARTED", 2)

    async def go():
        loc = await _file(PAGE)
        loc.path = b"/d/f"
        v, _ = await cache.map(loc, 0, PAGE)
        assert cache.named(v.name) is v and (v.path, v.ident) == (b"/d/f", (0x55, loc.inode.ino))
        assert cache.named("pagecache/nothing") is None and cache.named("../" + v.name) is None
        cache.moved(0x55, [(b"/d", b"/e")])                 # the directory moved
        assert v.path == b"/e/f"
        cache.moved(0x56, [(b"/e/f", None)])                # another device's file
        assert v.path == b"/e/f"
        cache.moved(0x55, [(b"/e/f", None)])
        assert v.path == b"/e/f (deleted)"
        holder = SimpleNamespace(maps=set())
        live, _ = await cache.map(loc, 0, PAGE, holder=holder, shared=True)   # v goes
        assert v.gone and cache.named(v.name) is v and cache.named(live.name) is live
        for n in range(2):                                  # two more go after it
            other = await _file(PAGE)
            w, _ = await cache.map(other, 0, PAGE)
            cache._drop(w)
        assert cache.named(v.name) is None
    asyncio.run(go())
