"""Full and failing disks under a running guest: the host file system under
the image filled (ubd_io's pwrite gets ENOSPC), the image made immutable
(chattr +i: its open fd's pwrite gets EPERM), and a ubd_io double that
answers EIO.  The guest sees the error on the calls it affects (fsync, dd
conv=fsync), what was fsync'd before is still on the image, nothing the
disk did not take is acknowledged (an error sync(2) met is still reported
to fsync, as Linux's errseq does), and the kernel keeps serving commands.

The guest's console is the test's pipes (sigio started with them): the
guest waits on its input while the test breaks the disk, then goes on."""
from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HERE, make_config, make_tree
from deploy import disk as diskmod
from deploy import launch

SCRIPT = r"""#!/bin/sh
dd if=/bin/busybox of=/kept bs=4k count=4 conv=fsync 2>/dev/null && echo "kept fsynced"
echo ready
read go
echo lost > /lost
sync; echo "sync rc=$?"
sync /lost 2>&1; echo "fsync rc=$?"
dd if=/bin/busybox of=/big bs=64k count=64 conv=fsync 2>&1 | grep -v records; echo "dd done"
echo "still serving: $(cat /etc/hostname) $(wc -c < /kept)"
echo healed?
read go
dd if=/bin/busybox of=/later bs=4k count=2 conv=fsync 2>&1 | grep -v records; echo "later done"
"""
UNHEALED = r"""#!/bin/sh
echo ready
read go
dd if=/bin/busybox of=/big bs=64k count=16 2>/dev/null; echo "written"
"""
WAIT = 60.0              # only catches a hang: every wait ends on the guest's output


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "fulldisk")
    (root / "etc/full.sh").write_text(SCRIPT)
    (root / "etc/unhealed.sh").write_text(UNHEALED)
    return root


@pytest.fixture
def host_fs(tmp_path):
    """A small ext4 of its own, loop-mounted, for the image's directory (ext4
    enforces chattr +i on open files); unmounted however the test ends."""
    backing, mnt = tmp_path / "hostfs.img", tmp_path / "hostfs"
    subprocess.run(["truncate", "-s", "48M", str(backing)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(backing)], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(backing), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["chattr", "-R", "-i", str(mnt)], capture_output=True)
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


