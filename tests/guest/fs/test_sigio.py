"""A file's owner and its signals, and dnotify: tests/progs/sigio.c runs
natively, in a chroot of the image's tree, and in a guest, section by
section, and must print the same (F_SETOWN & co, O_ASYNC on pipes and Unix
sockets and inotify with plain SIGIO and F_SETSIG's signals, F_NOTIFY)."""
import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def sigio_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "sigio-tree", ["sigio"])


@pytest.fixture(scope="module")
def sigio_disk(tmp_path_factory, sigio_tree):
    yield from disk_of(tmp_path_factory, sigio_tree, "32M")


def same(tree, img, section: str) -> str:
    here = native(tree, "/bin/sigio", "/tmp", section)
    assert here.returncode == 0, here.stdout
    there = guest(img, "/bin/sigio", "/tmp", section)
    assert there.returncode == 0, there.stdout + there.stderr
    assert there.stdout == here.stdout
    return here.stdout


def test_owners_and_signals_are_set_and_read_back_as_linux(sigio_tree, sigio_disk):
    out = same(sigio_tree, sigio_disk, "owner")
    for line in ("getown is -group 1", "raw getown is -group 1", "  type 2 pid is group 1", "getown is tid 1",
                 "setown_ex type 3 = -1 EINVAL", "setown_ex bad pointer = -1 EFAULT",
                 "getown_ex bad pointer = -1 EFAULT", "getown once reaped = 0",
                 "setown reaped = -1 ESRCH", "setsig 65 = -1 EINVAL", "file FIOASYNC on = -1 ENOTTY",
                 "file getfl O_ASYNC 0", "eventfd FIOASYNC on = -1 ENOTTY", "pipe getfl O_ASYNC 1"):
        assert line in out


def test_a_pipe_signals_its_owner_when_a_child_writes(sigio_tree, sigio_disk):
    out = same(sigio_tree, sigio_disk, "pipe")
    for line in ("write, no O_ASYNC: none", "a child wrote: SIGIO code 128",
                 "write, group owner: SIGIO code 128", "write, no owner: none",
                 "rt write: rt code 1 band 0x41 fd same", "rt read, writer: rt code 2 band 0x304 fd same",
                 "setsig SIGUSR1: SIGUSR1 code 1 band 0x41 fd same",
                 "writer closed: rt code 1 band 0x41 fd same"):
        assert line in out


def test_unix_sockets_signal_data_room_connections_and_hangups(sigio_tree, sigio_disk):
    out = same(sigio_tree, sigio_disk, "socket")
    for line in ("peer wrote: rt code 1 band 0x41 fd same", "peer read, no sender waiting: none",
                 "drained, sender: rt code 2 band 0x304 fd same",
                 "peer closed: rt code 6 band 0x18 fd same", "connected: rt code 1 band 0x41",
                 "datagram: rt code 1 band 0x41 fd same"):
        assert line in out


def test_dnotify_signals_directory_changes(sigio_tree, sigio_disk):
    out = same(sigio_tree, sigio_disk, "dnotify")
    for line in ("create a, plain SIGIO: SIGIO code 128", "f2: rt code 3 band 0x441 fd same",
                 "unlink, not asked: none", "one-shot g0: rt code 3", "one-shot g1: none",
                 "after a close of another fd: none", "notify on a file = -1 ENOTDIR",
                 "notify MULTISHOT alone = 0"):
        assert line in out


def test_inotify_signals_its_events_and_eventfd_cannot(sigio_tree, sigio_disk):
    out = same(sigio_tree, sigio_disk, "inotify")
    for line in ("an event queued: rt code 1 band 0x41 fd same", "read: none",
                 "eventfd getfl O_ASYNC 0", "eventfd written (no fasync on Linux): none"):
        assert line in out
