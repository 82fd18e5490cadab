"""Guest disk images: ext2 made by mke2fs -d, checked by e2fsck; UML COW
overlays made, merged and checked (the format is services/ubd_io/cow.py)."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from services.ubd_io import cow
from services.ubd_io.images import Overlay, open_image
from services.ubd_io.journal import Journaled, JournalBusy, JournalError, journal_path

BUSYBOX = "/usr/bin/busybox"
SBIN = "/usr/sbin:/sbin"
EMPTY_DIRS = ("root", "tmp", "proc", "dev", "sys", "run", "home")
MERGE_CHUNK = 1 << 20
# busybox init's table, for a guest booted without a command (skas create):
# a login shell with job control on the console line, tty0; Ctrl-Alt-Del
# (skas ctl cad) reboots; poweroff, halt and reboot unmount the disks or
# leave them read-only
INITTAB = """tty0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""


class DiskError(Exception):
    """A disk could not be made or checked; the message says what to do."""


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN)
    if path is None:
        raise DiskError(f"{name} not found: install Debian's e2fsprogs (apt-get install e2fsprogs)")
    return path


def default_tree(root: Path) -> None:
    """Debian's static busybox with a link per applet, and a minimal /etc
    (an inittab for busybox init)."""
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
    (root / "etc/inittab").write_text(INITTAB)


def create(path: Path, size: str = "64M", source: Path | None = None,
           force: bool = False) -> int:
    """Build an ext2 image at path holding a copy of source (or the default
    tree), check it; returns the number of files and directories in it."""
    path = Path(path)
    if path.exists() and not force:
        raise DiskError(f"{path} exists: pass --force to overwrite it, or choose another path")
    if source is not None and not Path(source).is_dir():
        raise DiskError(f"{source} is not a directory: --from takes the tree to copy")
    forget_journal(path)
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


def forget_journal(path: Path) -> None:
    """An image made anew at path: a journal an old one left there (what
    ubd_io staged for it) must not be applied to it."""
    try:
        fd = os.open(journal_path(str(path)), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DiskError(f"{path} is in use by a running guest: stop it first") from None
    finally:
        os.close(fd)
    os.unlink(journal_path(str(path)))


def settle(path: Path) -> None:
    """What a ubd_io committed but did not get to apply (it was killed in
    between) is applied from the image's journal, as ubd_io's next start
    would: the image is then as the guest's last commit point left it.
    Writes a dead kernel staged and never committed stay in the journal.
    An image a running ubd_io serves is left to it, with a warning."""
    if not os.path.exists(journal_path(str(path))):
        return
    try:
        image = open_image(str(path))
    except (OSError, cow.CowError) as exc:
        raise DiskError(f"cannot open {path}: {exc}") from None
    try:
        Journaled(image).close()
    except JournalBusy:
        image.close()
        print(f"warning: {path} is in use by a running guest: read as it is on the host, "
              "without the writes its ubd_io holds staged", file=sys.stderr)
    except JournalError as exc:
        image.close()
        raise DiskError(str(exc)) from None


def check(path: Path) -> str:
    """e2fsck -fn: the image must be clean.  An overlay is merged with its
    backing file into a temporary image first (e2fsck cannot read COW files).
    What ubd_io's journal holds committed is applied first (settle)."""
    settle(path)
    if not is_overlay(path):
        return _e2fsck(path, path)
    with tempfile.TemporaryDirectory(prefix="skas-check-") as tmp:
        merged = Path(tmp) / "merged.img"
        merge(path, merged)
        return _e2fsck(merged, path)


def _e2fsck(image: Path, name: Path) -> str:
    result = subprocess.run([_tool("e2fsck"), "-fn", str(image)], capture_output=True, text=True,
                            check=False)
    if result.returncode:
        raise DiskError(f"e2fsck found problems in {name}:\n{result.stdout}{result.stderr}")
    return result.stdout


def is_overlay(path: Path) -> bool:
    with open(path, "rb") as f:
        return cow.is_cow(f.fileno())


def check_overlay(path: Path, backing: Path | None) -> None:
    """Refuse up front an overlay that ubd_io would refuse (not a COW file,
    backing file missing or changed); a missing overlay with a backing is fine
    (ubd_io makes it)."""
    if not path.exists() or (backing is None and not is_overlay(path)):
        return
    try:
        with open(path, "rb") as f:
            header = cow.read_header(f.fileno(), str(path))
        backing = backing or Path(header.backing)
        if not backing.is_file():
            raise DiskError(f"{path}: its backing file {backing} is missing: give it as "
                            "OVERLAY,BACKING")
        header.check_backing(str(backing))
    except cow.CowError as exc:
        raise DiskError(str(exc)) from None


def create_cow(backing: Path, overlay: Path, force: bool = False) -> cow.Header:
    """A new, empty UML COW overlay of backing (what uml_mkcow makes)."""
    if Path(overlay).exists() and not force:
        raise DiskError(f"{overlay} exists: pass --force to overwrite it, or choose another path")
    if not Path(backing).is_file():
        raise DiskError(f"backing file {backing} is not a file: give the image to overlay")
    if Path(backing).resolve() == Path(overlay).resolve():
        raise DiskError("the overlay and its backing file must be different files")
    forget_journal(overlay)
    try:
        return cow.create(str(overlay), str(backing), force)
    except (OSError, cow.CowError) as exc:
        raise DiskError(f"cannot create {overlay}: {exc}") from None


def merge(overlay: Path, out: Path, force: bool = False) -> int:
    """Write overlay over its backing file as one full image at out (what
    uml_moo does); returns its size.  out is sparse where the result is zero."""
    if Path(out).exists() and not force:
        raise DiskError(f"{out} exists: pass --force to overwrite it, or choose another path")
    settle(overlay)
    try:
        source = Overlay(str(overlay), readonly=True)
    except (OSError, cow.CowError) as exc:
        raise DiskError(f"cannot read overlay {overlay}: {exc}") from None
    try:
        with open(out, "wb") as f:
            f.truncate(source.size)
            for offset in range(0, source.size, MERGE_CHUNK):
                data = source.read(offset, min(MERGE_CHUNK, source.size - offset))
                if data.count(0) != len(data):
                    os.pwrite(f.fileno(), data, offset)
            os.fsync(f.fileno())
    finally:
        source.close()
    return source.size
