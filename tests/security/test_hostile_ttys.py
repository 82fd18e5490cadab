"""Hostile pty use (tests/progs/sec_tty.c): floods of typed input, of
output and of echoes with nobody reading stop (EAGAIN) at a bound; a
canonical line with no end keeps 4095 bytes whatever is typed; bad
pointers are EFAULT in every tty ioctl that takes one (ENOTTY first where
Linux checks the terminal first); and ptys run out with ENOSPC at the
guest's pty_max, 4096, their numbers free again once closed.  The same
output natively and in a guest but for the count of ptys, which natively
is the host's (a new devpts instance shares the host's limit, less its
reserve, with every pty the host has open)."""
from __future__ import annotations

import pytest

from conftest import disk_of, guest, make_tree, native_with_ptys

EXHAUST = "ptys opened:"


@pytest.fixture(scope="module")
def stree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "sec-ttytree", ("sec_tty",))
    (root / "dev").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory, stree):
    yield from disk_of(tmp_path_factory, stree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_hostile_ptys_stay_bounded_and_get_linux_answers(stree, sdisk, options):
    want = native_with_ptys(stree, "/bin/sec_tty").stdout.splitlines()
    assert want[-1] == "-- exit 0", want
    got = guest(sdisk, "/bin/sec_tty", options=options)
    lines = got.stdout.splitlines()
    assert "ptys opened: 4096, then ENOSPC" in lines, got.stdout
    assert [x for x in lines if not x.startswith(EXHAUST)] == \
        [x for x in want if not x.startswith(EXHAUST)], got.stderr
