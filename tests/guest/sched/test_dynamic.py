"""Dynamically linked programs (issue 15's first part): exec loads the
program's PT_INTERP, the guest's own ld-linux-x86-64.so.2, from the guest's
disk, which loads libc from there too; the interpreter also runs programs
given to it directly.  Natively (in a chroot of the same tree) and in a
guest, the output must be the same."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import add_libraries, build, disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def dyntree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "dyntree")
    build("dynamic.c", root / "bin" / "dynamic", "-pthread")
    add_libraries(root, root / "bin" / "dynamic")
    return root


@pytest.fixture(scope="module")
def dyndisk(tmp_path_factory, dyntree):
    yield from disk_of(tmp_path_factory, dyntree, "128M")


INTERP = "/lib64/ld-linux-x86-64.so.2"


@pytest.mark.parametrize("argv", [["/bin/dynamic", "one", "two"], [INTERP, "/bin/dynamic", "direct"]],
                         ids=["pt-interp", "interpreter-run-directly"])
@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_a_dynamic_program_runs_as_natively(dyntree, dyndisk, argv, options):
    want = native(dyntree, *argv)
    assert want.returncode == 0 and "object: /lib/x86_64-linux-gnu/libc.so.6" in want.stdout
    got = guest(dyndisk, *argv, options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_an_interpreter_that_is_not_there_is_enoent(dyntree, tmp_path):
    """As Linux: exec of a program whose PT_INTERP names no file fails with
    ENOENT, the old image still there to say so."""
    tree = tmp_path / "tree"
    shutil.copytree(dyntree, tree, symlinks=True)
    (tree / INTERP.lstrip("/")).unlink()
    img = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-d", str(tree), str(img), "128M"], check=True)
    got = guest(img, "/bin/sh", "-c", "/bin/dynamic; echo status $?")
    assert "status 127" in got.stdout, got.stdout + got.stderr


# --- Debian's own programs ------------------------------------------------------

DEBIAN = ["/usr/bin/bash", "/usr/bin/ls", "/usr/bin/cat", "/usr/bin/sort", "/usr/bin/md5sum",
          "/usr/bin/stat", "/usr/bin/find", "/usr/bin/grep", "/usr/bin/wc"]
SCRIPT = r"""
set -e
ls -l /etc | grep -v '^total' | sort
find /etc -name '*host*' | sort
stat -c '%n %s %a %U %G %F' /etc/hostname /bin/busybox; stat -c '%n %a %F' /etc
md5sum /etc/passwd /etc/group
grep -c root /etc/passwd
f() { local n=$1; echo "f $n $((n * n))"; }
for i in 1 2 3; do f $i; done | sort -r
read -r word rest <<< "here string works"
echo "$word/$rest" | wc -c
(cd /etc && ls hostname) | cat
echo "${BASH_VERSINFO[0]} major"
"""


@pytest.fixture(scope="module")
def debtree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "debtree")
    for prog in DEBIAN:
        dest = root / prog.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)        # a busybox applet's link names the host's busybox
        shutil.copy(Path(prog).resolve(), dest)
        add_libraries(root, Path(prog))
    (root / "script.sh").write_text(SCRIPT)
    return root


@pytest.fixture(scope="module")
def debdisk(tmp_path_factory, debtree):
    yield from disk_of(tmp_path_factory, debtree, "256M")


def test_debians_own_bash_and_coreutils_run_as_natively(debtree, debdisk):
    want = native(debtree, "/usr/bin/bash", "/script.sh")
    assert want.returncode == 0 and "f 3 9" in want.stdout, want.stdout
    got = guest(debdisk, "/usr/bin/bash", "/script.sh")
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.splitlines() == want.stdout.splitlines()
