"""What the layers below the entry may ask of the kernel that holds them.

A task reaches its kernel (``task.kernel``) for the guest-wide state and
the services only the entry point has: the filesystems, the tables of
tasks and pids, the page cache, the console, running ops in a task and
reaching userspace.  This protocol names all of it, so that nothing below
entry/ imports the Kernel class, and a new use shows up here first
(tests/services/test_kernel_faults.py checks the real kernel has every member)."""
from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class KernelServices(Protocol):
    cfg: Any                          # common.config.GuestConfig
    loop: asyncio.AbstractEventLoop
    vfs: Any                          # fs.vfs.Vfs, once booted
    pagecache: Any                    # fs.pagecache.PageCache
    console: Any                      # drivers.console.Console
    tasks: dict                       # tid -> sched.task.Task
    processes: dict                   # pid -> sched.task.Process, zombies too
    pids: set                         # tids and pids in use

    def alloc_pid(self) -> int: ...
    def free_pid(self, pid: int) -> None: ...
    async def run_ops(self, t: Any, ops: list[dict]) -> list: ...
    async def sigreturn(self, t: Any) -> Any: ...
    def interrupt(self, t: Any) -> None: ...
    def kill_task(self, t: Any) -> None: ...
    def init_exited(self, status: int) -> None: ...
    def to_userspace(self, kind: str, id_: int, body: dict) -> None: ...
