"""pipe and pipe2 (services/kernel/fs/pipe.py)."""
from __future__ import annotations

import errno
import struct

from services.kernel.core.errors import Errno
from services.kernel.fs.pipe import Pipe, PipeFile
from services.kernel.abi.fcntl import O_CLOEXEC, O_NONBLOCK, O_WRONLY


def sys_pipe2(t, fds_ptr, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~(O_CLOEXEC | O_NONBLOCK):      # O_DIRECT too: no packet mode
        raise Errno(errno.EINVAL)
    pipe = Pipe(t.cred.euid, t.cred.egid)
    cloexec = bool(flags & O_CLOEXEC)
    ends = (PipeFile(pipe, flags & O_NONBLOCK), PipeFile(pipe, O_WRONLY | flags & O_NONBLOCK))
    fds: list[int] = []
    try:
        for end in ends:
            fds.append(t.files.install(end, cloexec))
        t.mem.write(fds_ptr, struct.pack("<ii", *fds))
    except Errno:
        for fd in fds:
            t.files.close(fd)
        for end in ends[len(fds):]:      # not installed: no fd will release them
            end.release()
        raise
    return 0


def sys_pipe(t, fds_ptr, *_):
    return sys_pipe2(t, fds_ptr, 0)
