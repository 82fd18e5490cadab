"""Run the benchmarks natively (in a chroot of the image tree) and in a
guest; print µs per operation and ratios.

    .venv/bin/python bench/run.py [--calls N] [--procs N]

bench/syscalls.c times getppid and open+read+close; bench/processes.c
fork+_exit+waitpid, fork+execve(/bin/true)+waitpid and a pipe ping-pong;
the busybox shell loop of issue 3 is timed whole, less the time of a guest
that runs `true` (booting and halting).  Not a test: numbers depend on the
machine.  The guest is pinned to one CPU (skas run's default), which is what
the budgets assume."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from deploy import disk  # noqa: E402


def parse(out: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in out.splitlines():
        name, _, median, _, mean = line.split()
        rows[name] = (float(median), float(mean))
    return rows


SHELL_LOOP = ("i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i > /tmp/x; "
              "cat /tmp/x >/dev/null; done")


def both(tree: Path, img: Path, cmd: list[str]) -> tuple[str, str, float, float]:
    """stdout and wall seconds natively and in a guest."""
    start = time.monotonic()
    native = subprocess.run(["chroot", str(tree), *cmd], capture_output=True, text=True,
                            check=True).stdout
    mid = time.monotonic()
    guest = subprocess.run([sys.executable, "-m", "deploy.cli", "run", "--disk", str(img),
                            "--", *cmd], capture_output=True, text=True, check=True,
                           cwd=HERE.parent).stdout
    return native, guest, mid - start, time.monotonic() - mid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000, help="iterations of each syscall loop")
    ap.add_argument("--procs", type=int, default=200, help="iterations of each process loop")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skas-bench-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "tree"
        disk.default_tree(tree)
        for prog in ("syscalls", "processes"):
            subprocess.run(["gcc", "-O2", "-static", "-o", str(tree / "bin" / prog),
                            str(HERE / f"{prog}.c")], check=True)
        img = tmp / "bench.img"
        disk.create(img, "64M", tree)
        print(f"{'operation':<18} {'native µs':>10} {'guest µs':>10} {'ratio':>8}   (medians)")
        for cmd in (["/bin/syscalls", str(args.calls), "/etc/hostname"],
                    ["/bin/processes", str(args.procs)]):
            native, guest, _, _ = both(tree, img, cmd)
            n, g = parse(native), parse(guest)
            for name in n:
                print(f"{name:<18} {n[name][0]:>10.2f} {g[name][0]:>10.2f} "
                      f"{g[name][0] / n[name][0]:>8.1f}x")
        _, _, native_boot, guest_boot = both(tree, img, ["/bin/true"])
        _, _, native_loop, guest_loop = both(tree, img, ["/bin/sh", "-c", SHELL_LOOP])
        native_s, guest_s = native_loop - native_boot, guest_loop - guest_boot
        print(f"{'shell loop (s)':<18} {native_s:>10.2f} {guest_s:>10.2f} "
              f"{guest_s / native_s:>8.1f}x   (2000 iterations; guest boot "
              f"{guest_boot:.2f} s subtracted)")


if __name__ == "__main__":
    main()
