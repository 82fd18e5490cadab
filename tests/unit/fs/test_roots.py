"""A task's root (chroot) in the VFS walk, driven in this process over
tmpfs: absolute paths and symlinks start at the root, ".." stops there
(also where the root is a mount's root, or a directory a mount covers),
a path as a rooted task sees it, and getcwd's walk, which tells a
directory outside the root from one inside."""
from __future__ import annotations

import asyncio
import stat

from services.kernel.core.cred import Credentials
from services.kernel.fs.vfs import Mount, Vfs, same_place, seen_from
from services.kernel.fsimpl.tmpfs import Tmpfs

DIR = stat.S_IFDIR | 0o755


async def _tree() -> Vfs:
    """/jail/dir/sub, /jail/abs -> /dir, /out; a tmpfs on /jail/mnt with /in."""
    fs = Tmpfs(mode=0o755)
    vfs = Vfs(Mount(fs, 1))
    jail = await fs.root.mkdir(b"jail", DIR, 0, 0)
    await fs.root.mkdir(b"out", DIR, 0, 0)
    await (await jail.mkdir(b"dir", DIR, 0, 0)).mkdir(b"sub", DIR, 0, 0)
    await jail.mkdir(b"mnt", DIR, 0, 0)
    await jail.symlink(b"abs", b"/dir", 0, 0)
    inner = Tmpfs(mode=0o755)
    await inner.root.mkdir(b"in", DIR, 0, 0)
    at = await vfs.lookup(vfs.root, b"/jail/mnt", Credentials(), vfs.root)
    vfs.attach(Mount(inner, 2), at)
    return vfs


def run(coro):
    return asyncio.run(coro)


def test_absolute_paths_symlinks_and_dotdot_stay_under_the_root():
    async def go():
        vfs = await _tree()
        cred = Credentials()
        jail = await vfs.lookup(vfs.root, b"/jail", cred, vfs.root)
        top = await vfs.lookup(vfs.root, b"/", cred, jail)
        assert same_place(top, jail)
        deep = await vfs.lookup(jail, b"/dir/sub/../../../../abs/sub", cred, jail)
        assert deep.path == b"/jail/dir/sub"
        assert same_place(await vfs.lookup(deep, b"../../../..", cred, jail), jail)
        # the same walk from the VFS root climbs out
        out = await vfs.lookup(deep, b"../../../out", cred, vfs.root)
        assert out.path == b"/out"
    run(go())


def test_a_root_on_a_mount_holds_dotdot_at_the_mount():
    async def go():
        vfs = await _tree()
        cred = Credentials()
        mnt = await vfs.lookup(vfs.root, b"/jail/mnt", cred, vfs.root)
        assert mnt.mount is not vfs.root_mount
        inside = await vfs.lookup(mnt, b"in/../../..", cred, mnt)
        assert same_place(inside, mnt)
        # a root under a mount made after it: ".." from the mount stops at it
        jail = await vfs.lookup(vfs.root, b"/jail", cred, vfs.root)
        up = await vfs.lookup(mnt, b"../..", cred, jail)
        assert same_place(up, jail)
    run(go())


def test_getcwd_walk_tells_inside_from_outside():
    async def go():
        vfs = await _tree()
        cred = Credentials()
        jail = await vfs.lookup(vfs.root, b"/jail", cred, vfs.root)
        sub = await vfs.lookup(vfs.root, b"/jail/dir/sub", cred, vfs.root)
        out = await vfs.lookup(vfs.root, b"/out", cred, vfs.root)
        inner = await vfs.lookup(vfs.root, b"/jail/mnt/in", cred, vfs.root)
        assert await vfs.current_path(sub, jail) == (b"/dir/sub", True)
        assert await vfs.current_path(inner, jail) == (b"/mnt/in", True)
        assert await vfs.current_path(jail, jail) == (b"/", True)
        assert await vfs.current_path(out, jail) == (b"/out", False)
        assert await vfs.current_path(out, vfs.root) == (b"/out", True)
    run(go())


def test_paths_as_a_rooted_task_sees_them():
    async def go():
        vfs = await _tree()
        jail = await vfs.lookup(vfs.root, b"/jail", Credentials(), vfs.root)
        assert seen_from(b"/jail/dir", jail) == b"/dir"
        assert seen_from(b"/jail", jail) == b"/"
        assert seen_from(b"/jailbreak", jail) is None
        assert seen_from(b"/out", jail) is None
        assert seen_from(b"/out", vfs.root) == b"/out"
    run(go())
