"""flock, POSIX record locks and OFD locks (issue 15: sqlite and dpkg need
them): tests/progs/locks.c runs natively, in a chroot of the image's tree,
and in a guest, section by section, and must print the same."""
import pytest

from conftest import disk_of, guest, make_tree, native


@pytest.fixture(scope="module")
def locks_tree(tmp_path_factory):
    return make_tree(tmp_path_factory, "locks-tree", ["locks"])


@pytest.fixture(scope="module")
def locks_disk(tmp_path_factory, locks_tree):
    yield from disk_of(tmp_path_factory, locks_tree, "32M")


def same(tree, img, section: str) -> str:
    here = native(tree, "/bin/locks", "/tmp", section)
    assert here.returncode == 0, here.stdout
    there = guest(img, "/bin/locks", "/tmp", section)
    assert there.returncode == 0, there.stdout + there.stderr
    assert there.stdout == here.stdout
    return here.stdout


def test_flock_is_per_description_shared_by_dup_and_fork(locks_tree, locks_disk):
    out = same(locks_tree, locks_disk, "flock")
    for line in ("ex b nb = -1 EAGAIN", "child ex c nb = -1 EAGAIN", "child got it: g",
                 "child ex d, interrupted = -1 EINTR", "ex c nb after close(a) = 0"):
        assert line in out


def test_posix_locks_split_merge_and_go_with_any_close(locks_tree, locks_disk):
    out = same(locks_tree, locks_disk, "posix")
    for line in ("child sees 0: write 0+3 pid as expected", "child sees 3: unlocked",
                 "child sees 1000: read 20+0 pid as expected", "child wr 4+2 = -1 EAGAIN",
                 "child wr 0+10 now = 0", "merged 4: write 4+6 pid as expected",
                 "bad pointer = -1 EFAULT"):
        assert line in out


def test_a_deadlock_is_refused_and_a_waiter_interrupted(locks_tree, locks_disk):
    out = same(locks_tree, locks_disk, "deadlock")
    assert "one refused with EDEADLK, one granted: yes" in out
    assert "child setlkw, interrupted = -1 EINTR" in out


def test_ofd_locks_belong_to_the_description(locks_tree, locks_disk):
    out = same(locks_tree, locks_disk, "ofd")
    for line in ("ofd b sees: write 0+10 pid -1", "ofd a wr 20+1 vs posix = -1 EAGAIN",
                 "ofd b wr 0+1 after close(c) = 0"):
        assert line in out
