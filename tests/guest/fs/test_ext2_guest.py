"""ext2 written by real guests through the real CLI: after each workload the
image must pass e2fsck -fn, and the host's own ext2 driver (a read-only loop
mount) and debugfs must see the tree the guest wrote.  A corpus of file
system calls in a busybox shell must print the same in a guest as natively,
chrooted on a loop mount of the same image."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import HERE, disk_of, make_tree, skas
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.ext2.layout import LINK_MAX
from ext2_images import counts, debugfs, fsck, live_names, make_image, session


@contextmanager
def mounted(img: Path, opts: str = "ro"):
    """The image loop-mounted by the host's kernel on a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="skas-ext2-") as mnt:
        subprocess.run(["mount", "-o", "loop," + opts, str(img), mnt], check=True)
        try:
            yield Path(mnt)
        finally:
            subprocess.run(["umount", mnt], check=True)


def snapshot(top: Path, times: bool = True) -> dict[str, tuple]:
    """Every name under top: mode, owner, link count, and the contents' hash
    (a file, with its mtime if times), the target (a symlink) or rdev."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    what = (st.st_size, hashlib.sha256(f.read()).hexdigest(),
                            st.st_mtime_ns if times else None)
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = st.st_rdev
            out[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_gid,
                                               st.st_nlink, what)
    return out


def guest(img: Path, script: str, timeout: float = 120) -> str:
    r = skas("run", "--disk", str(img), "--", "/bin/sh", "-c", script, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def data_blocks(img: Path, path: str) -> list[int]:
    """The logical blocks debugfs lists as holding path's data."""
    listing = debugfs(img, f"stat {path}").decode().split("BLOCKS:")[1]
    found = []
    for first, last in re.findall(r"\((\d+)(?:-(\d+))?\):", listing):
        found += range(int(first), int(last or first) + 1)
    return found


# --- 2,000 small files untarred, renamed, linked, removed -------------------------------

MODES = (0o644, 0o600, 0o755, 0o444, 0o640, 0o700)


