"""ext2's extended attributes, driven on mke2fs images: the block i_file_acl
names (allocated, rewritten, copied when shared, freed), the in-inode area
mke2fs -d fills, the feature flag; e2fsck -fn and debugfs judge each step."""
from __future__ import annotations

import errno
import os
import re
import subprocess

import pytest

from services.kernel.abi.xattr import XATTR_CREATE, XATTR_REPLACE
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.ext2.layout import U32
from services.kernel.fsimpl.ext2.xattr import HEADER, Entry, build_block, entry_hash, parse
from ext2_images import counts, debugfs, fsck, make_image, session


def _stat(img, path: str) -> tuple[int, int]:
    """debugfs's File ACL and Blockcount of path."""
    out = debugfs(img, f"stat {path}").decode()
    return (int(re.search(r"File ACL: (\d+)", out).group(1)),
            int(re.search(r"Blockcount: (\d+)", out).group(1)))


async def _file(fs, name: bytes):
    return await fs.root.create(name, 0o100644, 0, 0)


@pytest.fixture(params=[1024, 4096])
def image(request, tmp_path):
    return make_image(tmp_path / "fs.img", request.param), request.param


def test_set_replace_and_remove_keep_the_image_clean(image):
    image, block_size = image
    free0, _ = counts(image)

    async def create(fs):
        f = await _file(fs, b"f")
        await f.setxattr(b"user.one", b"1", 0)
        await f.setxattr(b"trusted.two", b"22" * 50, XATTR_CREATE)
        await f.setxattr(b"security.three", b"", 0)
        await f.setxattr(b"user.\xe9t\xe9", b"non-ascii", 0)     # the hash's unsigned bytes
    session(image, create)
    fsck(image)
    out = debugfs(image, "ea_list /f").decode()
    assert ('user.one (1) = "1"' in out and "trusted.two (100)" in out
            and "security.three (0)" in out), out
    acl, blocks = _stat(image, "/f")
    assert acl and blocks == block_size // 512      # the one block, in i_blocks
    assert counts(image)[0] == free0 - 1

    async def replace(fs):
        f = await fs.root.lookup(b"f")
        ctime = (f.ctime, f.ctime_ns)
        await f.setxattr(b"user.one", b"uno", XATTR_REPLACE)
        assert (f.ctime, f.ctime_ns) >= ctime
        with pytest.raises(Errno) as e:
            await f.setxattr(b"user.one", b"x", XATTR_CREATE)
        assert e.value.code == errno.EEXIST
        with pytest.raises(Errno) as e:
            await f.setxattr(b"user.nope", b"x", XATTR_REPLACE)
        assert e.value.code == errno.ENODATA
        return await f.listxattr()
    names = session(image, replace)
    assert names == [b"user.one", b"user.\xe9t\xe9", b"trusted.two", b"security.three"]
    fsck(image)
    assert 'user.one (3) = "uno"' in debugfs(image, "ea_list /f").decode()

    async def remove(fs):
        f = await fs.root.lookup(b"f")
        for name in names:
            await f.removexattr(name)
        with pytest.raises(Errno) as e:
            await f.removexattr(b"user.one")
        assert e.value.code == errno.ENODATA
    session(image, remove)
    fsck(image)
    assert _stat(image, "/f") == (0, 0)         # the block freed, i_blocks back
    assert counts(image)[0] == free0


