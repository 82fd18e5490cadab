"""Pseudo-terminals and the line discipline: tests/progs/pty.c runs children
on ptys (forkpty) and types into their masters: canonical editing (erase,
werase, kill, a tab, UTF-8 under IUTF8, EOF, LNEXT, REPRINT), echo on and
off, raw bytes, VMIN/VTIME, output processing, ^C/^\\ and SIGWINCH to the
foreground group (input flushed unless NOFLSH), ^Z, a background read's
SIGTTIN and write's SIGTTOU (TOSTOP), EIO for an ignored SIGTTIN, the
hang-up at the master's close, EIO on the master after the slave's close,
ptmx's own ioctls with glibc's grantpt/unlockpt/ptsname, a session
leader's open taking the terminal, and busybox stty.  Its output
must be the same natively (a new devpts instance in a private mount
namespace) and in a guest."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, guest, make_tree, native_with_ptys

@pytest.fixture(scope="module")
def ptytree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "ptytree", ["pty"])
    (root / "dev").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def ptydisk(tmp_path_factory, ptytree) -> Path:
    yield from disk_of(tmp_path_factory, ptytree)


@pytest.mark.parametrize("part", ["canon", "raw", "signals", "jobs", "hangup", "ptmx", "stty"])
def test_ptys_behave_as_linux_natively_and_in_a_guest(ptytree, ptydisk, part):
    want = native_with_ptys(ptytree, "/bin/pty", part)
    assert want.returncode == 0 and "TIMEOUT" not in want.stdout, want.stdout
    got = guest(ptydisk, "/bin/pty", part)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_ptys_under_ptrace_only(ptytree, ptydisk):
    want = native_with_ptys(ptytree, "/bin/pty", "all")
    got = guest(ptydisk, "/bin/pty", "all", options=("--ptrace-only",))
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
