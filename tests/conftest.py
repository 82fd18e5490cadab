"""Shared fixtures: real disk images, C programs built with gcc -static at test
time, and guests booted with the real `skas run` or from their services."""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common import protocol
from common.config import GuestConfig
from common.transport import Link
from deploy import disk as diskmod

# The Debian root (debootstrap) and its chroot and guest runners, for tests/guest/distro;
# supervised guests (the skas_home fixture), for tests/services and tests/reliability;
# the fault matrix's report, for tests/reliability.
pytest_plugins = ["debian_root", "supervised", "fault_report"]

HERE = Path(__file__).parent
PROGS = HERE / "progs"
os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def build(src: str, out: Path, *flags: str) -> Path:
    if out.is_symlink():    # a busybox applet's link in a tree names the host's busybox
        out.unlink()
    subprocess.run(["gcc", "-O2", *flags, "-o", str(out), str(PROGS / src)], check=True)
    return out


@pytest.fixture(scope="session")
def progs(tmp_path_factory) -> Path:
    """The test programs, static and static-PIE."""
    d = tmp_path_factory.mktemp("progs")
    for name in ("showenv", "escape"):
        build(f"{name}.c", d / name, "-static")
    build("showenv.c", d / "showenv-pie", "-static-pie")
    return d


def make_tree(tmp_path_factory, name: str, progs=(), *flags: str) -> Path:
    """The default busybox tree plus C programs from tests/progs, built
    with gcc -static (and flags) into its /bin."""
    root = tmp_path_factory.mktemp(name)
    diskmod.default_tree(root)
    for prog in progs:
        build(f"{prog}.c", root / "bin" / prog, "-static", *flags)
    return root


def add_libraries(root: Path, prog: Path) -> None:
    """Copy the shared objects ldd says prog needs, the interpreter with
    them, from the host into the tree at root, where ld.so looks for them."""
    out = subprocess.run(["ldd", str(prog)], capture_output=True, text=True, check=True).stdout
    for lib in (Path(p) for p in re.findall(r"(/\S+) \(0x", out)):
        dest = root / lib.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)        # never write through a link to the host's
        shutil.copy(lib.resolve(), dest)


def disk_of(tmp_path_factory, tree: Path, size: str = "64M"):
    """For a fixture to `yield from`: an image of tree, which must still pass
    e2fsck -fn after the tests that used it."""
    img = tmp_path_factory.mktemp(tree.name + "-disk") / "disk.img"
    diskmod.create(img, size, tree)
    yield img
    diskmod.check(img)


@pytest.fixture(scope="session")
def tree(tmp_path_factory, progs) -> Path:
    """The default busybox tree plus the test programs and a data file."""
    root = make_tree(tmp_path_factory, "tree")
    for p in progs.iterdir():
        shutil.copy2(p, root / "bin" / p.name)
    (root / "etc/motd").write_text("a file from the guest's disk\nline two\n")
    return root


@pytest.fixture(scope="session")
def disk(tmp_path_factory, tree) -> Path:
    yield from disk_of(tmp_path_factory, tree)


LOGS: list[Path] = []          # where `skas run` keeps its logs, once the session began
RUNS = itertools.count()
LOG_ALARMS = ("Traceback", "never retrieved")


@pytest.fixture(scope="session", autouse=True)
def kernel_logs_are_clean(tmp_path_factory):
    """No kernel log the session leaves may hold a traceback or a task
    exception nobody retrieved: a kernel bug any test met fails the session
    here (an error at the last test's teardown), even where the guest's
    output looked right.  The logs are `skas run`'s (kept with --log-dir by
    skas() below) and those of guests started from a test's own run
    directory, all under the session's temporary directory."""
    LOGS.append(tmp_path_factory.mktemp("kernel-logs"))
    yield
    found = []
    for log in sorted(tmp_path_factory.getbasetemp().rglob("kernel.log")):
        lines = log.read_text(errors="replace").splitlines()
        for n, line in enumerate(lines):
            if any(alarm in line for alarm in LOG_ALARMS):
                # what it says, for a failure seen once in CI (the logs go with the run)
                found.append(f"{log}:{n + 1}:\n" + "\n".join(lines[max(n - 3, 0):n + 30]))
                break
    assert not found, "kernel logs with a bug in them:\n" + "\n\n".join(found)


