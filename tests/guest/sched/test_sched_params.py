"""Nice values and scheduling policies (getpriority/setpriority and the
sched_* parameter calls) answer as Linux does, with its permission rules:
the same program natively in a chroot and in a guest."""
from __future__ import annotations

import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def schedtree(tmp_path_factory):
    return make_tree(tmp_path_factory, "schedtree", ["sched_params"])


@pytest.fixture(scope="module")
def scheddisk(tmp_path_factory, schedtree):
    yield from disk_of(tmp_path_factory, schedtree)


def test_scheduling_parameters_as_linux(schedtree, scheddisk):
    want = native(schedtree, "/bin/sched_params")
    assert want.returncode == 0 and "user fifo: EPERM" in want.stdout, want.stdout
    got = guest(scheddisk, "/bin/sched_params")
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
