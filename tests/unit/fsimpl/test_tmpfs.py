"""tmpfs, /dev, mounts and the writing file system calls, against Linux.

The native reference runs the same program in a chroot of the image's tree
set up as a guest boots: the root bind-mounted read-only, a tmpfs on /tmp
(nosuid, nodev) and the host's /dev, all in a private mount namespace."""
from __future__ import annotations

import asyncio
import errno
import os
import subprocess

import pytest

from conftest import disk_of, make_tree, skas
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.tmpfs import PAGE, Tmpfs

ENV = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/", "TERM": "linux"}
NATIVE = ('T=$1; shift; mount --bind "$T" "$T" && mount -o remount,bind,ro "$T" '
          '&& mount -t tmpfs -o nosuid,nodev tmpfs "$T/tmp" && mount --bind /dev "$T/dev" '
          '&& exec chroot "$T" "$@"')


SCRIPT = r"""
cd /tmp || exit 1
umask 022
echo one > f; echo two >> f
while read l; do echo "got $l"; done < f
mkdir -p d/e/f; mv f d/e/g; ln d/e/g hard; ln -s d/e/g soft
cat soft; test -w hard && echo writable
chmod 600 hard; touch -d '2001-02-03 04:05:06' hard
stat -c '%n %A %h %s' hard soft d d/e d/e/g; stat -c '%Y' hard
dd if=/dev/zero of=zeros bs=1k count=9 2>/dev/null; stat -c '%s %b' zeros
head -c 8 /dev/urandom | wc -c
echo x > /dev/full || echo "full: $?"
ls -a /tmp | sort | tr '\n' ' '; echo
rm -r d; ls /tmp | tr '\n' ' '; echo
stat -f -c '%T' /tmp; stat -c '%A %h %s %t:%T' /tmp /dev/null /dev/zero
echo nope > /etc/nope || echo "status $?"
"""


@pytest.fixture(scope="module")
def fstree(tmp_path_factory):
    """The busybox tree, the test programs, and device nodes on the disk itself."""
    root = make_tree(tmp_path_factory, "fstree", ["fsops", "fill"])
    (root / "bin/tmpfs-script").write_text(SCRIPT)
    nodes = root / "devnodes"
    nodes.mkdir()
    os.mknod(nodes / "null", 0o20666, os.makedev(1, 3))
    os.chmod(nodes / "null", 0o666)
    os.mknod(nodes / "nodriver", 0o20600, os.makedev(42, 0))
    os.mkfifo(nodes / "fifo", 0o644)
    return root


@pytest.fixture(scope="module")
def fsdisk(tmp_path_factory, fstree):
    yield from disk_of(tmp_path_factory, fstree)


