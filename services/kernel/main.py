"""The kernel service's process: its loop, the boot (the root mounted, init
started when userspace says hello) and SIGTERM; the rest is the entry's
Kernel (services/kernel/entry/kernel.py)."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal as host_signal

import uvloop

from common import phases
from common.config import GuestConfig, parse_tmpfs
from common.exits import BOOT_FAILED
from services.kernel.core.answers import Ops
from services.kernel.core.errors import Errno
from services.kernel.drivers.console import ConsoleFile
from services.kernel.drivers.ubd import UbdDevice
from services.kernel.entry.kernel import Kernel, TaskGone
from services.kernel.fs.vfs import UBD_MAJOR, makedev
from services.kernel.fsimpl.ext2 import Ext2, Ext2Error
from services.kernel.sched import exec as execmod
from services.kernel.sched.exec import ExecFailed
from services.kernel.sched.task import Credentials, Task
from services.kernel.syscalls.mount import add_disk_node, boot_vfs, mount_tmpfs

log = logging.getLogger("kernel")
# ubd_io's first answer is awaited this many deadlines (2 s each) at boot:
# long enough for a loaded host to start it (or supervisord to restart it),
# short of a guest that looks started and never boots
BOOT_RESENDS = 30


async def boot(kernel: Kernel) -> None:
    """Mount the root, start init; a kernel bug on the way is logged and
    the guest halts unbooted (never a boot left hanging)."""
    try:
        await start_init(kernel)
    except Exception:
        log.exception("kernel bug at boot")
        await kernel.shutdown(BOOT_FAILED)

async def start_init(kernel: Kernel) -> None:
    cfg = kernel.cfg
    phases.mark("kernel", "hello")
    try:
        await find_disks(kernel)
    except asyncio.TimeoutError:
        log.error("ubd_io has not answered in %d s: the guest cannot boot without its disks "
                  "(see ubd_io's log: its disk may be another guest's)",
                  (BOOT_RESENDS + 1) * kernel.ubd.deadline)
        await kernel.shutdown(BOOT_FAILED)
        return
    try:
        fs = await Ext2.mount(kernel.disks[0])
    except (Ext2Error, Errno) as exc:
        log.error("cannot mount ubd0 (%s) as the root filesystem: %s", cfg.disks.get("ubd0"), exc)
        await kernel.shutdown(BOOT_FAILED)
        return
    kernel.vfs = await boot_vfs(fs, makedev(UBD_MAJOR, 0), b"ext2", cfg.read_only,
                                cfg.tmpfs_limit, cfg.mem)
    phases.mark("kernel", "mounted")
    for n in kernel.disks:
        await add_disk_node(kernel.vfs, n)
    for spec in cfg.tmpfs:
        path, size = parse_tmpfs(spec)
        try:
            await mount_tmpfs(kernel.vfs, path.encode(), size)
        except Errno as exc:
            message = (f"skas: cannot mount a tmpfs on {path}: {os.strerror(exc.code)} (make "
                       f"that directory in the image, or drop --tmpfs {spec})")
            log.info(message)
            await kernel.console.write(message.encode() + b"\n")
            await kernel.shutdown(BOOT_FAILED)
            return
    cred = Credentials(cfg.uid, cfg.gid, cfg.uid, cfg.gid, cfg.uid, cfg.gid)
    try:
        init = await kernel.spawn(cred)
    except TaskGone as exc:
        log.error("userspace could not start init: %s", exc)
        await kernel.shutdown(BOOT_FAILED)
        return
    phases.mark("kernel", "spawned")
    for fd in range(3):
        init.files.install(ConsoleFile(kernel.console, 0o2))
    argv = [a.encode() for a in cfg.init]
    env = [e.encode() for e in cfg.env]
    try:
        path = await init_path(kernel, init, argv[0], env)
        if kernel.strace is not None:
            from services.kernel.entry.strace.tracer import exec_args
            kernel.strace.enter_text(init, "execve", exec_args(path, argv, env))
        ops = await execmod.execve(init, path, await execmod.open_exec(init, path),
                                   execmod.Args.of(init, path, argv, env))
    except (Errno, ExecFailed, TaskGone) as exc:
        reason = os.strerror(exc.code) if isinstance(exc, Errno) else str(exc)
        message = f"skas: cannot run {cfg.init[0]}: {reason}"
        log.info(message)
        await kernel.console.write(message.encode() + b"\n")
        await kernel.shutdown(BOOT_FAILED)
        return
    log.info("init (%s) runs as host pid %d", " ".join(cfg.init), init.host_pid)
    phases.mark("kernel", "exec")
    kernel.answer(init, Ops(ops), "execve")

async def find_disks(kernel: Kernel) -> None:
    """The guest's disks, with their sizes as ubd_io found them (for
    /sys/block; only the sizes: its answer names host files too)."""
    reply = await kernel.ubd.request("status", {}, retries=BOOT_RESENDS)
    devices = reply["state"].get("devices", {}) if reply.type == "status_reply" else {}
    for name in sorted(kernel.cfg.disks):          # ubdN: ubd_io checked the names
        disk = UbdDevice(kernel.ubd, int(name[3:]))
        disk.size = int(devices.get(name, {}).get("size", 0))
        kernel.disks[disk.dev] = disk
        # what a kernel before this one wrote and never committed is dropped
        begun = await kernel.ubd.request("disk_begin", {"dev": disk.dev})
        if begun.type != "disk_begun":
            log.warning("%s: ubd_io did not take this kernel's start: %s", name,
                        begun.body.get("reason", begun.type))


async def init_path(kernel: Kernel, init: Task, name: bytes, env: list[bytes]) -> bytes:
    """init given as a bare name is looked up in its PATH, as a shell would."""
    if b"/" in name:
        return name
    path = next((e[5:] for e in env if e.startswith(b"PATH=")), b"/sbin:/bin")
    for d in path.split(b":"):
        candidate = d.rstrip(b"/") + b"/" + name
        try:
            await kernel.vfs.lookup(init.cwd, candidate, init.cred, init.root)
            return candidate
        except Errno:
            continue
    raise Errno(errno.ENOENT)


async def main(cfg: GuestConfig) -> int:
    loop = asyncio.get_running_loop()
    kernel = Kernel(cfg, loop, boot)
    loop.add_signal_handler(host_signal.SIGTERM, lambda: on_sigterm(kernel))
    watcher = asyncio.ensure_future(kernel.watch_userspace())
    phases.mark("kernel", "listening")
    code = await kernel.exit_code
    phases.mark("kernel", "halted")
    watcher.cancel()
    # Halted: the code is decided and a stop has nothing left to stop.  The
    # loop's close would put SIGTERM back to its default, and skas run, which
    # stops the kernel when userspace goes (userspace goes when this loop
    # closes the kernel's endpoint), would then kill a kernel on its way out.
    loop.remove_signal_handler(host_signal.SIGTERM)
    host_signal.signal(host_signal.SIGTERM, host_signal.SIG_IGN)
    if kernel.telemetry is not None:
        kernel.telemetry.shutdown()       # what is left of the spans, exported
    return code


def on_sigterm(kernel: Kernel) -> None:
    """The guest is stopped: halt as when init ends (nothing written is lost);
    a second SIGTERM while halting ends the kernel at once."""
    code = 128 + host_signal.SIGTERM
    if not kernel.halting:
        asyncio.ensure_future(kernel.shutdown(code))
    elif not kernel.exit_code.done():
        kernel.exit_code.set_result(code)


def run(cfg: GuestConfig) -> int:
    # uvloop's loop is the asyncio loop in C (libuv): measured, a guest
    # system call's round trip 119 -> 104 µs on the development VM.
    return uvloop.run(main(cfg))
