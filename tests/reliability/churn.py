"""The write-heavy workload faults are injected into, and what is checked
after one: tests/progs/churn.c (fsync + rename churn amid console output)
beside a loop of busybox tar x, on a real ext2 image; afterwards e2fsck -fn
on the image, every file the guest said it fsync'd read back with debugfs,
and the numbered console lines in console.log."""
from __future__ import annotations

import random
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from conftest import make_tree

FILES = 300              # files churn writes and fsyncs
LINES = 8                # console lines before each
SCRIPT = """#!/bin/sh
mkdir -p /data /u
(while [ ! -e /data/stop ]; do
    rm -rf /u/t && mkdir /u/t && tar xf /root/t.tar -C /u/t || echo "error: untar"
done) &
/bin/churn /data "$1" "$2"
rc=$?
touch /data/stop
wait
echo "exit=$rc"
"""


def command(files: int = FILES) -> tuple[str, ...]:
    """The guest's command: churn through files files."""
    return ("/bin/sh", "/etc/churn.sh", str(files), str(LINES))


_LINE = re.compile(r"line (\d{6}) c{65}")
_BASE = bytes((k * 7 + (k >> 9)) & 0xFF for k in range(4096 * 8 + 97))


def expected(i: int) -> bytes:
    """File i as churn.c writes it."""
    shift = i * 131 & 0xFF
    table = bytes((b + shift) & 0xFF for b in range(256))
    return _BASE[:4096 * (1 + i % 8) + i % 97].translate(table)


def make_churn_tree(tmp_path_factory) -> Path:
    """The default tree, churn, its script, and /root/t.tar: a few hundred
    small files for the guest to untar over and over."""
    root = make_tree(tmp_path_factory, "churn", progs=["churn"])
    (root / "etc/churn.sh").write_text(SCRIPT)
    src = tmp_path_factory.mktemp("untar")
    rand = random.Random(19)
    for d in range(8):
        (src / f"d{d}").mkdir()
        for f in range(40):
            (src / f"d{d}/f{f}").write_bytes(rand.randbytes(rand.randrange(100, 12000)))
    with tarfile.open(root / "root/t.tar", "w") as tar:
        tar.add(src, arcname=".")
    return root


def fsynced(console: str) -> list[int]:
    """The files the guest reported fsync'd, in order."""
    return [int(n) for n in re.findall(r"^fsynced (\d+)$", console, re.M)]


@dataclass
class Lines:
    """The numbered console lines: how many of those printed are there
    (first copies in order), whether out of order, repeated or garbled."""
    present: int
    in_order: bool
    repeats: int
    garbled: list[str]

    def complete(self, printed: int) -> bool:
        return self.present == printed and self.in_order and not self.garbled


def console_lines(console: str) -> Lines:
    seen: list[int] = []
    first: set[int] = set()
    garbled = []
    for line in console.splitlines():
        m = _LINE.fullmatch(line)
        if m:
            seen.append(int(m[1]))
            first.add(int(m[1]))
        elif not re.fullmatch(r"fsynced \d+|done \d+|exit=\d+", line):
            garbled.append(line)
    order = list(dict.fromkeys(seen))
    return Lines(len(first), order == sorted(order) and order == list(range(len(order))),
                 len(seen) - len(first), garbled)


def e2fsck(img: Path) -> str:
    """'' if e2fsck -fn finds the image clean, else what it says."""
    r = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    return "" if r.returncode == 0 else r.stdout + r.stderr


def damaged_files(img: Path, files: list[int], out: Path) -> list[int]:
    """Of the files given, those whose bytes on the image (read with
    debugfs) are not what churn wrote."""
    out.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump /data {out}", str(img)], capture_output=True,
                   check=True)
    bad = []
    for i in files:
        path = out / "data" / f"f{i:05d}"
        if not path.exists() or path.read_bytes() != expected(i):
            bad.append(i)
    return bad
