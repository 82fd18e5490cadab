"""ext2 against images made by mke2fs -d, compared with the tree they were made from."""
from __future__ import annotations

import asyncio
import os
import stat
import subprocess

import pytest

from deploy import disk as diskmod
from ext2_images import ImageFile, dir_entries
from services.kernel.fsimpl.ext2 import Ext2, Ext2Error

INDEX_FL = 0x1000      # the directory has an htree (dir_index)
DT = {stat.S_IFREG: 8, stat.S_IFDIR: 4, stat.S_IFLNK: 10, stat.S_IFCHR: 2, stat.S_IFBLK: 6,
      stat.S_IFIFO: 1, stat.S_IFSOCK: 12}
Y2040 = 2_208_988_800  # past 2038: needs the epoch bits of the extra time field
Y1960 = -315_619_200   # before 1970: the 32-bit seconds are signed


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
    os.mknod(root / "wide", 0o600 | stat.S_IFBLK, os.makedev(300, 70000))  # new dev_t encoding
    os.chown(root / "empty", 1234, 5678)
    os.chown(root / "fifo", 100_000, 200_000, follow_symlinks=False)      # high 16 bits in osd2
    os.utime(root / "empty", ns=(1_600_000_000_123_456_789, 1_700_000_000_987_654_321))
    return root


def run(coro):
    return asyncio.run(coro)


def mount(path) -> tuple[Ext2, ImageFile]:
    dev = ImageFile(path)
    return run(Ext2.mount(dev)), dev


def debugfs(img, *requests: str) -> None:
    for request in requests:
        subprocess.run(["debugfs", "-w", "-R", request, str(img)], check=True, capture_output=True)


@pytest.fixture(scope="module", params=[1024, 2048, 4096])
def image(request, sample, tmp_path_factory):
    img = tmp_path_factory.mktemp(f"img{request.param}") / "fs.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-b", str(request.param), "-I", "256",
                    "-d", str(sample), str(img), "64M"], check=True)
    # mke2fs -d keeps whole seconds only: set nanoseconds (stored << 2) and times
    # outside 1970..2038 with debugfs, on fields the source tree is not compared on
    debugfs(img, f"sif /empty mtime_extra {987_654_321 << 2}",
            f"sif /null atime @{Y2040}", f"sif /slow atime @{Y1960}")
    # mke2fs -d writes linear directories; e2fsck -D indexes the big one (htree)
    # and exits 1 for "filesystem modified"
    subprocess.run(["e2fsck", "-fyD", str(img)], check=False, capture_output=True)
    diskmod.check(img)
    return img


def walk(fs: Ext2, path: str):
    async def go():
        inode = fs.root
        for part in path.strip("/").split("/"):
            inode = await inode.lookup(part.encode())
        return inode
    return run(go())


def test_files_read_back_byte_for_byte(image, sample):
    fs, _ = mount(image)
    for name in ("big", "sparse", "empty"):
        inode = walk(fs, name)
        native = (sample / name).read_bytes()
        assert inode.is_reg() and inode.size == len(native)
        assert run(inode.read(0, inode.size + 10)) == native
        assert run(inode.read(max(0, len(native) - 3), 100)) == native[-3:]
        assert run(inode.read(len(native), 10)) == b""
    big, native = walk(fs, "big"), (sample / "big").read_bytes()
    for offset in (fs.block_size - 1, 12 * fs.block_size - 5, 1_234_567, (268 << 10) - 1):
        assert run(big.read(offset, 5000)) == native[offset:offset + 5000]


def test_holes_stay_holes(image, sample):
    fs, _ = mount(image)
    sparse = walk(fs, "sparse")
    assert sparse.blocks * 512 < 64 * fs.block_size     # data and a few indirect blocks
    assert run(sparse.read(50 << 20, 4096)) == bytes(4096)


def test_contiguous_runs_come_in_few_requests(image):
    fs, dev = mount(image)
    big = walk(fs, "big")
    before = dev.reads
    run(big.read(1 << 20, 2 << 20))
    assert dev.reads - before < 40
    small = walk(fs, "many/entry-0001")
    run(small.read(0, 10))
    before = dev.reads
    run(small.read(0, 10))
    assert dev.reads == before        # cached


def test_metadata_matches_the_source_tree(image, sample):
    fs, _ = mount(image)
    for name in os.listdir(sample):
        inode, st = walk(fs, name), os.lstat(sample / name)
        assert (inode.mode, inode.uid, inode.gid, inode.nlink, inode.mtime) == \
               (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, int(st.st_mtime)), name
        if not stat.S_ISDIR(st.st_mode):
            assert inode.size == st.st_size, name
    assert walk(fs, "null").rdev == os.makedev(1, 3)
    assert walk(fs, "wide").rdev == os.makedev(300, 70000)
    assert walk(fs, "big").rdev == 0


