"""File maps as Linux has them (issue 15): /proc/PID/maps names every file
mapping by its guest path, dev and inode, and never a host one; mmap at
page offsets, MAP_FIXED and MAP_FIXED_NOREPLACE, mprotect, mremap, madvise
and truncate of file maps behave as natively.  tests/progs/file_maps.c runs
natively (in a chroot of the guest's tree) and in a guest, static and
dynamically linked, and must print the same."""
from __future__ import annotations

import subprocess

import pytest

from conftest import NATIVE_ENV, add_libraries, build, disk_of, guest, make_tree

DIR = "/tmp"


@pytest.fixture(scope="module")
def fmtree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "fmtree", ["file_maps"], "-pthread")
    build("file_maps.c", root / "bin" / "file_maps_dyn", "-pthread")
    add_libraries(root, root / "bin" / "file_maps_dyn")
    return root


@pytest.fixture(scope="module")
def fmdisk(tmp_path_factory, fmtree):
    yield from disk_of(tmp_path_factory, fmtree, "128M")


def native(tree, *argv: str) -> subprocess.CompletedProcess:
    """argv in a chroot of tree with a /proc of its own (a mount namespace
    of its own holds it), stderr joining stdout as on the guest's console."""
    script = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           str(tree), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=NATIVE_ENV, timeout=60)


def both(tree, img, *argv: str, options: tuple = ()) -> tuple[str, str]:
    """What argv prints natively and in a guest (the image made first: the
    native run's files are its own)."""
    want = native(tree, *argv)
    assert want.returncode == 0, want.stdout
    got = guest(img, *argv, options=options)
    assert got.returncode == 0, got.stdout + got.stderr
    return want.stdout, got.stdout


@pytest.mark.parametrize("prog", ["file_maps", "file_maps_dyn"], ids=["static", "dynamic"])
def test_proc_self_maps_names_files_as_linux(fmtree, fmdisk, prog):
    want, got = both(fmtree, fmdisk, f"/bin/{prog}", "maps", DIR)
    assert f"{DIR}/data (dev, ino: stat's)" in want and f"{DIR}/other (deleted)" in want
    assert got == want


@pytest.mark.parametrize("prog", ["file_maps", "file_maps_dyn"], ids=["static", "dynamic"])
def test_pthread_getattr_np_finds_the_main_threads_stack(fmtree, fmdisk, prog):
    want, got = both(fmtree, fmdisk, f"/bin/{prog}", "stack")
    assert want == "stack holds a local: yes\nstack size > 0: yes\n"
    assert got == want


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_file_map_calls_as_linux(fmtree, fmdisk, options):
    want, got = both(fmtree, fmdisk, "/bin/file_maps", "ops", DIR, options=options)
    assert "truncated, shared: a <0> SIGBUS" in want
    assert got == want
