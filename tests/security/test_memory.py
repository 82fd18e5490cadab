"""Kernel memory a guest can take: its tmpfs mounts all draw on one budget
(tmpfs_limit), however many it mounts and whatever size each claims."""
from __future__ import annotations

from common.config import GuestConfig
from deploy import launch

MiB = 1 << 20


def test_tmpfs_mounts_together_stop_at_the_guests_limit(tmp_path, disk):
    script = ("mkdir /tmp/a /tmp/b && mount -t tmpfs -o size=2g none /tmp/a && "
              "mount -t tmpfs -o size=2g none /tmp/b && "
              "head -c 12000000 /dev/zero > /tmp/a/f; "
              "head -c 12000000 /dev/zero > /tmp/b/f || echo 'b: full'; "
              "echo sizes $(stat -c %s /tmp/a/f /tmp/b/f); "
              "rm /tmp/a/f && head -c 8000000 /dev/zero > /tmp/b/g && echo 'b: room again'")
    cfg = GuestConfig(name="tmpfsbudget", run_dir=tmp_path / "run", disks={"ubd0": str(disk)},
                      init=["/bin/sh", "-c", script], console="log", tmpfs_limit=16 * MiB)
    cfg.make_run_dir()
    cfg.write()
    procs = launch.start(cfg)
    try:
        assert launch.wait_guest(procs) == 0
    finally:
        launch.stop(procs)
    out = cfg.console_log.read_text().splitlines()
    assert "b: full" in out and "b: room again" in out, out
    sizes = [int(n) for n in next(line for line in out if line.startswith("sizes")).split()[1:]]
    assert sizes[0] == 12000000 and sum(sizes) <= 16 * MiB, sizes
    assert "tmpfs_limit" in (cfg.run_dir / "kernel.log").read_text()
