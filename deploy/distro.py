"""A Debian root for a guest disk: debootstrap --variant=minbase (plus the
packages asked for) into a directory, made ready to boot under skas.

debootstrap is Debian's own tool, so the tree is what a chroot or a UML
guest of the same suite holds; its downloads are kept in a cache directory
so the next image of the same suite takes seconds, not minutes."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = re.compile(r"[a-z][a-z0-9-]*")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


class DistroError(Exception):
    """The root could not be made; the message says what to do."""


def parse(spec: str) -> tuple[str, str]:
    """'debian' or 'debian:SUITE' -> (distribution, suite)."""
    name, _, suite = spec.partition(":")
    if name != "debian":
        raise DistroError(f"unknown distribution {name!r}: --distro takes debian[:SUITE]")
    suite = suite or DEFAULT_SUITE
    if not SUITE.fullmatch(suite):
        raise DistroError(f"bad suite {suite!r}: a Debian suite or codename, such as bookworm")
    return name, suite


def packages(spec: str | None) -> list[str]:
    """--include's comma-separated package names, checked."""
    names = [p for p in (spec or "").split(",") if p]
    for p in names:
        if not PACKAGE.fullmatch(p):
            raise DistroError(f"bad package name {p!r} in --include")
    return names


def cache_dir() -> Path:
    """Where debootstrap keeps the .debs it fetched (by suite: they differ)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "skas" / "debootstrap"


def debootstrap(tree: Path, suite: str, include: list[str], mirror: str = DEFAULT_MIRROR,
                progress: Callable[[str], None] = lambda _: None) -> None:
    """Fill tree (an empty directory) with a minbase root of suite; each of
    debootstrap's progress lines goes to progress as it comes."""
    tool = shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if tool is None:
        raise DistroError("debootstrap not found: install it (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise DistroError("debootstrap needs root (it makes device nodes and chowns files): "
                          "run skas disk create --distro as root")
    cache = cache_dir() / suite
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [tool, "--variant=minbase", f"--cache-dir={cache}"]
    if include:
        cmd.append("--include=" + ",".join(include))
    cmd += [suite, str(tree), mirror]
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            if line.startswith(("I: ", "W: ", "E: ")):
                progress(line)
    if p.returncode:
        log = tree / "debootstrap" / "debootstrap.log"
        raise DistroError(f"debootstrap {suite} failed (exit {p.returncode}):\n"
                          + "\n".join(tail)
                          + (f"\nits log: {log}" if log.exists() else "")
                          + f"\ncheck the suite and that {mirror} can be reached")
    prepare(tree)


def prepare(tree: Path) -> None:
    """What a Debian installer writes and debootstrap leaves out: a hostname,
    an fstab mounting the kernel's filesystems (as a guest's init would), and
    no host resolver file."""
    (tree / "etc/hostname").write_text("skas\n")
    os.chmod(tree / "etc/hostname", 0o644)
    (tree / "etc/fstab").write_text(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "/dev/root / ext2 defaults 0 0\n"
        "proc /proc proc defaults 0 0\n"
        "sysfs /sys sysfs defaults 0 0\n"
        "tmpfs /run tmpfs defaults,mode=0755 0 0\n")
    resolv = tree / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()          # debootstrap copies the host's: the guest has no network


def tree_bytes(tree: Path) -> int:
    """The space the tree's files take (what mke2fs -d will copy)."""
    total = 0
    for root, dirs, files in os.walk(tree):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def image_size(tree: Path) -> str:
    """An mke2fs size with room to spare: the tree's bytes plus a third, plus
    256 MiB for the metadata, installs and logs of a working system."""
    mib = (tree_bytes(tree) * 4 // 3 >> 20) + 256
    return f"{mib}M"
