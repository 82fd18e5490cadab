"""ubd_io's journal (services/ubd_io/journal.py) on real ext2 images: a
unit of writes that turns one e2fsck-clean image into another, staged and
committed, with the process applying it SIGKILLed part-way; what a new
start then finds; journals cut short or spoiled; and the protocol's COMMIT
and disk_begin on the real service."""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from common.exits import CONFIG
from deploy import disk as diskmod
from ext2_images import fsck
from services.ubd_io import journal as jmod
from services.ubd_io.images import open_image
from services.ubd_io.journal import Journaled, JournalError
from test_ubd import Ubd, ubd_services  # noqa: F401  (the ubd fixture)

CHUNK = 4096


@pytest.fixture
def states(tmp_path):
    """Two clean ext2 images, before and after files were added and one
    removed (debugfs), and the 4 KiB chunks in which they differ."""
    before = tmp_path / "before.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", str(before), "8M"],
                   check=True)
    after = tmp_path / "after.img"
    shutil.copyfile(before, after)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(300_000))
    cmds = "".join(f"write {src} f{i}\n" for i in range(6)) + "mkdir d\nrm f2\n"
    subprocess.run(["debugfs", "-w", "-f", "-", str(after)], input=cmds.encode(),
                   check=True, capture_output=True)
    fsck(before)
    fsck(after)
    a, b = before.read_bytes(), after.read_bytes()
    diff = [(at, b[at:at + CHUNK]) for at in range(0, len(b), CHUNK)
            if a[at:at + CHUNK] != b[at:at + CHUNK]]
    assert len(diff) > 20
    return before, after, diff


def _stage(img, diff) -> Journaled:
    j = Journaled(open_image(str(img)))
    for at, data in diff:
        j.write(at, data)
    return j


def _child(img, script: str) -> subprocess.Popen:
    """A process that stages the diff (written by the test as diff.bin) in
    img's journal and runs script; it stops itself where script says."""
    code = textwrap.dedent(f"""
        import os, pickle, signal
        from services.ubd_io.images import open_image
        from services.ubd_io.journal import Journaled
        diff = pickle.load(open({str(img) + '.diff'!r}, "rb"))
        j = Journaled(open_image({str(img)!r}))
        for at, data in diff:
            j.write(at, data)
        def stop():
            os.kill(os.getpid(), signal.SIGSTOP)
    """) + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd())


def _stopped(proc: subprocess.Popen) -> None:
    """Wait until proc has stopped itself (waitid's WSTOPPED: an event)."""
    info = os.waitid(os.P_PID, proc.pid, os.WSTOPPED | os.WEXITED)
    assert info.si_code == os.CLD_STOPPED, info


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("applied", [1, 7, 20])
def test_a_ubd_io_killed_while_applying_a_commit_applies_it_whole_at_its_next_start(
        states, applied):
    before, after, diff = states
    pickle.dump(diff, open(str(before) + ".diff", "wb"))
    # the kill lands inside the apply, after `applied` of the unit's writes
    proc = _child(before, f"""
        image_copy = j.image.copy_from
        done = 0
        def copy(*args):
            global done
            image_copy(*args)
            done += 1
            if done == {applied}:
                stop()
        j.image.copy_from = copy
        j.commit(durable=False)
    """)
    _stopped(proc)
    _kill(proc)
    torn = before.read_bytes()
    assert torn != after.read_bytes()                    # part of the unit, not all of it
    assert sum(torn[at:at + CHUNK] == data for at, data in diff) >= applied
    j = Journaled(open_image(str(before)))               # a new ubd_io's start
    j.close()
    assert before.read_bytes() == after.read_bytes()
    fsck(before)
    j = Journaled(open_image(str(before)))               # and again: nothing left to apply
    assert j.describe()["staged_bytes"] == 0
    j.close()


def test_disk_check_applies_what_a_killed_ubd_io_committed_and_leaves_an_image_in_use(
        states, capsys):
    before, after, diff = states
    pickle.dump(diff, open(str(before) + ".diff", "wb"))
    proc = _child(before, """
        image_copy = j.image.copy_from
        def copy(*args):
            image_copy(*args)
            stop()
        j.image.copy_from = copy
        j.commit(durable=False)
    """)
    _stopped(proc)
    _kill(proc)
    assert before.read_bytes() != after.read_bytes()      # torn: one write of the unit
    diskmod.check(before)                                  # `skas disk check`
    assert before.read_bytes() == after.read_bytes()
    os.truncate(str(before) + ".journal", 0)               # (a fresh journal)
    proc = _child(before, "stop()\n")                      # a running guest's ubd_io
    _stopped(proc)
    try:
        diskmod.check(before)                  # left to it: as the image is on the host
        assert before.read_bytes() == after.read_bytes()
        assert "in use by a running guest" in capsys.readouterr().err
    finally:
        _kill(proc)


