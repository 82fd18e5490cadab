"""How each system runs a benchmark command on the same tree and image:
natively in a chroot, under PRoot (ptrace, the tree as its root), in a skas
guest (`skas run`), and under User-Mode Linux (uml.py).  The storage
program gets a fresh copy of the image on every system (it must find its
directory new): natively and under PRoot the copy is loop-mounted, so every
system writes ext2 to an image file and fsync reaches the host's disk."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import uml

ROOT = Path(__file__).resolve().parent.parent
GUEST_OPTIONS: list[str] = []     # run.py's --ptrace-only passes on to skas run
CHROOT = ("chroot",)
PROOT = ("proot", "-r")
AGAINST = {"uml": uml.UML, "proot": PROOT[0]}     # what --against may name: its program


def skas_run(img: Path, cmd: list[str]) -> list[str]:
    return [sys.executable, "-m", "deploy.cli", "run", "--disk", str(img), *GUEST_OPTIONS,
            "--", *cmd]


def timed(argv: list[str], **kwargs) -> tuple[str, float]:
    """argv's stdout and its wall seconds, from the spawn to the exit."""
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs).stdout
    return out, time.monotonic() - start


@contextlib.contextmanager
def image_copy(img: Path) -> Iterator[Path]:
    """A sparse copy of img beside it, removed after use."""
    copy = img.with_name("copy-" + img.name)
    subprocess.run(["cp", "--sparse=always", str(img), str(copy)], check=True)
    try:
        yield copy
    finally:
        copy.unlink()


def on_image_copy(tmp: Path, tree: Path, img: Path, cmd: list[str],
                  enter: tuple[str, ...] = CHROOT) -> tuple[str, str]:
    """cmd's stdout, run by `enter ROOT cmd` (chroot, proot -r) with a copy
    of img loop-mounted as ROOT, and where it ran; in the tree on the
    host's own filesystem if the image cannot be mounted."""
    mnt = tmp / "mnt"
    mnt.mkdir(exist_ok=True)
    with image_copy(img) as copy:
        if subprocess.run(["mount", "-o", "loop", str(copy), str(mnt)],
                          capture_output=True).returncode:
            return timed([*enter, str(tree), *cmd])[0], \
                "a chroot of the tree on the host's filesystem"
        try:
            return timed([*enter, str(mnt), *cmd])[0], "the same ext2 image loop-mounted"
        finally:
            subprocess.run(["umount", str(mnt)], check=True)


@dataclass
class System:
    """One column of the side by side: run times a command on the shared
    tree or image; storage runs one on a fresh copy of the image and says
    where it ran."""
    name: str
    run: Callable[[list[str]], tuple[str, float]]
    storage: Callable[[list[str]], tuple[str, str]]


def on_host(name: str, enter: tuple[str, ...], tmp: Path, tree: Path, img: Path) -> System:
    return System(name, lambda cmd: timed([*enter, str(tree), *cmd]),
                  lambda cmd: on_image_copy(tmp, tree, img, cmd, enter))


def booted(name: str, boot: Callable[[Path, list[str]], tuple[str, float]],
           img: Path) -> System:
    """A system that boots the image: each command is one boot, to halt."""
    def storage(cmd: list[str]) -> tuple[str, str]:
        with image_copy(img) as copy:
            return boot(copy, cmd)[0], "a fresh copy of the image"
    return System(name, lambda cmd: boot(img, cmd), storage)


def make(names: list[str], tmp: Path, tree: Path, img: Path) -> list[System]:
    """The systems named, in the order given."""
    memory = uml.memory_dir(tmp)
    makers = {
        "native": lambda: on_host("native", CHROOT, tmp, tree, img),
        "proot": lambda: on_host("PRoot", PROOT, tmp, tree, img),
        "uml": lambda: booted("UML", lambda i, cmd: uml.run(i, cmd, memory), img),
        "skas": lambda: booted("skas", lambda i, cmd: timed(skas_run(i, cmd), cwd=ROOT), img),
    }
    return [makers[name]() for name in names]
