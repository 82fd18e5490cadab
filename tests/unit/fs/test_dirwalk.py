"""Directory walks in bounded steps (issue 20): ext2, tmpfs and /proc list a
directory from positions that stay with their entries, and every walk over
a big directory lets the loop have a turn every DIR_STEP entries or so,
while a small one takes none; changes stay whole around those turns.
Driven in this process, ext2 over mke2fs images that e2fsck judges after."""
from __future__ import annotations

import asyncio
import random
import stat
from types import SimpleNamespace

import pytest

from ext2_images import ImageDevice, dir_entries, fsck, make_image
from services.kernel.core.errors import Errno
from services.kernel.fs import vfs
from services.kernel.fs.files import FdTable
from services.kernel.fs.inode import FileSystem
from services.kernel.fsimpl.ext2 import Ext2
from services.kernel.fsimpl.procfs import ProcFs
from services.kernel.fsimpl.tmpfs import Positions, Tmpfs
from services.kernel.sched.task import CURRENT
from services.kernel.abi.fcntl import O_DIRECTORY

REG = stat.S_IFREG | 0o644


class Turns:
    """How many turns the loop had while the body ran: a task that only
    yields counts them."""

    def __init__(self):
        self.count = 0
        self.task = None

    async def __aenter__(self):
        async def tick():
            while True:
                await asyncio.sleep(0)
                self.count += 1
        self.task = asyncio.get_running_loop().create_task(tick())
        await asyncio.sleep(0)
        self.count = 0
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()


def open_dir(inode) -> vfs.InodeFile:
    mount = vfs.Mount(FileSystem(), 0, root=inode)
    return vfs.InodeFile(vfs.Location(mount, inode, b"/"), O_DIRECTORY)


def records(data: bytes) -> list[tuple[bytes, int]]:
    """(name, d_off) of each linux_dirent64 in data."""
    out, at = [], 0
    while at < len(data):
        d_off = int.from_bytes(data[at + 8:at + 16], "little", signed=True)
        reclen = int.from_bytes(data[at + 16:at + 18], "little")
        out.append((data[at + 19:at + reclen].rstrip(b"\0"), d_off))
        at += reclen
    return out


async def list_all(inode, size: int = 1 << 20) -> list[bytes]:
    f = open_dir(inode)
    names = []
    while batch := records(await f.getdents(size)):
        names += [name for name, _ in batch]
    return names


class Ext2Run:
    """An image (1 KiB blocks) mounted, and mounted again (remount: what a
    new kernel finds, no directory read yet)."""

    def __init__(self, img):
        self.dev = ImageDevice(img)
        self.fs = None

    async def remount(self) -> Ext2:
        if self.fs is not None:
            await self.fs.unmount()
        self.fs = await Ext2.mount(self.dev)
        return self.fs


def ext2_run(tmp_path, body):
    """body(run) on a fresh image, unmounted after; then e2fsck."""
    img = make_image(tmp_path / "fs.img", 1024)

    async def go():
        run = Ext2Run(img)
        try:
            await run.remount()
            await body(run)
            await run.fs.unmount()
        finally:
            run.dev.close()
    asyncio.run(go())
    fsck(img)


async def ext2_dir(fs, name: bytes, n: int):
    """A directory of n names: a file and n - 1 links to it."""
    d = await fs.root.mkdir(name, 0o755, 0, 0)
    target = await d.create(b"target", REG, 0, 0)
    for i in range(1, n):
        await d.link(b"%05d" % i, target)
    return d


# --- positions that stay -------------------------------------------------------------