def test_an_image_made_anew_does_not_get_the_old_ones_journal(tmp_path, states):
    before, after, diff = states
    img = tmp_path / "new.img"
    shutil.copyfile(before, img)
    j = _stage(img, diff)
    with pytest.raises(diskmod.DiskError, match="in use by a running guest"):
        diskmod.create(img, "8M", force=True)
    j.close()                            # its writes stay staged in the journal
    diskmod.create(img, "8M", force=True)
    assert not (tmp_path / "new.img.journal").exists()
    Journaled(open_image(str(img))).close()
    fsck(img)


def test_uncommitted_writes_survive_a_kill_for_the_live_kernel_and_a_new_one_drops_them(
        states):
    before, after, diff = states
    pickle.dump(diff, open(str(before) + ".diff", "wb"))
    original = before.read_bytes()
    proc = _child(before, "stop()\n")
    _stopped(proc)
    _kill(proc)
    assert before.read_bytes() == original               # nothing reached the image
    j = Journaled(open_image(str(before)))               # ubd_io restarted, the kernel lives
    assert j.read(0, len(original)) == after.read_bytes()
    j.commit(durable=True)                               # its next commit point
    j.close()
    assert before.read_bytes() == after.read_bytes()
    fsck(before)


def test_a_second_ubd_io_on_the_same_image_is_refused(states):
    before, _, _ = states
    first = Journaled(open_image(str(before)))
    try:
        with pytest.raises(JournalError, match="in use by another ubd_io"):
            Journaled(open_image(str(before)))
    finally:
        first.close()
    Journaled(open_image(str(before))).close()           # free again once it is closed


def test_a_new_kernel_drops_what_the_dead_one_never_committed(states):
    before, after, diff = states
    original = before.read_bytes()
    j = _stage(before, diff[:10])
    j.commit(durable=False)
    for at, data in diff[10:]:
        j.write(at, data)
    assert j.drop_uncommitted() > 0
    assert j.read(0, len(original)) == j.image.read(0, len(original))
    j.close()
    assert before.read_bytes() != original
    assert before.read_bytes() != after.read_bytes()
    j = Journaled(open_image(str(before)))
    assert j.describe()["staged_bytes"] == 0
    j.close()


def _journal_with_records(img, diff) -> bytes:
    """The journal file's bytes once diff is staged (the process stopped there)."""
    j = _stage(img, diff)
    os.close(j.fd)          # as a killed process leaves it: the records, no commit
    j.image.close()
    return open(jmod.journal_path(str(img)), "rb").read()


@pytest.mark.parametrize("spoil", ["cut in a header", "cut in the data", "bad crc",
                                   "older generation", "garbage after"])
def test_a_spoiled_journal_tail_is_dropped_from_where_it_stops_checking_out(states, spoil):
    before, after, diff = states
    original = before.read_bytes()
    raw = _journal_with_records(before, diff[:4])
    third = jmod.RECORDS + 2 * (jmod.HEADER + CHUNK)         # where the third record starts
    if spoil == "cut in a header":
        raw = raw[:third + 10]
    elif spoil == "cut in the data":
        raw = raw[:third + jmod.HEADER + 100]
    elif spoil == "bad crc":
        raw = raw[:third + 20] + bytes([raw[third + 20] ^ 1]) + raw[third + 21:]
    elif spoil == "older generation":
        raw = raw[:third + 8] + (0).to_bytes(8, "little") + raw[third + 16:]
    else:
        raw += os.urandom(5000)
    open(jmod.journal_path(str(before)), "wb").write(raw)
    j = Journaled(open_image(str(before)))
    kept = 4 if spoil == "garbage after" else 2
    want = bytearray(original)
    for at, data in diff[:kept]:
        want[at:at + CHUNK] = data
    assert j.read(0, len(original)) == bytes(want)
    j.close()
    assert before.read_bytes() == original                   # none of it was committed


