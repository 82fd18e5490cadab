"""execve and execveat: the name and the arguments as the caller gives
them; the work is services/kernel/sched/exec.py's."""
from __future__ import annotations

import errno

from services.kernel.core.answers import Ops
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import seen_from
from services.kernel.sched.exec import copy_args, executable, execve, open_exec
from services.kernel.syscalls.paths import resolve
from services.kernel.abi.fcntl import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW


async def sys_execve(t, path_ptr, argv_ptr, envp_ptr, *_):
    path = t.mem.read_cstr(path_ptr)
    return await _execve(t, path, await open_exec(t, path), argv_ptr, envp_ptr)


async def sys_execveat(t, dirfd, path_ptr, argv_ptr, envp_ptr, flags, *_):
    """execve of a path relative to dirfd, or of dirfd itself (AT_EMPTY_PATH,
    fexecve): the program is named by its guest path as the task's root
    shows it (Linux says /dev/fd/N)."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    return await _execve(t, seen_from(loc.path, t.root) or loc.path, executable(t, loc),
                         argv_ptr, envp_ptr)


async def _execve(t, path: bytes, loc, argv_ptr: int, envp_ptr: int):
    """As Linux orders it: the file is opened, then the arguments copied,
    then the format read."""
    args = await copy_args(t, path, argv_ptr, envp_ptr)
    return Ops(await execve(t, path, loc, args))
