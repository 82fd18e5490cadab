"""Guest disk images: ext2 made by mke2fs -d, checked by e2fsck."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"
SBIN = "/usr/sbin:/sbin"
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "dev", "sys",
        "run", "home")


class DiskError(Exception):
    """A disk could not be made or checked; the message says what to do."""


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN)
    if path is None:
        raise DiskError(f"{name} not found: install Debian's e2fsprogs (apt-get install e2fsprogs)")
    return path


def default_tree(root: Path, hostname: str = "skas") -> int:
    """Debian's static busybox with a link per applet, and a minimal /etc."""
    if not os.path.exists(BUSYBOX):
        raise DiskError(f"{BUSYBOX} not found: install Debian's busybox-static "
                        "(apt-get install busybox-static)")
    for d in DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = root / applet
        if applet != "bin/busybox" and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (root / "etc/hostname").write_text(hostname + "\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return len(applets) + 4


def create(path: Path, size: str = "64M", source: Path | None = None,
           force: bool = False) -> int:
    """Build an ext2 image at path from source (or the default tree); returns
    the number of files in it."""
    path = Path(path)
    if path.exists() and not force:
        raise DiskError(f"{path} exists: pass --force to overwrite it")
    with tempfile.TemporaryDirectory(prefix="skas-disk-") as staging:
        if source is None:
            default_tree(Path(staging))
            tree = staging
        else:
            if not Path(source).is_dir():
                raise DiskError(f"{source} is not a directory")
            tree = str(source)
        files = sum(len(d) + len(f) for _, d, f in os.walk(tree))
        result = subprocess.run([_tool("mke2fs"), "-q", "-F", "-t", "ext2", "-d", tree,
                                 str(path), size], capture_output=True, text=True)
        if result.returncode:
            raise DiskError(f"mke2fs failed: {result.stderr.strip()} "
                            f"(is {size} big enough for the tree?)")
    check(path)
    return files


def check(path: Path) -> str:
    """e2fsck -fn: the image must be clean."""
    result = subprocess.run([_tool("e2fsck"), "-fn", str(path)], capture_output=True, text=True)
    if result.returncode:
        raise DiskError(f"e2fsck found problems in {path}:\n{result.stdout}{result.stderr}")
    return result.stdout