def _command(args: tuple) -> list[str]:
    """The real command line; `skas run` keeps its logs for the check above."""
    if args[:1] == ("run",) and "--log-dir" not in args and LOGS:
        args = ("run", "--log-dir", str(LOGS[0] / str(next(RUNS))), *args[1:])
    return [sys.executable, "-m", "deploy.cli", *args]


def skas(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """skas run to its end, its output captured."""
    return subprocess.run(_command(args), capture_output=True, text=True, timeout=timeout,
                          cwd=HERE.parent, **kw)


def skas_popen(*args: str, **kw) -> subprocess.Popen:
    """skas started for a test to watch while it runs."""
    return subprocess.Popen(_command(args), cwd=HERE.parent, **kw)


@pytest.fixture
def run_guest(disk):
    def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
        return skas("run", "--disk", str(disk), "--", *cmd, **kw)
    return run


# Differential tests: the same program natively (in a chroot of the guest's
# tree) and in a guest.
NATIVE_ENV = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/", "TERM": "linux"}


def _as_booted() -> None:
    """A native run starts at nice 0, as a guest's init does: the suite may
    itself run niced (root may lower it again)."""
    os.setpriority(os.PRIO_PROCESS, 0, 0)


def native(tree: Path, *argv: str) -> subprocess.CompletedProcess:
    """stderr joins stdout, as both go to the guest's one console."""
    return subprocess.run(["chroot", str(tree), *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=NATIVE_ENV, timeout=60,
                          preexec_fn=_as_booted)


def native_private_mounts(tree: Path, *argv: str) -> subprocess.CompletedProcess:
    """native, in a private mount namespace: for programs that mount (proc,
    a nosuid tmpfs) inside their chroot."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "chroot", str(tree),
                           *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=NATIVE_ENV, timeout=60, preexec_fn=_as_booted)


# native, for programs that use ptys: the chroot gets a /dev of its own with
# a new devpts instance, and a /proc, in a mount namespace that goes with the run
NATIVE_DEV = """set -e
mount -t tmpfs none "$1/dev"
mkdir "$1/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$1/dev/pts"
ln -s pts/ptmx "$1/dev/ptmx"
mknod -m 666 "$1/dev/tty" c 5 0
if [ -d "$1/proc" ]; then mount -t proc proc "$1/proc"; fi
root=$1; shift
exec chroot "$root" "$@"
"""


def native_with_ptys(tree: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", NATIVE_DEV,
                           "sh", str(tree), *argv], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=NATIVE_ENV, timeout=60, preexec_fn=_as_booted)


def guest(img: Path, *argv: str, options: tuple = ()) -> subprocess.CompletedProcess:
    return skas("run", "--disk", str(img), *options, "--", *argv, timeout=120)


# Services started by a test itself: their config, and one request on a raw socket.
def make_config(tmp_path, disk, init, console="log") -> GuestConfig:
    cfg = GuestConfig(name="svc", run_dir=tmp_path / "run", disks={"ubd0": str(disk)},
                      init=init, console=console)
    cfg.make_run_dir()
    cfg.write()
    return cfg


def ask(endpoint: str, raw: bytes, timeout: float = 5.0) -> protocol.Message:
    link = Link(endpoint, "test")
    try:
        link.sock.send(raw)
        assert link.sock.poll(int(timeout * 1000)), f"no reply from {endpoint}"
        return protocol.decode(link.sock.recv())
    finally:
        link.close()
