"""Process file descriptors: tests/progs/pidfd.c opens pidfds (and their
errors), fstats and readlinks them, polls, selects and epolls them across
a child's end and reaping, waits through them (waitid P_PIDFD: exit,
stop, continue, WNOHANG, non-blocking), signals through them (siginfo,
scopes, forged codes, a user against root), gets them from clone and
clone3 (CLONE_PIDFD) and takes a child's pipe with pidfd_getfd; its
output must be the same natively (Linux 6.18) and in a guest."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, make_tree
from conftest import guest, native_private_mounts as native


@pytest.fixture(scope="module")
def ptree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory, "ptree", ["pidfd"], "-pthread")


@pytest.fixture(scope="module")
def pdisk(tmp_path_factory, ptree) -> Path:
    yield from disk_of(tmp_path_factory, ptree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_pidfds_behave_as_linux_natively_and_in_a_guest(ptree, pdisk, options):
    want = native(ptree, "/bin/pidfd")
    assert want.returncode == 0 and want.stdout.endswith("-- exit 0\n"), want.stdout
    assert "readlink anon_inode:[pidfd]" in want.stdout
    got = guest(pdisk, "/bin/pidfd", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