@pytest.fixture(scope="module")
def native(fstree):
    probe = subprocess.run(["unshare", "-m", "sh", "-c", NATIVE, "sh", str(fstree), "/bin/true"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no private mount namespace for the native reference: {probe.stderr}")

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "-m", "sh", "-c", NATIVE, "sh", str(fstree), *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=ENV, timeout=60)
    return run


@pytest.fixture(scope="module")
def guest(fsdisk):
    def run(*argv: str) -> subprocess.CompletedProcess:
        return skas("run", "--read-only", "--mem", "128m", "--tmpfs", "/tmp", "--disk", str(fsdisk),
                    "--", *argv)
    return run


def same_as_native(native, guest, *argv: str) -> str:
    n, g = native(*argv), guest(*argv)
    assert g.returncode == n.returncode, g.stderr
    assert g.stdout == n.stdout
    return g.stdout


# --- one C program, section by section ------------------------------------------

def test_file_calls_match_native(native, guest):
    """create/O_EXCL/O_APPEND/pwrite/writev/preadv/truncate, a sparse file with a
    page at 4 GiB, an unlinked file still open, O_CREAT through a dangling link."""
    out = same_as_native(native, guest, "/bin/fsops", "files")
    assert "size=4294967299 blocks=16" in out
    assert "unlinked: still here" in out


def test_directory_calls_match_native(native, guest):
    """mkdir/rmdir/unlink/rename (over files and empty dirs, into itself,
    NOREPLACE, EXCHANGE), link, symlink, *at calls, tmpfs directory sizes."""
    out = same_as_native(native, guest, "/bin/fsops", "dirs")
    assert 'rename("x", "x/y/inside") = -1 EINVAL' in out


def test_attribute_calls_match_native(native, guest):
    """chmod/chown (set-ID bits dropped), umask, mknod of every type, utimensat
    with explicit, omitted and current times; O_TRUNC and ftruncate stamp mtime."""
    out = same_as_native(native, guest, "/bin/fsops", "attrs")
    assert "times: a=1000000000.123456789 m=1100000000.987654321" in out


def test_mount_umount_and_tmpfs_limits_match_native(native, guest):
    """mount -t tmpfs with size/nr_inodes/mode, ENOSPC and short writes when it
    fills, statfs, hard links counted as inodes, EXDEV, EBUSY, nodev, ..
    across a mount, remount ro and rw, bind mounts, lazy unmount."""
    out = same_as_native(native, guest, "/bin/fsops", "mounts")
    assert "bfree=0" in out and "= -1 ENOSPC" in out


def test_dev_nodes_match_native(native, guest):
    """/dev/null, zero, full (ENOSPC), random, urandom; the /proc/self/fd links;
    a device node on the ext2 disk opens its driver, an unknown one is ENXIO."""
    out = same_as_native(native, guest, "/bin/fsops", "dev")
    assert 'write(fd, "x", 1) = -1 ENOSPC' in out
    assert 'open("/devnodes/nodriver", O_RDONLY) = -1 ENXIO' in out


def test_readonly_root_errors_match_native(native, guest):
    """Every writing call on the read-only root gives Linux's errno, in Linux's
    order of checks (EEXIST before EROFS, EROFS before ENOENT, EXDEV first)."""
    out = same_as_native(native, guest, "/bin/fsops", "rofs")
    assert 'mkdir("/newdir", 0755) = -1 EROFS' in out


# --- shell ------------------------------------------------------------------------------



def test_shell_script_in_tmp_matches_native(native, guest):
    """Files, links, directories and /dev through busybox's applets."""
    out = same_as_native(native, guest, "/bin/sh", "/bin/tmpfs-script")
    assert "got two" in out and "hard -rw------- 2 8\n" in out and "981173106\n" in out


def test_console_nodes_write_to_the_guest_console(guest):
    """/dev/tty is the caller's controlling terminal, and init has none (the
    console is never one by its open): ENXIO, as Linux's."""
    r = guest("/bin/sh", "-c", "echo via console > /dev/console; echo via tty > /dev/tty")
    assert r.returncode == 1, r.stderr
    assert r.stdout == ("via console\n"
                        "/bin/sh: can't create /dev/tty: No such device or address\n")


def test_tmpfs_fills_up_then_gives_the_space_back(guest):
    """/tmp is bounded (half the guest's memory by default, as Linux's: 64 MiB
    of --mem 128m): writing stops at exactly the free space statfs reported,
    with ENOSPC, and unlinking gives it all back."""
    r = guest("/bin/fill", "/tmp")
    assert r.returncode == 0, r.stdout
    fields = dict(kv.split("=") for kv in r.stdout.split())
    assert fields["error"] == "ENOSPC"
    assert int(fields["written"]) == int(fields["free_before"]) * PAGE
    assert int(fields["free_full"]) == 0
    assert fields["free_after"] == fields["free_before"]
    assert int(fields["blocks"]) == (64 << 20) // PAGE


# --- the filesystem object itself ------------------------------------------------------

def test_a_write_at_4gib_allocates_one_page():
    async def go():
        fs = Tmpfs()
        f = await fs.root.create(b"sparse", 0o100644, 0, 0)
        assert await f.write(4 << 30, b"x") == 1
        assert f.size == (4 << 30) + 1 and len(f.pages) == 1 and fs.pages == 1
        assert await f.read((4 << 30) - 2, 8) == b"\0\0x"
    asyncio.run(go())


def test_an_unlinked_file_keeps_its_pages_until_the_last_release():
    async def go():
        fs = Tmpfs(size=8 * PAGE)
        f = await fs.root.create(b"f", 0o100644, 0, 0)
        release = f.hold()
        await f.write(0, bytes(3 * PAGE))
        await fs.root.unlink(b"f")
        assert fs.pages == 3 and fs.inodes == 2
        release()
        assert fs.pages == 0 and fs.inodes == 1
    asyncio.run(go())


def test_a_bad_mount_option_is_einval():
    with pytest.raises(Errno) as exc:
        Tmpfs.from_options(b"size=lots")
    assert exc.value.code == errno.EINVAL
    assert Tmpfs.from_options(b"size=1m,nr_inodes=4,mode=700").statfs()["blocks"] == 256
