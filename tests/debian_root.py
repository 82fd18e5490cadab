"""A Debian root (debootstrap minbase, with procps and python3) for the
distribution's tests: its tree for native runs, in a chroot on an overlay
of it with a pid namespace and its own /proc, and an ext2 image of the same
tree for guests, each test on a fresh COW overlay of it.  Either way a run
starts from the same bytes and leaves the base untouched."""
from __future__ import annotations

import itertools
import resource
import subprocess
from pathlib import Path

import pytest

from conftest import NATIVE_ENV, skas
from deploy import disk as diskmod
from deploy import distro

PACKAGES = ["procps", "python3", "libpython3.11-testsuite"]
RUNS = itertools.count()


@pytest.fixture(scope="session")
def debian_tree(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("debian") / "root"
    distro.debootstrap(tree, distro.DEFAULT_SUITE, PACKAGES)
    return tree


@pytest.fixture(scope="session")
def debian_img(tmp_path_factory, debian_tree) -> Path:
    img = tmp_path_factory.mktemp("debian-disk") / "debian.img"
    diskmod.create(img, distro.image_size(debian_tree), debian_tree)
    yield img
    diskmod.check(img)


# A devpts of its own on the chroot's /dev/pts, as a booted system (and a
# guest) has, in the run's mount namespace; then the chroot.
WITH_PTYS = ('root=$1; shift; '
             'mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && '
             'mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx" && exec chroot "$root" "$@"')


def _boot_limits() -> None:
    """The open files a process starts with on a booted Linux (and in a
    guest), not what the test's own shell was given."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.fixture
def in_chroot(debian_tree, tmp_path):
    """Run argv natively in a chroot of the tree (an overlay: writes go to
    the test's directory), as pid 1 of a new pid namespace with its own /proc
    and /dev/pts."""
    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        n = next(RUNS)
        upper, work, merged = (tmp_path / f"{d}{n}" for d in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            d.mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={debian_tree},upperdir={upper},workdir={work}", str(merged)],
                       check=True)
        try:
            return subprocess.run(["unshare", "--fork", "--pid", f"--mount-proc={merged}/proc",
                                   "sh", "-c", WITH_PTYS, "sh", str(merged), *argv],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=NATIVE_ENV,
                                  timeout=timeout, preexec_fn=_boot_limits)
        finally:
            subprocess.run(["umount", "-l", str(merged)], check=False)
    return run


@pytest.fixture
def in_guest(debian_img, tmp_path):
    """Run argv in a guest booted from a fresh COW overlay of the image."""
    def run(*argv: str, options: tuple = (), timeout: float = 180) -> subprocess.CompletedProcess:
        overlay = tmp_path / f"overlay{next(RUNS)}.cow"
        return skas("run", "--disk", f"{overlay},{debian_img}", *options, "--", *argv,
                    timeout=timeout)
    return run
