"""Management of a running guest: `skas ctl NAME VERB`, as UML's mconsole
(arch/um/drivers/mconsole_kern.c).

In a nutshell: a ``ctl`` message {verb, args} on the kernel's endpoint is
answered by one ``ctl_reply`` {ok, text, data}: text for humans, data the
same for programs.  Each verb runs as its own coroutine, so a slow one (a
sync, a freeze waiting for a computing task) never holds the kernel's
loop, and any failure, a kernel bug included, is a reply with ok false.
Every size is bounded: the arguments (common/protocol.py), a /proc file
read (PROC_MAX), a freeze's wait (FREEZE_WAIT)."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import stat as S
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from common.config import UBD_MAX
from common.protocol import CTL_ARG_MAX, CTL_ARGS_MAX, Message
from services.kernel.abi.signal import SIGINT
from services.kernel.core.errors import Errno
from services.kernel.drivers.ubd import UbdDevice
from services.kernel.entry import sysrq as sysrq_keys
from services.kernel.fs.vfs import UBD_MAJOR, makedev
from services.kernel.fsimpl.procfs import VERSION, ProcFs
from services.kernel.fsimpl.synthetic import Link
from services.kernel.fsimpl.sysfs import disk_name
from services.kernel.syscalls.mount import add_disk_node
from services.kernel.sched import signals
from services.kernel.sched.task import CURRENT

if TYPE_CHECKING:
    from services.kernel.entry.kernel import Kernel

log = logging.getLogger("kernel")

PROC_MAX = 1 << 20         # bytes of a /proc file a `proc` request returns
PROC_DEPTH = 16            # path components (and links followed) in one
FREEZE_WAIT = 5.0          # seconds a `stop` waits for running tasks to stop
DISK = re.compile(r"ubd(\d+)")


class CtlError(Exception):
    """A verb that cannot be done: the reply's text, and an errno name when one fits."""

    def __init__(self, text: str, code: int | None = None):
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Verb:
    run: Callable[..., Awaitable[tuple[str, dict]]]
    usage: str
    help: str
    nargs: tuple[int, int]          # least and most arguments


VERBS: dict[str, Verb] = {}


def verb(usage: str, help_: str, nargs: tuple[int, int] = (0, 0)):
    def register(run):
        VERBS[run.__name__.rstrip("_")] = Verb(run, usage, help_, nargs)
        return run
    return register


def serve(k: Kernel, to: bytes, msg: Message) -> None:
    """One ctl request: checked here, done by its verb's coroutine."""
    name, args = msg["verb"], msg["args"]
    entry = VERBS.get(name)
    if len(args) > CTL_ARGS_MAX or not all(isinstance(a, str) and len(a) <= CTL_ARG_MAX
                                           for a in args):
        problem = (f"arguments must be at most {CTL_ARGS_MAX} strings of at most "
                   f"{CTL_ARG_MAX} characters")
    elif entry is None:
        problem = f"unknown verb {name[:64]!r}: try help"
    elif not entry.nargs[0] <= len(args) <= entry.nargs[1]:
        problem = f"usage: {entry.usage}"
    else:
        asyncio.ensure_future(_run(k, to, msg.id, name, entry, args))
        return
    _reply(k, to, msg.id, False, problem, {"error": "EINVAL"})


async def _run(k: Kernel, to: bytes, id_: int, name: str, entry: Verb, args: list) -> None:
    try:
        text, data = await entry.run(k, *args)
        ok = True
    except CtlError as exc:
        ok, text = False, str(exc)
        data = {"error": errno.errorcode.get(exc.code, "")} if exc.code else {}
    except Errno as exc:
        ok, text = False, f"{name}: {os.strerror(exc.code)}"
        data = {"error": errno.errorcode.get(exc.code, "")}
    except Exception:
        log.exception("kernel bug in skas ctl %s", name)
        ok, text, data = False, f"kernel bug in {name} (see the kernel's log)", {}
    _reply(k, to, id_, ok, text, data)


def _reply(k: Kernel, to: bytes, id_: int, ok: bool, text: str, data: dict) -> None:
    k.endpoint.send("ctl_reply", id_, {"ok": ok, "text": text, "data": data}, to)


def _booted(k: Kernel) -> None:
    if k.vfs is None:
        raise CtlError("the guest has not booted yet", errno.EAGAIN)
    if k.halting:
        raise CtlError("the guest is halting", errno.ESHUTDOWN)


# --- the verbs, in UML's order ---------------------------------------------------------

@verb("version", "the guest kernel's version (uname: sysname, nodename, release, version, "
      "machine)")
async def version(k: Kernel) -> tuple[str, dict]:
    data = {"sysname": "Linux", "nodename": k.cfg.hostname, "release": k.cfg.release,
            "version": VERSION.decode(), "machine": "x86_64"}
    return " ".join(data.values()), data


