"""Per-guest bounds (issue 13: one guest process cannot take the guest, or
the host, down): big writes to pipes, the console and devices taken a chunk
at a time, what pipes hold bounded, fd allocation that does not scan, the
fds of all the guest's processes bounded, a fork bomb that ends with EAGAIN
in its own guest, and getdents64's EINVAL; and (issue 20: no handler holds
the loop) long directory walks taken a step at a time.  The guest programs
are tests/progs/sec_*.c."""
from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from common.config import SERVICES, GuestConfig
from conftest import HERE, disk_of, make_tree, skas
from deploy import launch

PROGS = ["sec_flood", "sec_fds", "sec_getdents", "sec_forkbomb"]
GiB = 1 << 30


@pytest.fixture(scope="module")
def bounds_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "bounds-tree", PROGS)


@pytest.fixture(scope="module")
def bounds_disk(tmp_path_factory, bounds_tree):
    yield from disk_of(tmp_path_factory, bounds_tree)


def boot(disk: Path, cmd: list[str], timeout: float = 300, kernel_apart: bool = False,
         **settings) -> tuple[str, int, str]:
    """cmd as init of a guest started from its services as `skas run` starts
    them, with the console in a file; it must exit 0.  Its console output,
    the kernel's peak RSS in KiB (the host's wait4 says) and its log.
    kernel_apart: the kernel on one CPU, the rest (the guest too) on another."""
    run_dir = Path(tempfile.mkdtemp(prefix="skas-bounds-"))   # short: ipc paths
    settings.setdefault("console_tty", False)     # a file, as skas run's output to one
    cfg = GuestConfig(name="bounds", run_dir=run_dir, disks={"ubd0": str(disk)}, init=cmd,
                      console="log", **settings)
    cfg.make_run_dir()
    cfg.write()
    procs = _start_apart(cfg) if kernel_apart else launch.start(cfg)
    kernel = procs["kernel"]
    try:
        deadline = time.monotonic() + timeout
        while not (waited := os.wait4(kernel.pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, launch.log_tail(cfg, "kernel")
            time.sleep(0.1)
        kernel.returncode = os.waitstatus_to_exitcode(waited[1])
        out = cfg.console_log.read_bytes().decode("latin-1")     # any bytes a program wrote
        assert kernel.returncode == 0, out + launch.log_tail(cfg, "kernel")
        return out, waited[2].ru_maxrss, (run_dir / "kernel.log").read_text()
    finally:
        launch.stop(procs)
        shutil.rmtree(run_dir, ignore_errors=True)


def _start_apart(cfg: GuestConfig) -> dict:
    """The services started on this process's second CPU, then the kernel
    moved to its first, before it has made a thread: the guest's processes,
    which userspace starts, run on the second."""
    cpus = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpus[1]})
        procs = launch.start(cfg)
    finally:
        os.sched_setaffinity(0, cpus)
    for task in os.listdir(f"/proc/{procs['kernel'].pid}/task"):
        os.sched_setaffinity(int(task), {cpus[0]})
    return procs