def small_files_tar() -> bytes:
    """20 directories of 100 files of assorted sizes, modes, owners and
    times, and a hard link and a symlink in the archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name, kind, data=b"", mode=0o755, uid=0, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, uid // 10
            info.mtime, info.size, info.linkname = 1_600_000_000 + len(name) * 1000, len(data), link
            tar.addfile(info, io.BytesIO(data))
        add("data", tarfile.DIRTYPE)
        for d in range(20):
            add(f"data/d{d:02d}", tarfile.DIRTYPE, mode=0o750 if d % 3 else 0o755, uid=d * 100)
            for i in range(100):
                n = d * 100 + i
                body = hashlib.sha256(b"%d" % n).digest() * (n * 7 % 97)
                add(f"data/d{d:02d}/f{i:03d}", tarfile.REGTYPE, body, MODES[n % len(MODES)],
                    uid=n % 3 * 1000)
        add("data/d00/hard", tarfile.LNKTYPE, link="data/d00/f010", mode=0o644)
        add("data/d00/sym", tarfile.SYMTYPE, link="../d01/f001", mode=0o777)
    return buf.getvalue()


LONG_TARGET = "/data/" + "a-long-symlink-target/" * 4 + "nowhere"
# the same changes, run by the guest's shell and by os on the host
CHANGES = ([("mkdir -m 755", "data/moved")]
           + [("mv", f"data/d{i % 20:02d}/f{i:03d}", f"data/d{(i + 7) % 20:02d}/r{i:03d}")
              for i in range(47)]
           + [("mv", "data/d01/f050", "data/d02/f050"),           # over an existing file
              ("mv", "data/d19", "data/moved/d19"),                # a directory, with ".."
              ("mv", "data/moved/d19/f099", "data/moved/f099"),
              ("ln", "data/d00/f060", "data/hard1"),
              ("ln", "data/d00/f060", "data/moved/hard2"),
              ("ln -s", "d00/f001", "data/fastsym"),
              ("ln -s", LONG_TARGET, "data/moved/slowsym")])
HOST_OPS = {"mkdir -m 755": lambda path: os.mkdir(path, 0o755), "mv": os.rename,
            "ln": os.link, "ln -s": os.symlink}


def test_untar_rename_link_and_rm_rf(tmp_path_factory, tmp_path, monkeypatch):
    tree = make_tree(tmp_path_factory, "untar")
    tar = small_files_tar()
    (tree / "files.tar").write_bytes(tar)
    img = next(disk_of(tmp_path_factory, tree, "128M"))
    before = counts(img)

    expected = tmp_path / "expected"
    expected.mkdir()
    subprocess.run(["tar", "xf", "-", "-C", str(expected)], input=tar, check=True)
    monkeypatch.chdir(expected)
    for op, *args in CHANGES:
        HOST_OPS[op](*args)

    assert guest(img, "set -e; cd /; umask 022; tar xf files.tar; "
                 + "; ".join(" ".join((op, *args)) for op, *args in CHANGES)
                 + "; sync; echo done") == "done\n"
    fsck(img)
    with mounted(img) as mnt:
        got = snapshot(mnt / "data")
    want = snapshot(expected / "data")
    assert len(got) > 2000 and got == want
    for path, kind, links in (("hard1", "regular", 3), ("moved/hard2", "regular", 3),
                              ("fastsym", "symlink", 1), ("moved", "directory", 3)):
        st = debugfs(img, f"stat /data/{path}").decode()
        assert f"Type: {kind} " in st and f"Links: {links} " in st, st
    assert 'Fast link dest: "d00/f001"' in debugfs(img, "stat /data/fastsym").decode()
    assert debugfs(img, "cat /data/moved/slowsym").decode() == LONG_TARGET

    assert "data" not in guest(img, "rm -rf /data && sync && ls /").split()
    fsck(img)
    assert counts(img) == before            # every block and inode given back


# --- a 200 MiB file truncated to 3 bytes; a sparse file past 4 GiB -------------------------

FOUR_GIB = 4 << 30
TAIL_AT = FOUR_GIB + 123456


def pattern(mib: int):
    """What ext2_pattern writes, a MiB at a time."""
    for m in range(mib):
        yield b"".join(b"%08d" % (m * 256 + b) * 512 for b in range(256))


def test_big_file_truncated_and_a_sparse_file_past_4gib(tmp_path_factory):
    tree = make_tree(tmp_path_factory, "big", ["ext2_pattern"])
    img = next(disk_of(tmp_path_factory, tree, "300M"))
    before = counts(img)
    out = guest(img, "ext2_pattern /big 200 && printf head > /sparse"
                f" && printf 4gib | dd of=/sparse bs=1M seek={FOUR_GIB >> 20} conv=notrunc"
                f" 2>/dev/null && printf tail | dd of=/sparse bs=1 seek={TAIL_AT} conv=notrunc"
                " 2>/dev/null && sync && stat -c '%s' /big /sparse")
    assert out.split() == ["wrote", "200", "MiB", str(200 << 20), str(TAIL_AT + 4)]
    fsck(img)
    with mounted(img) as mnt:
        with open(mnt / "big", "rb") as f:
            for m, chunk in enumerate(pattern(200)):
                assert f.read(1 << 20) == chunk, f"MiB {m} differs"
            assert f.read(1) == b""
        st = os.stat(mnt / "sparse")
        assert st.st_size == TAIL_AT + 4 and st.st_blocks * 512 <= 8 * 1024
        fd = os.open(mnt / "sparse", os.O_RDONLY)
        try:
            assert os.pread(fd, 8, 0) == b"head" + bytes(4)
            assert os.pread(fd, 4096, FOUR_GIB - 4092) == bytes(4092) + b"4gib"
            assert os.pread(fd, 200000, FOUR_GIB + 4) == bytes(TAIL_AT - FOUR_GIB - 4) + b"tail"
        finally:
            os.close(fd)
    bs = 1024          # mke2fs's choice for a 300M image: the 4 GiB block is triple indirect
    assert data_blocks(img, "/sparse") == [0, FOUR_GIB // bs, TAIL_AT // bs]
    assert "(TIND)" in debugfs(img, "stat /sparse").decode()

    assert guest(img, "truncate -s 3 /big && rm /sparse && sync && cat /big") == "000"
    fsck(img)
    assert debugfs(img, "cat /big") == b"000"
    assert data_blocks(img, "/big") == [0]
    assert counts(img) == (before[0] - 1, before[1] - 1)      # /big keeps one block


@pytest.mark.parametrize("how", ["", "v"], ids=["write", "writev"])
def test_one_write_bigger_than_the_kernel_holds_at_once(tmp_path_factory, how):
    """A 40 MiB write() (or writev() of 3 MiB buffers) is read from the
    guest and written 16 MiB at a time (vfs.WRITE_CHUNK): every block lands
    where it belongs, and the call returns the whole count."""
    tree = make_tree(tmp_path_factory, "onewrite", ["ext2_pattern"])
    img = next(disk_of(tmp_path_factory, tree, "100M"))
    assert guest(img, f"ext2_pattern /big 40 40 {how} && sync && stat -c '%s' /big").split() == [
        "wrote", "40", "MiB", str(40 << 20)]
    fsck(img)
    with mounted(img) as mnt, open(mnt / "big", "rb") as f:
        for m, chunk in enumerate(pattern(40)):
            assert f.read(1 << 20) == chunk, f"MiB {m} differs"


# --- a directory of 10,000 entries ---------------------------------------------------

def test_a_directory_of_10000_entries(tmp_path_factory):
    tree = make_tree(tmp_path_factory, "many", ["ext2_mkfiles"])
    img = next(disk_of(tmp_path_factory, tree, "64M"))
    out = guest(img, "ext2_mkfiles /many 10000 && sync && ls /many | wc -l", timeout=180)
    sizes, count = out.splitlines()
    full, swapped = sizes.split()[1:]
    assert full == swapped and int(count) == 10000     # the new names filled the gaps
    fsck(img)
    want = {f"{'f' if i % 10 == 5 else 'e'}{i:05d}" for i in range(10000)}
    with mounted(img) as mnt:
        names = os.listdir(mnt / "many")
        assert len(names) == 10000 and set(names) == want
        assert os.stat(mnt / "many").st_size == int(full)
    listing = live_names(img, "/many")
    assert "e09999" in listing and "f09995" in listing and "e00005" not in listing

    # indexed by e2fsck -D as a Linux host would leave it, then changed by a guest
    subprocess.run(["e2fsck", "-fyD", str(img)], capture_output=True, check=False)
    fsck(img)
    assert "Flags: 0x1000" in debugfs(img, "stat /many").decode()
    assert guest(img, "rm /many/e0000* && mkdir /many/sub && : > /many/new"
                 " && ls /many | wc -l") == "9993\n"
    fsck(img)
    want = {n for n in want if not n.startswith("e0000")} | {"sub", "new"}
    with mounted(img) as mnt:
        assert set(os.listdir(mnt / "many")) == want
        assert os.stat(mnt / "many").st_nlink == 3


# --- the same corpus of calls natively and in a guest -----------------------------------

@pytest.mark.parametrize("block_size", [1024, 4096])
def test_corpus_prints_the_same_natively_and_in_a_guest(tmp_path_factory, tmp_path, block_size):
    tree = make_tree(tmp_path_factory, "corpus", ["ext2_truncate"])
    (tree / "scripts").mkdir()
    shutil.copy(HERE / "scripts/ext2_corpus.sh", tree / "scripts/ext2_corpus.sh")
    native_img = make_image(tmp_path / "native.img", block_size, source=tree)
    guest_img = make_image(tmp_path / "guest.img", block_size, source=tree)

    with mounted(native_img, "rw") as mnt:
        native = subprocess.run(["chroot", str(mnt), "/bin/sh", "/scripts/ext2_corpus.sh"],
                                capture_output=True, text=True, timeout=60,
                                env={"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"})
    assert native.returncode == 0 and native.stderr == "", native.stdout + native.stderr
    r = skas("run", "--disk", str(guest_img), "--", "/bin/sh", "/scripts/ext2_corpus.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == native.stdout.splitlines()
    assert "== end" in r.stdout

    fsck(native_img)
    fsck(guest_img)
    with mounted(native_img) as a:
        native_tree = snapshot(a / "work", times=False)
    with mounted(guest_img) as b:
        assert snapshot(b / "work", times=False) == native_tree


# --- writers at the same time -----------------------------------------------------------

PAD = "p" * 1000         # 1.2 MB in all: more than the dirty blocks ext2 holds
CONCURRENT = f"""mkdir /c
for j in a b c; do (for i in $(seq 1 400); do echo $j-$i-{PAD} >> /c/log; done) & done
( (for i in $(seq 1 400); do echo x$i-{PAD}; done) &
  (for i in $(seq 1 400); do echo y$i-{PAD}; done) & wait ) > /c/shared
