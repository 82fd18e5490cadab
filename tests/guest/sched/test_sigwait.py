"""sigtimedwait and friends, signalfd, and blocked signals whose action is
to do nothing (kept pending until unblocked, taken, or set to SIG_IGN), as
Linux: the same program natively in a chroot and in a guest."""
from __future__ import annotations

import pytest

from conftest import build, disk_of, guest, make_tree, native, native_with_ptys


@pytest.fixture(scope="module")
def swtree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "swtree", ["sigwait"], "-pthread")
    build("signalfd.c", root / "bin/signalfd", "-static")
    return root


@pytest.fixture(scope="module")
def swdisk(tmp_path_factory, swtree):
    yield from disk_of(tmp_path_factory, swtree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_sigtimedwait_as_linux(swtree, swdisk, options):
    want = native(swtree, "/bin/sigwait")
    assert want.returncode == 0 and "took SIGUSR2" in want.stdout, want.stdout
    got = guest(swdisk, "/bin/sigwait", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_signalfd_as_linux(swtree, swdisk, options):
    """Reads, poll and epoll, a blocked read woken, a new mask, the errors;
    natively with a /proc for the fd's link."""
    want = native_with_ptys(swtree, "/bin/signalfd")
    assert want.returncode == 0 and "int 42 ptr 42" in want.stdout, want.stdout
    got = guest(swdisk, "/bin/signalfd", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
