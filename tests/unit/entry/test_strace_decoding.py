"""The decoded syscall log's parts that need no guest: its one table of
signatures is keyed by the syscall policy's names, values print as strace
prints them, and with --strace off the kernel never imports it."""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from common.syscalls import BY_NAME, HOST
from services.kernel.entry.strace import text
from services.kernel.entry.strace.kinds import ARG_KINDS, clone_flags
from services.kernel.entry.strace.signatures import SIGNATURES
from services.kernel.entry.strace.tracer import Strace
from services.kernel.mm.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[3]


def test_every_signature_names_a_call_the_kernel_can_see():
    for name, sig in SIGNATURES.items():
        assert name in BY_NAME, f"{name}: not in common/syscalls.py"
        assert BY_NAME[name].route != HOST, f"{name} runs on the host: it never reaches the kernel"
        assert len(sig.args) <= 6
        for kind, ref in sig.args:
            assert kind in ARG_KINDS.values()
            assert -1 <= ref < 6


def test_strings_are_quoted_and_cut_as_strace_does():
    assert text.quote(b'a"b\\c\n\t') == r'"a\"b\\c\n\t"'
    assert text.quote(b"\x00x\x001\xff") == r'"\0x\0001\377"'     # 3 digits before a digit
    assert text.quote(b"abc", more=True) == '"abc"...'


def test_numbers_flags_and_signals_print_by_name():
    assert text.result(-2 & (1 << 64) - 1) == "-1 ENOENT (No such file or directory)"
    assert text.result(-512) == "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    assert text.result(0x7F0000000000, as_hex=True) == "0x7f0000000000"
    assert text.signal(10) == "SIGUSR1" and text.signal(34) == "SIGRT_2"
    assert text.sigset(1 << 9 | 1 << 16) == "[USR1 CHLD]"
    assert text.sigset((1 << 64) - 1 & ~(1 << 8)) == "~[KILL]"
    assert clone_flags(0x01200011) == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
    assert text.pointer(0) == "NULL" and text.mode(0o644) == "0644" and text.mode(0) == "000"


def test_with_strace_off_the_kernel_never_imports_it():
    """The kernel constructed with syscall_log off: no module of the
    decoder is loaded, so no call can reach it; on, it is."""
    probe = """
import asyncio, sys, tempfile
from pathlib import Path
from common.config import GuestConfig
from services.kernel import main
from services.kernel.entry.kernel import Kernel

async def made(where):
    cfg = GuestConfig(name="probe", run_dir=Path(tempfile.mkdtemp()) / "run", disks={},
                      init=["/bin/true"], syscall_log=where)
    cfg.make_run_dir()
    return Kernel(cfg, asyncio.get_running_loop(), main.boot)

k = asyncio.run(made(""))
print(k.strace is None, any("strace" in m for m in sys.modules))
k = asyncio.run(made("log"))
print(k.strace is None, any("strace" in m for m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    assert out[:2] == ["True False", "False True"]


def _task(tid: int):
    """A task as the log sees one: its tid and its memory, here this process's own."""
    return SimpleNamespace(tid=tid, mem=GuestMemory(os.getpid()),
                           flight=SimpleNamespace(user_sp=0))


def _bodies(lines: list[str]) -> list[str]:
    return [re.sub(r"^\[pid (\d+)\] \d\d:\d\d:\d\d\.\d{6} ", r"[\1] ",
                   re.sub(r"\s+= ", " = ", re.sub(r" <\d+\.\d{6}>$", "", line)))
            for line in lines]


def test_a_call_another_task_cuts_is_unfinished_then_resumed():
    """As strace -f: the open line ends <unfinished ...> when another task
    prints, and its end comes back as <... read resumed>, read's data
    (what the kernel wrote, here this process's buffer) shown at exit."""
    buf = ctypes.create_string_buffer(b"hello\n", 64)
    lines: list[str] = []
    log = Strace(lines.append)
    one, two = _task(1), _task(2)
    log.enter(one, BY_NAME["read"].nr, [3, ctypes.addressof(buf), 64, 0, 0, 0])
    log.enter(_task(3), BY_NAME["kill"].nr, [1, 10, 0, 0, 0, 0])
    log.enter(two, BY_NAME["getpid"].nr, [0] * 6)
    log.leave(two, 2)
    log.leave(one, 6)
    log.enter(one, BY_NAME["read"].nr, [0, 8, 64, 0, 0, 0])
    log.exited(one, 9)                      # killed in the call
    assert _bodies(lines) == [
        "[1] read(3, <unfinished ...>",
        "[3] kill(1, SIGUSR1 <unfinished ...>",
        "[2] getpid() = 2",
        '[1] <... read resumed>"hello\\n", 64) = 6',
        "[1] read(0, 0x8, 64 <unfinished ...>) = ?",
        "[1] +++ killed by SIGKILL +++",
    ]
