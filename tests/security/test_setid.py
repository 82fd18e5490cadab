"""A guest user cannot make itself root with set-ID bits: chmod u+s on its
own file makes that file set-user-ID to the user alone, and a write, a
truncate or a chown by the user takes the bits off (Linux's
file_remove_privs and notify_change); root's write keeps them
(CAP_FSETID), root's chown does not.  Run natively too, and compared
(tests/progs/setid_exec.c `hostile`)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, guest, make_tree, native_private_mounts


@pytest.fixture(scope="module")
def htree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "htree", ["setid_exec"])
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def hdisk(tmp_path_factory, htree) -> Path:
    yield from disk_of(tmp_path_factory, htree)


def test_a_user_gains_nothing_from_set_id_bits_of_its_own(htree, hdisk):
    want = native_private_mounts(htree, "/bin/setid_exec", "hostile")
    assert want.returncode == 0 and want.stdout.endswith("done\n"), want.stdout
    got = guest(hdisk, "/bin/setid_exec", "hostile")
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
    out = got.stdout
    assert "hostile uid=1000/1000/1000 fsuid=1000 gid=1000/1000/1000 fsgid=1000" in out
    assert "hostile caps eff=00000000 prm=00000000" in out
    for what in ("after write", "after ftruncate", "after chown -1 -1", "after truncate"):
        assert f"{what} 0755 1000:1000" in out
    assert "after write of 0 6755 1000:1000" in out
    assert "chown 0 own                              EPERM" in out
    assert "suid_root 4755 0:0" in out
    assert "root write 6755 0:100" in out and "after root chown 0755 0:0" in out
