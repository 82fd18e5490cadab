"""Debian's User-Mode Linux (linux.uml, from `user-mode-linux`: bench/setup-uml.sh)
booted on an ext2 image to run one benchmark command, for against.py.

UML runs the image's /sbin/bench-init as pid 1 with the command as its
arguments (the kernel passes what follows `--` on its command line to init).
The script prints the command's output between two marker lines, so the
console's kernel messages can be told from it, and powers off with
`poweroff -f` (reboot(2)): were the command init itself, its exit would make
UML panic ("Attempted to kill init").  The console is UML's stdout
(`con0=null,fd:1`, every other line null), there is no network, and the
memory is skas's default."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from common.config import DEFAULT_MEM

UML = "linux.uml"
INIT = "sbin/bench-init"
BEGIN, END = "@@bench-begin", "@@bench-end"
INIT_SCRIPT = f"""#!/bin/sh
echo {BEGIN}
"$@"
echo "{END} $?"
exec /sbin/poweroff -f
"""


class UMLError(Exception):
    """A boot did not run its command to the end; the message holds the console's tail."""


def install(tree: Path) -> None:
    """Puts the init script into the tree the image is made from (unlinked
    first: /sbin's entries may be symlinks to the host's busybox)."""
    init = tree / INIT
    init.unlink(missing_ok=True)
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)


def command(image: Path, cmd: list[str]) -> list[str]:
    """linux.uml's argv.  `console=tty0` is given so UML does not append it
    itself, after `--`, where init would get it as one more argument."""
    if any(not arg or any(c.isspace() or c == '"' for c in arg) for arg in cmd):
        raise ValueError(f"{cmd}: a kernel command line cannot carry empty, spaced or "
                         "quoted arguments; put the command in a script on the image")
    return [UML, f"mem={DEFAULT_MEM >> 20}m", f"ubd0={image}", "root=/dev/ubda", "rw",
            f"init=/{INIT}", "con=null", "con0=null,fd:1", "console=tty0", "quiet",
            "loglevel=1", "--", *cmd]


def output(console: str) -> str:
    """The command's lines from a boot's console; UMLError unless the
    command ran to its end and exited 0."""
    lines = console.splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith(END + " ")]
    if BEGIN not in lines or not ends:
        raise UMLError("the command did not run to its end:\n" + "\n".join(lines[-20:]))
    begin, end = lines.index(BEGIN), ends[-1]
    status = int(lines[end].split()[1])
    if status:
        raise UMLError(f"the command exited {status}:\n" + "\n".join(lines[begin + 1:end]))
    return "".join(line + "\n" for line in lines[begin + 1:end])


def memory_dir(fallback: Path) -> Path:
    """Where UML maps its memory from (TMPDIR): /dev/shm if it is a tmpfs
    that allows exec, as UML prefers (its memory stays in RAM); else
    fallback, on a real filesystem, since UML executes from that mapping."""
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, where, kind, options, *_ = line.split()
            if where == "/dev/shm":
                if kind == "tmpfs" and "noexec" not in options.split(","):
                    return Path(where)
    return fallback


def run(image: Path, cmd: list[str], tmpdir: Path) -> tuple[str, float]:
    """The command's output and the wall seconds of linux.uml's process,
    from its exec to its exit (boot, command, halt)."""
    start = time.monotonic()
    proc = subprocess.run(command(image, cmd), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env={**os.environ, "TMPDIR": str(tmpdir)})
    wall = time.monotonic() - start
    if proc.returncode:
        raise UMLError(f"linux.uml exited {proc.returncode}: {proc.stderr.strip()}\n"
                       + "\n".join(proc.stdout.splitlines()[-20:]))
    return output(proc.stdout), wall
