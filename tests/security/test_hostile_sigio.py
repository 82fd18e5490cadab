"""A file's owner and its signals in hostile hands: an owner named by
another uid is signalled only if its namer could have signalled it (Linux's
sigio_perm, with the ids saved when it was named), bad pointers are EFAULT
and wide arguments are read as ints, natively and in a guest alike; a flood
of dnotify watches ends in ENOMEM at the guest's bound, and closing the
files gives the watches back."""
from __future__ import annotations

import pytest

from conftest import disk_of, guest, make_tree, native
from services.kernel.fs.dnotify import DNOTIFY_WATCHES


@pytest.fixture(scope="module")
def stree(tmp_path_factory):
    return make_tree(tmp_path_factory, "sigiotree", ("sec_sigio",))


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory, stree):
    yield from disk_of(tmp_path_factory, stree)


EXPECTED = {
    "uid": ("named by uid -1: SIGIO came", "named by uid 1000: SIGIO did not come",
            "unprivileged owner: SIGIO came", "dnotify named by uid 1000: SIGIO did not come"),
    "pointers": ("setown_ex kernel pointer = -1 EFAULT", "getown_ex read-only = -1 EFAULT",
                 "FIOASYNC kernel pointer = -1 EFAULT", "getsig = 10")}


@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_owners_named_by_others_and_bad_arguments_as_linux(stree, sdisk, section):
    want = native(stree, "/bin/sec_sigio", "/tmp", section)
    assert want.returncode == 0, want.stdout
    got = guest(sdisk, "/bin/sec_sigio", "/tmp", section)
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout == want.stdout
    for line in EXPECTED[section]:
        assert line in want.stdout


def test_a_flood_of_dnotify_watches_is_bounded(sdisk):
    got = guest(sdisk, "/bin/sec_sigio", "/tmp", "flood")
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"watches: {DNOTIFY_WATCHES} then ENOMEM" in got.stdout
    assert "closed, a watch again = 0" in got.stdout
