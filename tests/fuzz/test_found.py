"""What the fuzzer found, each pinned by the exact message that showed it."""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from common import protocol
from common.transport import context
from .targets import TARGETS, Target

# The body of each message only userspace may send, for the guest's init (task 1).
FROM_USERSPACE = {
    "syscall": {"task": 1, "nr": 62, "args": [1, 9, 0, 0, 0, 0], "rip": 0, "rsp": 0},
    "exited": {"task": 1, "status": 9, "usage": [0] * 5},
    "trap": {"task": 1, "signo": 11, "code": 1, "addr": 0},
    "spawned": {"task": 1, "pid": 1, "listener": False},
    "ops_done": {"task": 1, "results": [-14]},
    "clone_failed": {"task": 1, "errno": 11},
    "op_refused": {"task": 1, "index": 0, "reason": "fuzz"},
}


@pytest.mark.parametrize("service", TARGETS)
def test_an_error_reply_never_carries_a_bool_for_its_id(service, tmp_path, disk):
    """[1, "ping", true] is not an envelope; the error's id was true, which
    no peer can decode as a message."""
    target = Target(service, tmp_path, disk, seconds=2)
    target.start()
    fuzzer = target.fuzzer()
    try:
        fuzzer.batch([[msgpack.packb([1, "ping", True])]])    # Failure if the reply is bad
    finally:
        fuzzer.close()
    target.finish()


def test_a_stranger_on_the_kernels_endpoint_cannot_speak_for_userspace(tmp_path, disk):
    """exited{task 1} from another peer ended the guest's init (and syscall,
    trap, spawned ... would have acted on its tasks): each is an error now,
    and the guest runs to its end."""
    target = Target("kernel", tmp_path, disk, seconds=2)
    target.start()
    fuzzer = target.fuzzer()
    try:
        fuzzer.batch([[protocol.encode(kind, 5, "fuzz/userspace", body)]
                      for kind, body in FROM_USERSPACE.items()])
        assert fuzzer.errors == len(FROM_USERSPACE)
    finally:
        fuzzer.close()
    target.finish()


def test_a_stranger_on_the_kernels_endpoint_cannot_type_on_the_guests_console(tmp_path, disk):
    """console_input of NULs from another peer was typed on the guest's
    terminal (its echo, ^@, in the console: the suite's fuzz run found it):
    console input and window sizes are sigio's only, so both are errors now
    and the guest prints exactly its output."""
    target = Target("kernel", tmp_path, disk, seconds=2)
    target.start()
    fuzzer = target.fuzzer()
    try:
        fuzzer.batch([[protocol.encode("console_input", 5, "fuzz/sigio",
                                       {"data": b"\0" * 40 + b"exit\n", "eof": False})],
                      [protocol.encode("console_winsize", 6, "fuzz/sigio",
                                       {"rows": 1, "cols": 1})]])
        assert fuzzer.errors == 2
    finally:
        fuzzer.close()
    target.finish()


@pytest.mark.parametrize("raw", [b"\xc1", msgpack.packb([0] * (1 << 20))],
                         ids=["a bad byte", "a 1M-element array"])
def test_a_stranger_flooding_userspaces_control_socket_leaves_the_guest_running(
        tmp_path, disk, raw):
    """A bad message sent to userspace's control endpoint, keeping it full,
    kept its loop draining that socket: it stopped reading its kernel, took
    the kernel for dead after 1.5 s and ended the guest.  A turn of its loop
    now gives that socket 5 ms (16 messages were too long when each is an
    array to refuse), and the guest runs to its end."""
    target = Target("userspace", tmp_path, disk, seconds=3)
    target.start()
    sock = context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1)          # replies past it are dropped, as they may be
    sock.connect(target.cfg.endpoints["userspace"])
    try:
        while target.procs["kernel"].poll() is None and target.time_left() > 0.5:
            try:
                sock.send(raw, zmq.NOBLOCK)
            except zmq.Again:               # the socket is full: keep it so, not a CPU busy
                time.sleep(0.001)
    finally:
        sock.close()
    target.finish()


def test_ret_for_a_task_in_no_system_call_is_refused_not_a_crash(tmp_path, disk):
    """ret{task 1} for a fresh stub (stopped, but in no call) crashed userspace
    (AttributeError on the call's registers, None); now the kernel that sent
    it gets an error, and userspace serves on."""
    target = Target("userspace-link", tmp_path, disk)
    target.start()
    fuzzer = target.fuzzer()
    try:
        fuzzer.batch([[protocol.encode("ret", 7, "fuzz/kernel", {"task": 1, "value": 0})]])
        assert fuzzer.errors == 1
        target.check()
    finally:
        fuzzer.close()
    target.finish()


def test_orders_that_keep_userspace_busy_are_not_the_kernels_silence(tmp_path, disk):
    """500 spawn{task 3} in one go (each a host fork, failing once the
    jail's RLIMIT_NPROC is reached) kept userspace over 1.5 s in one drain of
    its kernel link; it then counted that time as the kernel's silence and
    ended the guest."""
    target = Target("userspace-link", tmp_path, disk)
    target.start()
    fuzzer = target.fuzzer()
    try:
        fuzzer.batch([[protocol.encode("spawn", 9, "fuzz/kernel", {"task": 3})]] * 500,
                     flood=True)
        target.check()
    finally:
        fuzzer.close()
    target.finish()


def test_a_strangers_console_write_cannot_take_the_kernels_sequence(tmp_path, disk):
    """A console_write from another peer, numbered past the kernel's, was
    written to the console, and the kernel's writes then looked like
    resends of it and were dropped: now it is refused (sent before the
    kernel starts, so before any write of its), and the guest's output is
    all there, and only it."""
    from common.config import GuestConfig
    from conftest import ask
    from deploy import launch
    cfg = GuestConfig(name="svc", run_dir=tmp_path / "run", disks={"ubd0": str(disk)},
                      init=["/bin/sh", "-c", "echo one; echo two"], console="log",
                      console_tty=False)
    cfg.make_run_dir()
    cfg.write()
    procs = launch.start(cfg, ("sigio",))
    try:
        reply = ask(cfg.endpoints["sigio"], protocol.encode(
            "console_write", 7, "stranger", {"seq": 1 << 40, "data": b"not the guest's\n"}))
        assert reply.type == "error" and "svc/kernel" in reply["reason"], reply
        procs.update(launch.start(cfg, ("kernel", "userspace", "ubd_io")))
        assert procs["kernel"].wait(60) == 0
        assert cfg.console_log.read_bytes() == b"one\ntwo\n"
    finally:
        launch.stop(procs)
