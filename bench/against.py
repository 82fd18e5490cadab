"""skas side by side with what issue 18 measures it against: the same static
programs on the same busybox tree natively, under User-Mode Linux (and
PRoot where asked), and under skas, one workload at a time with the systems
in turn, over rounds; each figure the median of the rounds, and skas ÷ UML
a ratio of times (of seconds per byte for the rates), so below 1 is skas
ahead."""
from __future__ import annotations

import datetime
import os
import statistics
import sys
from pathlib import Path

import programs
import systems
import uml
from deploy import disk

SHELL_SCRIPT = "bin/shell-loop"     # SHELL_LOOP in a file: a kernel command line cannot carry it
# label, figure (measure()'s), kind: "us" a time per call, "MBps" a rate, "s" seconds
ROWS = (
    ("getppid", "getppid", "us"),
    ("open + read 4 KiB + close", "open_read_close", "us"),
    ("stat", "stat", "us"),
    ("pipe ping-pong round trip", "pipe_pingpong", "us"),
    ("write {mib} MiB (64 KiB) + fsync", "write_fsync", "MBps"),
    ("read {mib} MiB back, cached, 64 KiB", "read_64k", "MBps"),
    ("busybox tar c + x, 2000 small files", "tar", "s"),
    ("fork + _exit + waitpid", "fork_exit_wait", "us"),
    ("fork + execve /bin/true", "fork_exec_wait", "us"),
    ("busybox sh loop, 2000 iterations", "shell_loop", "s"),
    ("cold start: `run /bin/true`", "cold_start", "s"),
)
WORKLOADS = ("syscalls", "processes", "storage", "boot")


def prepare(tmp: Path) -> tuple[Path, Path]:
    """The tree (busybox, the programs, the shell loop's script, UML's init
    script) and an image of it, as big as the storage section's."""
    tree = tmp / "tree"
    disk.default_tree(tree)
    for name in ("syscalls", "processes", "storage"):
        programs.build(tree, name)
    script = tree / SHELL_SCRIPT
    script.unlink(missing_ok=True)
    script.write_text(programs.SHELL_LOOP + "\n")
    uml.install(tree)
    img = tmp / "bench.img"
    disk.create(img, programs.STORAGE_DISK, tree)
    return tree, img


def measure(system: systems.System, workload: str, calls: int, procs: int,
            mib: int) -> tuple[dict[str, float], str | None]:
    """One workload's figures on one system, and where storage ran."""
    if workload == "syscalls":
        out, _ = system.run(["/bin/syscalls", str(calls), "/etc/hostname"])
        return {"getppid": programs.parse(out)["getppid"][0]}, None
    if workload == "processes":
        out, _ = system.run(["/bin/processes", str(procs)])
        return {name: median for name, (median, _) in programs.parse(out).items()}, None
    if workload == "storage":
        out, where = system.storage(["/bin/storage", programs.STORAGE_DIR, str(mib), str(calls)])
        rows = {name: value for name, (_, value) in programs.parse_storage(out).items()}
        rows["tar"] = rows["tar_create"] + rows["tar_extract"]
        return rows, where
    # boot: a whole run of /bin/true, and the shell loop less that
    _, cold = system.run(["/bin/true"])
    _, loop = system.run(["/bin/sh", "/" + SHELL_SCRIPT])
    return {"cold_start": cold, "shell_loop": loop - cold}, None


def human(value: float, kind: str) -> str:
    if kind == "MBps":
        return f"{value / 1000:.2f} GB/s" if value >= 1000 else f"{value:.0f} MB/s"
    seconds = value / 1e6 if kind == "us" else value
    unit, scale = next(((u, s) for u, s in (("s", 1), ("ms", 1e-3)) if seconds >= s),
                       ("µs", 1e-6))
    shown = seconds / scale
    return f"{shown:.3g} {unit}" if shown < 100 else f"{shown:.0f} {unit}"


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def compare(names: list[str], rounds: int, calls: int, procs: int, mib: int,
            tmp: Path) -> None:
    """Runs every workload on every system, rounds times, interleaved, and
    prints issue 18's table (markdown) with the medians."""
    tree, img = prepare(tmp)
    columns = systems.make(["native", *names, "skas"], tmp, tree, img)
    figures: dict[str, dict[str, list[float]]] = {s.name: {} for s in columns}
    where: dict[str, set[str]] = {s.name: set() for s in columns}
    for r in range(rounds):
        for workload in WORKLOADS:
            for system in columns:
                rows, ran = measure(system, workload, calls, procs, mib)
                print(f"round {r + 1}/{rounds}, {workload} on {system.name}: "
                      + ", ".join(f"{name} {value:.4g}" for name, value in rows.items()),
                      file=sys.stderr)
                for name, value in rows.items():
                    figures[system.name].setdefault(name, []).append(value)
                if ran:
                    where[system.name].add(ran)
    medians = {s: {name: statistics.median(v) for name, v in rows.items()}
               for s, rows in figures.items()}
    print(f"\n{datetime.date.today()}, {cpu_model()} ({os.cpu_count()} CPUs)"
          f", medians of {rounds} rounds; per-call figures the medians of {calls} "
          f"calls (processes: {procs}, ping-pong {procs * 10}); storage on "
          + "; ".join(f"{s}: {', '.join(sorted(w))}" for s, w in where.items()))
    print_table([s.name for s in columns], medians, mib)


def print_table(names: list[str], medians: dict[str, dict[str, float]], mib: int) -> None:
    """The markdown table: a row per ROWS, a column per system, then skas ÷ UML."""
    ratio = "UML" in medians
    heads = names + (["skas ÷ UML"] if ratio else [])
    print("\n| workload | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for label, figure, kind in ROWS:
        cells = [human(medians[name][figure], kind) for name in names]
        if ratio:
            skas, base = medians["skas"][figure], medians["UML"][figure]
            cells.append(f"{(base / skas if kind == 'MBps' else skas / base):.2f}")
        print(f"| {label.format(mib=mib)} | " + " | ".join(cells) + " |")
