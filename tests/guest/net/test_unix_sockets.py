"""AF_UNIX sockets (issue 15): tests/progs/unix_sockets.c runs natively (in a
chroot of the image's tree) and in guests, section by section, names on
ext2 and on tmpfs, with and without the seccomp listener, and must print
the same; a few lines pin down what Linux says."""
import subprocess

import pytest

from conftest import disk_of, make_tree, skas

SECTIONS = ["pair", "errors", "names", "scm"]


@pytest.fixture(scope="module")
def sock_tree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "sockets-tree", ["unix_sockets"])
    (root / "srv").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def sock_disk(tmp_path_factory, sock_tree):
    yield from disk_of(tmp_path_factory, sock_tree, "32M")


def run_native(tree, section: str, where: str) -> str:
    env = {"PATH": "/bin:/sbin", "HOME": "/"}
    r = subprocess.run(["chroot", str(tree), "/bin/unix_sockets", section, where],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stdout
    return r.stdout


def run_guest(img, section: str, where: str, *options: str) -> str:
    r = skas("run", *options, "--disk", str(img), "--", "/bin/unix_sockets", section, where,
             timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("where,options", [("/srv", ()), ("/tmp", ("--tmpfs", "/tmp")),
                                           ("/srv", ("--ptrace-only",))],
                         ids=["ext2", "tmpfs", "ptrace-only"])
def test_unix_sockets_as_on_linux(sock_tree, sock_disk, section, where, options):
    native = run_native(sock_tree, section, where)
    lines = run_guest(sock_disk, section, where, *options).splitlines(keepends=True)
    assert "".join(ln for ln in lines if not ln.startswith("  proc: ")) == native
    if section == "pair":      # the chroot has no /proc; the guest's says what Linux's does
        assert [ln for ln in lines if ln.startswith("  proc: ")] == \
            ["  proc: fd link starts socket:[ 1\n"] * 3


def test_what_linux_says(sock_tree):
    """The native run shows what the comparison holds the guest to."""
    pair = run_native(sock_tree, "pair", "/srv")
    for line in ("MSG_WAITALL 16 = 16 '0123012301230123'", "read after reset = -1 ECONNRESET",
                 "  SO_SNDBUF 131072 SO_RCVBUF 131072",
                 "  after peer SHUT_WR poll: IN OUT RDHUP", "  write after SHUT_WR = -1 EPIPE",
                 "seqpacket write to closed peer = -1 EPIPE", "dgram 300000 bytes = -1 EMSGSIZE"):
        assert line in pair
    names = run_native(sock_tree, "names", "/srv")
    for line in ("S_ISSOCK 1 mode 755", "open the name = -1 ENXIO",
                 "connect after unlink = -1 ENOENT", "connect before listen = -1 ECONNREFUSED",
                 "bind the same name again = -1 EADDRINUSE", "autobind name len 8 abstract 1",
                 "server SO_PEERCRED len 12 uid 0 gid 0 pid is the peer 1",
                 "accept4 ok 1 peer len 2 family 1 O_NONBLOCK 1 FD_CLOEXEC 1"):
        assert line in names
    scm = run_native(sock_tree, "scm", "/srv")
    for line in ("file read 8 'contents' (shared offset)", "pipe read 16 'through the pipe'",
                 "short control: 1 fds, CTRUNC 1, 'short'", "got 253 fds",
                 "SCM_CREDENTIALS len 28 uid 0 gid 0 pid is mine 1 controllen 32"):
        assert line in scm


def test_other_families_are_not_supported(sock_disk):
    """No networking yet: inet, inet6 and netlink sockets are EAFNOSUPPORT,
    as on a Linux built without them (natively they exist)."""
    out = run_guest(sock_disk, "families", "/srv")
    assert out == ("AF_INET stream = -1 EAFNOSUPPORT\nAF_INET6 dgram = -1 EAFNOSUPPORT\n"
                   "AF_NETLINK raw = -1 EAFNOSUPPORT\nsocketpair AF_INET = -1 EAFNOSUPPORT\n")
