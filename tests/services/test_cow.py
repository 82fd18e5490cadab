"""UML COW overlays: served by ubd_io, made and merged by skas and by Debian's
uml-utilities (uml_mkcow, uml_moo) both ways, checked by e2fsck; the backing
file never changes; a guest boots from an overlay, and one writing files into
an overlay leaves exactly its writes in what uml_moo merges.

A filesystem change is made natively on a copy of the backing image with
debugfs -w; the blocks that differ are then written (or, where they became
zero, discarded) through ubd_io into an overlay, and merging the overlay must
give the native image byte for byte."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess

import pytest

from common.exits import CONFIG
from common.transport import AsyncLink
from deploy import disk as diskmod
from deploy import launch
from services.kernel.drivers.ubd import UbdDevice
from services.ubd_io import cow
from conftest import skas
from test_ubd import Ubd, run_async, ubd_services  # noqa: F401  (the ubd fixture)


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def debugfs(img, *requests: str, write: bool = False) -> str:
    args = ["debugfs", *(["-w"] if write else [])]
    if len(requests) == 1:
        args += ["-R", requests[0]]
    else:
        script = img.parent / "debugfs.cmds"
        script.write_text("\n".join(requests) + "\n")
        args += ["-f", str(script)]
    r = subprocess.run([*args, str(img)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def e2fsck_clean(img) -> bool:
    return subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True,
                          check=False).returncode == 0


def block_size(img) -> int:
    out = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True,
                         check=True).stdout
    return int(next(line.split()[-1] for line in out.splitlines()
                    if line.startswith("Block size:")))


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("cowtree")
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("from the backing file\n")
    (root / "data").mkdir()
    (root / "data/big").write_bytes(os.urandom(64 * 1024))
    return root


@pytest.fixture
def backing(tmp_path, small_tree):
    img = tmp_path / "backing.img"
    diskmod.create(img, "8M", small_tree)
    return img


@pytest.fixture
def changed(tmp_path, backing):
    """The backing image changed natively: a new file, a new directory, a
    symlink, a file removed, and one data block of /data/big zeroed."""
    img = tmp_path / "expected.img"
    shutil.copyfile(backing, img)
    (tmp_path / "hello.txt").write_text("written through the overlay\n" * 50)
    debugfs(img, f"write {tmp_path / 'hello.txt'} /hello.txt", "mkdir /newdir",
            "symlink /newdir/link /hello.txt", "rm /etc/motd", write=True)
    block = int(debugfs(img, "bmap /data/big 3").split()[-1])
    bs = block_size(img)
    with open(img, "r+b") as f:
        os.pwrite(f.fileno(), bytes(bs), block * bs)
    assert e2fsck_clean(img)
    return img


def replay(client, base, target) -> tuple[int, int]:
    """Write target's differing blocks over base through ubd_io (zeroed ones
    as DISCARD); the numbers of writes and discards."""
    bs = block_size(base)
    old, new = base.read_bytes(), target.read_bytes()
    writes = discards = 0
    for off in range(0, len(new), bs):
        block = new[off:off + bs]
        if block == old[off:off + bs]:
            continue
        if block.count(0) == bs:
            assert client.call("DISCARD", off, bs)["status"] == 0
            discards += 1
        else:
            assert client.call("WRITE", off, bs, block)["status"] == 0
            writes += 1
    assert client.call("FLUSH")["status"] == 0
    return writes, discards


def uml_mkcow(overlay, backing) -> None:
    subprocess.run(["uml_mkcow", str(overlay), str(backing)], check=True, capture_output=True)


def uml_moo(overlay, out) -> None:
    subprocess.run(["uml_moo", str(overlay), str(out)], check=True, capture_output=True)


def test_uml_mkcow_overlay_is_served_and_uml_moo_merges_what_was_written(
        tmp_path, backing, changed, ubd):
    digest, mtime = sha(backing), os.stat(backing).st_mtime_ns
    overlay = tmp_path / "guest.cow"
    uml_mkcow(overlay, backing)
    u = ubd({"ubd0": f"{overlay},{backing}"})
    c = u.client()
    assert c.call("READ", 0, 1 << 20)["data"] == backing.read_bytes()[:1 << 20]
    writes, discards = replay(c, backing, changed)
    assert writes > 5 and discards == 1
    assert c.call("READ", 0, os.path.getsize(backing))["data"] == changed.read_bytes()
    assert c.status()["devices"]["ubd0"]["kind"] == "cow"
    u.stop()
    uml_moo(overlay, tmp_path / "moo.img")
    assert (tmp_path / "moo.img").read_bytes() == changed.read_bytes()
    assert e2fsck_clean(tmp_path / "moo.img")
    assert debugfs(tmp_path / "moo.img", "cat /hello.txt") == (tmp_path / "hello.txt").read_text()
    r = skas("disk", "merge", str(overlay), str(tmp_path / "skas.img"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "skas.img").read_bytes() == changed.read_bytes()
    assert (sha(backing), os.stat(backing).st_mtime_ns) == (digest, mtime)


def test_skas_overlay_is_what_uml_mkcow_makes_and_uml_moo_merges_it(
        tmp_path, backing, changed, ubd):
    digest = sha(backing)
    r = skas("disk", "create", "--cow", str(backing), str(tmp_path / "skas.cow"))
    assert r.returncode == 0, r.stderr
    uml_mkcow(tmp_path / "uml.cow", backing)
    ours, theirs = (tmp_path / "skas.cow").read_bytes(), (tmp_path / "uml.cow").read_bytes()
    assert ours == theirs                              # header, bitmap, data offset, size
    u = ubd({"ubd0": str(tmp_path / "skas.cow")})                # alone: the header names the backing
    replay(u.client(), backing, changed)
    u.stop()
    uml_moo(tmp_path / "skas.cow", tmp_path / "moo.img")
    assert (tmp_path / "moo.img").read_bytes() == changed.read_bytes()
    assert e2fsck_clean(tmp_path / "moo.img")
    r = skas("disk", "check", str(tmp_path / "skas.cow"))
    assert r.returncode == 0, r.stderr
    assert sha(backing) == digest


def test_writes_that_are_not_sector_aligned_keep_the_rest_of_the_sector(tmp_path, backing, ubd):
    overlay = tmp_path / "o.cow"
    uml_mkcow(overlay, backing)
    c = ubd({"ubd0": str(overlay)}).client()
    base = backing.read_bytes()
    assert c.call("WRITE", 700, 5, b"HELLO")["status"] == 0
    assert c.call("WRITE", 4095, 2, b"AB")["status"] == 0      # across a sector boundary
    want = base[:700] + b"HELLO" + base[705:4095] + b"AB" + base[4097:8192]
    assert c.call("READ", 0, 8192)["data"] == want
    assert c.call("DISCARD", 100, 512)["status"] < 0             # whole sectors only
    c.call("FLUSH")
    uml_moo(overlay, tmp_path / "m.img")
    assert (tmp_path / "m.img").read_bytes()[:8192] == want
    with open(overlay, "rb") as f:
        header = cow.read_header(f.fileno(), str(overlay))
    bitmap = overlay.read_bytes()[header.bitmap_offset:header.bitmap_offset + 3]
    assert bitmap == bytes([0b10000010, 0b00000001, 0])  # sectors 1, 7 and 8 are in the COW


def test_acknowledged_writes_survive_a_killed_ubd_io(tmp_path, backing, ubd):
    overlay = tmp_path / "o.cow"
    u = ubd({"ubd0": f"{overlay},{backing}"})                    # missing: ubd_io makes it
    c = u.client()
    assert c.call("WRITE", 8192, 4, b"kept")["status"] == 0      # no FLUSH
    u.procs["ubd_io"].send_signal(signal.SIGKILL)
    u.procs["ubd_io"].wait()

    async def go(loop):
        dev = UbdDevice(AsyncLink(loop, u.cfg.endpoints["ubd_io"], "kernel", deadline=0.3), 0)
        written = asyncio.ensure_future(dev.write(16384, b"resent"))   # ubd_io is down
        await asyncio.sleep(0.5)
        u.procs = launch.start(u.cfg, ("ubd_io",))
        await written
        return await dev.read(8192, 4), await dev.read(16384, 6)

    assert run_async(go) == (b"kept", b"resent")
    assert diskmod.is_overlay(overlay)


def test_a_backing_file_that_changed_is_refused(tmp_path, backing, ubd):
    overlay = tmp_path / "o.cow"
    uml_mkcow(overlay, backing)
    os.utime(backing, (1_000_000_000, 1_000_000_000))
    u = ubd({"ubd0": str(overlay)})
    assert u.procs["ubd_io"].wait(30) == CONFIG
    assert "mtime mismatch" in u.log()
    r = skas("disk", "merge", str(overlay), str(tmp_path / "m.img"))
    assert r.returncode != 0 and "mtime mismatch" in r.stderr
    r = skas("run", "--disk", str(overlay), "--", "/bin/true")
    assert r.returncode != 0 and "mtime mismatch" in r.stderr
    assert not (tmp_path / "m.img").exists()


def test_a_backing_file_of_another_size_is_refused(tmp_path, backing):
    other = tmp_path / "other.img"
    shutil.copy2(backing, other)
    uml_mkcow(tmp_path / "o.cow", other)
    with open(other, "ab") as f:
        f.write(bytes(512))
    r = skas("disk", "check", str(tmp_path / "o.cow"))
    assert r.returncode != 0 and "size mismatch" in r.stderr


def test_disk_check_finds_damage_written_into_an_overlay(tmp_path, backing, ubd):
    digest = sha(backing)
    overlay = tmp_path / "o.cow"
    r = skas("disk", "create", "--cow", str(backing), str(overlay))
    assert r.returncode == 0, r.stderr
    assert skas("disk", "check", str(overlay)).returncode == 0
    c = ubd({"ubd0": str(overlay)}).client()
    bs = block_size(backing)
    assert c.call("WRITE_ZEROES", 2 * bs, bs)["status"] == 0     # the group descriptors
    c.call("FLUSH")
    r = skas("disk", "check", str(overlay))
    assert r.returncode != 0 and "e2fsck found problems" in r.stderr
    assert sha(backing) == digest and e2fsck_clean(backing)


def test_disk_create_cow_and_merge_keep_what_exists(tmp_path, backing):
    overlay = tmp_path / "o.cow"
    overlay.write_bytes(b"precious")
    r = skas("disk", "create", "--cow", str(backing), str(overlay))
    assert r.returncode != 0 and "--force" in r.stderr and overlay.read_bytes() == b"precious"
    r = skas("disk", "create", "--cow", str(backing), str(overlay), "--size", "8M")
    assert r.returncode != 0 and "--size" in r.stderr
    r = skas("disk", "merge", str(backing), str(tmp_path / "m.img"))
    assert r.returncode != 0 and "not a UML COW file" in r.stderr


def test_a_guest_boots_from_an_overlay_and_reads_what_was_written_into_it(tmp_path, tree):
    backing = tmp_path / "root.img"
    diskmod.create(backing, "16M", tree)
    digest = sha(backing)
    overlay = tmp_path / "root.cow"
    uml_mkcow(overlay, backing)
    bs = block_size(backing)
    block = int(debugfs(backing, "bmap /etc/hostname 0").split()[-1])
    u = Ubd(tmp_path, {"ubd0": str(overlay)}).start()
    try:
        c = u.client()
        assert c.call("WRITE", block * bs, 5, b"moo!\n")["status"] == 0
        assert c.call("FLUSH")["status"] == 0      # a commit point: a new kernel keeps it
    finally:
        u.stop()
    r = skas("run", "--disk", f"{overlay},{backing}", "--", "/bin/cat", "/etc/hostname")
    assert (r.returncode, r.stdout) == (0, "moo!\n"), r.stderr
    r = skas("run", "--disk", str(overlay), "--", "/bin/cat", "/etc/motd")
    assert (r.returncode, r.stdout) == (0, (tree / "etc/motd").read_text()), r.stderr
    fresh = tmp_path / "fresh.cow"
    r = skas("run", "--disk", f"{fresh},{backing}", "--", "/bin/cat", "/etc/hostname")
    assert (r.returncode, r.stdout) == (0, "skas\n"), r.stderr
    assert diskmod.is_overlay(fresh)
    assert sha(backing) == digest
    uml_moo(overlay, tmp_path / "merged.img")
    assert e2fsck_clean(tmp_path / "merged.img")
    assert debugfs(tmp_path / "merged.img", "cat /etc/hostname") == "moo!\n"


GUEST_WRITES = ("umask 022 && echo written by the guest > /root/new.txt && "
                "mkdir -p /newdir/sub && seq 1 20000 > /newdir/sub/seq && "
                "echo appended by the guest >> /etc/motd && rm /etc/hostname && "
                "ln -s /root/new.txt /newdir/link && mv /etc/group /newdir/group")


def snapshot(root) -> dict[str, tuple]:
    """Every path under root (but lost+found): its type, permission bits and
    contents or link target.  (Not the sticky bit: debugfs rdump drops it.)"""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "lost+found" or dirpath != str(root)]
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                what = os.readlink(path)
            elif os.path.isdir(path):
                what = None
            else:
                what = hashlib.sha256(open(path, "rb").read()).hexdigest()
            out[os.path.relpath(path, root)] = (st.st_mode & ~0o7000, what)
    return out


@pytest.mark.parametrize("make", ["uml_mkcow", "skas"])      # skas: skas disk create --cow
def test_a_writing_guest_changes_only_its_overlay_and_uml_moo_merges_its_writes(
        tmp_path, tree, make):
    backing = tmp_path / "root.img"
    diskmod.create(backing, "16M", tree)
    digest, mtime = sha(backing), os.stat(backing).st_mtime_ns
    overlay = tmp_path / "root.cow"
    if make == "uml_mkcow":
        uml_mkcow(overlay, backing)
    else:
        r = skas("disk", "create", "--cow", str(backing), str(overlay))
        assert r.returncode == 0, r.stderr
    r = skas("run", "--disk", f"{overlay},{backing}", "--", "/bin/sh", "-c",
             GUEST_WRITES + " && echo ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    assert (sha(backing), os.stat(backing).st_mtime_ns) == (digest, mtime)

    merged = tmp_path / "merged.img"
    uml_moo(overlay, merged)
    assert e2fsck_clean(merged)
    assert debugfs(merged, "cat /root/new.txt") == "written by the guest\n"
    assert debugfs(merged, "cat /etc/motd") == (tree / "etc/motd").read_text() + \
        "appended by the guest\n"
    assert "not found" in subprocess.run(["debugfs", "-R", "stat /etc/hostname", str(merged)],
                                         capture_output=True, text=True).stderr
    assert debugfs(merged, "cat /newdir/sub/seq") == "".join(f"{i}\n" for i in range(1, 20001))
    # Exactly the guest's writes: the merged image holds what the same
    # commands make natively in a copy of the backing image's tree.
    expected = tmp_path / "expected"
    shutil.copytree(tree, expected, symlinks=True)
    subprocess.run(["chroot", str(expected), "/bin/sh", "-c", GUEST_WRITES], check=True)
    dumped = tmp_path / "dumped"
    dumped.mkdir()
    debugfs(merged, f"rdump / {dumped}")
    assert snapshot(dumped) == snapshot(expected)
