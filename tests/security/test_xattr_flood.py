"""A guest floods a file with extended attributes: ext2 refuses once the
file's one attribute block is full, tmpfs once the inode's bound is
reached (ENOSPC both); names that never end, buffers running into holes
and sizes past every limit are clean errors; the image stays clean and
every attribute can be removed again."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import disk_of, guest, make_tree
from ext2_images import fsck
from services.kernel.fsimpl.tmpfs import XATTR_BYTES_MAX


@pytest.fixture(scope="module")
def fdisk(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "floodtree", ["xattrs"])
    (root / "mnt").mkdir(exist_ok=True)
    yield from disk_of(tmp_path_factory, root)


@pytest.mark.parametrize("where,options,most", [
    ("/flooded", (), 4096 // (16 + 20 + 200)),
    ("/mnt/flooded", ("--tmpfs", "/mnt"), XATTR_BYTES_MAX // (40 + 17 + 200))],
    ids=["ext2", "tmpfs"])
def test_a_flood_of_attributes_ends_in_enospc(tmp_path, fdisk, where, options, most):
    img = tmp_path / "disk.img"
    shutil.copy(fdisk, img)
    got = guest(img, "/bin/xattrs", "flood", where, options=options)
    assert got.returncode == 0, got.stderr
    n = int(re.search(r"flooded: (\d+) then ENOSPC\n", got.stdout).group(1))
    assert 0 < n <= most
    for line in ("list, size 0 1", "a name with no NUL -1 ERANGE",
                 "a name running into a hole -1 EFAULT", "a value running into a hole -1 EFAULT",
                 "get into a hole -1 EFAULT", "list into a hole -1 EFAULT",
                 "set, 2^63 bytes -1 E2BIG", "removed: all", "list, size 0, at the end 0"):
        assert line in re.sub(r" +", " ", got.stdout), got.stdout
    fsck(img)
