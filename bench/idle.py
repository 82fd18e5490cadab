"""What idle guests cost a host (issue 18's "scale on one host"): N guests
defined with `skas create` (no command: each boots the image's busybox
init to a shell on its console), each on its own COW overlay over one
shared base image, started under one supervisord in small batches.

    .venv/bin/python bench/idle.py [--guests 30] [--batch 3] [--settle S] [--window S]
                                   [--checkout DIR]

Once every guest's console shows its shell's prompt and `--settle`
seconds have passed, it reads each host process twice, `--window`
seconds apart, and prints per kind of process (the four services, the
supervisord event listener of each guest, the guest's own processes,
supervisord): CPU time used per second and wakeups per second
(times a thread was put on a CPU), both summed over the process's
threads from /proc/PID/task/*/schedstat (nanoseconds, where
/proc/PID/stat's utime+stime count 10 ms ticks), RSS and PSS (/proc/PID/smaps_rollup),
median and max; then the totals per guest, and the host's 1-minute load
average before the start and at the end of the window.  It then stops
every guest and supervisord and removes what it made.  `--checkout` runs
another skas checkout's services (say main's, for a before/after) with
this program.  Not a test."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("kernel", "userspace", "ubd_io", "sigio")
KINDS = (*SERVICES, "listener", "guest", "supervisord")
PROMPT = "/ # "        # busybox ash's prompt for root on the last line: the guest is up


def skas(checkout: Path, env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=checkout, env=env,
                   check=True, stdout=subprocess.DEVNULL)


def ctl(checkout: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "supervisorctl", *args],
                          cwd=checkout, env=env, capture_output=True, text=True, check=False)


def booted(console: Path) -> bool:
    try:
        return PROMPT in console.read_text(errors="replace").rsplit("\n", 1)[-1]
    except FileNotFoundError:
        return False


def wait_for(cond, what: str, timeout: float = 120) -> None:
    """Wait for an event the benchmark cannot be told of; the timeout only
    keeps a broken guest from hanging the run."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def processes(run_root: Path, home: Path) -> dict[int, tuple[str, str]]:
    """Every host process of the benchmark: pid -> (guest, kind)."""
    pidfile = home / "supervisord.pid"
    supervisord = int(pidfile.read_text()) if pidfile.exists() else -1
    found: dict[int, tuple[str, str]] = {}
    parents: dict[int, int] = {}
    commands: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            parents[pid] = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        commands[pid] = [c.decode(errors="replace") for c in cmd if c]
    for pid, text in commands.items():
        if pid == supervisord:
            found[pid] = ("", "supervisord")
        elif "--guest-config" in text and text[-1].startswith(str(run_root)):
            found[pid] = (Path(text[-1]).stem, text[text.index("-m") + 1].split(".")[-1])
        elif parents[pid] == supervisord and "deploy.listener" in text:
            found[pid] = (text[-1], "listener")
    userspace = {pid: guest for pid, (guest, kind) in found.items() if kind == "userspace"}
    for pid, ppid in parents.items():
        if ppid in userspace:
            found[pid] = (userspace[ppid], "guest")
    return found


def sample(pid: int) -> dict[str, float] | None:
    """Of all the process's threads: CPU seconds and times put on a CPU so
    far (/proc/PID/task/*/schedstat: ns on a CPU, ns waiting, timeslices);
    RSS and PSS in KiB."""
    try:
        cpu = runs = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                fields = open(f"/proc/{pid}/task/{tid}/schedstat").read().split()
            except OSError:       # a thread that just ended
                continue
            cpu += int(fields[0])
            runs += int(fields[2])
        memory = {}
        for line in open(f"/proc/{pid}/smaps_rollup"):
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                memory[key] = int(rest.split()[0])
    except OSError:
        return None
    return {"cpu": cpu / 1e9, "runs": runs, "rss": memory["Rss"], "pss": memory["Pss"]}


def measure(run_root: Path, home: Path, window: float) -> tuple[dict, float]:
    """Per process over the window: (guest, kind, cpu/s, runs/s, rss, pss)."""
    procs = processes(run_root, home)
    first = {pid: sample(pid) for pid in procs}
    start = time.monotonic()
    time.sleep(window)
    second = {pid: sample(pid) for pid in procs}
    took = time.monotonic() - start
    rows = []
    for pid, (guest, kind) in procs.items():
        a, b = first[pid], second[pid]
        if a is None or b is None:
            continue
        rows.append((guest, kind, (b["cpu"] - a["cpu"]) / took, (b["runs"] - a["runs"]) / took,
                     b["rss"], b["pss"]))
    return rows, os.getloadavg()[0]


