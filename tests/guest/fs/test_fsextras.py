"""What stock programs need of the file layer besides locks and inotify
(issue 15): memfd_create, sendfile, copy_file_range, splice and tee, the
old getdents, CPU affinity and getcpu, fadvise64 and readahead.
tests/progs/fsextras.c runs natively, in a chroot of the image's tree, and
in a guest, section by section, and must print the same."""
import pytest

from conftest import disk_of, guest, make_tree, native

SECTIONS = ["memfd", "sendfile", "copy", "splice", "getdents", "cpus", "advice"]


@pytest.fixture(scope="module")
def extras_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "extras-tree", ["fsextras"])


@pytest.fixture(scope="module")
def extras_disk(tmp_path_factory, extras_tree):
    yield from disk_of(tmp_path_factory, extras_tree, "32M")


@pytest.fixture(scope="module")
def native_out(extras_tree) -> str:
    r = native(extras_tree, "/bin/fsextras", "/tmp", *SECTIONS)
    assert r.returncode == 0, r.stdout
    return r.stdout


@pytest.mark.parametrize("options", [(), ("--tmpfs", "/tmp")], ids=["ext2", "tmpfs"])
def test_the_calls_answer_as_on_linux(extras_disk, native_out, options):
    r = guest(extras_disk, "/bin/fsextras", "/tmp", *SECTIONS, options=options)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == native_out
    for line in ("read sees the shared store: SHARED", "the child's store: CHILD",
                 "file after a private store: hello", "sendfile into a pipe = 65531",
                 "copy overlapping = -1 EINVAL", "tee'd copy to file at 0 = 1000",
                 "  file-a 8", "child: 1 CPU", "readahead pipe = -1 EINVAL",
                 "sendfile with no reader: signal 13"):
        assert line in native_out


def test_a_memfd_is_named_in_proc(extras_disk):
    r = guest(extras_disk, "/bin/fsextras", "/tmp", "memfd_proc")
    assert "link: /memfd:shown (deleted)" in r.stdout, r.stdout + r.stderr
