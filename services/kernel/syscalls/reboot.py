"""reboot(2): the guest halts, powers off or boots again (Linux's
kernel/reboot.c), and Ctrl-Alt-Del's setting.

The machine is the guest: a halt or a power-off ends the kernel service with
0, a restart with common/exits.py's REBOOT (skas run and the supervisord
listener start all four services again).  Either way the filesystems are
written back first, as Linux's kernel_restart_prepare syncs nothing but
userspace (busybox init, systemd) has synced before asking."""
from __future__ import annotations

import asyncio
import errno

from services.kernel.core.cred import capable
from services.kernel.core.errors import Errno
from services.kernel.abi.capability import CAP_SYS_BOOT
from services.kernel.abi.reboot import (
    LINUX_REBOOT_CMD_CAD_OFF, LINUX_REBOOT_CMD_CAD_ON, LINUX_REBOOT_CMD_HALT,
    LINUX_REBOOT_CMD_POWER_OFF, LINUX_REBOOT_CMD_RESTART, LINUX_REBOOT_CMD_RESTART2,
    LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2S, RESTART2_MAX)

UINT_MASK = 0xFFFFFFFF        # the magic numbers and the command are C ints
POWER = {LINUX_REBOOT_CMD_HALT: "halt", LINUX_REBOOT_CMD_POWER_OFF: "poweroff",
         LINUX_REBOOT_CMD_RESTART: "restart", LINUX_REBOOT_CMD_RESTART2: "restart"}


async def sys_reboot(t, magic1, magic2, cmd, arg, *_):
    if not capable(t.cred, CAP_SYS_BOOT):
        raise Errno(errno.EPERM)
    if magic1 & UINT_MASK != LINUX_REBOOT_MAGIC1 or magic2 & UINT_MASK not in LINUX_REBOOT_MAGIC2S:
        raise Errno(errno.EINVAL)
    cmd &= UINT_MASK
    if cmd in (LINUX_REBOOT_CMD_CAD_ON, LINUX_REBOOT_CMD_CAD_OFF):
        t.kernel.cad_enabled = cmd == LINUX_REBOOT_CMD_CAD_ON
        return 0
    if cmd not in POWER:
        raise Errno(errno.EINVAL)         # no kexec, no hibernation
    command = b""
    if cmd == LINUX_REBOOT_CMD_RESTART2:  # strncpy_from_user: cut at the buffer, EFAULT
        command = b"".join(p for p, _ in t.mem.cstr_pieces(arg, RESTART2_MAX - 1))
    t.kernel.power(POWER[cmd], command.decode(errors="replace"))
    await asyncio.Event().wait()          # the caller is killed with the rest: never returns
