"""A hostile guest against AF_UNIX sockets (tests/progs/sec_sockets.c): bad
pointers in msghdrs, iovecs and control messages are EFAULT, lying lengths
EINVAL, ENOBUFS or EMSGSIZE, fd-passing loops and peers that never read
leave the kernel's memory bounded (EAGAIN, ETOOMANYREFS), forged
credentials are EPERM; the same as natively, and the kernel keeps
serving (its log stays clean: tests/conftest.py checks every log)."""
import pytest

from conftest import disk_of, make_tree, native as run_native, skas


@pytest.fixture(scope="module")
def sec_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "sec-sockets-tree", ["sec_sockets"])


@pytest.fixture(scope="module")
def sec_disk(tmp_path_factory, sec_tree):
    yield from disk_of(tmp_path_factory, sec_tree, "32M")


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_hostile_socket_calls_fail_as_on_linux(sec_tree, sec_disk, options):
    native = run_native(sec_tree, "/bin/sec_sockets")
    assert native.returncode == 0, native.stdout
    for line in ("recvmsg into a bad buffer = -1 EFAULT", "sendmsg huge msg_controllen = -1 ENOBUFS",
                 "cmsg_len past the buffer = -1 EINVAL", "loops made 2000",
                 "stream flood ends with EAGAIN, bounded 1",
                 "SCM_CREDENTIALS with another pid = -1 EPERM",
                 "messages of 8 fds in flight with RLIMIT_NOFILE 16: 3, then ETOOMANYREFS",
                 "still serving: getpid > 0 = 1"):
        assert line in native.stdout
    r = skas("run", *options, "--disk", str(sec_disk), "--", "/bin/sec_sockets", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == native.stdout