def native(tree: Path, *cmd: str) -> str:
    r = subprocess.run(["chroot", str(tree), *cmd], capture_output=True, text=True,
                       env={"PATH": "/bin:/sbin", "HOME": "/"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def guest(disk: Path, *cmd: str, timeout: float = 120) -> str:
    """cmd's output in a one-shot guest (skas run); it must exit 0."""
    with tempfile.TemporaryDirectory() as logs:
        r = skas("run", "--log-dir", logs, "--disk", str(disk), "--", *cmd, timeout=timeout)
        assert r.returncode == 0, r.stdout + r.stderr + "".join(
            f"\n{log.name}:\n{log.read_text()[-3000:]}" for log in Path(logs).glob("*.log"))
    return r.stdout


# --- 1. writes a chunk at a time, and what pipes hold -------------------------------

KERNEL_RSS_MAX = 256 << 10     # KiB: a 1 GiB write held whole would be 4 times this


def _flooded(out: str, writers: int, each: int) -> None:
    """The pipe carried every byte, each write() returned its whole size, and
    the bystander's getppid calls went on while the data went through."""
    assert out.count(f"write returned {each}\n") == writers, out
    total = writers * each
    assert f"read {total} of {total} bytes, 0 words not the pattern, sum right" in out, out
    calls = int(re.search(r"bystander calls during the write: (-?\d+)", out)[1])
    assert calls > 0, out
    assert "children failed: 0" in out, out


def test_one_1gib_write_to_a_pipe_passes_a_chunk_at_a_time(bounds_disk):
    out, kernel_rss, _ = boot(bounds_disk, ["/bin/sec_flood", "pipe", "1024"])
    _flooded(out, 1, GiB)
    assert kernel_rss < KERNEL_RSS_MAX, f"the kernel peaked at {kernel_rss} KiB"


def test_sixteen_blocked_writers_hold_none_of_their_data(bounds_disk):
    out, kernel_rss, _ = boot(bounds_disk, ["/bin/sec_flood", "pipes", "16", "64"])
    _flooded(out, 16, 64 << 20)
    assert kernel_rss < KERNEL_RSS_MAX, f"the kernel peaked at {kernel_rss} KiB"


def test_one_256mib_write_to_the_console_passes_a_chunk_at_a_time(bounds_disk):
    out, kernel_rss, _ = boot(bounds_disk, ["/bin/sec_flood", "tty", "256"],
                              console_log_max=1 << 30)   # all of it in console.log
    intact = out.encode("latin-1") == bytes(range(256)) * (1 << 20)
    assert intact, f"{len(out)} bytes on the console"
    assert kernel_rss < KERNEL_RSS_MAX, f"the kernel peaked at {kernel_rss} KiB"


def test_one_1gib_write_to_dev_null_passes_a_piece_at_a_time(bounds_disk):
    out, kernel_rss, _ = boot(bounds_disk, ["/bin/sec_flood", "null", "1024"])
    assert out == f"write to /dev/null returned {GiB}\n"
    assert kernel_rss < KERNEL_RSS_MAX, f"the kernel peaked at {kernel_rss} KiB"


def test_the_guests_pipes_hold_at_most_128_mib(bounds_disk):
    """Pipes made and filled until pipe() fails: Linux's pipe-user-pages
    rules for the whole guest (16 slots each up to 16,384 pages, then 2, and
    none grows), ENFILE at 32,768 pages."""
    out, kernel_rss, log = boot(bounds_disk, ["/bin/sec_flood", "pipe-pages"])
    assert out == ("pipes: 1024 of 64 KiB, 8192 of 8 KiB, 0 else, 134217728 bytes held, "
                   "then ENFILE\n"
                   "F_SETPIPE_SZ 64 KiB on a small one: EPERM\n"
                   "a pipe once the first is closed: 8192 bytes\n")
    assert kernel_rss < KERNEL_RSS_MAX, f"the kernel peaked at {kernel_rss} KiB"
    assert "pipe pages in the guest (32768) reached: ENFILE" in log


# --- 2. the lowest free fd, found without a scan -----------------------------------------

def test_fd_allocation_at_50000_fds_matches_linux(bounds_tree, bounds_disk):
    """The same checks natively (as many fds as the host's hard limit allows)
    and in a guest at 50,000 fds under a limit of 100,000."""
    n = min(50000, resource.getrlimit(resource.RLIMIT_NOFILE)[1] // 2 // 100 * 100)
    expected = native(bounds_tree, "/bin/sec_fds", str(n))
    assert expected.count(": ok\n") == len(expected.splitlines()) == 38, expected
    assert guest(bounds_disk, "/bin/sec_fds", "50000") == expected


def test_the_guest_holds_at_most_2_20_fds_in_all_its_processes(bounds_disk):
    """Four processes of 2^18 fds: a fifth fork is ENOMEM, a new fd ENFILE,
    and both work again once there is room."""
    out, _, log = boot(bounds_disk, ["/bin/sec_fds", "guest"])
    assert out.count(": ok\n") == len(out.splitlines()) == 7, out
    assert "fds in the guest (1048576) reached: ENOMEM" in log
    assert "fds in the guest (1048576) reached: ENFILE" in log


# --- 3. a fork bomb ends in its own guest ------------------------------------------------

def _descendants(pid: int) -> int:
    """How many host processes descend from pid."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    todo, count = [pid], 0
    while todo:
        kids = children.get(todo.pop(), [])
        count += len(kids)
        todo += kids
    return count


ROUND = re.compile(r"round \d+: forks failed with (\w+), (\d+) other errors, "
                   r"(\d+) processes at the peak")


def test_a_fork_bomb_ends_with_eagain_and_another_guest_runs_on(tmp_path, bounds_disk, disk):
    """Five bombs in a row in one guest, each ending at max_tasks processes
    with EAGAIN; meanwhile a second guest runs a command, and the first
    guest's host processes (sampled) never pass max_tasks and its services."""
    max_tasks = GuestConfig.__dataclass_fields__["max_tasks"].default
    logs = tmp_path / "logs"
    bomb = subprocess.Popen([sys.executable, "-m", "deploy.cli", "run", "--log-dir", str(logs),
                             "--disk", str(bounds_disk), "--", "/bin/sec_forkbomb", "5"],
                            cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    host_peak = 0

    def sample() -> None:
        nonlocal host_peak
        while bomb.poll() is None:
            host_peak = max(host_peak, _descendants(bomb.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        deadline = time.monotonic() + 30
        while host_peak < max_tasks // 4 and bomb.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)          # start the other guest once the bomb is under way
        other = skas("run", "--disk", str(disk), "--", "/bin/busybox", "echo", "still here")
        out, err = bomb.communicate(timeout=120)
    finally:
        bomb.kill()
        sampler.join()
    assert other.returncode == 0 and other.stdout == "still here\n", other.stdout + other.stderr
    assert bomb.returncode == 0, out + err
    rounds = ROUND.findall(out)
    assert len(rounds) == 5, out
    for errno_name, others, peak in rounds:
        assert errno_name == "EAGAIN" and others == "0", out
        assert max_tasks - 16 <= int(peak) <= max_tasks, out
    assert host_peak <= max_tasks + len(SERVICES), host_peak
    assert f"max_tasks ({max_tasks}) reached: EAGAIN" in (logs / "kernel.log").read_text()


def test_rlimit_nproc_counts_a_users_tasks_as_linux(bounds_tree, bounds_disk):
    """Not root: a fork fails with EAGAIN once the user has RLIMIT_NPROC
    tasks; natively as a uid nobody uses, and in a guest whose init runs as
    uid 1000."""
    expected = subprocess.run(["setpriv", "--reuid", "3999999999", "--regid", "3999999999",
                               "--clear-groups", str(bounds_tree / "bin/sec_forkbomb"), "2", "20"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    assert expected.count("EAGAIN, 0 other errors, 20 processes at the peak") == 2, expected
    out, _, log = boot(bounds_disk, ["/bin/sec_forkbomb", "2", "20"], uid=1000, gid=1000)
    assert out == expected
    assert "RLIMIT_NPROC (20) reached: EAGAIN" in log


# --- 4. getdents64 ------------------------------------------------------------------------

def test_getdents64_with_a_buffer_too_small_is_einval_as_linux(bounds_tree, bounds_disk):
    expected = native(bounds_tree, "/bin/sec_getdents")
    assert "count 2^32 + 8 = -1 EINVAL" in expected and "count 64 KiB = 3 entries" in expected
    assert guest(bounds_disk, "/bin/sec_getdents") == expected


# --- 5. long directory walks ---------------------------------------------------------------

WALK_ENTRIES = 4096
WALKS = ("list", "lookup", "rmdir", "create", "unlink")


@pytest.fixture(scope="module")
def walk_disk(tmp_path_factory):
    """A tree whose /walk/NAME directories have WALK_ENTRIES names each (links
    to one file, made by mke2fs with the image: no kernel has read them)."""
    tree = make_tree(tmp_path_factory, "walk-tree", ["sec_dirwalk"])
    (tree / "walk").mkdir()
    target = tree / "walk" / "target"
    target.touch()
    for walk in WALKS:
        (tree / "walk" / walk).mkdir()
        for i in range(WALK_ENTRIES):
            os.link(target, tree / "walk" / walk / f"{i:05d}")
    yield from disk_of(tmp_path_factory, tree)


def test_long_directory_walks_leave_the_kernel_serving_others(walk_disk):
    """Each walk over a directory of 4,096 entries, one system call (on ext2
    a whole listing in one getdents64, and the first lookup, rmdir, create
    and unlink in a directory whose names the kernel reads then; on tmpfs a
    listing and a getcwd that looks for its name; a listing of 4,096 fds in
    /proc), lets the kernel's loop go a step at a time: bystanders' calls
    are served while the walk's call waits in the kernel (they find it so in
    /proc/PID/stat, which no call could while one held the loop).  The
    kernel runs on a CPU of its own, so that a bystander is ready at every
    step.  Before, the bystanders were never served during the listings,
    the lookup, rmdir and getcwd (create and unlink waited for the disk's
    read-ahead on the way, and they were)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs: the kernel on one, the bystanders ready on the other")
    out, _, _ = boot(walk_disk, ["/bin/sec_dirwalk", str(WALK_ENTRIES)], kernel_apart=True,
                     tmpfs=["/tmp"])
    n = WALK_ENTRIES
    assert dict(re.findall(r"^(.*?): (\S+); bystanders served", out, re.M)) == {
        "ext2: getdents64 of all of it": str(n + 2),
        "ext2: stat of a missing name": "ENOENT",
        "ext2: rmdir of it": "ENOTEMPTY",
        "ext2: creating one more entry": "0",
        "ext2: unlinking an entry": "0",
        "tmpfs: getdents64 of all of it": str(n + 3),
        "tmpfs: getcwd in its last subdirectory": "0",
        "procfs: getdents64 of /proc/self/fd": str(n + 7)}, out   # n, 0-2, /dev/null, the dir
    assert "ext2: unlinking it: 0\n" in out and "tmpfs: getcwd gave /tmp/walk/sub\n" in out
    served = re.findall(r"; bystanders served (\d+) times during it$", out, re.M)
    assert len(served) == 8 and all(int(times) > 0 for times in served), out
    assert out.endswith("bystanders failed: 0\n"), out
