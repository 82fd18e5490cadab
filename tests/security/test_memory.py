"""Kernel memory a guest can take: its tmpfs mounts all draw on one budget
(tmpfs_limit), however many it mounts and whatever size each claims."""
from __future__ import annotations

from common.config import GuestConfig
from deploy import launch

MiB = 1 << 20


def boot(tmp_path, disk, script: str, **settings) -> GuestConfig:
    """script as init of a guest with its console in console.log; it must exit 0."""
    cfg = GuestConfig(name="bounded", run_dir=tmp_path / "run", disks={"ubd0": str(disk)},
                      init=["/bin/sh", "-c", script], console="log", **settings)
    cfg.make_run_dir()
    cfg.write()
    procs = launch.start(cfg)
    try:
        assert launch.wait_guest(procs) == 0
    finally:
        launch.stop(procs)
    return cfg


def test_tmpfs_mounts_together_stop_at_the_guests_limit(tmp_path, disk):
    script = ("mkdir /tmp/a /tmp/b && mount -t tmpfs -o size=2g none /tmp/a && "
              "mount -t tmpfs -o size=2g none /tmp/b && "
              "head -c 12000000 /dev/zero > /tmp/a/f; "
              "head -c 12000000 /dev/zero > /tmp/b/f || echo 'b: full'; "
              "echo sizes $(stat -c %s /tmp/a/f /tmp/b/f); "
              "rm /tmp/a/f && head -c 8000000 /dev/zero > /tmp/b/g && echo 'b: room again'")
    cfg = boot(tmp_path, disk, script, tmpfs_limit=16 * MiB, tmpfs=["/tmp"])
    out = cfg.console_log.read_text().splitlines()
    assert "b: full" in out and "b: room again" in out, out
    sizes = [int(n) for n in next(line for line in out if line.startswith("sizes")).split()[1:]]
    assert sizes[0] == 12000000 and sum(sizes) <= 16 * MiB, sizes
    assert "tmpfs_limit" in (cfg.run_dir / "kernel.log").read_text()


def test_console_log_stays_bounded_however_much_the_guest_prints(tmp_path, disk):
    """A supervised guest's console goes to RUN_DIR/console.log: past
    console_log_max it rolls over to console.log.1, and the newest output is
    always in console.log."""
    limit = 256 << 10
    script = ("i=0; while [ $i -lt 40 ]; do head -c 32768 /dev/zero | tr '\\0' x; "
              "i=$((i+1)); done; echo; echo the last line")
    cfg = boot(tmp_path, disk, script, console_log_max=limit)
    current, older = cfg.console_log, cfg.console_log.with_name("console.log.1")
    assert current.read_text().endswith("\nthe last line\n")
    assert older.stat().st_size <= limit + 4096 and current.stat().st_size <= limit + 4096
    assert older.read_text() == "x" * older.stat().st_size
