"""The fd table (fs/files.py) in-process: the lowest free fd as Linux's
alloc_fd finds it, the RLIMIT_NOFILE bound, dup2/dup3's replacement, close,
close-on-exec, close_range, fork's copy, and the references that release
an open file on its last close."""
from __future__ import annotations

import errno
import random

import pytest

from services.kernel.core.errors import Errno
from services.kernel.fs import files as files_mod
from services.kernel.fs.files import FdTable, c_int, hold, put


class File:
    """An open file that counts its releases (no inode: nothing to unlock
    or tell inotify at a close)."""

    loc = None
    flags = 0

    def __init__(self, name: str = "f"):
        self.name, self.refs, self.released = name, 0, 0

    def release(self) -> None:
        self.released += 1

    def __repr__(self) -> str:
        return f"File({self.name})"


@pytest.fixture
def table():
    """A table that is emptied afterwards, so that the guest-wide count of
    fds is as it was."""
    before = files_mod._fds_in_use
    t = FdTable()
    yield t
    t.close_all()
    assert files_mod._fds_in_use == before


def code(fn, *args, **kw) -> int | None:
    try:
        fn(*args, **kw)
    except Errno as e:
        return e.code
    return None


# --- which fd ----------------------------------------------------------------------------

def test_install_takes_the_lowest_free_fd(table):
    assert [table.install(File()) for _ in range(4)] == [0, 1, 2, 3]
    table.close(1)
    table.close(2)
    assert table.install(File()) == 1
    assert table.install(File()) == 2
    assert table.install(File()) == 4


def test_install_from_a_lowest_fd(table):
    """F_DUPFD's rule: the lowest free fd at or above the argument."""
    for _ in range(3):
        table.install(File())
    assert table.install(File(), lowest=10) == 10
    assert table.install(File(), lowest=10) == 11
    assert table.install(File(), lowest=1) == 3
    assert table.install(File(), lowest=200) == 200
    assert table.install(File()) == 4


def test_the_lowest_free_fd_across_full_words(table):
    for _ in range(200):
        table.install(File())
    for fd in (150, 64, 199, 63):
        table.close(fd)
    assert table.lowest_free(0) == 63
    assert table.lowest_free(64) == 64
    assert table.lowest_free(65) == 150
    assert table.lowest_free(151) == 199
    assert table.lowest_free(200) == 200
    assert [table.install(File()) for _ in range(5)] == [63, 64, 150, 199, 200]


def test_the_lowest_free_fd_agrees_with_a_plain_search(table):
    rng = random.Random(14)
    used: set[int] = set()
    for _ in range(3000):
        if used and rng.random() < 0.45:
            fd = rng.choice(sorted(used))
            table.close(fd)
            used.remove(fd)
        else:
            lowest = rng.choice([0, 0, rng.randrange(300)])
            want = next(fd for fd in range(lowest, 10_000) if fd not in used)
            assert table.install(File(), lowest=lowest) == want
            used.add(want)
    assert set(table.fds) == used


# --- RLIMIT_NOFILE ----------------------------------------------------------------------------

def test_past_the_limit_install_is_emfile(table):
    table.limit = 3
    assert [table.install(File()) for _ in range(3)] == [0, 1, 2]
    f = File()
    assert code(table.install, f) == errno.EMFILE
    assert f.refs == 0                                   # nothing held
    table.close(1)
    assert table.install(File()) == 1
    assert code(table.install, File(), lowest=3) == errno.EMFILE
    table.limit = 10
    assert code(table.install, File(), lowest=9) is None
    assert code(table.install, File(), lowest=10) == errno.EMFILE


def test_dup2_past_the_limit_or_negative_is_ebadf(table):
    table.limit = 8
    f = File()
    assert code(table.dup_to, f, 8, False) == errno.EBADF
    assert code(table.dup_to, f, -1, False) == errno.EBADF
    assert table.dup_to(f, 7, False) == 7 and f.refs == 1


def test_a_bad_fd_is_ebadf(table):
    assert code(table.get, 0) == errno.EBADF
    assert code(table.close, 0) == errno.EBADF
    assert code(table.cloexec, 5) == errno.EBADF
    assert code(table.set_cloexec, 5, True) == errno.EBADF
    fd = table.install(File())
    table.close(fd)
    assert code(table.close, fd) == errno.EBADF


# --- references ------------------------------------------------------------------------------

def test_the_last_close_releases_the_file(table):
    f = File()
    a = table.install(f)
    b = table.install(f)                                 # dup
    assert f.refs == 2 and table.get(a) is table.get(b) is f
    table.close(a)
    assert (f.refs, f.released) == (1, 0)
    table.close(b)
    assert (f.refs, f.released) == (0, 1)


def test_hold_and_put_count_references():
    f = File()
    assert hold(hold(f)) is f and f.refs == 2
    put(f)
    assert f.released == 0
    put(f)
    assert f.released == 1