def test_times_in_nanoseconds_and_beyond_32_bits(image):
    fs, _ = mount(image)
    empty = walk(fs, "empty")
    assert (empty.mtime, empty.mtime_ns) == (1_700_000_000, 987_654_321)
    assert walk(fs, "null").atime == Y2040
    assert walk(fs, "slow").atime == Y1960


def test_symlinks_fast_and_slow(image, sample):
    fs, _ = mount(image)
    for name in ("fast", "slow"):
        link = walk(fs, name)
        assert link.is_lnk() and not link.is_reg()
        assert run(link.readlink()) == os.readlink(sample / name).encode()
    assert walk(fs, "fast").blocks == 0 and walk(fs, "slow").blocks > 0


def test_readdir_types_and_inodes(image, sample):
    fs, _ = mount(image)
    entries = {name: (ino, dtype) for name, ino, dtype in run(dir_entries(fs.root))}
    assert entries[b"."] == entries[b".."] == (2, 4)
    for name in os.listdir(sample):
        ino, dtype = entries[name.encode()]
        assert dtype == DT[stat.S_IFMT(os.lstat(sample / name).st_mode)], name
        assert walk(fs, name).ino == ino


def test_an_indexed_directory_of_2000_entries(image, sample):
    fs, _ = mount(image)
    many = walk(fs, "many")
    assert many.is_dir() and many.flags & INDEX_FL
    entries = run(dir_entries(many))
    native = os.listdir(sample / "many")
    assert sorted(n for n, _, _ in entries) == sorted([b".", b".."] + [n.encode() for n in native])

    async def look_up_all():
        for name, ino, _ in entries:
            assert (await many.lookup(name)).ino == ino
        return [await (await many.lookup(n.encode())).read(0, 10) for n in native]
    assert run(look_up_all()) == [(sample / "many" / n).read_bytes() for n in native]
    assert run(many.lookup(b"entry-2000")) is None
    assert run(fs.root.lookup(b"nonexistent")) is None


def test_inodes_are_cached(image):
    fs, _ = mount(image)
    assert fs.root.ino == 2 and run(fs.inode(2)) is fs.root
    assert walk(fs, "big") is walk(fs, "big")


def test_statfs_agrees_with_dumpe2fs(image):
    fs, _ = mount(image)
    out = subprocess.run(["dumpe2fs", "-h", str(image)], check=True, capture_output=True,
                         text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
    free, count = int(field["Free blocks"]), int(field["Block count"])
    assert fs.statfs() == {
        "bsize": fs.block_size, "frsize": fs.block_size,
        "blocks": count - int(field["Overhead clusters"]), "bfree": free,
        "bavail": free - int(field["Reserved block count"]),
        "files": int(field["Inode count"]), "ffree": int(field["Free inodes"]),
        "namelen": 255, "magic": 0xEF53}


def test_without_filetype_and_with_128_byte_inodes(tmp_path, sample):
    """Revision 0: no features at all, so d_type comes from the inodes."""
    img = tmp_path / "old.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-r", "0", "-d", str(sample), str(img), "64M"],
                   check=True)
    diskmod.check(img)
    fs, _ = mount(img)
    assert fs.inode_size == 128 and not fs.feature_incompat
    for name, _, dtype in run(dir_entries(fs.root)):
        if name not in (b".", b"..", b"lost+found"):
            assert dtype == DT[stat.S_IFMT(os.lstat(sample / name.decode()).st_mode)], name
    empty = walk(fs, "empty")
    assert empty.mtime == 1_700_000_000 and empty.mtime_ns == 0
    assert run(walk(fs, "big").read(0, 1 << 30)) == (sample / "big").read_bytes()


def test_not_ext2_is_refused(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(bytes(8192))
    with pytest.raises(Ext2Error, match="not an ext2"):
        mount(junk)
    junk.write_bytes(bytes(100))
    with pytest.raises(Ext2Error):
        mount(junk)


def test_unknown_incompatible_features_are_named(tmp_path):
    img = tmp_path / "meta.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-O", "meta_bg,^resize_inode", str(img), "8M"],
                   check=True)
    with pytest.raises(Ext2Error, match="meta_bg"):
        mount(img)


@pytest.mark.parametrize("field,value", [("log_block_size", 40), ("inodes_per_group", 0),
                                         ("blocks_per_group", 0), ("inode_size", 100)])
def test_corrupt_superblock_is_refused(tmp_path, field, value):
    img = tmp_path / "bad.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", str(img), "8M"], check=True)
    debugfs(img, f"ssv {field} {value}")
    with pytest.raises(Ext2Error):
        mount(img)
