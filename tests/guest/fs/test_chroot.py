"""chroot(2) (issue 15: Debian's tools, python's test_os and `chroot` the
command use it).  tests/progs/chroot_jail.c chroots into a tree it makes
and shows getcwd, absolute paths, "..", symlinks, /proc's links and mount
tables, AF_UNIX names, fork, exec and #! inside, the fchdir escape Linux
allows, and the errors: natively (in a chroot of the tree, in a private
mount namespace) and in a guest, the same output but for the tree's host
path, which native paths outside the jail carry.  busybox's chroot runs a
shell and a dynamic program (its PT_INTERP only in the jail) in jails of
the image."""
import shutil

import pytest

from conftest import add_libraries, build, disk_of, guest, make_tree, native, native_private_mounts

SHELL = "pwd; ls /; echo $0"


@pytest.fixture(scope="module")
def jail_tree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "chroot-tree", ["chroot_jail"])
    bb = root / "jails/bb/bin"
    bb.mkdir(parents=True)
    shutil.copy2(root / "bin/busybox", bb / "busybox")
    for applet in ("sh", "ls"):
        (bb / applet).symlink_to("/bin/busybox")      # resolved from the jail's root
    dyn = root / "jails/dyn/bin"
    dyn.mkdir(parents=True)
    build("dynamic.c", dyn / "dynamic", "-pthread")
    add_libraries(root / "jails/dyn", dyn / "dynamic")
    return root


@pytest.fixture(scope="module")
def jail_disk(tmp_path_factory, jail_tree):
    yield from disk_of(tmp_path_factory, jail_tree)


@pytest.fixture(scope="module")
def native_out(jail_tree, jail_disk) -> str:
    """After the image is made: the native run leaves its jail in the tree."""
    r = native_private_mounts(jail_tree, "/bin/chroot_jail", "/tmp/cr")
    assert r.returncode == 0, r.stdout
    return r.stdout.replace(str(jail_tree), "")


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_chroot_is_as_on_linux(jail_disk, native_out, options):
    r = guest(jail_disk, "/bin/chroot_jail", "/tmp/cr", options=options)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == native_out
    for line in ("after chroot: getcwd (unreachable)/tmp/cr", "after chdir /: getcwd /",
                 "open /file: inside", "open /../../file: inside", "/.. is /: 1",
                 "open /abs: inside", "open dirlink/sub/../../abs: inside",
                 "readlink /proc/self/root /", "mounts: proc /proc proc",
                 "mounts: tmpfs /mnt tmpfs", "accepted: hi",
                 "readlink /proc/self/exe /bin/chroot_jail", "exec'd: getcwd /",
                 "interpreter of /bin/script", "exec'd child: 0",
                 "new root: getcwd /", "open /cr/outside_file: outside",
                 "user: chroot /dir = -1 EPERM", "user: chroot nothing = -1 ENOENT",
                 "user: chroot /private = -1 EACCES", "chroot a bad pointer = -1 EFAULT",
                 "chroot a loop = -1 ELOOP", "chroot a file = -1 ENOTDIR",
                 "open /file -1 ENOENT", "thread: chroot jail = 0",
                 "readlink /proc/CHILD/root /tmp/cr/jail/mnt",
                 "umount the child's root = -1 EBUSY"):
        assert line in native_out.splitlines(), line
    assert "mounts: /dev/root" not in native_out      # the jail's mounts only
    assert native_out.count("open /file: inside") == 6  # the thread's and 5 in the jail


@pytest.mark.parametrize("jail,argv", [("/jails/bb", ("/bin/sh", "-c", SHELL)),
                                       ("/jails/dyn", ("/bin/dynamic",))],
                         ids=["busybox-shell", "dynamic"])
def test_the_chroot_command_runs_programs_in_the_jail(jail_tree, jail_disk, jail, argv):
    want = native(jail_tree, "chroot", jail, *argv)
    assert want.returncode == 0, want.stdout
    r = guest(jail_disk, "chroot", jail, *argv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == want.stdout
