"""Pipe buffers and their accounting (fs/pipe.py), driven in-process: a
pipe's capacity in pages (Linux's pipe_write merges into the last page
only what fits there, and takes a whole slot for the rest), PIPE_BUF's
atomic writes, F_SETPIPE_SZ's rounding and limits (round_pipe_size,
pipe_set_size, pipe_resize_ring), the guest-wide soft and hard page limits
(alloc_pipe_info, pipe-user-pages-soft/-hard), and what is given back when
the ends close."""
from __future__ import annotations

import asyncio
import errno
import struct
from types import SimpleNamespace

import pytest

from services.kernel.core.errors import Errno
from services.kernel.fs import pipe as pipe_mod
from services.kernel.fs.pipe import PIPE_BUF, Pipe, PipeFile, open_fifo, pipe_fcntl
from services.kernel.fs.vfs import OpenFile
from services.kernel.abi.fcntl import F_GETPIPE_SZ, F_SETPIPE_SZ, O_NONBLOCK, O_RDWR, O_WRONLY
from services.kernel.abi.poll import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from services.kernel.abi.ioctls import FIONREAD

PAGE = 4096
S_IFIFO = 0o010000


@pytest.fixture
def pipes(monkeypatch):
    """Makes pipes (ends nonblocking unless asked); afterwards closes every
    end still open and checks each pipe gave its slots back.  (It takes
    monkeypatch first, so a test's patched count is undone only after.)"""
    made: list[Pipe] = []

    def new(nonblock: bool = True, uid: int = 1000, gid: int = 100):
        p = Pipe(uid, gid)
        made.append(p)
        nb = O_NONBLOCK if nonblock else 0
        return p, PipeFile(p, nb), PipeFile(p, O_WRONLY | nb)
    yield new
    for p in made:
        while p.readers or p.writers:
            p.close_end(p.readers > 0, p.writers > 0)
        assert p.slots == 0


def source(data: bytes):
    """Guest memory holding data, as write_from reads it."""
    return lambda skip, n: bytes(data[skip:skip + n])


def write(end: PipeFile, data: bytes) -> int:
    return asyncio.run(end.write_from(source(data), len(data)))


def read(end: PipeFile, count: int) -> bytes:
    return asyncio.run(end.read(count))


def code(fn, *args) -> int | None:
    try:
        fn(*args)
    except Errno as e:
        return e.code
    return None


def size_of(end: PipeFile) -> int:
    return pipe_fcntl(None, end, F_GETPIPE_SZ, 0)


def set_size(end: PipeFile, size: int) -> int:
    return pipe_fcntl(None, end, F_SETPIPE_SZ, size)


# --- a new pipe -------------------------------------------------------------------------

def test_a_new_pipe_has_16_pages_counted_for_the_guest(pipes):
    before = pipe_mod._slots_in_use
    p, r, w = pipes(uid=1000, gid=100)
    assert p.slots == 16 and size_of(r) == size_of(w) == 65536
    assert pipe_mod._slots_in_use == before + 16
    assert p.inode.mode == S_IFIFO | 0o600 and (p.inode.uid, p.inode.gid) == (1000, 100)
    assert PIPE_BUF == 4096                               # Linux's, on x86


@pytest.mark.parametrize("first", ["reader", "writer"])
def test_the_slots_are_given_back_when_the_last_end_closes(pipes, first):
    p, r, w = pipes()
    write(w, b"x" * 5000)
    after_open = pipe_mod._slots_in_use
    (r if first == "reader" else w).release()
    assert pipe_mod._slots_in_use == after_open and p.slots == 16
    (w if first == "reader" else r).release()
    assert pipe_mod._slots_in_use == after_open - 16
    assert p.slots == 0 and not p.pages and p.nbytes == 0


# --- capacity in pages -----------------------------------------------------------------------

def test_sixteen_page_writes_fill_the_pipe(pipes):
    p, r, w = pipes()
    for _ in range(16):
        assert write(w, b"p" * PAGE) == PAGE
    assert p.full and p.nbytes == 65536
    assert code(write, w, b"p" * PAGE) == errno.EAGAIN
    assert code(write, w, b"1") == errno.EAGAIN          # the last page has no room
    assert not w.poll() & POLLOUT
    read(r, 1)                                            # a page partly read is still a slot
    assert code(write, w, b"1" * PAGE) == errno.EAGAIN
    read(r, PAGE - 1)
    assert w.poll() & (POLLOUT | POLLWRNORM) == POLLOUT | POLLWRNORM
    assert write(w, b"1" * PAGE) == PAGE


def test_small_writes_join_the_last_page_while_they_fit(pipes):
    p, r, w = pipes()
    write(w, b"a" * 96)
    write(w, b"b" * 4000)                                 # 96 + 4000 = one page exactly
    assert len(p.pages) == 1 and p.nbytes == 4096
    write(w, b"c")
    assert len(p.pages) == 2
    assert read(r, 10_000) == b"a" * 96 + b"b" * 4000 + b"c"


