"""Guest disk images: ext2 made by mke2fs -d, checked by e2fsck."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"
SBIN = "/usr/sbin:/sbin"
EMPTY_DIRS = ("root", "tmp", "proc", "dev", "sys", "run", "home")


class DiskError(Exception):
    """A disk could not be made or checked; the message says what to do."""


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN)
    if path is None:
        raise DiskError(f"{name} not found: install Debian's e2fsprogs (apt-get install e2fsprogs)")
    return path


def default_tree(root: Path) -> None:
    """Debian's static busybox with a link per applet, and a minimal /etc."""
    if not os.path.exists(BUSYBOX):
        raise DiskError(f"{BUSYBOX} not found: install Debian's busybox-static "
                        "(apt-get install busybox-static)")
    for d in (*EMPTY_DIRS, "bin", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = root / applet
        if applet != "bin/busybox" and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (root / "etc/hostname").write_text("skas\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def create(path: Path, size: str = "64M", source: Path | None = None,
           force: bool = False) -> int:
    """Build an ext2 image at path holding a copy of source (or the default
    tree), check it; returns the number of files and directories in it."""
    path = Path(path)
    if path.exists() and not force:
        raise DiskError(f"{path} exists: pass --force to overwrite it, or choose another path")
    if source is not None and not Path(source).is_dir():
        raise DiskError(f"{source} is not a directory: --from takes the tree to copy")
    with tempfile.TemporaryDirectory(prefix="skas-disk-") as staging:
        if source is None:
            default_tree(Path(staging))
        tree = str(source or staging)   # mke2fs -d copies the tree; no staging copy needed
        files = sum(len(d) + len(f) for _, d, f in os.walk(tree))
        result = subprocess.run([_tool("mke2fs"), "-q", "-t", "ext2", "-d", tree, "-F",
                                 str(path), size], capture_output=True, text=True, check=False)
        if result.returncode:
            raise DiskError(f"mke2fs failed: {result.stderr.strip()} "
                            f"(is --size {size} big enough for the tree?)")
    check(path)
    return files


def check(path: Path) -> str:
    """e2fsck -fn: the image must be clean."""
    result = subprocess.run([_tool("e2fsck"), "-fn", str(path)], capture_output=True, text=True,
                            check=False)
    if result.returncode:
        raise DiskError(f"e2fsck found problems in {path}:\n{result.stdout}{result.stderr}")
    return result.stdout
