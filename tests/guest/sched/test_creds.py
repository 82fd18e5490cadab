"""Credentials: tests/progs/creds.c starts as root, drops to users and prints
what each may and may not do (open, chmod, chown, kill, unlink in a sticky
directory, saved-id round trips, capabilities, set-user-ID exec); its
output must be the same natively and in a guest.  `creds threads`: glibc's
setuid changes every thread, a raw one only the caller."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import disk_of, make_tree
from conftest import guest, native_private_mounts as native


@pytest.fixture(scope="module")
def ctree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "ctree", ["creds"], "-pthread")
    root.chmod(0o755)          # mktemp's 0700 would stop every user at /
    return root


@pytest.fixture(scope="module")
def cdisk(tmp_path_factory, ctree) -> Path:
    yield from disk_of(tmp_path_factory, ctree)


@pytest.mark.parametrize("options", [(), ("--ptrace-only",)], ids=["listener", "ptrace-only"])
@pytest.mark.parametrize("argv", [["/bin/creds"], ["/bin/creds", "threads"]],
                         ids=["drop-to-users", "setuid-in-threads"])
def test_same_credentials_natively_and_in_a_guest(ctree, cdisk, argv, options):
    want = native(ctree, *argv)
    assert want.returncode == 0 and "-- exit 0\n" in want.stdout, want.stdout
    got = guest(cdisk, *argv, options=options)
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
