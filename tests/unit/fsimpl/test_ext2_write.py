"""ext2 writing, driving the filesystem object over mke2fs images; e2fsck and
debugfs judge the result."""
from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess

import pytest

from conftest import disk_of, make_tree, skas, skas_popen
from services.kernel.core.errors import Errno
from services.kernel.abi.fcntl import RENAME_EXCHANGE, RENAME_NOREPLACE
from services.kernel.fsimpl.ext2 import bitmaps
from services.kernel.fsimpl.ext2 import super as ext2_super
from services.kernel.fsimpl.ext2 import Ext2Error
from ext2_images import counts, debugfs, dir_entries, fsck, live_names, make_image, session

INDEX_FL = 0x1000


async def walk(fs, path: str):
    inode = fs.root
    for part in path.strip("/").split("/"):
        if part:
            inode = await inode.lookup(part.encode())
    return inode


@pytest.fixture(params=[1024, 4096])
def image(request, tmp_path):
    return make_image(tmp_path / "fs.img", request.param)


def test_many_small_files(image):
    contents = {f"f{i:03d}": os.urandom(i * 37 % 5000) for i in range(300)}

    async def body(fs):
        d = await fs.root.mkdir(b"small", 0o755, 0, 0)
        for name, data in contents.items():
            f = await d.create(name.encode(), stat.S_IFREG | 0o644, 1000, 1000)
            assert await f.write(0, data) == len(data)
        for name, data in list(contents.items())[:20]:
            assert await (await walk(fs, "small/" + name)).read(0, 10000) == data
    session(image, body)
    fsck(image)
    for name in ("f000", "f001", "f123", "f299"):
        assert debugfs(image, f"cat /small/{name}") == contents[name]
    listing = debugfs(image, "ls -l /small").decode()
    assert all(name in listing for name in contents)
    # and a fresh mount reads it all back
    async def check(fs):
        for name, data in contents.items():
            assert await (await walk(fs, "small/" + name)).read(0, 10000) == data
    session(image, check)


def test_creates_between_unlinks_and_renames_fill_the_gaps_they_leave(image):
    """Entries go where the first gap fits them, whatever came before: the
    block a directory last added to is kept parsed (dirs.py's _parsed), and
    each create, unlink and rename must leave that parse true."""
    rng = random.Random(18)
    live: set[str] = set()

    async def body(fs):
        d = await fs.root.mkdir(b"churn", 0o755, 0, 0)
        for step in range(1200):
            roll = rng.random()
            if live and roll < 0.3:
                name = rng.choice(sorted(live))
                await d.unlink(name.encode())
                live.discard(name)
            elif live and roll < 0.4:
                old, new = rng.choice(sorted(live)), f"r{step}" + "x" * rng.randrange(40)
                await d.rename(old.encode(), d, new.encode())
                live.discard(old)
                live.add(new)
            else:
                name = f"f{step}" + "y" * rng.randrange(60)
                await d.create(name.encode(), stat.S_IFREG | 0o644, 0, 0)
                live.add(name)
            if step % 300 == 299:
                await fs.sync()         # written back: the cached block is read anew
        assert {n.decode() for n in d._names} - {".", ".."} == live
    session(image, body)
    fsck(image)
    assert set(live_names(image, "/churn")) - {".", ".."} == live


def test_many_inodes_left_to_write_back_past_the_dirty_limit(image, monkeypatch):
    """Changed inodes are packed into their tables at write-back; a table
    block dirtied there past the limit must not start another write-back
    (each would pack the next inode a level deeper: RecursionError)."""
    monkeypatch.setattr(ext2_super, "DIRTY_LIMIT", 4)

    async def body(fs):
        d = await fs.root.mkdir(b"many", 0o755, 0, 0)
        for i in range(1500):
            f = await d.create(b"f%04d" % i, stat.S_IFREG | 0o600, 0, 0)
            await f.setattr(mode=0o644, uid=i, gid=i)
        await fs.sync()
    session(image, body)
    fsck(image)
    assert b"User:  1499" in debugfs(image, "stat /many/f1499")


