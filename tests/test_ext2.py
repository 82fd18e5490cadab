"""ext2 against images made by mke2fs -d, compared with the tree they were made from."""
from __future__ import annotations

import asyncio
import os
import stat
import subprocess

import pytest

from deploy import disk as diskmod
from services.kernel.filesystems.ext2 import Ext2, Ext2Error


class ImageFile:
    """Reads the image file directly: a double for the ubd_io service."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.reads = 0

    async def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        return os.pread(self.fd, length, offset)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    (root / "big").write_bytes(os.urandom(3 << 20))      # double indirect with 1 KiB blocks
    with open(root / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(100 << 20)    # past 64 MiB: triple indirect with 1 KiB blocks
        f.write(b"tail")
    (root / "empty").write_bytes(b"")
    os.symlink("big", root / "fast")
    os.symlink("/" + "x" * 100 + "/target", root / "slow")
    many = root / "many"
    many.mkdir()
    for i in range(2000):
        (many / f"entry-{i:04d}").write_text(str(i))
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chown(root / "empty", 1234, 5678)
    os.utime(root / "empty", ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    return root


def mount(path) -> tuple[Ext2, ImageFile]:
    dev = ImageFile(path)
    return asyncio.run(Ext2.mount(dev)), dev


@pytest.fixture(scope="module", params=[1024, 4096])
def image(request, sample, tmp_path_factory):
    img = tmp_path_factory.mktemp(f"img{request.param}") / "fs.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-b", str(request.param), "-I", "256",
                    "-d", str(sample), str(img), "64M"], check=True)
    # mke2fs -d keeps whole seconds only: set nanoseconds (stored << 2) with debugfs
    subprocess.run(["debugfs", "-w", "-R", f"sif /empty mtime_extra {987_654_321 << 2}",
                    str(img)], check=True, capture_output=True)
    diskmod.check(img)
    return img


def walk(fs: Ext2, path: str):
    async def go():
        inode = fs.root
        for part in path.strip("/").split("/"):
            inode = await inode.lookup(part.encode())
        return inode
    return asyncio.run(go())


def test_files_read_back_byte_for_byte(image, sample):
    fs, dev = mount(image)
    for name in ("big", "sparse", "empty"):
        inode = walk(fs, name)
        native = (sample / name).read_bytes()
        assert inode.size == len(native)
        assert asyncio.run(inode.read(0, inode.size + 10)) == native
        assert asyncio.run(inode.read(max(0, len(native) - 3), 100)) == native[-3:]
    before = dev.reads
    asyncio.run(walk(fs, "big").read(1 << 20, 2 << 20))
    assert dev.reads - before < 40    # contiguous blocks come in a few requests


def test_metadata_matches_the_source_tree(image, sample):
    fs, _ = mount(image)
    for name in ("big", "empty", "fast", "fifo", "null", "many"):
        inode, st = walk(fs, name), os.lstat(sample / name)
        assert (inode.mode, inode.uid, inode.gid, inode.nlink) == \
               (st.st_mode, st.st_uid, st.st_gid, st.st_nlink), name
        assert inode.mtime == int(st.st_mtime), name
    empty = walk(fs, "empty")
    assert (empty.mtime, empty.mtime_ns) == (1_700_000_000, 987_654_321)
    assert walk(fs, "null").rdev == os.makedev(1, 3)


def test_symlinks_fast_and_slow(image, sample):
    fs, _ = mount(image)
    for name in ("fast", "slow"):
        assert asyncio.run(walk(fs, name).readlink()) == os.readlink(sample / name).encode()


def test_a_directory_of_2000_entries(image, sample):
    fs, _ = mount(image)
    many = walk(fs, "many")
    names = {n for n, _, _ in asyncio.run(many.readdir())}
    assert names == {b".", b".."} | {n.encode() for n in os.listdir(sample / "many")}
    assert asyncio.run(walk(fs, "many/entry-1999").read(0, 10)) == b"1999"
    assert asyncio.run(many.lookup(b"entry-2000")) is None


def test_statfs_agrees_with_dumpe2fs(image):
    fs, _ = mount(image)
    out = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
    s = fs.statfs()
    assert s["bfree"] == int(field["Free blocks"]) and s["ffree"] == int(field["Free inodes"])
    assert s["bsize"] == int(field["Block size"])


def test_not_ext2_is_refused(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(bytes(8192))
    with pytest.raises(Ext2Error, match="not an ext2"):
        mount(junk)
