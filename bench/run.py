"""Run bench/syscalls.c natively and in a guest; print µs per call and ratios.

    .venv/bin/python bench/run.py [--calls N]

Not a test: numbers depend on the machine.  The guest is pinned to one CPU
(skas run's default), which is what the budgets assume."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skas-bench-") as tmp:
        tmp = Path(tmp)
        tree = tmp / "tree"
        disk.default_tree(tree)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(tree / "bin/syscalls"),
                        str(HERE / "syscalls.c")], check=True)
        img = tmp / "bench.img"
        disk.create(img, "64M", tree)
        cmd = ["/bin/syscalls", str(args.calls), "/etc/hostname"]
        native = subprocess.run(["chroot", str(tree), *cmd], capture_output=True, text=True,
                                check=True).stdout
        guest = subprocess.run([sys.executable, "-m", "deploy.cli", "run", "--disk", str(img),
                                "--", *cmd], capture_output=True, text=True, check=True,
                               cwd=HERE.parent).stdout
    n, g = parse(native), parse(guest)
    print(f"{'call':<18} {'native µs':>10} {'guest µs':>10} {'ratio':>8}   (median of {args.calls})")
    for name in n:
        print(f"{name:<18} {n[name][0]:>10.2f} {g[name][0]:>10.2f} {g[name][0] / n[name][0]:>8.0f}x")


if __name__ == "__main__":
    main()