@pytest.mark.parametrize("header", [b"", b"SKAS", b"NOTAJOURNAL" * 10, "bad crc", "version"])
def test_a_journal_that_is_not_one_is_refused_with_what_to_do_or_started_afresh(states,
                                                                                  header):
    before, _, diff = states
    path = jmod.journal_path(str(before))
    if header == "bad crc" or header == "version":
        raw = bytearray(_journal_with_records(before, diff[:2]))
        if header == "bad crc":
            raw[12] ^= 1
        else:
            raw[8] = 9
            raw[jmod.FILE_HEADER.size:jmod.FILE_HEADER.size + 4] = jmod.zlib.crc32(
                bytes(raw[:jmod.FILE_HEADER.size])).to_bytes(4, "little")
        header = bytes(raw)
    open(path, "wb").write(header)
    if not header:                                             # empty: a fresh journal
        Journaled(open_image(str(before))).close()
        return
    with pytest.raises(JournalError) as exc:
        Journaled(open_image(str(before)))
    assert path in str(exc.value)
    assert ("remove it" in str(exc.value)) != ("version" in str(exc.value))


def test_the_service_refuses_a_spoiled_journal_with_a_clear_error(tmp_path, states):
    before, _, _ = states
    open(jmod.journal_path(str(before)), "wb").write(b"garbage" * 100)
    u = Ubd(tmp_path, {"ubd0": str(before)})
    u.start()
    try:
        assert u.procs["ubd_io"].wait(30) == CONFIG
        assert "not a skas journal" in u.log() and "Traceback" not in u.log()
    finally:
        u.stop()


def test_writes_reach_the_image_at_a_commit_point_and_reads_see_them_before(ubd, states):
    before, after, diff = states
    original = before.read_bytes()
    u = ubd({"ubd0": str(before)})
    c = u.client()
    for at, data in diff:
        assert c.call("WRITE", at, len(data), data)["status"] == 0
    assert before.read_bytes() == original
    at, data = diff[3]
    assert c.call("READ", at, len(data))["data"] == data
    assert c.status()["devices"]["ubd0"]["staged_bytes"] > len(diff) * CHUNK
    assert c.call("COMMIT")["status"] == 0
    assert before.read_bytes() == after.read_bytes()
    assert c.status()["devices"]["ubd0"]["staged_bytes"] == 0


def test_disk_begin_drops_the_uncommitted_writes_and_answers_how_many(ubd, states):
    before, _, diff = states
    original = before.read_bytes()
    u = ubd({"ubd0": str(before)})
    c = u.client()
    at, data = diff[0]
    assert c.call("WRITE", at, len(data), data)["status"] == 0
    c.link.send("disk_begin", 99, {"dev": 0})
    reply = c.recv()
    assert (reply.type, reply["dev"], reply["dropped"]) == ("disk_begun", 0,
                                                            jmod.HEADER + CHUNK)
    assert c.call("READ", at, len(data))["data"] == original[at:at + len(data)]
    c.link.send("disk_begin", 100, {"dev": 5})
    assert c.recv().type == "error"
    assert c.call("FLUSH")["status"] == 0
    assert before.read_bytes() == original


def test_a_fresh_write_reaches_the_image_at_once_unless_this_unit_staged_its_sectors(states):
    before, _after, _diff = states
    j = Journaled(open_image(str(before)))
    try:
        at = 3 << 20                         # (free blocks of the 8M image: not that it matters)
        j.write_fresh(at, b"f" * 4096)
        assert _image_bytes(before, at, 4096) == b"f" * 4096       # on the image, not staged
        assert j.describe()["staged_bytes"] == 0
        j.write(at + 4096, b"s" * 4096)                            # staged in this unit
        j.write_fresh(at + 4096, b"F" * 4096)                       # so this one is staged too:
        j.write_fresh(at + 100, b"odd")                            # as is a partial sector
        assert _image_bytes(before, at + 4096, 4096) != b"F" * 4096
        assert j.read(at, 8192) == b"f" * 100 + b"odd" + b"f" * 3993 + b"F" * 4096
        j.commit(durable=False)                                    # and the last one wins
        assert _image_bytes(before, at, 8192) == b"f" * 100 + b"odd" + b"f" * 3993 + b"F" * 4096
    finally:
        j.close()


def _image_bytes(path, at: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(at)
        return f.read(n)
