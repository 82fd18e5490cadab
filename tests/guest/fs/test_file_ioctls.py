"""The ioctls every file takes (do_vfs_ioctl: FIONBIO, FIOCLEX, FIONCLEX,
FIOASYNC, FIOQSIZE, FIONREAD on regular files), lseek's SEEK_DATA and
SEEK_HOLE and sync_file_range answer as on Linux: the same
program natively in a chroot and in a guest.  Python's os.set_blocking is
FIONBIO, so multiprocessing's forkserver depends on it."""
from __future__ import annotations

import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def ioctltree(tmp_path_factory):
    return make_tree(tmp_path_factory, "ioctltree", ["file_ioctls"])


@pytest.fixture(scope="module")
def ioctldisk(tmp_path_factory, ioctltree):
    yield from disk_of(tmp_path_factory, ioctltree)


def test_file_ioctls_as_linux(ioctltree, ioctldisk):
    want = native(ioctltree, "/bin/file_ioctls")
    assert want.returncode == 0 and "EAGAIN" in want.stdout, want.stdout
    got = guest(ioctldisk, "/bin/file_ioctls")
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
