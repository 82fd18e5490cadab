"""execve's credential rules (fs/exec.c, security/commoncap.c):
tests/progs/setid_exec.c starts as root, makes set-ID copies of itself and
has children (most at uid 1000) exec them; each copy prints its ids,
capabilities, AT_SECURE (and whether static glibc dropped LD_LIBRARY_PATH
for it), dumpability, no_new_privs and who owns its /proc files.  The same
natively (a chroot in a private mount namespace) and in a guest.
tests/security/test_setid.py runs its `hostile` part."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import add_libraries, build, disk_of, guest, make_tree, native_private_mounts


@pytest.fixture(scope="module")
def stree(tmp_path_factory) -> Path:
    """The program static and dynamic (glibc's ld.so then reads AT_SECURE)."""
    root = make_tree(tmp_path_factory, "stree", ["setid_exec"])
    build("setid_exec.c", root / "bin" / "setid_exec_dyn")
    add_libraries(root, root / "bin" / "setid_exec_dyn")
    root.chmod(0o755)          # mktemp's 0700 would stop uid 1000 at /
    return root


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory, stree) -> Path:
    yield from disk_of(tmp_path_factory, stree, "128M")


def same_natively_and_in_a_guest(tree, disk, *argv, options=()) -> str:
    want = native_private_mounts(tree, *argv)
    assert want.returncode == 0 and want.stdout.endswith("done\n"), want.stdout
    got = guest(disk, *argv, options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
    return got.stdout


def lines_of(out: str, label: str) -> list[str]:
    return [line[len(label) + 1:] for line in out.splitlines() if line.startswith(label + " ")]


@pytest.mark.parametrize("prog", ["/bin/setid_exec", "/bin/setid_exec_dyn"],
                         ids=["static", "dynamic"])
@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_exec_gives_the_ids_and_capabilities_linux_gives(stree, sdisk, prog, options):
    out = same_natively_and_in_a_guest(stree, sdisk, prog, options=options)
    # what the comparison rests on, spelled out
    suid = lines_of(out, "suid_root by 1000")
    assert "uid=1000/0/0 fsuid=0 gid=1000/1000/1000 fsgid=1000" in suid
    assert "caps eff=082003ff prm=082003ff" in suid
    assert "secure=1 LD_LIBRARY_PATH=(unset)" in suid
    assert "dumpable=0 nnp=0 /proc/self=0:1000 status=0:0" in suid
    assert "gid=1000/100/100 fsgid=100" in lines_of(out, "sgid_100 by 1000")[0]
    for label in ("nosuid suid_root by 1000", "no_new_privs by 1000"):
        assert "uid=1000/1000/1000 fsuid=1000 gid=1000/1000/1000 fsgid=1000" in lines_of(out, label)
        assert "secure=0 LD_LIBRARY_PATH=/nowhere" in lines_of(out, label)
    assert "caps eff=00000000 prm=00000000" in lines_of(out, "plain by root after setresuid 1000")
    assert "caps eff=082003ff prm=082003ff" in lines_of(out, "plain by root")
