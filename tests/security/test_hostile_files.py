"""Hostile use of the file calls of issue 15: locks, inotify, memfd_create,
sendfile, copy_file_range, splice, tee, getdents, CPU affinity, fadvise and
readahead.  tests/progs/sec_fsextras.c tries bad pointers (EFAULT), huge
counts (bounded by the file or the pipe) and floods: lock records end in
ENOLCK at 4,096 an owner, inotify watches in ENOSPC at 8,192 an instance,
instances in EMFILE at 128 a user, each refusal logged; then the kernel
still serves.  Guest only: these bounds are the guest kernel's."""
import pytest

from conftest import disk_of, make_tree, skas

EXPECTED = """\
setlk bad pointer = -1 EFAULT
getlk bad pointer = -1 EFAULT
ofd setlkw bad pointer = -1 EFAULT
start past loff_t = -1 EOVERFLOW
SEEK_END overflow = -1 EOVERFLOW
records held before a refusal: 4096 (ENOLCK)
unlock everything = 0
after unlocking all, a lock = 0
ofd records before a refusal: 4096 (ENOLCK)
after close, a lock over all = 0
flock bad op = -1 EINVAL
add_watch bad path = -1 EFAULT
read bad buffer, empty = -1 EAGAIN
read huge count, empty = -1 EAGAIN
watches before a refusal: 8192 (ENOSPC)
the same inode again: wd 1
events drained: 1
instances before a refusal: 128 (EMFILE)
an instance again = 3
memfd bad name = -1 EFAULT
memfds made and closed: 5000
ftruncate 1 TiB (sparse) = 0
pwrite at its end = 3
read bad buffer = -1 EFAULT
map of the end ok 1: end
sendfile huge count = 67108864
sendfile bad offset = -1 EFAULT
copy_file_range huge = 4096
copy_file_range bad offset = -1 EFAULT
splice huge count = 65536
splice bad offset = -1 EFAULT
tee huge count = -1 EINVAL
getdents bad buffer = -1 EFAULT
getdents huge count = -1 EINVAL
getaffinity huge length = -1 EFAULT
setaffinity huge length = -1 EFAULT
setaffinity to no CPU of the guest = -1 EINVAL
fadvise huge = 0
readahead huge = 0
still serving: a child's exit 7
"""


@pytest.fixture(scope="module")
def hostile_disk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "hostile-files",
                                                   ["sec_fsextras"]))


def test_bad_pointers_huge_counts_and_floods_are_refused_and_the_kernel_serves(hostile_disk,
                                                                              tmp_path):
    r = skas("run", "--log-dir", str(tmp_path), "--disk", str(hostile_disk), "--",
             "/bin/sec_fsextras", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == EXPECTED
    log = (tmp_path / "kernel.log").read_text()
    for bound in ("record locks of one owner (4096) reached: ENOLCK",
                  "inotify watches of an instance (8192) reached: ENOSPC",
                  "inotify instances of a user (128) reached: EMFILE"):
        assert bound in log
