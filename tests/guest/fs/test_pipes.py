"""Pipes, the fd table, poll/select/epoll and eventfd: tests/progs/pipes.c runs
natively (in a chroot of the image's tree) and in a guest, section by
section, and must print the same; a few lines pin down what Linux says."""
import subprocess

import pytest

from conftest import disk_of, make_tree, skas

DATA = "0123456789abcdef\n"


@pytest.fixture(scope="module")
def pipes_tree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "pipes-tree", ["pipes"])
    (root / "etc" / "data").write_text(DATA)
    return root


@pytest.fixture(scope="module")
def pipes_disk(tmp_path_factory, pipes_tree):
    yield from disk_of(tmp_path_factory, pipes_tree, "32M")


def native_and_guest(tree, img, section: str) -> str:
    """The section's output, once it is the same natively and in a guest."""
    env = {"PATH": "/bin:/sbin", "HOME": "/"}
    native = subprocess.run(["chroot", str(tree), "/bin/pipes", section], capture_output=True,
                            text=True, env=env, timeout=60)
    assert native.returncode == 0, native.stdout + native.stderr
    guest = skas("run", "--disk", str(img), "--", "/bin/pipes", section)
    assert guest.returncode == 0, guest.stdout + guest.stderr
    assert guest.stdout == native.stdout
    return native.stdout


def test_pipe_eof_capacity_nonblocking_and_epipe(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "pipe")
    for line in ("read at EOF = 0", "read empty nonblocking = -1 EAGAIN",
                 "capacity 64-byte writes 65536", "capacity 1000-byte writes 64000",
                 "write 200 into 100 free = -1 EAGAIN", "fifo 1 perm 600",
                 "write with no reader = -1 EPIPE", "F_SETPIPE_SZ 100000 = 131072",
                 "readv of 3 bytes into 3+8 = 3", "readv of 7 bytes into 3+8 = 7",
                 "scattered abc|defg"):
        assert line in out


def test_dup_fcntl_close_range_and_the_fd_limit(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "fds")
    for line in ('shared offset gives "4567"', "read: still a writer = -1 EAGAIN",
                 "read: no writer now = 0", "F_GETFD 16 = 1", "F_GETFD 13 = -1 EBADF",
                 "dups until EMFILE: 12"):
        assert line in out


def test_poll_select_timeouts_hangup_and_error(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "poll")
    for line in ("poll empty, 30 ms = 0: 0", "poll four = 2: 0 0x4 0 0x20",
                 "left 0 0, r 0", "poll after the writer left = 1: 0x11",
                 "SIGUSR1 blocked after ppoll 0",
                 "poll a write end with no reader = 1: 0xc"):
        assert line in out


def test_epoll_level_edge_oneshot_order_and_nesting(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "epoll")
    for line in ("edge: spent = 0:", "one-shot: disarmed = 0:",
                 "all = 3: 0x4/11 0x1/12 0x1/7", "p's read end closed everywhere = 1: 0x10/12",
                 "inner watches outer: loop = -1 ELOOP", "outer after eventfd write = 1: 0x1/22"):
        assert line in out


def test_eventfd_counter_semaphore_and_limits(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "eventfd")
    for line in ("value 18446744073709551614", "write past it = -1 EAGAIN",
                 "semaphore read = -1 EAGAIN", "a write of 2 is = 1: 0x1/5"):
        assert line in out



def test_blocking_calls_wake_when_another_process_acts(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "fork")
    for line in ("read blocks until the child writes = 4", "epoll_wait -1 until the child writes = 1",
                 "write 200000 bytes = 200000", "child read 200000", "records 128 torn 0",
                 "round trips 200", "read after the echo left = 0", "reader killed by 9",
                 "the edge is still there = 1", "so is the data = 4"):
        assert line in out


def test_fifos_on_tmpfs_and_ext2_open_as_linux_opens_them(pipes_tree, pipes_disk):
    out = native_and_guest(pipes_tree, pipes_disk, "fifo")
    for line in ("open write nonblock, no reader = -1 ENXIO", "open read nonblock, no writer: ok",
                 "read = 7", "fstat fifo 1 size 0", "blocking opens met: from the child",
                 "read after the writer left = 0", "O_RDWR read = 1"):
        assert out.count(line) == 2, line