def report(rows: list, guests: int, window: float, load_before: float, load_end: float) -> None:
    print(f"\n{guests} idle guests, window {window:.0f} s "
          f"(CPU in ms per second, wakeups per second, memory in MiB)")
    print(f"{'kind':<12}{'procs':>6}{'CPU/s med':>11}{'max':>8}{'wake/s med':>12}{'max':>8}"
          f"{'RSS med':>9}{'max':>8}{'PSS med':>9}{'max':>8}")
    for kind in KINDS:
        mine = [r for r in rows if r[1] == kind]
        if not mine:
            continue
        cols = [[r[i] for r in mine] for i in range(2, 6)]
        cpu, runs, rss, pss = cols
        print(f"{kind:<12}{len(mine):>6}{statistics.median(cpu) * 1e3:>11.2f}{max(cpu) * 1e3:>8.2f}"
              f"{statistics.median(runs):>12.1f}{max(runs):>8.1f}"
              f"{statistics.median(rss) / 1024:>9.1f}{max(rss) / 1024:>8.1f}"
              f"{statistics.median(pss) / 1024:>9.1f}{max(pss) / 1024:>8.1f}")
    per_guest: dict[str, list] = {}
    for guest, kind, cpu, runs, rss, pss in rows:
        if kind in SERVICES:
            total = per_guest.setdefault(guest, [0.0, 0.0, 0, 0])
            for i, v in enumerate((cpu, runs, rss, pss)):
                total[i] += v
    totals = list(per_guest.values())
    if totals:
        print(f"per guest, its four services: CPU {statistics.median(t[0] for t in totals) * 1e3:.2f}"
              f" ms/s (max {max(t[0] for t in totals) * 1e3:.2f}), wakeups "
              f"{statistics.median(t[1] for t in totals):.1f}/s, RSS "
              f"{statistics.median(t[2] for t in totals) / 1024:.1f} MiB (max "
              f"{max(t[2] for t in totals) / 1024:.1f}), PSS "
              f"{statistics.median(t[3] for t in totals) / 1024:.1f} MiB (max "
              f"{max(t[3] for t in totals) / 1024:.1f})")
    everything = sum(r[2] for r in rows)
    print(f"all {len(rows)} processes: {everything:.4f} CPU-seconds per second "
          f"(the load they add, at most); PSS {sum(r[5] for r in rows) / 1024:.0f} MiB")
    print(f"host load average (1 min): {load_before:.2f} before the start, "
          f"{load_end:.2f} at the end of the window")


def stop_all(checkout: Path, env: dict, home: Path) -> None:
    ctl(checkout, env, "stop", "all")
    pidfile = home / "supervisord.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    ctl(checkout, env, "shutdown")
    if pid is not None:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "supervisord to exit", 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guests", type=int, default=30)
    ap.add_argument("--batch", type=int, default=3, help="guests started at a time")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds between the last boot and the window")
    ap.add_argument("--window", type=float, default=60.0, help="seconds measured")
    ap.add_argument("--checkout", type=Path, default=ROOT,
                    help="the skas checkout whose services run (default: this one)")
    args = ap.parse_args()
    checkout = args.checkout.resolve()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="skas-idle-"))
    home, run_root = tmp / "h", tmp / "x" / "skas"
    env = {**os.environ, "SKAS_HOME": str(home), "XDG_RUNTIME_DIR": str(tmp / "x")}
    names = [f"idle{i:02d}" for i in range(args.guests)]
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "common", "services", "deploy"],
                       cwd=checkout, check=True, stdout=subprocess.DEVNULL)
        sys.path.insert(0, str(checkout))
        from deploy import disk as diskmod
        base = tmp / "base.img"
        diskmod.create(base)
        for name in names:
            skas(checkout, env, "create", name, "--disk", f"{tmp / name}.cow,{base}")
        print(f"{checkout}: {args.guests} guests defined; load average {load_before:.2f}",
              file=sys.stderr)
        up = 0
        for i in range(0, len(names), args.batch):
            batch = names[i:i + args.batch]
            result = ctl(checkout, env, "start", *(f"{n}:*" for n in batch))
            if result.returncode:
                sys.exit(f"supervisorctl start failed: {result.stdout}{result.stderr}")
            for name in batch:
                wait_for(lambda: booted(run_root / name / "console.log"), f"{name}'s prompt")
                up += 1
            print(f"guests booted {up}/{len(names)}", file=sys.stderr)
        print(f"settling {args.settle:.0f} s, measuring {args.window:.0f} s", file=sys.stderr)
        time.sleep(args.settle)
        rows, load_end = measure(run_root, home, args.window)
        report(rows, len(names), args.window, load_before, load_end)
    finally:
        if (home / "supervisord.pid").exists():
            stop_all(checkout, env, home)
        left = [pid for pid in processes(run_root, home)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        if left:
            print(f"killed {len(left)} processes left behind", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