def test_big_file_into_double_indirect(image, tmp_path, monkeypatch):
    monkeypatch.setattr(ext2_super, "DIRTY_LIMIT", 100)     # written back along the way

    async def body(fs):
        per = fs.block_size // 4
        size = (12 + per + 3 * per // 2) * fs.block_size + 123      # into double indirect
        data = bytearray(os.urandom(size))
        f = await fs.root.create(b"big", stat.S_IFREG | 0o600, 0, 0)
        pos = 0
        while pos < size:                       # appends of odd sizes
            n = min(7777, size - pos)
            assert await f.write(pos, bytes(data[pos:pos + n])) == n
            pos += n
        assert len(fs.dirty) <= 100 and "write" in fs.dev.ops
        for off in (5, fs.block_size * 12 - 3, fs.block_size * (12 + per) + 17, size - 10):
            patch = os.urandom(2000)[:size - off]
            await f.write(off, patch)
            data[off:off + len(patch)] = patch
        assert await f.read(0, size) == bytes(data)
        return bytes(data)
    data = session(image, body)
    fsck(image)
    out = tmp_path / "big.out"
    debugfs(image, f"dump /big {out}")
    assert out.read_bytes() == data


def test_sparse_file(image, tmp_path):
    async def body(fs):
        f = await fs.root.create(b"sparse", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, b"head")
        await f.write(20 << 20, b"tail")
        await f.write(5 << 20, b"middle")
        assert f.blocks * 512 < 16 * fs.block_size
        assert await f.read(1 << 20, 100) == bytes(100)
        return f.size
    assert session(image, body) == (20 << 20) + 4
    fsck(image)
    out = tmp_path / "sparse.out"
    debugfs(image, f"dump /sparse {out}")
    data = out.read_bytes()
    assert data[:4] == b"head" and data[5 << 20:(5 << 20) + 6] == b"middle"
    assert data[-4:] == b"tail" and data.count(0) == len(data) - 14


def test_a_block_owned_twice_is_reported_and_nothing_is_freed(tmp_path):
    """A corrupt file that points at one block twice: truncating it is
    EUCLEAN (as Linux's ext2 reports "freeing block already free"), and the
    bitmap and free counts are left as they were, not half freed."""
    img = make_image(tmp_path / "fs.img", 1024)

    async def body(fs):
        f = await fs.root.create(b"twice", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, bytes(3 * fs.block_size))
    session(img, body)
    first = int(debugfs(img, "bmap /twice 0").split()[0])
    subprocess.run(["debugfs", "-w", "-R", f"sif /twice block[2] {first}", str(img)],
                   check=True, capture_output=True)
    before = counts(img)

    async def shrink(fs):
        f = await walk(fs, "twice")
        free = [g[0] for g in fs.group_free]
        with pytest.raises(Ext2Error) as exc:
            await f.truncate(0)
        assert exc.value.errno == errno.EUCLEAN and "already free" in str(exc.value)
        assert [g[0] for g in fs.group_free] == free
    session(img, shrink)
    assert counts(img) == before
    assert int(debugfs(img, "bmap /twice 1").split()[0]) != 0


def test_truncate_then_unlink_gives_everything_back(image):
    before = counts(image)

    async def body(fs):
        f = await fs.root.create(b"t", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, os.urandom(3 << 20))
        await f.write(100 << 20, b"x")          # and a lone block far out
    session(image, body)
    fsck(image)

    async def shrink(fs):
        f = await walk(fs, "t")
        await f.truncate(3)
        assert f.blocks == fs.block_size // 512
        await f.truncate(fs.block_size * 20)    # grows with a hole: the tail reads zeros
        assert await f.read(0, 100) == (await f.read(0, 3)) + bytes(97)
        await f.truncate(3)
    session(image, shrink)
    fsck(image)
    blocks, inodes = counts(image)
    assert (blocks, inodes) == (before[0] - 1, before[1] - 1)
    assert len(debugfs(image, "cat /t")) == 3

    async def remove(fs):
        await fs.root.unlink(b"t")
        assert await fs.root.lookup(b"t") is None
    session(image, remove)
    fsck(image)
    assert counts(image) == before


def test_unlink_everything_restores_the_counts(image):
    before = counts(image)

    async def body(fs):
        d = await fs.root.mkdir(b"d", 0o755, 0, 0)
        sub = await d.mkdir(b"sub", 0o700, 5, 6)
        for i in range(150):
            f = await (d if i % 2 else sub).create(f"n{i}".encode(), stat.S_IFREG | 0o644, 0, 0)
            await f.write(0, os.urandom(i * 300))
        await d.symlink(b"fast", b"n1", 0, 0)
        await d.symlink(b"slow", b"/" + b"y" * 200, 0, 0)
        await d.create(b"fifo", stat.S_IFIFO | 0o644, 0, 0)
        await d.create(b"dev", stat.S_IFCHR | 0o600, 0, 0, os.makedev(300, 70000))
        await d.link(b"hard", await d.lookup(b"n1"))
    session(image, body)
    fsck(image)
    assert debugfs(image, "cat /d/hard") == debugfs(image, "cat /d/n1")
    listing = debugfs(image, "ls -l /d").decode()
    assert "fast" in listing and "slow" in listing and "sub" in listing

    async def check(fs):
        d = await walk(fs, "d")
        assert await (await d.lookup(b"fast")).readlink() == b"n1"
        assert await (await d.lookup(b"slow")).readlink() == b"/" + b"y" * 200
        assert (await d.lookup(b"dev")).rdev == os.makedev(300, 70000)
        assert (await d.lookup(b"n1")).nlink == 2
        assert d.nlink == 3
        with pytest.raises(Errno):
            await fs.root.rmdir(b"d")          # not empty
        with pytest.raises(Errno):
            await d.unlink(b"sub")             # a directory
        sub = await d.lookup(b"sub")
        for name, _, _ in await dir_entries(sub):
            if name not in (b".", b".."):
                await sub.unlink(name)
        await d.rmdir(b"sub")
        for name, _, _ in await dir_entries(d):
            if name not in (b".", b".."):
                await d.unlink(name)
        await fs.root.rmdir(b"d")
    session(image, check)
    fsck(image)
    assert counts(image) == before


def test_setattr_and_rename(image):
    async def body(fs):
        a = await fs.root.mkdir(b"a", 0o755, 0, 0)
        b = await fs.root.mkdir(b"b", 0o755, 0, 0)
        f = await a.create(b"f", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, b"hello")
        await f.setattr(mode=0o600, uid=100_000, gid=7, mtime=(1_700_000_000, 5), atime=(3, 0))
        await a.rename(b"f", b, b"g")
        sub = await a.mkdir(b"sub", 0o755, 0, 0)
        await a.rename(b"sub", b, b"sub2")
        await b.create(b"victim", stat.S_IFREG | 0o644, 0, 0)
        await b.rename(b"g", b, b"victim")
        assert sub.nlink == 2 and a.nlink == 2 and b.nlink == 3
    session(image, body)
    fsck(image)
    assert debugfs(image, "cat /b/victim") == b"hello"
    st = debugfs(image, "stat /b/victim").decode().split()
    assert st[st.index("User:") + 1] == "100000" and st[st.index("Group:") + 1] == "7"
    assert st[st.index("Mode:") + 1] == "0600"
    assert live_names(image, "/b/sub2/..").count("victim") == 1

    async def check(fs):
        f = await walk(fs, "b/victim")
        assert (f.mode, f.uid, f.gid, f.mtime, f.mtime_ns) == \
            (stat.S_IFREG | 0o600, 100_000, 7, 1_700_000_000, 5)
        assert await (await walk(fs, "b")).lookup(b"g") is None
    session(image, check)


def test_rename_flags_and_directories(image):
    async def body(fs):
        a = await fs.root.mkdir(b"a", 0o755, 0, 0)
        b = await fs.root.mkdir(b"b", 0o755, 0, 0)
        x = await a.create(b"x", stat.S_IFREG | 0o644, 0, 0)
        await x.write(0, b"X")
        d = await b.mkdir(b"d", 0o755, 0, 0)
        with pytest.raises(Errno):
            await a.rename(b"x", b, b"d")                   # a file over a directory
        await a.rename(b"x", b, b"d", RENAME_EXCHANGE)
        assert await a.lookup(b"x") is d and await b.lookup(b"d") is x
        assert a.nlink == 3 and b.nlink == 2 and (await d.lookup(b"..")) is a
        e = await b.mkdir(b"e", 0o755, 0, 0)
        with pytest.raises(Errno):
            await a.rename(b"x", b, b"e", RENAME_NOREPLACE)
        await a.rename(b"x", b, b"e")                       # over an empty directory
        assert e.nlink == 0 and b.nlink == 3 and a.nlink == 2
        for i in range(50):
            await (await a.create(b"r%d" % i, stat.S_IFREG, 0, 0)).write(0, b"%d" % i)
            await a.rename(b"r%d" % i, b if i % 2 else a, b"s%d" % i)
    session(image, body)
    fsck(image)
    assert debugfs(image, "cat /b/d") == b"X" and debugfs(image, "cat /b/s49") == b"49"
    assert b"e" in debugfs(image, "ls /b").split()          # d, moved over e
    assert b"s49" in debugfs(image, "ls /b/e/..").split()   # its ".." follows it


def test_writing_into_an_indexed_directory(tmp_path):
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    for i in range(2000):
        (src / "many" / f"entry-{i:04d}").write_text(str(i))
    img = make_image(tmp_path / "fs.img", 1024, source=src, index=True)

    async def body(fs):
        many = await walk(fs, "many")
        assert many.flags & INDEX_FL
        for i in range(0, 2000, 7):
            await many.unlink(f"entry-{i:04d}".encode())
        for i in range(300):
            f = await many.create(f"new-{i}".encode(), stat.S_IFREG | 0o644, 0, 0)
            await f.write(0, b"n%d" % i)
        await many.mkdir(b"newdir", 0o755, 0, 0)
        assert not many.flags & INDEX_FL
    session(img, body)
    fsck(img)
    assert debugfs(img, "cat /many/new-299") == b"n299"
    assert debugfs(img, "cat /many/entry-0001") == b"1"
    listing = live_names(img, "/many")
    assert "entry-0007" not in listing and "new-17" in listing and "newdir" in listing


def test_full_disk_gives_enospc_and_space_back(tmp_path):
    img = make_image(tmp_path / "small.img", 1024, size="2M")
    before = counts(img)

    async def body(fs):
        f = await fs.root.create(b"fill", stat.S_IFREG | 0o644, 0, 0)
        written = await f.write(0, bytes(4 << 20))
        assert 0 < written < 4 << 20
        with pytest.raises(Errno):
            await f.write(written, b"more")
        assert fs.statfs()["bfree"] == 0
    session(img, body)
    fsck(img)

    async def remove(fs):
        await fs.root.unlink(b"fill")
    session(img, remove)
    fsck(img)
    assert counts(img) == before


GUEST_WRITES = ("mkdir -p /data/sub && for i in $(seq 1 50); do echo file $i > /data/sub/f$i; done"
                "; cp /bin/busybox /data/bb; ln -s /data/bb /data/link; ln /data/sub/f1 /data/hard"
                "; rm /data/sub/f2; mv /data/sub/f3 /data/moved; echo appended >> /data/moved"
                "; ls /data; cat /data/moved")


def test_a_guest_writes_its_root_and_the_image_is_clean(tmp_path_factory):
    """Files written by a guest's shell are on the image after it halts: e2fsck
    passes and debugfs reads them back; with --read-only the same is EROFS."""
    tree = make_tree(tmp_path_factory, "wtree")
    img = next(disk_of(tmp_path_factory, tree))
    r = skas("run", "--disk", str(img), "--", "/bin/sh", "-c", GUEST_WRITES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["bb", "hard", "link", "moved", "sub", "file", "3", "appended"]
    fsck(img)
    assert debugfs(img, "cat /data/sub/f50") == b"file 50\n"
    assert debugfs(img, "cat /data/hard") == b"file 1\n"
    with open("/bin/busybox", "rb") as f:
        assert debugfs(img, "cat /data/bb") == f.read()
    ro = skas("run", "--read-only", "--disk", str(img), "--", "/bin/sh", "-c",
              "echo x > /data/new")
    assert ro.returncode != 0 and "Read-only file system" in ro.stdout
    fsck(img)


def test_a_full_disk_is_enospc_in_a_guest_and_the_space_comes_back(tmp_path_factory):
    tree = make_tree(tmp_path_factory, "fulltree")
    img = next(disk_of(tmp_path_factory, tree, "8M"))
    r = skas("run", "--disk", str(img), "--", "/bin/sh", "-c",
             "df / | tail -1; dd if=/dev/zero of=/big bs=64k; echo dd status $?; sync; "
             "df / | tail -1; rm /big; sync; df / | tail -1")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "No space left on device" in r.stdout and "dd status 1" in lines
    before, full, after = [ln.split() for ln in lines if ln.startswith("/dev/root")]
    assert full[3] == "0" and after == before           # available: none, then all back
    fsck(img)


def test_a_stopped_guest_loses_nothing_it_wrote(tmp_path_factory):
    """SIGTERM to skas run halts the guest as init's end does: files written
    (never synced) are on the image, and one unlinked while still open by a
    process alive at halt is freed (ext2 has no orphan list): e2fsck clean."""
    tree = make_tree(tmp_path_factory, "termtree")
    img = next(disk_of(tmp_path_factory, tree))
    p = skas_popen("run", "--disk", str(img), "--",
                   "/bin/sh", "-c", "echo kept > /kept; exec 4>/gone; rm /gone; "
                   "echo held >&4; echo ready; sleep 60", stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 128 + signal.SIGTERM
    fsck(img)
    assert debugfs(img, "cat /kept") == b"kept\n"
    r = skas("run", "--disk", str(img), "--", "/bin/sh", "-c",
             "(exec 4>/gone2; rm /gone2; echo held >&4; sleep 30) & sleep 0.5")
    assert r.returncode == 0, r.stdout + r.stderr
    fsck(img)


def test_fallocate_backs_holes_with_zeros_and_gives_back_on_enospc(tmp_path):
    img = make_image(tmp_path / "small.img", 1024, "2M")
    before = counts(img)

    async def body(fs):
        f = await fs.root.create(b"pre", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, b"data")
        await f.allocate(1024, 9216)            # past the end: size grows, blocks backed
        assert f.size == 10240 and f.blocks * 512 == 10240
        assert await f.read(0, 10240) == b"data" + bytes(10236)
        await f.write(100 << 10, b"far")        # a hole from 10 KiB to 100 KiB
        blocks = f.blocks
        await f.allocate(0, 50 << 10)           # inside: filled, size unchanged
        assert f.size == (100 << 10) + 3 and f.blocks > blocks
        g = await fs.root.create(b"huge", stat.S_IFREG | 0o644, 0, 0)
        with pytest.raises(Errno) as e:
            await g.allocate(0, 8 << 20)
        assert e.value.code == errno.ENOSPC and g.size == 0 and g.blocks == 0
        await fs.root.unlink(b"huge")
        return await f.read(0, f.size)
    data = session(img, body)
    assert data == b"data" + bytes((100 << 10) - 4) + b"far"
    fsck(img)
    assert counts(img)[0] < before[0]
    r = session(img, lambda fs: fs.root.unlink(b"pre"))
    assert r is None and counts(img) == before
    fsck(img)


def test_bitmap_search_agrees_with_bit_by_bit():
    """The byte-skipping searches, against a plain scan of random bitmaps."""
    rng = random.Random(7)
    for _ in range(2000):
        bm = bytes(rng.choice([0xFF, 0xFF, 0, rng.randrange(256)])
                   for _ in range(rng.randint(1, 40)))
        nbits = rng.randint(1, 8 * len(bm))
        start = rng.randint(0, nbits)
        clear = [i for i in range(nbits) if not bm[i >> 3] >> (i & 7) & 1]
        first = next((i for i in clear if i >= start), clear[0] if clear else None)
        assert bitmaps.find_zero(bm, start, nbits) == first
        if first is None:
            continue
        end = rng.randint(first + 1, nbits)
        run = 1
        while first + run < end and first + run in clear:
            run += 1
        assert bitmaps.clear_run(bm, first, end) == run
        new = bytearray(bm)
        bitmaps.set_run(new, first, run)
        assert [i for i in range(nbits) if not new[i >> 3] >> (i & 7) & 1] == \
            [i for i in clear if not first <= i < first + run]


def test_the_search_avoiding_blocks_agrees_with_bit_by_bit():
    """clear_avoiding: the first clear bit whose block is not avoided, and
    the next avoided block's bit, against a plain scan (avoided blocks in
    runs, as a removed file's are, and scattered)."""
    rng = random.Random(11)
    for _ in range(2000):
        bm = bytes(rng.choice([0xFF, 0, rng.randrange(256)]) for _ in range(rng.randint(1, 40)))
        nbits, base = rng.randint(1, 8 * len(bm)), rng.randrange(1000)
        avoid: set[int] = set()
        for _ in range(rng.randint(0, 6)):
            at = base + rng.randrange(-8, nbits + 8)
            avoid.update(range(at, at + rng.choice([1, 1, 3, 17, 100])))
        start = rng.randint(0, nbits)
        ok = [i for i in range(start, nbits)
              if not bm[i >> 3] >> (i & 7) & 1 and base + i not in avoid]
        got = bitmaps.clear_avoiding(bm, start, nbits, base, sorted(avoid))
        if not ok:
            assert got is None
            continue
        limit = next((i for i in range(ok[0], nbits) if base + i in avoid), nbits)
        assert got == (ok[0], limit)


def test_runs_across_fragments_tables_and_groups(tmp_path):
    """Big writes into fragmented free space (every other small file gone):
    runs end at used blocks, at the direct/indirect boundaries and at the end
    of a group (8192 blocks of 1 KiB); partial overwrites of old runs and a
    hole filled between existing blocks keep every byte."""
    img = make_image(tmp_path / "fs.img", 1024, size="32M")

    async def body(fs):
        holes = [await fs.root.create(b"h%d" % i, stat.S_IFREG | 0o644, 0, 0) for i in range(60)]
        for i, h in enumerate(holes):
            await h.write(0, os.urandom(1024 * (1 + i % 5)))
        for i in range(0, 60, 2):
            await fs.root.unlink(b"h%d" % i)
        f = await fs.root.create(b"big", stat.S_IFREG | 0o644, 0, 0)
        size = 12 << 20                 # past a group's end, into double indirect
        data = bytearray(os.urandom(size))
        pos = 0
        while pos < size:
            n = min(300_001, size - pos)
            assert await f.write(pos, bytes(data[pos:pos + n])) == n
            pos += n
        for off, n in ((5, 3000), (11 * 1024 + 7, 9000), (268 * 1024 - 3, 70_000),
                       (8000 * 1024 + 9, 600_000)):
            patch = os.urandom(n)
            await f.write(off, patch)
            data[off:off + n] = patch
        assert await f.read(0, size) == bytes(data)
        s = await fs.root.create(b"sparse", stat.S_IFREG | 0o644, 0, 0)
        await s.write(0, b"a" * 3000)
        await s.write(40 * 1024, b"z" * 5000)
        middle = os.urandom(40 * 1024)      # from inside the first run, over a hole, into the next
        await s.write(2000, middle)
        expect = b"a" * 2000 + middle + b"z" * (40 * 1024 + 5000 - 2000 - len(middle))
        assert await s.read(0, 1 << 20) == expect
        return bytes(data), expect
    data, sparse = session(img, body)
    fsck(img)
    out = tmp_path / "out"
    debugfs(img, f"dump /big {out}")
    assert out.read_bytes() == data
    debugfs(img, f"dump /sparse {out}")
    assert out.read_bytes() == sparse


def test_enospc_inside_a_run_keeps_what_was_written(tmp_path):
    """A write bigger than the free space, fragmented: the short count it
    returns is what the file holds; e2fsck is clean and all comes back."""
    img = make_image(tmp_path / "small.img", 1024, size="2M")
    before = counts(img)

    async def body(fs):
        for i in range(40):
            await (await fs.root.create(b"s%d" % i, stat.S_IFREG, 0, 0)).write(0, bytes(2048))
        for i in range(0, 40, 3):
            await fs.root.unlink(b"s%d" % i)
        f = await fs.root.create(b"fill", stat.S_IFREG | 0o644, 0, 0)
        data = os.urandom(3 << 20)
        written = await f.write(100, data)
        assert 0 < written < len(data) and f.size == 100 + written
        assert fs.statfs()["bfree"] == 0
        assert await f.read(0, f.size) == bytes(100) + data[:written]
        return bytes(100) + data[:written]
    data = session(img, body)
    fsck(img)
    out = tmp_path / "out"
    debugfs(img, f"dump /fill {out}")
    assert out.read_bytes() == data

    async def remove(fs):
        for name, _, _ in await dir_entries(fs.root):
            if name.startswith((b"s", b"fill")):
                await fs.root.unlink(name)
    session(img, remove)
    fsck(img)
    assert counts(img) == before


async def data_blocks(f) -> set[int]:
    return set(await f._map(0, -(-f.size // f.fs.block_size))) - {0}


def test_only_blocks_free_at_the_last_commit_point_are_written_fresh(image):
    """A WRITE_FRESH reaches the image at once (ubd_io's journal does not
    hold it), so it must be of blocks no committed structure holds: blocks
    a file takes after a sync are fresh, its overwrite after the next sync
    is not, and blocks a removed file let go are not reused fresh before a
    commit point (a crash would show them, with new bytes, in the old file)."""
    async def body(fs):
        dev = fs.dev
        bs = fs.block_size
        data = os.urandom(40 * bs)
        f = await fs.root.create(b"new", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, data)
        await fs.sync()
        fresh = {off // bs + k for off, n in dev.fresh for k in range(n // bs)}
        assert len(fresh) >= 40                      # its data went fresh
        dev.fresh.clear()
        await f.write(0, data[::-1])                 # an overwrite: committed blocks
        await fs.sync()
        assert dev.fresh == []
        await fs.root.unlink(b"new")                 # let go, no commit point yet
        g = await fs.root.create(b"next", stat.S_IFREG | 0o644, 0, 0)
        await g.write(0, data)
        async with fs.lock:
            await fs.write_back()
        reused = {off // bs + k for off, n in dev.fresh for k in range(n // bs)}
        assert not reused & fresh, "a block the removed file held was written fresh"
        assert len(fs.freed) >= 40
        # other blocks were free: the new file took those, and they went fresh
        assert len(reused) >= 40 and not await data_blocks(g) & fs.freed
    session(image, body)
    fsck(image)


def test_blocks_let_go_are_taken_last_and_then_not_written_fresh(tmp_path):
    """A filesystem full but for what a removed file let go since the last
    commit point: a new file still gets those blocks (no ENOSPC), through
    the journal, never fresh; and the image is clean with its bytes."""
    img = make_image(tmp_path / "small.img", 1024, "2M")

    async def body(fs):
        f = await fs.root.create(b"all", stat.S_IFREG | 0o644, 0, 0)
        data = os.urandom(4 << 20)
        written = await f.write(0, data)
        assert 0 < written < len(data) and fs.statfs()["bfree"] == 0
        await fs.sync()
        held = await data_blocks(f)
        await fs.root.unlink(b"all")
        fs.dev.fresh.clear()
        g = await fs.root.create(b"again", stat.S_IFREG | 0o644, 0, 0)
        assert await g.write(0, data[:written]) == written
        async with fs.lock:
            await fs.write_back()
        assert fs.dev.fresh == [] and await data_blocks(g) <= held
        return data[:written]
    data = session(img, body)
    fsck(img)
    out = tmp_path / "out"
    debugfs(img, f"dump /again {out}")
    assert out.read_bytes() == data


def test_blocks_a_removed_file_let_go_leave_the_devices_cache(image):
    """The device is told which blocks' contents no longer matter, so its
    cache frees them at once: exactly the removed file's blocks (its data
    and its indirect blocks), none a live file still holds."""
    async def body(fs):
        bs = fs.block_size
        keep = await fs.root.create(b"keep", stat.S_IFREG | 0o644, 0, 0)
        await keep.write(0, os.urandom(3 * bs))
        gone = await fs.root.create(b"gone", stat.S_IFREG | 0o644, 0, 0)
        await gone.write(0, os.urandom(300 * bs))      # past the direct blocks
        await fs.sync()
        held, kept = await data_blocks(gone), await data_blocks(keep)
        fs.dev.forgotten.clear()
        await fs.root.unlink(b"gone")
        forgotten = {off // bs + k for off, n in fs.dev.forgotten for k in range(n // bs)}
        assert held < forgotten and not forgotten & kept
        assert len(forgotten) - len(held) >= 1        # the indirect block too
    session(image, body)
    fsck(image)


def test_split_gives_runs_all_fresh_or_all_not():
    split = ext2_super._split
    assert split(10, 20, set()) == [(10, 20, False)]
    assert split(10, 20, set(range(5, 30))) == [(10, 20, True)]
    assert split(10, 20, {30, 31}) == [(10, 20, False)]
    assert split(10, 20, {12, 13, 19}) == [(10, 12, False), (12, 14, True), (14, 19, False),
                                           (19, 20, True)]


def test_a_write_back_that_fails_part_way_keeps_what_did_not_go(image):
    """The runs written before a failure are dirty no more; the rest stay
    dirty, for the next write-back to try again, and then all is on the image."""
    async def body(fs):
        bs = fs.block_size
        dev = fs.dev
        f = await fs.root.create(b"two", stat.S_IFREG | 0o644, 0, 0)
        data = os.urandom(40 * bs)
        await f.write(0, data)
        g = await fs.root.create(b"other", stat.S_IFREG | 0o644, 0, 0)
        await g.write(0, data[::-1])
        write_parts, calls = dev.write_parts, []

        async def failing(offset, parts, fresh=False):
            calls.append(offset)
            if len(calls) == 2:
                raise Errno(errno.EIO)
            await write_parts(offset, parts, fresh)
        dev.write_parts = failing
        async with fs.lock:
            with pytest.raises(Errno):
                await fs.write_back()
            left = set(fs.dirty)
        assert calls[0] // bs not in left     # the run that went is dirty no more
        assert calls[1] // bs in left         # the one that failed, and those after, are
        dev.write_parts = write_parts
        async with fs.lock:
            await fs.write_back()
        assert not fs.dirty
        return data
    data = session(image, body)
    fsck(image)
    assert debugfs(image, "cat /two") == data and debugfs(image, "cat /other") == data[::-1]


def test_the_sorted_list_of_freed_blocks_stays_the_freed_set_sorted(image):
    """What the allocator avoids first, merged as blocks are freed (not
    sorted anew at each allocation): always the freed set, in order."""
    async def body(fs):
        bs = fs.block_size
        big = await fs.root.create(b"big", stat.S_IFREG | 0o644, 0, 0)
        await big.write(0, os.urandom(200 * bs))
        await fs.sync()
        await fs.root.unlink(b"big")
        for i in range(6):
            f = await fs.root.create(b"s%d" % i, stat.S_IFREG | 0o644, 0, 0)
            await f.write(0, os.urandom((i + 1) * bs))
            assert fs._freed_order in (None, sorted(fs.freed))
            if i % 2:
                await fs.root.unlink(b"s%d" % (i - 1))
                assert fs._freed_order in (None, sorted(fs.freed))
        assert fs._freed_order == sorted(fs.freed)
    session(image, body)
    fsck(image)
