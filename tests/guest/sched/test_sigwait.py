"""sigtimedwait and friends, and blocked signals whose action is to do
nothing (kept pending until unblocked, taken, or set to SIG_IGN), as Linux:
the same program natively in a chroot and in a guest."""
from __future__ import annotations

import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def swtree(tmp_path_factory):
    return make_tree(tmp_path_factory, "swtree", ["sigwait"], "-pthread")


@pytest.fixture(scope="module")
def swdisk(tmp_path_factory, swtree):
    yield from disk_of(tmp_path_factory, swtree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_sigtimedwait_as_linux(swtree, swdisk, options):
    want = native(swtree, "/bin/sigwait")
    assert want.returncode == 0 and "took SIGUSR2" in want.stdout, want.stdout
    got = guest(swdisk, "/bin/sigwait", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
