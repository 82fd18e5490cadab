"""Signal frames a hostile task makes impossible, natively (a chroot of the
same tree) and in a guest: an alternate stack past 2^64 or user space, or
too small for the frame, rsp near 0 or unmapped, a handler without a
restorer, and rt_sigreturn frames with bad xstate.  Linux gives the task
SIGSEGV, which a handler may catch, and the task dies of it if that frame
cannot be written either; the kernel never fails instead."""
from __future__ import annotations

import pytest

from conftest import disk_of, make_tree
from test_escapes import with_bystander
from conftest import guest, native


@pytest.fixture(scope="module")
def stree(tmp_path_factory):
    return make_tree(tmp_path_factory, "stree", ("sec_sigframe",))


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory, stree):
    yield from disk_of(tmp_path_factory, stree)


@pytest.mark.parametrize("ptrace_only", [False, True], ids=["listener", "ptrace-only"])
def test_frames_that_cannot_be_written_or_restored_give_sigsegv(stree, sdisk, ptrace_only):
    want = native(stree, "/bin/sec_sigframe").stdout.splitlines()
    assert "rsp at 0x100, SIGSEGV's frame fails too: signal 11" in want
    assert "sigreturn, xstate_bv past XCR0, caught: exit 3 caught SIGSEGV (SI_KERNEL)" in want
    if ptrace_only:
        got = guest(sdisk, "/bin/sec_sigframe", options=("--ptrace-only",))
        assert got.stdout.splitlines() == want, got.stderr
    else:
        got = with_bystander(sdisk, "/bin/sec_sigframe")
        assert got.stdout.splitlines() == want + ["attacker 0", "bystander alive"], got.stderr