def test_a_shared_block_is_copied_before_it_changes(image):
    """Two inodes sharing one block (as Linux's mbcache makes them): a
    change to one gets it a block of its own, the other keeps the old one,
    its count down to 1; removing the files frees both."""
    async def share(fs):
        a, b = await _file(fs, b"a"), await _file(fs, b"b")
        await a.setxattr(b"user.same", b"value", 0)
        block = bytearray(await fs.block(a.file_acl))
        U32.pack_into(block, 4, 2)
        await fs.put(a.file_acl, block)
        b.file_acl, b.blocks = a.file_acl, a.blocks
        await b.save()
    image, _ = image
    session(image, share)
    fsck(image)
    shared = _stat(image, "/a")[0]
    assert _stat(image, "/b")[0] == shared
    free = counts(image)[0]

    async def change(fs):
        b = await fs.root.lookup(b"b")
        await b.setxattr(b"user.more", b"b's", 0)
        return await b.listxattr()
    assert session(image, change) == [b"user.more", b"user.same"]
    fsck(image)
    assert _stat(image, "/a")[0] == shared and _stat(image, "/b")[0] not in (0, shared)
    assert "user.more" not in debugfs(image, "ea_list /a").decode()
    assert counts(image)[0] == free - 1

    async def unlink(fs):
        await fs.root.unlink(b"a")
        await fs.root.unlink(b"b")
    session(image, unlink)
    fsck(image)
    assert counts(image)[0] == free + 1


def test_the_in_inode_attributes_mke2fs_writes_are_read_and_moved_out(tmp_path):
    """mke2fs -d puts small attributes in the inode (Linux's ext2 driver
    never reads them, ext4's does): they are listed and read, and a change
    to one takes it out of the inode into the block."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    os.setxattr(src / "f", "user.small", b"in the inode")
    os.setxattr(src / "f", "user.big", b"b" * 600)
    os.setxattr(src, "user.dir", b"d")
    img = make_image(tmp_path / "fs.img", 1024, source=src)
    assert _stat(img, "/")[0] == 0          # the root's lives in its inode alone

    async def read(fs):
        f = await fs.root.lookup(b"f")
        return (await fs.root.listxattr(), await fs.root.getxattr(b"user.dir"),
                sorted(await f.listxattr()), await f.getxattr(b"user.small"))
    assert session(img, read) == ([b"user.dir"], b"d", [b"user.big", b"user.small"],
                                  b"in the inode")

    async def change(fs):
        f = await fs.root.lookup(b"f")
        await f.setxattr(b"user.small", b"now in the block", XATTR_REPLACE)
        await fs.root.removexattr(b"user.dir")
        return await f.listxattr(), await fs.root.listxattr()
    assert session(img, change) == ([b"user.big", b"user.small"], [])
    fsck(img)
    out = debugfs(img, "ea_list /f").decode()
    assert out.count("user.small") == 1 and 'user.small (16) = "now in the block"' in out
    assert "Extended attributes" not in debugfs(img, "ea_list /").decode()


def test_the_feature_is_set_and_a_full_block_is_enospc(tmp_path):
    img = tmp_path / "fs.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-O", "^ext_attr",
                    str(img), "8M"], check=True)

    async def fill(fs):
        f = await _file(fs, b"f")
        with pytest.raises(Errno) as e:
            await f.setxattr(b"user.huge", bytes(1025), 0)    # more than a block
        assert e.value.code == errno.ERANGE
        n = 0
        try:
            while True:
                await f.setxattr(b"user.%d" % n, bytes(100), 0)
                n += 1
        except Errno as exc:
            assert exc.code == errno.ENOSPC
        return n
    assert session(img, fill) == 8      # (1024 - 32 - 4) // (16 + 8 + 100)
    fsck(img)
    features = subprocess.run(["dumpe2fs", "-h", str(img)], capture_output=True, text=True,
                              check=True).stdout
    assert "ext_attr" in re.search(r"Filesystem features:(.*)", features).group(1)


def test_blocks_are_built_as_linux_hashes_them_and_read_back():
    entries = parse(build_block([], 1024), HEADER.size, 0)
    assert entries == []
    made = [Entry(1, b"a", b"xyz"), Entry(1, b"bb", b""), Entry(6, b"selinux", b"l" * 9)]
    block = build_block(made, 1024)
    assert parse(block, HEADER.size, 0) == made
    # the value's padded words after the name's bytes, shifted as ext2_xattr_hash_entry
    assert entry_hash(b"a", b"xyz") == ((ord("a") << 16) ^ int.from_bytes(b"xyz\0", "little"))
    assert parse(block[:100], HEADER.size, 0) is None     # a value past the end: corrupt
