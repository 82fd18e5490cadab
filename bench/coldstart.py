"""Where a cold start's time goes: `skas run --disk IMG -- /bin/true`, N
times, with each phase timed from the marks the CLI and the services write
when SKAS_PHASES names a file (common/phases.py).

    .venv/bin/python bench/coldstart.py [-n 20] [--disk IMG] [--against CHECKOUT]

Prints the median and quartiles of the wall time (spawn to exit, as
bench/run.py's cold start row), of the CPU time of the whole tree of
processes, and of each phase.  `--against` runs another checkout of skas
(say a worktree of main) in turn with this one, start for start, so both
see the same load on a shared machine.  Each checkout's modules are
compiled first (as setup.sh and an installed package have them: with
PYTHONDONTWRITEBYTECODE set, nothing else would, and every service would
compile its ~150 modules at every start); `--no-compile` leaves them as
they are.  Not a test."""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (what, from mark, to mark): marks are PROCESS.PHASE; "bench.spawn" and
# "bench.end" are this program's, around the whole command.
PHASES = [
    ("cli: python's start", "bench.spawn", "cli.start"),
    ("cli: imports, options", "cli.start", "cli.run"),
    ("cli: config written", "cli.run", "cli.spawn"),
    ("cli: services forked", "cli.spawn", "cli.spawned"),
    *((f"{s}: exec, python's start", "cli.spawn", f"{s}.start")
      for s in ("kernel", "userspace", "ubd_io", "sigio")),
    *((f"{s}: imports", f"{s}.start", f"{s}.imported")
      for s in ("kernel", "userspace", "ubd_io", "sigio")),
    ("ubd_io: disk opened, bound", "ubd_io.imported", "ubd_io.serving"),
    ("sigio: bound", "sigio.imported", "sigio.serving"),
    ("kernel: set up, bound", "kernel.imported", "kernel.listening"),
    ("userspace: set up, connected", "userspace.imported", "userspace.connected"),
    ("kernel: bound to hello", "kernel.listening", "kernel.hello"),
    ("kernel: disks asked, root mounted", "kernel.hello", "kernel.mounted"),
    ("kernel: init spawned", "kernel.mounted", "kernel.spawned"),
    ("kernel: init exec'd", "kernel.spawned", "kernel.exec"),
    ("guest: /bin/true", "kernel.exec", "kernel.init_exit"),
    ("kernel: halt", "kernel.init_exit", "kernel.halted"),
    ("kernel: loop closed, exit", "kernel.halted", "kernel.exit"),
    ("cli: kernel's exit seen", "kernel.exit", "cli.halted"),
    *((f"{s}: stopped, exit", "cli.stop", f"{s}.exit") for s in ("userspace", "ubd_io", "sigio")),
    ("cli: services stopped, exit", "cli.halted", "cli.exit"),
    ("cli: python's exit", "cli.exit", "bench.end"),
]


def start_once(checkout: Path, disk: Path, marks: Path) -> tuple[dict[str, int], float]:
    """One cold start: its marks (ns, CLOCK_MONOTONIC) and the CPU seconds of
    the whole tree of processes (all reaped by the time skas exits)."""
    marks.unlink(missing_ok=True)
    env = {**os.environ, "SKAS_PHASES": str(marks)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawn = time.monotonic_ns()
    subprocess.run([sys.executable, "-m", "deploy.cli", "run", "--disk", str(disk), "--",
                    "/bin/true"], cwd=checkout, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    end = time.monotonic_ns()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = {"bench.spawn": spawn, "bench.end": end}
    if marks.exists():
        for line in marks.read_text().splitlines():
            ns, process, phase = line.split()
            found.setdefault(f"{process}.{phase}", int(ns))    # a reboot's second boot: no
    return found, cpu


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def report(name: str, runs: list[tuple[dict[str, int], float]]) -> None:
    walls = [(m["bench.end"] - m["bench.spawn"]) / 1e6 for m, _ in runs]
    cpus = [cpu * 1e3 for _, cpu in runs]
    print(f"\n{name}: {len(runs)} starts (ms: median [first quartile, third])")
    print(f"{'wall time, spawn to exit':<36} {_fmt(walls)}")
    print(f"{'CPU time, all processes':<36} {_fmt(cpus)}")
    for what, start, end in PHASES:
        spans = [(m[end] - m[start]) / 1e6 for m, _ in runs if start in m and end in m]
        if spans:
            print(f"  {what:<34} {_fmt(spans)}")


def _fmt(values: list[float]) -> str:
    q1, q2, q3 = quartiles(values)
    return f"{q2:8.1f}  [{q1:7.1f}, {q3:7.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="cold starts of each checkout")
    ap.add_argument("--disk", type=Path, help="the image (default: the default tree's, made "
                                               "in a temporary directory)")
    ap.add_argument("--against", type=Path, metavar="CHECKOUT",
                    help="another skas checkout, started in turn with this one")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not compile the checkouts' modules first")
    args = ap.parse_args()
    checkouts = {"this checkout": ROOT}
    if args.against:
        checkouts[f"{args.against}"] = args.against.resolve()
    with tempfile.TemporaryDirectory(prefix="skas-coldstart-") as tmp:
        tmp = Path(tmp)
        disk = args.disk
        if disk is None:
            sys.path.insert(0, str(ROOT))
            from deploy import disk as diskmod
            disk = tmp / "disk.img"
            diskmod.create(disk)
        if not args.no_compile:
            for checkout in checkouts.values():
                subprocess.run([sys.executable, "-m", "compileall", "-q", "common", "services",
                                "deploy"], cwd=checkout, check=True, stdout=subprocess.DEVNULL)
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        runs: dict[str, list] = {name: [] for name in checkouts}
        for _ in range(args.n + 1):             # the first round warms the page cache
            for name, checkout in checkouts.items():
                runs[name].append(start_once(checkout, disk, tmp / "marks"))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        for name, done in runs.items():
            report(name, done[1:])


if __name__ == "__main__":
    main()
