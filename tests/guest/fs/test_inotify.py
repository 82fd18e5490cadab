"""inotify (issue 15): tests/progs/inotify.c runs natively, in a chroot of
the image's tree, and in a guest, section by section, and must print the
same events in the same order."""
import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def inotify_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "inotify-tree", ["inotify"])


@pytest.fixture(scope="module")
def inotify_disk(tmp_path_factory, inotify_tree):
    yield from disk_of(tmp_path_factory, inotify_tree, "32M")


def same(tree, img, section: str, where: str = "/tmp", options: tuple = ()) -> str:
    here = native(tree, "/bin/inotify", "/tmp", section)
    assert here.returncode == 0, here.stdout
    there = guest(img, "/bin/inotify", where, section, options=options)
    assert there.returncode == 0, there.stdout + there.stderr
    assert there.stdout == here.stdout
    return here.stdout


@pytest.mark.parametrize("options", [(), ("--tmpfs", "/tmp")], ids=["ext2", "tmpfs"])
def test_events_come_from_the_calls_that_make_them(inotify_tree, inotify_disk, options):
    out = same(inotify_tree, inotify_disk, "events", options=options)
    for line in ("  wd 1 MODIFY 'f' len 16\n  wd 1 CLOSE_WRITE", "  wd 1 MOVED_TO cookie (same) 'g'",
                 "  wd 2 DELETE_SELF\n  wd 2 IGNORED\n  wd 1 DELETE 'h'",
                 "  wd 3 MOVED_TO cookie (same) 'y'", "  wd 1 DELETE ISDIR 'sub'"):
        assert line in out


def test_watches_reads_and_readiness_as_linux(inotify_tree, inotify_disk):
    out = same(inotify_tree, inotify_disk, "api")
    for line in ("add dir again = 1", "add dir MASK_CREATE = -1 EEXIST",
                 "read into 16 bytes = -1 EINVAL", "queued 64", "epoll ready = 1",
                 "rm it again = -1 EINVAL", "add bad path = -1 EFAULT"):
        assert line in out


def test_a_read_waits_for_an_event_and_a_signal_ends_it(inotify_tree, inotify_disk):
    out = same(inotify_tree, inotify_disk, "block")
    assert "child read 32: made" in out and "child read, interrupted = -1 EINTR" in out


def test_the_queue_is_bounded_by_an_overflow_event(inotify_tree, inotify_disk):
    out = same(inotify_tree, inotify_disk, "overflow")
    assert "events 16385 overflows 1 last wd -1" in out