def test_a_write_that_does_not_fit_the_last_page_takes_a_new_one(pipes):
    p, r, w = pipes()
    write(w, b"a" * 100)
    write(w, b"b" * 4000)                                 # 4100 > 4096: not split
    assert len(p.pages) == 2 and [len(pg.data) for pg in p.pages] == [100, 4000]


def test_a_big_write_puts_its_odd_bytes_into_the_last_page_first(pipes):
    """pipe_write merges total_len % PAGE_SIZE bytes, the write's first ones,
    into the last page, then page-aligns the rest."""
    p, r, w = pipes()
    write(w, b"a" * 100)
    data = bytes(range(256)) * 32 + b"z" * 50              # 8192 + 50
    assert write(w, data) == len(data)
    assert [len(pg.data) for pg in p.pages] == [150, PAGE, PAGE]
    assert read(r, 20_000) == b"a" * 100 + data


def test_pipe_buf_writes_are_all_or_nothing(pipes):
    p, r, w = pipes()
    for _ in range(15):
        write(w, b"f" * PAGE)
    write(w, b"t" * 100)                                  # 16 slots taken, 3996 bytes free
    assert p.full
    assert code(write, w, b"x" * 4000) == errno.EAGAIN    # would not fit the last page
    assert p.nbytes == 15 * PAGE + 100
    assert write(w, b"y" * 3996) == 3996
    assert code(write, w, b"z") == errno.EAGAIN
    assert p.nbytes == 65536


def test_a_big_nonblocking_write_is_cut_at_what_the_slots_hold(pipes):
    p, r, w = pipes()
    assert write(w, b"q" * 70_000) == 65536
    assert p.full and code(write, w, b"q" * 70_000) == errno.EAGAIN


