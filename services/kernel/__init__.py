"""kernel: all of a guest's kernel state (UML's kernel thread).

In a nutshell: the kernel receives each guest system call, most straight
from the host through the seccomp listener (``entry/listener.py``), the
rest as trapped calls from userspace, dispatches it through the one syscall
table (``syscalls/table.py``, from the policy in ``common/syscalls.py``) to
a handler in an area module of ``syscalls/``, and answers ``ret``, ``host``
or ``ops``.  Its packages are layers, each importing only those below it
(docs/architecture.md, "The kernel's layout"; tests/unit/test_layout.py).  It owns tasks and virtual pids,
credentials, fd tables, the VFS and its filesystems, the page cache, the
console's tty state and the block cache.  It reads and writes guest memory
itself (``process_vm_readv``/``writev``); it never calls ptrace, never
touches a disk image (ubd_io does) and never blocks its asyncio loop:
handlers that wait are coroutines.
"""
