"""Magic SysRq, as Linux's drivers/tty/sysrq.c, for `skas ctl NAME sysrq KEY`
(UML's mconsole sysrq): the keys a user-mode guest has use for, with
Linux's action messages.  Each handler returns (text, data): what the
kernel logged, and the same for programs."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from common.exits import REBOOT
from services.kernel.abi.mount import MS_RDONLY
from services.kernel.abi.signal import SIGKILL, SIGTERM
from services.kernel.core import eager
from services.kernel.mm.meminfo import meminfo, memory_use
from services.kernel.sched import signals
from services.kernel.syscalls.read_write import sync_all

if TYPE_CHECKING:
    from services.kernel.entry.kernel import Kernel
    from services.kernel.sched.task import Task

log = logging.getLogger("kernel")

Handler = Callable[["Kernel"], Awaitable[tuple[str, dict]]]


async def emergency_sync(k: Kernel) -> tuple[str, dict]:
    """s: what shared maps changed, then every filesystem, to the disks."""
    await k.pagecache.write_back_all()
    await sync_all(k.vfs)
    return "Emergency Sync complete", {}


async def emergency_remount(k: Kernel) -> tuple[str, dict]:
    """u: a sync, then every mount read-only (writes fail with EROFS)."""
    await emergency_sync(k)
    for m in k.vfs.mounts:
        m.flags |= MS_RDONLY
    return "Emergency Remount complete", {"mounts": len(k.vfs.mounts)}


async def reboot(k: Kernel) -> tuple[str, dict]:
    """b: at once, nothing written back (as Linux's emergency_restart)."""
    asyncio.ensure_future(k.shutdown(REBOOT, write_back=False))
    return "Resetting", {}


async def power_off(k: Kernel) -> tuple[str, dict]:
    """o: at once, nothing written back (as Linux's kernel_power_off)."""
    asyncio.ensure_future(k.shutdown(0, write_back=False))
    return "Power Off", {}


def _signal_all(k: Kernel, sig: int) -> list[int]:
    """sig to every process but init; the pids it went to."""
    sent = []
    for proc in list(k.processes.values()):
        if proc.pid != 1 and not proc.zombie and proc.threads:
            signals.send_process(proc, sig)
            sent.append(proc.pid)
    return sent


async def terminate_all(k: Kernel) -> tuple[str, dict]:
    """e: SIGTERM to every process but init."""
    return "Terminate All Tasks", {"pids": _signal_all(k, SIGTERM)}


async def kill_all(k: Kernel) -> tuple[str, dict]:
    """i: SIGKILL to every process but init."""
    return "Kill All Tasks", {"pids": _signal_all(k, SIGKILL)}


def waiting_in(t: Task) -> str:
    """The call t's handler waits in ('' if none: running, or stopped at a trap)."""
    call = t.flight.call
    if call is None or call.done():
        return ""
    if isinstance(call, eager.Carried):
        return call.name
    return call.get_name() if isinstance(call, asyncio.Task) else ""


def state(t: Task) -> str:
    """ps's letter: T stopped by a signal, S in the kernel (or held by a
    freeze), R running."""
    if t.process.stopped:
        return "T"
    return "S" if t.flight.in_kernel or t.flight.held is not None else "R"


async def show_state(k: Kernel) -> tuple[str, dict]:
    """t: every task, what state it is in and which call it waits in."""
    tasks = [{"pid": t.tgid, "tid": t.tid, "ppid": t.ppid, "state": state(t),
              "comm": t.comm.decode(errors="replace"), "wchan": waiting_in(t)}
             for t in sorted(k.tasks.values(), key=lambda t: (t.tgid, t.tid))]
    lines = ["Show State" + (" (the guest is stopped)" if k.freezer.frozen else ""),
             f"{'PID':>5} {'TID':>5} {'PPID':>5} S {'COMMAND':<16} WAITING IN"]
    lines += [f"{t['pid']:>5} {t['tid']:>5} {t['ppid']:>5} {t['state']} {t['comm']:<16} "
              f"{t['wchan'] or '-'}" for t in tasks]
    return "\n".join(lines), {"tasks": tasks, "frozen": k.freezer.frozen}


async def show_memory(k: Kernel) -> tuple[str, dict]:
    """m: the guest's meminfo figures (kB)."""
    text = meminfo(memory_use(k)).decode()
    figures = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        figures[name] = int(value.split()[0])
    return "Show Memory\n" + text.rstrip("\n"), {"meminfo_kb": figures}


# key: (Linux's help name, handler), in the order Linux's help lists them
KEYS: dict[str, tuple[str, Handler]] = {
    "b": ("reboot", reboot),
    "e": ("terminate-all-tasks", terminate_all),
    "i": ("kill-all-tasks", kill_all),
    "m": ("show-memory-usage", show_memory),
    "o": ("poweroff", power_off),
    "s": ("sync", emergency_sync),
    "t": ("show-task-states", show_state),
    "u": ("unmount", emergency_remount),
}
HELP = "HELP : " + " ".join(f"{name}({key})" for key, (name, _) in KEYS.items())


async def sysrq(k: Kernel, key: str) -> tuple[str, dict]:
    """Linux's __handle_sysrq: the action, logged as 'sysrq: ...'; an
    unknown key (or h) prints the help line."""
    entry = KEYS.get(key)
    if entry is None:
        text, data = HELP, {"keys": {k_: name for k_, (name, _) in KEYS.items()}}
    else:
        text, data = await entry[1](k)
    log.info("sysrq: %s", text.splitlines()[0])
    return "sysrq: " + text, data