async def list_while_changing(d, make, remove) -> None:
    """A listing, a small buffer at a time, while entries go and come: every
    entry that stays is listed once, none that went before it was reached,
    and d_off goes on where the entry it follows was."""
    before = set(await list_all(d))
    f = open_dir(d)
    reached = [name for name, _ in records(await f.getdents(2048))]
    assert 0 < len(reached) < len(before) // 2
    names = sorted(before - {b".", b"..", b"target"})
    gone = set(random.Random(1).sample(names, len(names) // 4))
    for name in gone:
        await remove(name)
    for i in range(200):
        await make(b"new-%d" % i)
    rest = []
    while batch := records(await f.getdents(2048)):
        rest += [name for name, _ in batch]
    seen = reached + rest
    assert len(seen) == len(set(seen)), "an entry listed twice"
    assert before - gone <= set(seen), "an entry that stayed missed"
    assert not (gone - set(reached)) & set(rest), "an entry listed after it went"
    # seekdir to a d_off it gave: the listing goes on with the entry after
    f.pos = 0
    first = records(await f.getdents(4096))
    f.pos = first[5][1]
    assert records(await f.getdents(4096))[0][0] == first[6][0]


def test_an_ext2_listing_goes_on_from_where_it_stopped(tmp_path):
    async def body(run):
        d = await ext2_dir(run.fs, b"d", 1000)
        target = await d.lookup(b"target")
        await list_while_changing(d, lambda name: d.link(name, target), d.unlink)
    ext2_run(tmp_path, body)


def test_a_tmpfs_listing_goes_on_from_where_it_stopped():
    async def body():
        fs = Tmpfs()
        d = await fs.root.mkdir(b"d", 0o755, 0, 0)
        target = await d.create(b"target", REG, 0, 0)
        for i in range(1, 1000):
            await d.link(b"%05d" % i, target)
        await list_while_changing(d, lambda name: d.link(name, target), d.unlink)
    asyncio.run(body())


def test_tmpfs_rename_exchange_keeps_both_places_in_a_listing():
    async def body():
        fs = Tmpfs()
        a = await fs.root.mkdir(b"a", 0o755, 0, 0)
        b = await fs.root.mkdir(b"b", 0o755, 0, 0)
        sub = await a.mkdir(b"sub", 0o755, 0, 0)
        for i in range(10):
            await a.create(b"f%d" % i, REG, 0, 0)
        other = await b.create(b"other", REG, 0, 0)
        order = await list_all(a)
        await a.rename(b"sub", b, b"other", 2)              # RENAME_EXCHANGE
        assert await list_all(a) == order
        assert await a.lookup(b"sub") is other and await b.lookup(b"other") is sub
        assert sub.parent is b and (a.nlink, b.nlink) == (2, 3)
    asyncio.run(body())


def test_positions_agree_with_a_plain_list():
    rng = random.Random(7)
    p, model, fresh = Positions(), [], iter(b"n%d" % i for i in range(10 ** 6))
    for _ in range(20000):
        if model and rng.random() < 0.45:
            name = rng.choice(model)[1]
            p.remove(name)
            model = [(at, n) for at, n in model if n != name]
        else:
            name = next(fresh)
            p.add(name)
            model.append((p.of[name], name))
        if rng.random() < 0.05:
            at = rng.randrange(0, p.next + 2)
            want = [(a, n) for a, n in model if a >= at][:300]
            assert list(zip(*p.after(at, 300))) == want


# --- steps ----------------------------------------------------------------------------

def test_ext2_walks_over_a_big_directory_take_steps_and_small_ones_none(tmp_path):
    async def body(run):
        await ext2_dir(run.fs, b"small", 5)
        await ext2_dir(run.fs, b"big", 3000)
        fs = await run.remount()
        small, big = await fs.root.lookup(b"small"), await fs.root.lookup(b"big")
        turns = {}
        for name, d in ((b"small", small), (b"big", big)):
            async with Turns() as t:
                listing = await list_all(d)
            turns["listing", name] = t.count
            async with Turns() as t:
                assert await d.lookup(b"missing") is None
            turns["first lookup", name] = t.count
            target = await d.lookup(b"target")
            async with Turns() as t:
                await d.create(b"new", REG, 0, 0)
                await d.unlink(b"new")
                await d.rename(b"00001", d, b"moved")
                await d.link(b"00001", target)
                with pytest.raises(Errno):
                    await fs.root.rmdir(name)
            turns["changes", name] = t.count
            assert len(listing) == len(set(listing)) == {b"small": 7, b"big": 3002}[name]
        assert turns == {("listing", b"small"): 0, ("first lookup", b"small"): 0,
                         ("changes", b"small"): 0, ("listing", b"big"): turns["listing", b"big"],
                         ("first lookup", b"big"): turns["first lookup", b"big"],
                         ("changes", b"big"): 0}
        # 3,002 entries of 16 bytes: 47 blocks of 1 KiB
        assert 8 <= turns["listing", b"big"] <= 20 and 8 <= turns["first lookup", b"big"] <= 20
    ext2_run(tmp_path, body)


def test_tmpfs_and_proc_listings_take_steps_and_small_ones_none():
    async def body():
        fs = Tmpfs()
        small = await fs.root.mkdir(b"small", 0o755, 0, 0)
        big = await fs.root.mkdir(b"big", 0o755, 0, 0)
        for i in range(3000):
            await big.create(b"%05d" % i, REG, 0, 0)
        for i in range(5):
            await small.create(b"%05d" % i, REG, 0, 0)
        async with Turns() as t:
            assert len(await list_all(small)) == 7
        assert t.count == 0
        async with Turns() as t:
            assert len(await list_all(big)) == 3002
        assert t.count == 3000 // vfs.DIR_STEP
    asyncio.run(body())


# --- changes stay whole -----------------------------------------------------------------

def test_a_listing_cut_short_by_a_signal_returns_what_it_has(tmp_path):
    """As Linux's filldir stops at a signal: the entries so far, the
    position after them; one that has none yet (here, waiting for the one
    before it on the same open directory) ends and leaves the position."""
    async def body(run):
        big = await ext2_dir(run.fs, b"big", 3000)
        f = open_dir(big)
        call = asyncio.ensure_future(f.getdents(1 << 20))
        waiting = asyncio.ensure_future(f.getdents(1 << 20))
        for _ in range(3):
            await asyncio.sleep(0)
        waiting.cancel()
        call.cancel()
        got = records(await call)
        assert 0 < len(got) < 3002 and f.pos == got[-1][1]
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert f.pos == got[-1][1]
        rest = [name for name, _ in records(await f.getdents(1 << 20))]
        assert sorted([name for name, _ in got] + rest) == sorted(await list_all(big))
    ext2_run(tmp_path, body)


def test_changes_cut_short_at_a_step_leave_nothing_half_done(tmp_path):
    """A create, link or rename into a big directory whose names are not
    read yet, cancelled at each of its steps in turn, leaves the
    directory as it was (e2fsck agrees), and the next one works."""
    async def body(run):
        await ext2_dir(run.fs, b"big", 3000)
        other = await run.fs.root.mkdir(b"other", 0o755, 0, 0)
        await other.create(b"moving", REG, 0, 0)
        calls = [lambda: big.create(b"new", REG, 0, 0), lambda: big.mkdir(b"newdir", 0o755, 0, 0),
                 lambda: big.symlink(b"sym", b"x" * 100, 0, 0), lambda: big.link(b"link", target),
                 lambda: other.rename(b"moving", big, b"moved")]
        for make in calls:
            for steps in range(0, 30, 3):
                fs = await run.remount()
                big, other = await fs.root.lookup(b"big"), await fs.root.lookup(b"other")
                target = await fs.inode((await dir_entries(big))[2][1])   # "target", first made
                await list_all(big)
                call = asyncio.ensure_future(make())
                for _ in range(steps):
                    await asyncio.sleep(0)
                call.cancel()
                try:
                    await call
                    break               # done before the cancel came
                except asyncio.CancelledError:
                    assert fs.lock.locked() is False
            else:
                raise AssertionError("never done")
        fs = await run.remount()
        big, other = await fs.root.lookup(b"big"), await fs.root.lookup(b"other")
        assert {b"new", b"newdir", b"sym", b"link", b"moved"} <= set(await list_all(big))
        assert b"moving" not in await list_all(other)
    ext2_run(tmp_path, body)


def test_concurrent_changes_and_listings_of_a_big_directory(tmp_path):
    async def body(run):
        await ext2_dir(run.fs, b"big", 2000)
        await run.fs.root.mkdir(b"sub", 0o755, 0, 0)
        fs = await run.remount()
        big, sub = await fs.root.lookup(b"big"), await fs.root.lookup(b"sub")

        async def churn(k):
            for i in range(40):
                await big.create(b"c%d-%d" % (k, i), REG, 0, 0)
                if i % 2:
                    await big.unlink(b"c%d-%d" % (k, i - 1))
                if i % 5 == 0:
                    await big.rename(b"%05d" % (1 + k * 50 + i), sub, b"r%d-%d" % (k, i))

        listings = [list_all(big, 4096) for _ in range(3)]
        results = await asyncio.gather(*(churn(k) for k in range(4)), *listings)
        for names in results[4:]:
            assert len(names) == len(set(names))
        final = set(await list_all(big))
        assert {b"c%d-%d" % (k, i) for k in range(4) for i in range(1, 40, 2)} <= final
        assert not any(b"c%d-%d" % (k, i) in final for k in range(4) for i in range(0, 40, 2))
        assert len(final) == 2 + 2000 + 80 - 4 * 8
        assert (await big.lookup(b"target")).nlink == 2000     # moved names are links still
    ext2_run(tmp_path, body)


# --- /proc ----------------------------------------------------------------------------------

def test_proc_fd_listing_goes_by_fd_number_and_looks_one_up_directly():
    table = FdTable()
    table.limit = 1 << 20
    files = [vfs.OpenFile(None, 0) for _ in range(3)]
    for i in range(3000):
        table.install(files[i % 3])
    task = SimpleNamespace(tgid=1, tid=1, files=table, cred=SimpleNamespace(euid=0, egid=0),
                           process=SimpleNamespace(zombie=False), call=None)
    proc = SimpleNamespace(pid=1, threads={1: task}, dumpable=1)
    fs = ProcFs(SimpleNamespace(processes={1: proc}))

    async def body():
        token = CURRENT.set(task)
        closed = set()
        try:
            fd_dir = await (await fs.root.lookup(b"1")).lookup(b"fd")
            assert (await fd_dir.lookup(b"2999")) is not None
            assert await fd_dir.lookup(b"3000") is None and await fd_dir.lookup(b"01") is None
            f = open_dir(fd_dir)
            seen = [name for name, _ in records(await f.getdents(4096))]
            for fd in range(0, 3000, 7):
                if str(fd).encode() not in seen:
                    table.close(fd)
                    closed.add(fd)
            table.install(files[0], lowest=5000)
            async with Turns() as t:
                while batch := records(await f.getdents(1 << 20)):
                    seen += [name for name, _ in batch]
            assert t.count >= 2500 // vfs.DIR_STEP - 1
            assert seen[:2] == [b".", b".."] and seen[-1] == b"5000"
            numbers = [int(n) for n in seen[2:]]
            assert numbers == sorted(set(numbers)), "listed out of order, or twice"
            assert set(numbers) == set(table.fds) and not closed & set(numbers)
        finally:
            CURRENT.reset(token)
            table.close_all()
    asyncio.run(body())


def test_fds_in_use_from_the_bitmap_agree_with_the_table():
    rng = random.Random(3)
    table = FdTable()
    table.limit = 1 << 20
    f = vfs.OpenFile(None, 0)
    for _ in range(3000):
        table.install(f, lowest=rng.randrange(0, 20000))
    for fd in rng.sample(sorted(table.fds), 1000):
        table.close(fd)
    used = sorted(table.fds)
    for start in [0, 1, 63, 64, 65, *rng.sample(range(21000), 50)]:
        assert table.in_use(start, 100) == [fd for fd in used if fd >= start][:100]
    table.close_all()
