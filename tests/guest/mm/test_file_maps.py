"""File maps as Linux has them (issue 15): /proc/PID/maps names every file
mapping by its guest path, dev and inode, and never a host one; mmap at
page offsets, MAP_FIXED and MAP_FIXED_NOREPLACE, mprotect, mremap, madvise
and truncate of file maps behave as natively.  tests/progs/file_maps.c runs
natively (in a chroot of the guest's tree) and in a guest, static and
dynamically linked, and must print the same."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from common.layout import touches_stub
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
    assert f"{DIR}/after (dev, ino: stat's)" in want        # renamed after it was mapped
    if prog == "file_maps":
        assert got == want
    else:       # exec puts the interpreter lower than Linux's mmap would: the order differs
        assert sorted(got.splitlines()) == sorted(want.splitlines())


@pytest.mark.parametrize("prog", ["file_maps", "file_maps_dyn"], ids=["static", "dynamic"])
def test_pthread_getattr_np_finds_the_main_threads_stack(fmtree, fmdisk, prog):
    want, got = both(fmtree, fmdisk, f"/bin/{prog}", "stack")
    assert want == "stack holds a local: yes\nstack size > 0: yes\n"
    assert got == want


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_file_map_calls_as_linux(fmtree, fmdisk, options):
    want, got = both(fmtree, fmdisk, "/bin/file_maps", "ops", DIR, options=options)
    assert "truncated, shared: a <0> SIGBUS" in want and "mremap grow: vws" in want
    # The one departure (docs/architecture.md, "File maps"): a private map of
    # a file no process maps shared is a snapshot, so a truncate does not
    # take its pages away (an inode mapped shared anywhere is Linux's).
    snapshot = "truncated, private only: a c\n"
    assert want.replace("truncated, private only: a SIGBUS\n", snapshot) == got


def test_proc_pid_maps_of_another_process_shows_guest_names_only(fmdisk):
    """Another process's maps, read by cat: the program and the file it
    mapped by their guest paths, dev and inode (stat's); anonymous and
    [special] lines as the host's; no line of the stub, no host path, no
    host inode number."""
    script = ("/bin/file_maps hold /etc/passwd | { read said; echo ---;"
              " cat /proc/$(pidof file_maps)/maps; echo ---; kill $(pidof file_maps); };"
              " stat -c '%n %d %i' /bin/file_maps /etc/passwd")
    got = guest(fmdisk, "/bin/sh", "-c", script)
    assert got.returncode == 0, got.stdout + got.stderr
    _, maps, rest = got.stdout.split("---\n")
    stats = {name: (int(dev), int(ino))
             for name, dev, ino in (line.split() for line in rest.splitlines()[-2:])}
    rows = [re.fullmatch(r"([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]{8}) "
                         r"([0-9a-f]{2}):([0-9a-f]{2}) (\d+) +(\S*)", line)
            for line in maps.splitlines()]
    assert all(rows), got.stdout
    names = {}
    for row in rows:
        dev = os.makedev(int(row[5], 16), int(row[6], 16))
        names.setdefault(row[8], set()).add((dev, int(row[7])))
        assert not touches_stub(int(row[1], 16), int(row[2], 16) - int(row[1], 16)), row[0]
    assert names["/bin/file_maps"] == {stats["/bin/file_maps"]}
    assert names["/etc/passwd"] == {stats["/etc/passwd"]}
    assert set(names) <= {"/bin/file_maps", "/etc/passwd", "", "[heap]", "[stack]", "[vdso]",
                          "[vvar]", "[vvar_vclock]", "[vsyscall]"}, names
    assert "[stack]" in names and "[vdso]" in names
    assert all(names[n] == {(0, 0)} for n in names if not n.startswith("/")), names
