"""A guest that chroots reaches nothing of the host: chroot(2) moves the
guest task's root inside the guest's VFS and never touches the host's jail
(services/userspace/jail.py).  tests/progs/sec_chroot.c passes bad pointers
(EFAULT), an unterminated and a too long path; then climbs ".." far past
its jail's root and its own, reads /proc's links of a process outside,
takes the fchdir escape Linux allows (which ends at the guest's root), and
asks for host paths (the image, the test's directory, a host-only file);
and roots itself in /proc of a process that then ends.  The kernel serves
on, its log clean (tests/conftest.py)."""
from pathlib import Path

import pytest

from conftest import disk_of, make_tree, skas

HOST_ONLY = "/etc/os-release"      # on the host, not in the image's tree

EXPECTED = """\
chroot NULL = -1 EFAULT
chroot a kernel address = -1 EFAULT
chroot -1 = -1 EFAULT
chroot unterminated at a hole = -1 EFAULT
chroot longer than PATH_MAX = -1 ENAMETOOLONG
mount proc in the jail = 0
chroot /tmp/jail = 0
chdir / = 0
climbed in the jail: getcwd /
root in the jail: in proc
init's root from the jail: /
init's cwd from the jail: /
fchdir outside = 0
outside: getcwd (unreachable)/
climbed outside: getcwd (unreachable)/
chroot . = 0
chdir / again = 0
root after the escape: {root}
climbed after the escape: getcwd /
own root: /
host path 1 = -1 ENOENT
  from the root = -1 ENOENT
host path 2 = -1 ENOENT
  from the root = -1 ENOENT
host path 3 = -1 ENOENT
  from the root = -1 ENOENT
chroot a process's /proc dir = 0
  chdir / = 0
  lookups in it once it ended: answered
still serving: getpid = 1
"""


@pytest.fixture(scope="module")
def chroot_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "sec-chroot", ["sec_chroot"])


@pytest.fixture(scope="module")
def chroot_disk(tmp_path_factory, chroot_tree):
    yield from disk_of(tmp_path_factory, chroot_tree)


def test_a_chrooted_guest_reaches_nothing_of_the_host(chroot_tree, chroot_disk, tmp_path):
    assert Path(HOST_ONLY).exists()
    r = skas("run", "--log-dir", str(tmp_path), "--disk", str(chroot_disk), "--",
             "/bin/sec_chroot", str(chroot_disk), str(tmp_path), HOST_ONLY, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    image_root = sorted(p.name for p in chroot_tree.iterdir()) + ["lost+found"]
    assert r.stdout == EXPECTED.format(root=" ".join(sorted(image_root)))
    assert str(tmp_path) not in r.stdout and str(chroot_disk.parent) not in r.stdout
