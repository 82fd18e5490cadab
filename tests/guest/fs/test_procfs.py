"""/proc in a real guest: guest pids and guest paths only, Linux's formats."""
from __future__ import annotations

import re
import socket
import tempfile

import pytest

from deploy import disk as diskmod
from tests.conftest import skas


@pytest.fixture(scope="module")
def proctree(tmp_path_factory):
    root = tmp_path_factory.mktemp("proctree")
    diskmod.default_tree(root)
    return root


@pytest.fixture(scope="module")
def procdisk(tmp_path_factory, proctree):
    img = tmp_path_factory.mktemp("procdisk") / "disk.img"
    diskmod.create(img, "64M", proctree)
    yield img
    diskmod.check(img)


def guest(img, script: str, *extra: str):
    return skas("run", "--disk", str(img), *extra, "--", "/bin/sh", "-c", script, timeout=120)


def test_ps_shows_guest_pids_and_names(procdisk):
    r = guest(procdisk, "sleep 5 & ps; kill %1")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:] if line.strip()]
    pids = {int(row[0]) for row in rows}
    assert 1 in pids and max(pids) < 100, r.stdout
    assert any("sleep" in " ".join(row) for row in rows), r.stdout
    assert any(row[0] == "1" and "/bin/sh" in " ".join(row) for row in rows), r.stdout


def test_self_status_stat_exe_and_listing(procdisk):
    r = guest(procdisk, "cat /proc/self/status; echo ---; readlink /proc/self/exe; echo ---;"
                        " ls /proc; echo ---; cat /proc/self/stat; echo ---; cat /proc/1/cmdline;"
                        " echo; echo ---; readlink /proc/self; cd /tmp && readlink /proc/self/cwd")
    assert r.returncode == 0, r.stderr
    status, exe, listing, stat, cmdline, links = r.stdout.split("---\n")
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Name"] == "cat" and fields["PPid"] == "1"
    assert fields["Pid"] == fields["Tgid"] and 1 < int(fields["Pid"]) < 100
    assert fields["State"].startswith("R")
    assert exe.strip() == "/bin/busybox"
    names = listing.split()
    assert "1" in names and "self" in names and "mounts" in names
    assert all(int(n) < 100 for n in names if n.isdigit())
    with open("/proc/self/stat") as f:
        native_fields = len(f.read().rsplit(")", 1)[1].split()) + 2
    got = stat.strip()
    assert re.match(r"\d+ \(cat\) R 1 ", got), got
    assert len(got.rsplit(")", 1)[1].split()) + 2 == native_fields == 52
    assert cmdline.startswith("/bin/sh") and "readlink" in cmdline
    target, cwd = links.split()
    assert target.isdigit() and int(target) < 100
    assert cwd == "/tmp"


def test_mounts(procdisk):
    r = guest(procdisk, "cat /proc/mounts; echo ---; cat /proc/self/mounts")
    assert r.returncode == 0, r.stderr
    table, own = r.stdout.split("---\n")
    assert table == own
    points = [line.split()[1] for line in table.splitlines()]
    assert points == ["/", "/dev", "/dev/pts", "/run", "/proc", "/sys"]   # the image's /tmp is the disk's
    assert "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0" in table.splitlines()
    assert "skas-run-" not in table and "pagecache" not in table



def test_a_tmpfs_asked_for_is_mounted_and_bounded(procdisk):
    r = guest(procdisk, "grep ' /tmp ' /proc/mounts; dd if=/dev/zero of=/tmp/f bs=64k count=32;"
              " echo $?", "--tmpfs", "/tmp:1m")
    assert "tmpfs /tmp tmpfs rw,nosuid,nodev,relatime,size=1024k 0 0" in r.stdout.splitlines(), r.stdout
    assert "No space left on device" in r.stdout and r.stdout.splitlines()[-1] == "1", r.stdout


WALK = r"""
sleep 5 &
for f in /proc/* /proc/*/* /proc/*/task/*/* /proc/*/fd/*; do
  if [ -L "$f" ]; then echo "$f -> $(readlink $f)"
  elif [ -f "$f" ]; then sed "s|^|$f: |" "$f"; echo
  fi
done
kill %1
"""


def test_nothing_of_the_host_shows(procdisk):
    logs = tempfile.mkdtemp(prefix="procfs-logs-")
    r = guest(procdisk, WALK, "--log-dir", logs, "--hostname", "guesthost")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "/proc/1/status: Pid:\t1" in out
    assert "/proc/1/maps:" in out and "/bin/busybox" in out
    assert "/proc/self -> " in out and "/proc/1/exe -> /bin/busybox" in out
    assert "skas-run-" not in out and "pagecache" not in out and logs not in out
    host = socket.gethostname()
    assert host != "guesthost" and not re.search(rf"(?<![\w-]){re.escape(host)}(?![\w-])", out)
    log = open(f"{logs}/kernel.log").read()
    host_pids = set(re.findall(r"host pid (\d+)", log))
    assert host_pids, log
    words = set(re.findall(r"\d+", "\n".join(line for line in out.splitlines()
                                               if "/stat:" in line or "/status:" in line
                                               or "-> " in line)))
    assert not host_pids & words, host_pids & words
