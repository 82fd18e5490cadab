"""Extended attributes (getxattr and friends were ENOSYS, and Debian's
`ls -l` printed "Function not implemented" for every file):
tests/progs/xattrs.c sets, gets, lists and removes them on a file, a
directory and a symlink, by path and by fd, with the errors Linux gives,
natively and in a guest, on ext2 (natively: the same image loop-mounted by
the host's kernel) and on tmpfs; what the guest sets on ext2 is on the
image (debugfs) and e2fsck is content.  `xattrs probe` asks what
coreutils' ls asks of each file."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import NATIVE_ENV, disk_of, guest, make_tree
from ext2_images import debugfs, fsck


@pytest.fixture(scope="module")
def xtree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "xtree", ["xattrs"])
    root.chmod(0o755)          # mktemp's 0700 would stop uid 1000 at /
    for d in ("work", "mnt"):
        (root / d).mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def xdisk(tmp_path_factory, xtree) -> Path:
    yield from disk_of(tmp_path_factory, xtree)


def _native(script: str) -> str:
    """A shell script in a private mount namespace (it mounts what the
    program runs on, and proc); stderr joins stdout."""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec", script],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=NATIVE_ENV, timeout=60)
    assert r.returncode == 0, r.stdout
    return r.stdout


def test_xattrs_on_ext2_as_the_hosts_kernel_has_them(tmp_path, xdisk):
    native_img, guest_img = tmp_path / "native.img", tmp_path / "guest.img"
    shutil.copy(xdisk, native_img)
    shutil.copy(xdisk, guest_img)
    with tempfile.TemporaryDirectory(prefix="skas-xattr-") as mnt:
        want = _native(f"mount -o loop {native_img} {mnt}; mount -t proc proc {mnt}/proc; "
                       f"chroot {mnt} /bin/xattrs all /work")
    assert "-- exit 0\n" in want and "set trusted.t                            0" in want, want
    got = guest(guest_img, "/bin/xattrs", "all", "/work")
    assert (got.returncode, got.stdout) == (0, want), got.stderr
    fsck(guest_img)
    f = debugfs(guest_img, "ea_list /work/f").decode()
    for line in ('user.a (3) = "two"', "user.empty (0)", 'trusted.t (3) = "tee"',
                 'security.s (3) = "ess"'):
        assert line in f, f
    assert "user.b" not in f and "user.via" not in f
    assert 'user.d (3) = "dee"' in debugfs(guest_img, "ea_list /work/d").decode()
    assert 'user.s (3) = "ess"' in debugfs(guest_img, "ea_list /work/sticky").decode()
    assert "Extended attributes" not in debugfs(guest_img, "ea_list /work/l").decode()


def test_xattrs_on_tmpfs_as_the_hosts_kernel_has_them(xtree, xdisk):
    want = _native(f"mount -t tmpfs none {xtree}/mnt; mount -t proc proc {xtree}/proc; "
                   f"chroot {xtree} /bin/xattrs all /mnt")
    assert "-- exit 0\n" in want, want
    got = guest(xdisk, "/bin/xattrs", "all", "/mnt", options=("--tmpfs", "/mnt"))
    assert (got.returncode, got.stdout) == (0, want), got.stderr


def test_what_ls_asks_is_answered_without_enosys(xdisk):
    """coreutils' ls -l reads security.selinux (ENODATA: no label) and
    system.posix_acl_access: ENODATA natively, EOPNOTSUPP here (mounted as
    noacl); ls takes both as "no ACL"."""
    paths = ["/etc", "/bin/busybox", "/bin", "/dev/null", "/proc/self", "/proc/self/status"]
    got = guest(xdisk, "/bin/xattrs", "probe", *paths)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [
        f"{p}: security.selinux {'EOPNOTSUPP' if p.startswith('/proc') else 'ENODATA'}, "
        "system.posix_acl_access EOPNOTSUPP, llistxattr ok" for p in paths] + ["-- exit 0"]
