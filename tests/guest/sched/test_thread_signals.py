"""Per-thread signal state, natively and in a guest.

tests/progs/tgkill.c: a signal tgkill or tkill sends to a thread pends on
that thread alone, even while it blocks it and another thread does not
(its default action, fatal or stopping, waits too), and that thread takes
it once it unblocks; a signal sent to the process goes to a thread that
does not block it.

tests/progs/altstack.c: what sigaltstack reports in a fresh process, after
fork, vfork and clone(CLONE_VM), in a new thread, in a handler on the
alternate stack, and after exec (disabled, SS_AUTODISARM kept)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, make_tree
from conftest import guest, native


@pytest.fixture(scope="module")
def stree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory, "stree", ["tgkill", "altstack"], "-pthread")


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory, stree) -> Path:
    yield from disk_of(tmp_path_factory, stree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
@pytest.mark.parametrize("prog", ["tgkill", "altstack"],
                         ids=["thread-directed-signals", "sigaltstack"])
def test_same_signal_state_natively_and_in_a_guest(stree, sdisk, prog, options):
    want = native(stree, f"/bin/{prog}")
    assert want.returncode == 0 and want.stdout.endswith("-- exit 0\n"), want.stdout
    got = guest(sdisk, f"/bin/{prog}", options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
