"""Resource limits: tests/progs/rlimits.c sets limits in one process and
shows them in others (a fork inherits them, exec keeps them, a setrlimit
changes no other process, threads share their process's), checks what
they bound (fds, exec's argument space, RLIMIT_NPROC) in the caller only,
and prlimit64 on other processes (who may, and the errors); its output
must be the same natively and in a guest."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, make_tree
from conftest import guest, native


@pytest.fixture(scope="module")
def rtree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory, "rtree", ["rlimits"], "-pthread")


@pytest.fixture(scope="module")
def rdisk(tmp_path_factory, rtree) -> Path:
    yield from disk_of(tmp_path_factory, rtree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_limits_are_each_process_own_natively_and_in_a_guest(rtree, rdisk, options):
    want = native(rtree, "/bin/rlimits")
    assert want.returncode == 0 and want.stdout.endswith("-- exit 0\n"), want.stdout
    got = guest(rdisk, "/bin/rlimits", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
