"""A kernel bug cannot lose a task.  Faults are injected into a kernel run in
this process (the other services run as processes): handlers that raise,
before or after they wait; answers that are no answer or cannot be sent;
the dispatcher itself; a signal's delivery; a sigreturn; the boot; the
halt.  Each ends its call with an errno, or its task with SIGSEGV, is
logged once with the call and the task, and the guest runs on."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

import pytest
import uvloop

from common import ops
from conftest import disk_of, make_tree
from deploy import launch
from services.kernel import main as kmain
from services.kernel.entry import kernel as service
from services.kernel.sched import sigframe
from services.kernel.syscalls import table as syscalls
from services.kernel.sched import signals as ksignal
from services.kernel.core.answers import Ops
from conftest import make_config


@pytest.fixture(scope="module")
def fdisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "ftree", ("sec_faults",)))


def run_kernel(tmp_path, disk, init: list[str], notify: bool = True,
               others=("userspace", "ubd_io", "sigio")):
    """The guest's exit code and console; its kernel runs here, so that a
    test can patch it (60 s at most: a kernel that hangs fails the test)."""
    cfg = make_config(tmp_path, disk, init)
    cfg.notify = notify
    cfg.write()
    procs = launch.start(cfg, others)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        code = uvloop.run(asyncio.wait_for(kmain.main(cfg), 60))
    finally:
        signal.signal(signal.SIGTERM, sigterm)       # main() leaves it ignored
        launch.stop(procs)
    # sigio makes its log when it starts: a guest that halts at once (a bug
    # at boot) can be over before then, with nothing to write
    return code, cfg.console_log.read_text() if cfg.console_log.exists() else ""


def raising(exc: BaseException):
    def handler(_t, *_):
        raise exc
    return handler


async def raising_after_a_wait(_t, *_):
    await asyncio.sleep(0)
    raise RuntimeError("injected after a wait")


def unsendable_ops(_t, *_):
    return Ops([{"op": "poke", "addr": 1 << 70, "data": b"x"}])


FAULTY = {110: ("getppid", raising(RuntimeError("injected"))),
          102: ("getuid", raising_after_a_wait),
          104: ("getgid", lambda _t, *_: 1 << 70),
          107: ("geteuid", lambda _t, *_: None),
          108: ("getegid", raising(MemoryError())),
          63: ("uname", unsendable_ops)}


@pytest.mark.parametrize("notify", [True, False], ids=["listener", "ptrace-only"])
def test_every_failing_path_ends_its_call_or_task_and_the_guest_runs_on(
        tmp_path, fdisk, monkeypatch, caplog, notify):
    for nr, (_, handler) in FAULTY.items():
        monkeypatch.setitem(syscalls.TABLE, nr, dataclasses.replace(syscalls.TABLE[nr],
                                                                    handler=handler))
    dispatch, siginfo = service.Kernel.dispatch, ksignal.siginfo

    def failing_dispatch(self, t, nr, args):
        if nr == 111:                                   # getpgrp
            raise RuntimeError("injected into the dispatcher")
        dispatch(self, t, nr, args)

    def failing_siginfo(sig, info):
        if sig == signal.SIGUSR2:
            raise RuntimeError("injected into a delivery")
        return siginfo(sig, info)

    monkeypatch.setattr(service.Kernel, "dispatch", failing_dispatch)
    monkeypatch.setattr(ksignal, "siginfo", failing_siginfo)
    monkeypatch.setattr(sigframe, "parse", raising(RuntimeError("injected into sigreturn")))
    code, console = run_kernel(tmp_path, fdisk, ["/bin/sec_faults"], notify)
    assert (code, console.splitlines()) == (0, [
        "getppid: EIO", "getuid: EIO", "getgid: EIO", "geteuid: EIO", "getegid: ENOMEM",
        "getpgrp: signal 11", "uname: signal 11", "SIGUSR2: signal 11",
        "SIGUSR1: signal 11 handler ran;", "getpid: ok"])
    bugs = [r.getMessage() for r in caplog.records if "kernel bug" in r.getMessage()]
    getpgrp = "listener call getpgrp" if notify else "syscall #"
    for what in ("in getppid: EIO", "in getuid: EIO", "in getgid's answer: EIO",
                 "in geteuid's answer: EIO", "in getegid: ENOMEM", f"handling {getpgrp}",
                 "in uname's answer: SIGSEGV", "delivering a signal: SIGSEGV",
                 "in rt_sigreturn: SIGSEGV"):
        assert len([m for m in bugs if what in m and "<Task " in m]) == 1, (what, bugs)
    assert len(bugs) == 9, bugs
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_a_bug_at_boot_halts_the_guest_unbooted(tmp_path, fdisk, monkeypatch, caplog):
    monkeypatch.setattr(kmain, "boot_vfs", raising(RuntimeError("injected at boot")))
    code, _ = run_kernel(tmp_path, fdisk, ["/bin/true"])
    assert code == service.BOOT_FAILED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "kernel bug at boot"]


def test_a_kernel_whose_ubd_io_never_answers_halts_unbooted_and_says_so(
        tmp_path, fdisk, monkeypatch, caplog):
    """No ubd_io (one that cannot open its disk, under supervisord): the
    kernel gives up after BOOT_RESENDS deadlines instead of waiting for
    ever."""
    monkeypatch.setattr(kmain, "BOOT_RESENDS", 1)
    code, _ = run_kernel(tmp_path, fdisk, ["/bin/true"], others=("userspace", "sigio"))
    assert code == service.BOOT_FAILED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "ubd_io has not answered in 4 s: the guest cannot boot without its disks (see "
        "ubd_io's log: its disk may be another guest's)"]


def test_a_bug_at_the_halt_still_ends_the_kernel_with_the_guests_code(
        tmp_path, fdisk, monkeypatch, caplog):
    unmount_all = service.unmount_all

    async def failing_unmount_all(vfs):
        await unmount_all(vfs)                          # the disk stays whole
        raise RuntimeError("injected at the halt")

    monkeypatch.setattr(service, "unmount_all", failing_unmount_all)
    code, _ = run_kernel(tmp_path, fdisk, ["/bin/sh", "-c", "exit 7"])
    assert code == 7
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "kernel bug writing the filesystems back at halt"]


async def refused_with_a_reply(t, *_):
    """Ops the constructors would never make, sent anyway: userspace refuses
    each, the handler gets EINVAL for it."""
    results = []
    for bad in ({"op": "poke", "addr": 0, "data": b"x", "colour": 1},     # unknown field
                {"op": "munmap", "addr": 0},                             # missing field
                {"op": "mprotect", "addr": "0", "length": 0, "prot": 0}):   # mistyped
        results += await t.kernel.run_ops(t, [bad])
    assert results == [-22] * 3, results
    return results[0]


def refused_without_a_reply(_t, *_):
    return Ops([{"op": "set_regs", "rip": -1, "rsp": 0}])


def test_an_op_userspace_refuses_is_logged_by_the_kernel_as_that_ops_failure(
        tmp_path, fdisk, monkeypatch, caplog):
    """Refused on receipt (common/ops.py's check): a batch that wants a reply
    gets the op's failure (EINVAL), one that does not kills its task, as any
    failing op does; the kernel logs each reason, and the guest runs on."""
    for nr, handler in ((110, refused_with_a_reply), (63, refused_without_a_reply)):
        monkeypatch.setitem(syscalls.TABLE, nr, dataclasses.replace(syscalls.TABLE[nr],
                                                                    handler=handler))
    code, console = run_kernel(tmp_path, fdisk, ["/bin/sec_faults"])
    lines = console.splitlines()
    assert code == 0 and lines[0] == "getppid: EINVAL" and "uname: signal 9" in lines, lines
    assert lines[-1] == "getpid: ok"
    refused = [r.getMessage() for r in caplog.records if "userspace refused op" in r.getMessage()]
    assert [m.split("of its batch: ", 1)[1] for m in refused] == [
        "poke: unknown field 'colour'", "munmap: missing field 'length'",
        "mprotect: field 'addr' must be an integer in [0, 2**64), not '0'",
        "set_regs: field 'rip' must be an integer in [0, 2**64), not -1"], refused
    assert all("<Task " in m and "op 0 of its batch" in m for m in refused), refused


def test_a_refused_clone_fails_the_fork_not_the_caller(tmp_path, fdisk, monkeypatch, caplog):
    """fork's batch has no reply: a refused clone is that fork's failure
    (clone_failed: EINVAL, the kernel forgets the child), as a host clone
    that fails is, not the caller's death."""
    build = ops.OpType.__call__

    def misspelt_clone(self, **fields):
        op = build(self, **fields)
        return {**op, "colour": 1} if self.name == "clone" else op

    monkeypatch.setattr(ops.OpType, "__call__", misspelt_clone)
    code, console = run_kernel(tmp_path, fdisk, ["/bin/sh", "-c", "/bin/true; echo done"])
    assert (code, console) == (2, "/bin/sh: can't fork: Invalid argument\n")   # sh's own exit
    assert any(r.getMessage().endswith("clone: unknown field 'colour'") for r in caplog.records)