wait; sync; cat /c/log /c/shared | wc -l"""


def test_concurrent_appends_and_a_shared_position_lose_nothing(tmp_path_factory):
    """Three shells appending to one file (each `>>` opens it, the first
    creates it), and two sharing one open file since fork: as on Linux, every
    line is there once."""
    img = next(disk_of(tmp_path_factory, make_tree(tmp_path_factory, "concurrent")))
    assert guest(img, CONCURRENT).split() == ["2000"]
    fsck(img)
    with mounted(img) as mnt:
        log = (mnt / "c/log").read_text().splitlines()
        shared = (mnt / "c/shared").read_text().splitlines()
    assert sorted(log) == sorted(f"{j}-{i}-{PAD}" for j in "abc" for i in range(1, 401))
    assert sorted(shared) == sorted(f"{c}{i}-{PAD}" for c in "xy" for i in range(1, 401))


# --- a full disk ---------------------------------------------------------------------------

FULL_DISK = """mkdir /d /e && echo keep > /d/keep && echo x > /e/x
dd if=/dev/zero of=/fill bs=1k 2>/dev/null; echo "dd $?"
i=0; while echo -n > /d/a-name-that-takes-some-room-$i; do i=$((i+1)); done; echo "files $i"
mkdir /d/sub; echo "mkdir $?"
ln -s /a/target/of/more/than/sixty/characters/which/needs/a/block/of/its/own /slow
echo "slow symlink $?"
ln -s short /d/a-fast-symlink-with-a-long-name; echo "fast symlink $?"
ln /d/keep /d/a-hard-link-with-a-long-name; echo "link $?"
mv /e/x /d/moved-here-with-a-long-name; echo "rename $?"; cat /e/x
mv /e/x /d/a-name-that-takes-some-room-0; echo "rename over $?"
cat /d/a-name-that-takes-some-room-0; stat -c %h /d/keep; ls /e | wc -l"""


def test_a_full_disk_refuses_new_names_and_loses_nothing(tmp_path_factory):
    """With every block taken and the directory's block full, each new name
    is ENOSPC and leaves nothing behind (no inode made for it, no link
    counted, a renamed file keeps its old name); a rename over an existing
    name needs no room and succeeds.  Removing everything gives back all."""
    img = next(disk_of(tmp_path_factory, make_tree(tmp_path_factory, "full"), "8M"))
    before = counts(img)
    lines = [ln for ln in guest(img, FULL_DISK).splitlines() if "No space left" not in ln]
    files = int(lines[1].split()[1])
    assert 10 < files < 40 and lines == [
        "dd 1", f"files {files}", "mkdir 1", "slow symlink 1", "fast symlink 1", "link 1",
        "rename 1", "x", "rename over 0", "x", "1", "0"]
    fsck(img)
    assert guest(img, "rm -r /d /e /fill && sync && echo removed") == "removed\n"
    fsck(img)
    assert counts(img) == before


def test_unmount_frees_an_unlinked_file_still_open(tmp_path):
    """What the kernel's halt needs: a guest process killed while it held an
    unlinked file leaves no orphan inode behind."""
    img = make_image(tmp_path / "fs.img")
    before = counts(img)

    async def body(fs):
        f = await fs.root.create(b"held", stat.S_IFREG | 0o644, 0, 0)
        await f.write(0, os.urandom(100_000))
        f.hold()
        await fs.root.unlink(b"held")
        assert f.nlink == 0 and fs.inodes.get(f.ino) is f
    session(img, body)
    fsck(img)
    assert counts(img) == before


def test_a_directory_full_of_subdirectories_is_emlink(tmp_path):
    """The link count is 16 bits on disk: mkdir, rename and link stop at
    Linux's limit instead of overflowing it."""
    img = make_image(tmp_path / "fs.img")

    async def body(fs):
        full = await fs.root.mkdir(b"full", 0o755, 0, 0)
        other = await fs.root.mkdir(b"other", 0o755, 0, 0)
        sub = await other.mkdir(b"sub", 0o755, 0, 0)
        f = await other.create(b"f", stat.S_IFREG | 0o644, 0, 0)
        full.nlink = f.nlink = LINK_MAX       # as if 64,998 subdirectories were there
        for attempt in (full.mkdir(b"d", 0o755, 0, 0), other.rename(b"sub", full, b"sub"),
                        full.link(b"g", f)):
            with pytest.raises(Errno) as e:
                await attempt
            assert e.value.code == errno.EMLINK
        assert await full.lookup(b"d") is None and await other.lookup(b"sub") is sub
        full.nlink, f.nlink = 2, 1
        await full.save()
        await f.save()
    session(img, body)
    fsck(img)
