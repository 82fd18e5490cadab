"""read(2) from the file cache (services/kernel/mm/filecache.py) as on Linux:
tests/progs/read_cache.c reads across page, end-of-file and hole edges,
after writes, truncates and a child's stores through a shared map, and into
buffers that stop being writable part way, natively and in guests (the
listener, and every call a ptrace stop), printing the same; and a thread
reading while another unmaps and maps its buffer again leaves the pages
around it untouched and the guest and its kernel alive."""
from __future__ import annotations

import subprocess

import pytest

from conftest import build, disk_of, make_tree, skas


@pytest.fixture(scope="module")
def rcdisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "rctree", ["read_cache"],
                                                   "-pthread"))


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("read-cache-native")
    prog = build("read_cache.c", d / "read_cache", "-static", "-pthread")
    (d / "files").mkdir()
    return subprocess.run([str(prog), "all", str(d / "files")], capture_output=True,
                          text=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("flags", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
def test_reads_at_the_cache_edges_are_linuxs(rcdisk, native, flags):
    r = skas("run", *flags, "--disk", str(rcdisk), "--", "/bin/read_cache", "all", "/")
    assert r.returncode == 0, r.stderr
    # the program checks what it claims to: partial counts, and stores seen
    assert "faults warm read into 100: 3996 , now at 3996" in native
    assert native.count("read into nothing: -1 Bad address, now at 0") == 2
    assert r.stdout == native


def test_a_buffer_unmapped_while_read_into_harms_nothing_else(rcdisk):
    r = skas("run", "--disk", str(rcdisk), "--", "/bin/read_cache", "race", "/")
    assert (r.returncode, r.stdout) == (0, "race: ok\n"), r.stderr
