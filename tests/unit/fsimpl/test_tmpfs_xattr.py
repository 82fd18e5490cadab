"""tmpfs's extended attributes: in memory, drawing on the filesystem's
ispace as Linux 6.6+ (40 bytes, the name and the value each; statfs's free
inodes go down), bounded per inode (ENOSPC), given back on removal and
when the inode goes."""
from __future__ import annotations

import asyncio
import errno

import pytest

from services.kernel.abi.xattr import XATTR_CREATE
from services.kernel.core.errors import Errno
from services.kernel.fsimpl.tmpfs import XATTR_BYTES_MAX, XATTRS_MAX, Tmpfs


def test_attributes_take_ispace_and_give_it_back():
    async def go():
        fs = Tmpfs(nr_inodes=4)                  # 4 KiB of ispace, the root takes 1
        f = await fs.root.create(b"f", 0o100644, 0, 0)
        assert fs.statfs()["ffree"] == 2
        await f.setxattr(b"user.a", bytes(1000 - 46), 0)        # 40 + 6 + 954: one inode's worth
        assert fs.statfs()["ffree"] == 1
        with pytest.raises(Errno) as e:
            await f.setxattr(b"user.b", bytes(1100), XATTR_CREATE)
        assert e.value.code == errno.ENOSPC
        await fs.root.create(b"g", 0o100644, 0, 0)              # the last inode's worth
        with pytest.raises(Errno) as e:
            await fs.root.create(b"h", 0o100644, 0, 0)
        assert e.value.code == errno.ENOSPC
        await f.removexattr(b"user.a")
        await fs.root.create(b"h", 0o100644, 0, 0)
        await fs.root.unlink(b"h")
        await f.setxattr(b"user.a", bytes(900), 0)
        await fs.root.unlink(b"f")                # the last link: its attributes' space back
        assert fs.xattr_space == 0 and fs.statfs()["ffree"] == 2
    asyncio.run(go())


def test_an_inode_holds_a_bounded_number_and_size_of_attributes():
    async def go():
        fs = Tmpfs()
        f = await fs.root.create(b"f", 0o100644, 0, 0)
        for n in range(XATTRS_MAX):
            await f.setxattr(b"user.%d" % n, b"", 0)
        with pytest.raises(Errno) as e:
            await f.setxattr(b"user.more", b"", 0)
        assert e.value.code == errno.ENOSPC
        await f.setxattr(b"user.0", b"replaced", 0)              # no new one: allowed
        g = await fs.root.create(b"g", 0o100644, 0, 0)
        n = 0
        with pytest.raises(Errno) as e:
            while True:
                await g.setxattr(b"user.%d" % n, bytes(65536), 0)
                n += 1
        assert e.value.code == errno.ENOSPC and n == XATTR_BYTES_MAX // (65536 + 47)
        assert sorted(await g.listxattr()) == await g.listxattr()    # listed by name
    asyncio.run(go())