class Guest:
    """The four services (ubd_io perhaps the memory double), sigio's
    stdin and stdout the test's pipes."""

    def __init__(self, cfg, double: bool):
        self.cfg = cfg
        self.procs = launch.start(cfg, ("kernel", "userspace") if double else
                                  ("kernel", "userspace", "ubd_io"))
        with open(cfg.run_dir / "sigio.log", "ab") as log:
            self.procs["sigio"] = subprocess.Popen(
                launch.command("sigio", cfg.path), cwd=launch.REPO, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        if double:
            with open(cfg.run_dir / "memory_ubd.log", "ab") as log:
                self.procs["ubd_io"] = subprocess.Popen(
                    [sys.executable, "-m", "tests.doubles.memory_ubd", "--guest-config",
                     str(cfg.path)], cwd=HERE.parent, stderr=log, stdout=log,
                    start_new_session=True)
        self.out = b""

    def until(self, text: str) -> str:
        """The console output up to and including text, once it came."""
        deadline = time.monotonic() + WAIT
        stdout = self.procs["sigio"].stdout
        while text.encode() not in self.out:
            assert time.monotonic() < deadline, f"no {text!r} on the console: {self.out!r}"
            if select.select([stdout], [], [], 1)[0]:
                data = os.read(stdout.fileno(), 65536)
                assert data, f"the console ended before {text!r}: {self.out!r}"
                self.out += data
        return self.out.decode(errors="replace")

    def type(self, line: str) -> None:
        self.procs["sigio"].stdin.write(line.encode() + b"\n")
        self.procs["sigio"].stdin.flush()

    def stop(self) -> int:
        try:
            return self.procs["kernel"].wait(WAIT)
        finally:
            launch.stop(self.procs)


def _fill(directory: Path) -> None:
    """Write a file in directory until its file system is full (ENOSPC)."""
    with open(directory / "filler", "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError as exc:
                assert exc.errno == 28, exc
    assert os.statvfs(directory).f_bavail == 0


def _wait_for_line(path: Path, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"no {text!r} in {path}"
        time.sleep(0.05)


def _boot(tmp_path, img: Path, tree: Path, script: str, double: bool) -> Guest:
    """A guest on a new image of tree at img, running script, its console
    the test's pipes."""
    diskmod.create(img, "32M", tree)
    cfg = make_config(tmp_path, img, ["/bin/sh", script], console="stdio")
    cfg.console_input, cfg.console_tty = True, False
    cfg.write()
    return Guest(cfg, double)


FAULTS = {   # fault: (the errno name the guest must see, the double in place of ubd_io?)
    "host-fs-full": ("No space left on device", False),
    "image-read-only": ("Input/output error", False),
    "ubd-eio": ("Input/output error", True),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_disk_fails_the_calls_it_affects_and_the_kernel_serves_on(
        tmp_path, host_fs, full_tree, outcome, fault):
    error, double = FAULTS[fault]
    img = host_fs / "disk.img"
    guest = _boot(tmp_path, img, full_tree, "/etc/full.sh", double)
    cfg = guest.cfg
    try:
        guest.until("ready\n")
        if fault == "host-fs-full":
            _fill(host_fs)
        elif fault == "image-read-only":
            subprocess.run(["chattr", "+i", str(img)], check=True)
        else:
            guest.procs["ubd_io"].send_signal(10)       # SIGUSR1: fail from now on
            _wait_for_line(cfg.run_dir / "memory_ubd.log", "failing")
        guest.type("go")
        seen = guest.until("healed?\n")
        if fault == "host-fs-full":
            (host_fs / "filler").unlink()
        elif fault == "image-read-only":
            subprocess.run(["chattr", "-i", str(img)], check=True)
        else:
            guest.procs["ubd_io"].send_signal(12)       # SIGUSR2: served again
            _wait_for_line(cfg.run_dir / "memory_ubd.log", "healed")
        guest.type("go")
        healed = guest.until("later done\n")
    finally:
        code = guest.stop()
    after = seen[seen.index("ready\n"):]
    fsck = "" if double else diskmod_check(img)
    kept = (double or subprocess.run(["debugfs", "-R", "cat /kept", str(img)],
                                     capture_output=True, check=True).stdout
            == Path("/usr/bin/busybox").read_bytes()[:16384])
    recovered = healed.endswith("healed?\nlater done\n")
    outcome(f"sync {'0' if 'sync rc=0' in after else 'FAILED'}; fsync of the lost write "
            f"{'saw ' + error if 'fsync rc=1' in after and error in after else 'ACKNOWLEDGED'}; "
            f"dd conv=fsync {'saw ' + error if after.count(error) >= 2 else 'ACKNOWLEDGED'}; "
            f"{'served on' if 'still serving: skas 16384' in after else 'STOPPED SERVING'}; "
            f"fsync'd file {'intact' if kept else 'DAMAGED'}; "
            f"after healing {'fsync works' if recovered else 'STILL FAILING'}, e2fsck "
            f"{'(no image: the double)' if double else 'clean' if not fsck else 'FOUND ERRORS'}")
    assert "kept fsynced" in seen
    assert "sync rc=0" in after, after          # sync(2) always succeeds, as Linux's
    assert f"/lost: {error}\nfsync rc=1" in after, after
    assert after.count(error) >= 2, after       # and dd's fsync
    assert "still serving: skas 16384" in after, after
    assert kept
    assert recovered, healed                # healed, the disk takes writes again
    # what failed to be written (/big's inode and indirect block, the
    # bitmaps) was written again once the disk took writes: the image agrees
    # with itself
    assert not fsck, fsck
    assert code == 0


def diskmod_check(img: Path) -> str:
    try:
        diskmod.check(img)
    except diskmod.DiskError as exc:
        return str(exc)
    return ""


def test_what_a_full_disk_never_took_is_named_at_the_halt(tmp_path, host_fs, full_tree):
    """The host's disk stays full to the end: the halt's write-back fails,
    and the kernel's log says how much is lost and what to run."""
    guest = _boot(tmp_path, host_fs / "disk.img", full_tree, "/etc/unhealed.sh", False)
    cfg = guest.cfg
    try:
        guest.until("ready\n")
        _fill(host_fs)
        guest.type("go")
        guest.until("written\n")
    finally:
        code = guest.stop()
    log = (cfg.run_dir / "kernel.log").read_text()
    assert "could not write the filesystems back at halt" in log, log
    assert re.search(r"ubd0: [1-9][0-9]* bytes its disk did not take are lost; check the "
                     r"image before its next use: skas disk check IMAGE", log), log
    assert code == 0
