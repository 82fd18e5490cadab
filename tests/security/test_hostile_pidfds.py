"""Hostile pidfd use, natively (a chroot of the same tree) and in a guest
(tests/progs/sec_pidfd.c): bad pointers are EFAULT and make nothing (no
child, no fd), a siginfo of an unknown layout with bytes past its fields
is E2BIG; pidfd_getfd needs ptrace's attach rights (another uid, a process
that is not dumpable or holds capabilities the caller lacks: EPERM); a
reaped process's pidfd is ESRCH for everything (ECHILD for waitid) and
hung up for poll; fds that are no guest's (the scratch's 15) are EBADF;
pidfds stop at RLIMIT_NOFILE (EMFILE, and clone3's CLONE_PIDFD makes no
child then).  The same output both ways, and the guest's other processes
run on."""
from __future__ import annotations

import pytest

from conftest import disk_of, make_tree
from test_escapes import with_bystander
from conftest import guest, native


@pytest.fixture(scope="module")
def ptree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "sec-ptree", ("sec_pidfd",))
    root.chmod(0o755)          # mktemp's 0700 would stop every user at /
    return root


@pytest.fixture(scope="module")
def pdisk(tmp_path_factory, ptree):
    yield from disk_of(tmp_path_factory, ptree)


@pytest.mark.parametrize("ptrace_only", [False, True], ids=["listener", "ptrace-only"])
def test_hostile_pidfds_get_linux_answers(ptree, pdisk, ptrace_only):
    want = native(ptree, "/bin/sec_pidfd").stdout.splitlines()
    assert want[-1] == "-- exit 0", want
    assert "as 1000: of uid 2000's                               EPERM" in want
    if ptrace_only:
        got = guest(pdisk, "/bin/sec_pidfd", options=("--ptrace-only",))
        assert got.stdout.splitlines() == want, got.stderr
    else:
        got = with_bystander(pdisk, "/bin/sec_pidfd")
        assert got.stdout.splitlines() == want + ["attacker 0", "bystander alive"], got.stderr