def test_a_blocking_write_waits_for_room_and_then_ends_whole(pipes):
    p, r, w = pipes(nonblock=False)

    async def go():
        data = bytes(range(256)) * 272                    # 69632: 17 pages
        writer = asyncio.create_task(w.write_from(source(data), len(data)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not writer.done() and p.nbytes == 65536
        got = await r.read(PAGE)
        assert await writer == len(data)
        got += await r.read(1 << 20)
        assert got == data
    asyncio.run(go())


def test_readers_gone_is_epipe_or_the_count_written_before(pipes):
    p, r, w = pipes(nonblock=False)

    async def go():
        writer = asyncio.create_task(w.write_from(source(b"d" * 131072), 131072))
        for _ in range(5):
            await asyncio.sleep(0)
        r.release()
        assert await writer == 65536
        with pytest.raises(Errno) as e:
            await w.write_from(source(b"x"), 1)
        assert e.value.code == errno.EPIPE
    asyncio.run(go())


def test_read_is_eof_without_writers_and_eagain_without_data(pipes):
    p, r, w = pipes()
    assert code(read, r, 10) == errno.EAGAIN
    assert read(r, 0) == b""
    write(w, b"last")
    w.release()
    assert read(r, 100) == b"last"
    assert read(r, 100) == b""


def test_poll_reports_data_room_and_hang_ups(pipes):
    p, r, w = pipes()
    assert r.poll() == 0 and w.poll() == POLLOUT | POLLWRNORM
    write(w, b"x")
    assert r.poll() == POLLIN | POLLRDNORM
    w.release()
    assert r.poll() == POLLIN | POLLRDNORM | POLLHUP
    p2, r2, w2 = pipes()
    r2.release()
    assert w2.poll() == POLLOUT | POLLWRNORM | POLLERR


def test_fionread_is_the_bytes_in_the_pipe(pipes):
    p, r, w = pipes()
    written = {}
    task = SimpleNamespace(mem=SimpleNamespace(write=written.__setitem__))
    write(w, b"a" * 5000)
    read(r, 1000)
    assert r.ioctl(task, FIONREAD, 0x1000) == 0
    assert written == {0x1000: struct.pack("<i", 4000)}
    assert code(r.ioctl, task, 0x5401, 0x1000) == errno.ENOTTY        # TCGETS


# --- F_SETPIPE_SZ ----------------------------------------------------------------------------

@pytest.mark.parametrize("arg, size", [
    (0, 4096), (1, 4096), (4096, 4096), (4097, 8192), (3 * 4096, 16384), (65536, 65536),
    (65537, 131072), (1 << 20, 1 << 20),                  # pipe-max-size itself
    ((1 << 32) | 8192, 8192),                             # an unsigned int argument
])
def test_setpipe_sz_rounds_up_to_a_power_of_two_of_pages(pipes, arg, size):
    p, r, w = pipes()
    assert set_size(w, arg) == size
    assert size_of(r) == size and p.slots == size // PAGE


@pytest.mark.parametrize("arg, err", [
    ((1 << 20) + 1, errno.EPERM),                         # over pipe-max-size
    (1 << 31, errno.EPERM),                               # still rounds: 2 GiB
    ((1 << 31) + 1, errno.EINVAL),                        # round_pipe_size gives 0
    (0xFFFF_FFFF, errno.EINVAL),
])
def test_setpipe_sz_refuses_sizes_linux_refuses(pipes, arg, err):
    p, r, w = pipes()
    before = pipe_mod._slots_in_use
    assert code(set_size, w, arg) == err
    assert p.slots == 16 and pipe_mod._slots_in_use == before


def test_setpipe_sz_below_the_pages_in_use_is_ebusy(pipes):
    p, r, w = pipes()
    for _ in range(3):
        write(w, b"x" * PAGE)
    assert code(set_size, w, 8192) == errno.EBUSY
    assert p.slots == 16
    assert set_size(w, 16384) == 16384
    read(r, PAGE)
    assert set_size(w, 8192) == 8192                      # two pages in use: fits


def test_resizing_moves_the_guest_count(pipes):
    p, r, w = pipes()
    before = pipe_mod._slots_in_use
    set_size(w, 64 * PAGE)
    assert pipe_mod._slots_in_use == before + 48
    set_size(w, PAGE)
    assert pipe_mod._slots_in_use == before - 15


def test_getpipe_and_setpipe_on_anything_but_a_pipe_are_ebadf():
    other = OpenFile(None, O_RDWR)
    assert code(pipe_fcntl, None, other, F_GETPIPE_SZ, 0) == errno.EBADF
    assert code(pipe_fcntl, None, other, F_SETPIPE_SZ, 4096) == errno.EBADF


# --- the guest's page limits ------------------------------------------------------------------

def test_past_the_soft_limit_a_new_pipe_gets_two_pages(pipes, monkeypatch):
    soft = pipe_mod.PIPE_PAGES_SOFT
    monkeypatch.setattr(pipe_mod, "_slots_in_use", soft - 16)
    p1, _, _ = pipes()                                    # reaches the limit: not over it
    assert p1.slots == 16 and pipe_mod._slots_in_use == soft
    p2, r2, _ = pipes()
    assert p2.slots == 2 and size_of(r2) == 8192
    assert pipe_mod._slots_in_use == soft + 2


def test_growing_past_the_soft_limit_is_eperm_and_shrinking_always_works(pipes, monkeypatch):
    soft = pipe_mod.PIPE_PAGES_SOFT
    monkeypatch.setattr(pipe_mod, "_slots_in_use", soft - 16 - 48)
    p, r, w = pipes()
    assert set_size(w, 64 * PAGE) == 64 * PAGE            # to the limit exactly
    assert pipe_mod._slots_in_use == soft
    assert code(set_size, w, 128 * PAGE) == errno.EPERM
    assert p.slots == 64 and pipe_mod._slots_in_use == soft
    monkeypatch.setattr(pipe_mod, "_slots_in_use", soft + 1000)      # over it already
    assert set_size(w, 64 * PAGE) == 64 * PAGE            # the same size is no growth
    assert set_size(w, 4 * PAGE) == 4 * PAGE
    assert pipe_mod._slots_in_use == soft + 1000 - 60


def test_past_the_hard_limit_a_new_pipe_is_enfile(pipes, monkeypatch):
    hard = pipe_mod.PIPE_PAGES_HARD
    monkeypatch.setattr(pipe_mod, "_slots_in_use", hard - 2)
    p, _, _ = pipes()                                      # two pages: reaches it
    assert p.slots == 2 and pipe_mod._slots_in_use == hard
    with pytest.raises(Errno) as e:
        Pipe()
    assert e.value.code == errno.ENFILE
    assert pipe_mod._slots_in_use == hard                  # nothing kept of the refused one


# --- FIFOs ------------------------------------------------------------------------------------

def test_a_fifo_shares_one_pipe_until_its_last_opener_closes():
    before = pipe_mod._slots_in_use
    inode = SimpleNamespace(ino=77, uid=5, gid=6)
    loc = SimpleNamespace(mount=SimpleNamespace(fs=object()), inode=inode)

    async def go():
        a = await open_fifo(loc, O_RDWR)
        b = await open_fifo(loc, O_RDWR | O_NONBLOCK)
        assert a.pipe is b.pipe and a.pipe.slots == 16
        assert pipe_mod._slots_in_use == before + 16
        await a.write_from(source(b"kept"), 4)
        a.release()
        assert await b.read(10) == b"kept"
        await b.write_from(source(b"lost"), 4)
        b.release()
        assert pipe_mod._slots_in_use == before
        c = await open_fifo(loc, O_RDWR | O_NONBLOCK)
        assert c.pipe is not a.pipe                        # a new pipe, without the old data
        with pytest.raises(Errno):
            await c.read(10)
        c.release()
        assert pipe_mod._slots_in_use == before
    asyncio.run(go())