@verb("help", "this list")
async def help_(k: Kernel) -> tuple[str, dict]:
    width = max(len(v.usage) for v in VERBS.values())
    lines = ["Commands:"] + [f"    {v.usage:<{width}}  {v.help}" for v in VERBS.values()]
    return "\n".join(lines), {"verbs": {n: v.usage for n, v in VERBS.items()}}


@verb("halt", "stop the guest (its filesystems written back first)")
async def halt(k: Kernel) -> tuple[str, dict]:
    _booted(k)
    k.power("halt")
    return "halting", {}


@verb("reboot", "restart the guest (its filesystems written back first)")
async def reboot(k: Kernel) -> tuple[str, dict]:
    _booted(k)
    k.power("restart")
    return "rebooting", {}


@verb("config ubdN=IMAGE[,BACKING] | config ubdN",
      "plug in a disk the guest can mount as /dev/ubdX; or show a disk's image", (1, 1))
async def config(k: Kernel, spec: str) -> tuple[str, dict]:
    _booted(k)
    name, eq, image = spec.partition("=")
    n = _disk_number(name)
    if not eq:
        return await _show_disk(k, n)
    if n in k.disks:
        raise CtlError(f"{name} is in use (remove it first)", errno.EBUSY)
    path, _, backing = image.partition(",")
    if not path:
        raise CtlError(f"{spec}: say which image (config {name}=IMAGE[,BACKING])", errno.EINVAL)
    try:
        reply = await k.ubd.request("disk_open", {"dev": n, "path": path, "backing": backing},
                                    retries=0)
    except asyncio.TimeoutError:
        raise CtlError("ubd_io did not answer", errno.ETIMEDOUT) from None
    if reply.type != "disk_opened":
        raise CtlError(f"cannot open {image} as {name}: "
                       f"{reply.body.get('reason', reply.type)}", errno.EINVAL)
    disk = UbdDevice(k.ubd, n)
    disk.size = reply["size"]
    k.disks[n] = disk
    node = await add_disk_node(k.vfs, n)
    log.info("%s: %s plugged in as /dev/%s (%d bytes)", name, image, node.decode(), disk.size)
    return (f"{name}: /dev/{node.decode()}, {disk.size} bytes ({reply['kind']})",
            {"device": f"/dev/{node.decode()}", "size": disk.size, "kind": reply["kind"]})


@verb("remove ubdN", "unplug a disk (EBUSY while it is mounted or open)", (1, 1))
async def remove(k: Kernel, name: str) -> tuple[str, dict]:
    _booted(k)
    n = _disk_number(name)
    disk = k.disks.get(n)
    if disk is None:
        raise CtlError(f"{name}: no such disk", errno.ENODEV)
    dev = makedev(UBD_MAJOR, n * 16)
    mounted = [m.point.path.decode(errors="replace") if m.point is not None else "/"
               for m in k.vfs.mounts if m.dev == dev]
    if mounted:
        raise CtlError(f"{name} is mounted on {', '.join(mounted)}", errno.EBUSY)
    if _open(k, dev):
        raise CtlError(f"{name} is open in the guest", errno.EBUSY)
    del k.disks[n]            # nothing new reaches it from here on
    try:
        await disk.flush()
        reply = await k.ubd.request("disk_close", {"dev": n}, retries=0)
    except (Errno, asyncio.TimeoutError) as exc:
        k.disks[n] = disk
        raise CtlError(f"{name}: cannot close it: {exc!r}", errno.EIO) from None
    if reply.type != "disk_closed":
        k.disks[n] = disk
        raise CtlError(f"{name}: {reply.body.get('reason', reply.type)}", errno.EBUSY)
    if k.vfs.devtmpfs is not None:
        try:
            await k.vfs.devtmpfs.root.unlink(disk_name(n))
        except Errno:
            pass             # the guest removed the node itself
    log.info("%s unplugged", name)
    return f"{name} removed", {}


@verb("sysrq KEY", "a Magic SysRq key: s sync, u read-only, b reboot, o off, e SIGTERM, "
      "i SIGKILL, t tasks, m memory, h help", (1, 1))
async def sysrq(k: Kernel, key: str) -> tuple[str, dict]:
    _booted(k)
    return await sysrq_keys.sysrq(k, key[:1])


