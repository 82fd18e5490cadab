"""reboot(2) in a guest: its refusals as Linux's (natively too), halt and
power off end the guest with 0 and its disk written back, a restart boots
it again (`skas run` starts the four services anew)."""
from __future__ import annotations

import subprocess

import pytest

from conftest import disk_of, guest, make_tree, native

BOOTS = """#!/bin/sh
n=$(cat /boots 2>/dev/null || echo 0); n=$((n + 1)); echo $n > /boots
echo "boot $n"
if [ $n = 1 ]; then exec /bin/reboot restart2 again; fi
echo unsynced > /unsynced
exec /bin/reboot poweroff
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "reboottree", ["reboot"])
    (root / "bin/boots").write_text(BOOTS)
    (root / "bin/boots").chmod(0o755)
    return root


@pytest.fixture(scope="module")
def img(tmp_path_factory, tree):
    yield from disk_of(tmp_path_factory, tree)


def debugfs_cat(img, path: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(img)], capture_output=True,
                          text=True, check=True).stdout


def test_refusals_are_linuxs(tree, img):
    want = native(tree, "/bin/reboot", "errors")
    assert want.returncode == 0 and "EPERM" in want.stdout, want.stdout
    got = guest(img, "/bin/reboot", "errors")
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_cad_setting_and_a_bad_restart_string(img):
    r = guest(img, "/bin/sh", "-c", "/bin/reboot cad; /bin/reboot efault")
    assert r.stdout == "cad off: 0\ncad on: 0\nrestart2 at a bad address: EFAULT\n", r.stderr


@pytest.mark.parametrize("how, line", [("poweroff", "Power down"), ("halt", "System halted")])
def test_halt_and_power_off_end_the_guest_with_0_and_its_writes_kept(img, how, line):
    """A child does it (as busybox init does): the call never returns, the
    guest ends, and what it wrote without a sync is on the disk."""
    r = guest(img, "/bin/sh", "-c", f"echo {how} > /{how}; /bin/reboot {how} & "
                                    "wait; echo init goes on")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.endswith(f"reboot: {line}\n") and "returned" not in r.stdout, r.stdout
    assert debugfs_cat(img, f"/{how}") == f"{how}\n"


def test_a_restart_boots_the_guest_again(img):
    subprocess.run(["debugfs", "-w", "-R", "rm /boots", str(img)], capture_output=True)
    r = guest(img, "/bin/boots")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ("boot 1\nreboot: Restarting system with command 'again'\n"
                        "boot 2\nreboot: Power down\n"), r.stdout
    assert debugfs_cat(img, "/boots") == "2\n"
    assert debugfs_cat(img, "/unsynced") == "unsynced\n"
