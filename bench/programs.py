"""The benchmark programs (bench/*.c, built static into a guest's tree) and
the lines they print: shared by run.py's sections and against.py's side by
side, so every system runs the same binaries and is read the same way."""
from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHELL_LOOP = ("i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i > /tmp/x; "
              "cat /tmp/x >/dev/null; done")
STORAGE_DISK = "1G"     # 4 KiB blocks, as mke2fs gives a real disk; room for the 64 MiB file
STORAGE_DIR = "/storage-bench"


def build(tree: Path, name: str, where: str = "bin") -> None:
    """bench/NAME.c built static as tree/WHERE/NAME.  The path is unlinked
    first: the tree's applets are symlinks to the host's busybox, and
    writing through one would overwrite it."""
    dest = tree / where / name
    dest.unlink(missing_ok=True)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(dest), str(HERE / f"{name}.c")],
                   check=True)


def parse(out: str) -> dict[str, tuple[float, float]]:
    """timing.h's lines: NAME median_us M mean_us A."""
    rows = {}
    for line in out.splitlines():
        name, _, median, _, mean = line.split()
        rows[name] = (float(median), float(mean))
    return rows


def parse_storage(out: str) -> dict[str, tuple[str, float]]:
    """storage.c's lines: NAME MBps X, NAME seconds X, NAME median_us M mean_us A."""
    rows = {}
    for line in out.splitlines():
        name, unit, value, *_ = line.split()
        rows[name] = ("µs" if unit == "median_us" else unit, float(value))
    return rows