@verb("cad", "Ctrl-Alt-Del: a restart, or SIGINT to init once it turned that off")
async def cad(k: Kernel) -> tuple[str, dict]:
    """Linux's ctrl_alt_del: with C_A_D on, a restart at once (nothing
    written back, as kernel_restart); else SIGINT to init, whose
    ctrlaltdel action decides."""
    _booted(k)
    if k.cad_enabled:
        k.power("restart", write_back=False)
        return "restarting (C_A_D on)", {"action": "restart"}
    init = k.processes.get(1)
    if init is None or init.zombie:
        raise CtlError("no init to signal", errno.ESRCH)
    signals.send_process(init, SIGINT)
    return "SIGINT sent to init (C_A_D off)", {"action": "sigint"}


@verb("stop", "freeze every guest process until go")
async def stop(k: Kernel) -> tuple[str, dict]:
    _booted(k)
    if k.freezer.frozen:
        raise CtlError("the guest is stopped already", errno.EALREADY)
    running = await k.freezer.freeze(FREEZE_WAIT)
    if running:
        raise CtlError(f"stopping, but tids {running} still run after {FREEZE_WAIT:.0f}s "
                       "(go thaws them)", errno.ETIMEDOUT)
    return f"stopped ({len(k.tasks)} tasks)", {"tasks": len(k.tasks)}


@verb("go", "thaw the guest after stop")
async def go(k: Kernel) -> tuple[str, dict]:
    if not k.freezer.frozen:
        raise CtlError("the guest is not stopped", errno.EINVAL)
    released = k.freezer.thaw()
    return f"running ({released} tasks released)", {"released": released}


@verb("log TEXT...", "put TEXT into the kernel's log", (1, CTL_ARGS_MAX))
async def log_(k: Kernel, *words: str) -> tuple[str, dict]:
    text = " ".join(words)
    log.warning("mconsole log: %s", text.encode("unicode_escape").decode())
    return "logged", {"length": len(text)}


@verb("proc PATH", "a guest /proc file, read as init reads it", (1, 1))
async def proc(k: Kernel, path: str) -> tuple[str, dict]:
    _booted(k)
    token = CURRENT.set(k.tasks.get(1))     # whose /proc/self, and the reader's rights
    try:
        content = await _read_proc(k, path)
    except Errno as exc:
        raise CtlError(f"/proc/{path.strip('/')}: {os.strerror(exc.code)}", exc.code) from None
    finally:
        CURRENT.reset(token)
    text = content[:PROC_MAX].decode(errors="replace")
    return text, {"truncated": len(content) > PROC_MAX}


# --- helpers ---------------------------------------------------------------------------

def _disk_number(name: str) -> int:
    match = DISK.fullmatch(name)
    if match is None or int(match[1]) >= UBD_MAX:
        raise CtlError(f"{name!r}: a disk is ubd0 to ubd{UBD_MAX - 1}", errno.EINVAL)
    return int(match[1])


async def _show_disk(k: Kernel, n: int) -> tuple[str, dict]:
    """config ubdN: the image ubd_io serves it from (UML's config query)."""
    reply = await k.ubd.request("status", {}, retries=0)
    device = reply["state"].get("devices", {}).get(f"ubd{n}") if reply.type == "status_reply" \
        else None
    if device is None or n not in k.disks:
        raise CtlError(f"ubd{n}: no such disk", errno.ENODEV)
    return f"ubd{n}={device['path']}", {"path": device["path"], "size": device["size"],
                                        "kind": device["kind"]}


def _open(k: Kernel, dev: int) -> bool:
    """Whether a guest file, cwd or root lies on the filesystem of disk dev."""
    for t in k.tasks.values():
        places = [t.cwd, t.root, *(f.loc for f, _ in t.files.fds.values())]
        if any(loc is not None and loc.mount.dev == dev for loc in places):
            return True
    return False


async def _read_proc(k: Kernel, path: str) -> bytes:
    """A /proc file through a procfs of the kernel's own (the guest's /proc
    may not be mounted); links within /proc followed (self, mounts), one
    to a guest path (exe, cwd, fd/N) shown as readlink shows it."""
    fs = ProcFs(k)
    parts = [p for p in path.encode().split(b"/") if p]
    node, hops = fs.root, 0
    while parts:
        hops += 1
        if hops > PROC_DEPTH or len(parts[0]) > 255:
            raise Errno(errno.ENAMETOOLONG)
        node = await node.lookup(parts.pop(0))
        if node is None:
            raise Errno(errno.ENOENT)
        if isinstance(node, Link):
            target = await node.readlink()
            if target.startswith(b"/"):        # a guest path (cwd, exe, fd/N): shown
                if parts:
                    raise Errno(errno.ENOENT)
                return target
            parts[:0] = [p for p in target.split(b"/") if p]
            node = fs.root
    if S.S_ISDIR(node.mode):
        raise Errno(errno.EISDIR)
    content = b""
    while len(content) <= PROC_MAX:
        piece = await node.read(len(content), 64 << 10)
        if not piece:
            break
        content += piece
    return content