def test_dup2_over_an_open_fd_closes_what_was_there(table):
    old, new = File("old"), File("new")
    fd = table.install(old)
    before = files_mod._fds_in_use
    assert table.dup_to(new, fd, True) == fd
    assert table.get(fd) is new and table.cloexec(fd)
    assert (old.refs, old.released) == (0, 1)
    assert new.refs == 1
    assert files_mod._fds_in_use == before               # one fd replaced another


def test_dup2_onto_a_free_fd_takes_it(table):
    f = File()
    table.install(f)
    before = files_mod._fds_in_use
    assert table.dup_to(f, 40, False) == 40
    assert f.refs == 2 and not table.cloexec(40)
    assert files_mod._fds_in_use == before + 1
    assert table.install(File(), lowest=40) == 41       # 40 is marked in use
    assert table.install(File()) == 1


def test_dup2_of_a_file_onto_its_own_fd_releases_nothing(table):
    f = File()
    fd = table.install(f, cloexec=True)
    table.dup_to(f, fd, False)
    assert (f.refs, f.released) == (1, 0)
    assert not table.cloexec(fd)                         # dup3's flag is the fd's now


# --- close-on-exec -------------------------------------------------------------------------

def test_close_on_exec_closes_only_the_marked_fds(table):
    keep, drop, shared = File("keep"), File("drop"), File("shared")
    a = table.install(keep)
    b = table.install(drop, cloexec=True)
    c = table.install(shared)
    d = table.install(shared, cloexec=True)
    table.set_cloexec(a, True)
    table.set_cloexec(a, False)
    assert table.cloexec(b) and table.cloexec(d) and not table.cloexec(c)
    table.close_on_exec()
    assert sorted(table.fds) == [a, c]
    assert drop.released == 1
    assert (shared.refs, shared.released) == (1, 0)
    assert table.install(File()) == b                   # the freed fds are free again


# --- close_range ------------------------------------------------------------------------

@pytest.mark.parametrize("first, last", [(3, 6), (3, 2 ** 31 - 1), (0, 2 ** 32 - 1)])
def test_close_range_closes_the_inclusive_range(table, first, last):
    files = [File(str(i)) for i in range(10)]
    for f in files:
        table.install(f)
    table.install(File("far"), lowest=1000)
    table.close_range(first, last)
    expect = [fd for fd in list(range(10)) + [1000] if not first <= fd <= last]
    assert sorted(table.fds) == expect
    assert [f.released for f in files] == [int(first <= i <= last) for i in range(10)]


def test_close_range_with_cloexec_marks_instead(table):
    for i in range(6):
        table.install(File(str(i)))
    table.close_range(2, 4, cloexec=True)
    assert sorted(table.fds) == list(range(6))
    assert [table.cloexec(fd) for fd in range(6)] == [False, False, True, True, True, False]
    table.close_on_exec()
    assert sorted(table.fds) == [0, 1, 5]


def test_close_range_skips_fds_that_are_not_open(table):
    table.install(File(), lowest=3)
    table.install(File(), lowest=7)
    table.close_range(0, 5)
    assert sorted(table.fds) == [7]


# --- fork's copy -------------------------------------------------------------------------

def test_a_copied_table_shares_the_open_files(table):
    f, g = File("f"), File("g")
    table.limit = 50
    table.install(f)
    table.install(g, cloexec=True, lowest=5)
    child = table.copy()
    try:
        assert child.fds == table.fds and child.limit == 50
        assert (f.refs, g.refs) == (2, 2)
        child.close(0)
        assert f.released == 0                          # the parent still has it
        assert child.install(File()) == 0
        assert table.install(File()) == 1               # each table its own bitmap
        child.close_on_exec()
        assert 5 not in child.fds and 5 in table.fds
    finally:
        child.close_all()
    assert (f.refs, g.refs) == (1, 1)


# --- the guest-wide bound ---------------------------------------------------------------------

def test_fds_past_the_guest_wide_bound_are_enfile_and_a_copy_enomem(table, monkeypatch):
    table.install(File())
    monkeypatch.setattr(files_mod, "GUEST_FDS", files_mod._fds_in_use + 2)
    table.install(File())
    table.install(File())
    assert code(table.install, File()) == errno.ENFILE
    assert code(table.dup_to, File(), 50, False) == errno.ENFILE
    assert code(table.copy) == errno.ENOMEM
    table.close(0)
    assert table.install(File()) == 0


# --- int arguments --------------------------------------------------------------------------

def test_c_int_reads_the_low_32_bits_signed():
    assert c_int(5) == 5
    assert c_int(0xFFFF_FFFF) == -1
    assert c_int(0x8000_0000) == -(1 << 31)
    assert c_int(0x7FFF_FFFF) == (1 << 31) - 1
    assert c_int(0x1_0000_0003) == 3
    assert c_int(-100 & (1 << 64) - 1) == -100          # AT_FDCWD passed in a register
