"""The userspace service's main loop: guest stops in, kernel orders out."""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import struct
import time

import zmq

from common import phases, tracing
from common.config import GuestConfig
from common.liveness import HEARTBEATS, Liveness
from common.ops import TID, kind_of
from common.protocol import Message
from common.service import Running
from common.transport import DirectLink, Endpoint
from services.userspace import platform, stub
from services.userspace.jail import Jail
from services.userspace.tracee import (
    EXEC_STOP, PARKED, PTRACE_EVENT_STOP, RUNNING, SECCOMP_STOP, NotInCall, Overdue, Tracee,
    TraceeGone, deadline)

log = logging.getLogger("userspace")

SFD_NONBLOCK, SFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_libc = ctypes.CDLL(None, use_errno=True)
HEARTBEAT = 0.5          # seconds between pings to the kernel while the link is busy
BIRTH_DELAY = 0.01       # longest a clone child's host pid waits for a message to ride
KERNEL_SILENCE = 1.5     # no word from the kernel for this long: it is gone
OPS_DEADLINE = 1.0       # longest a batch of ops (or a spawn) may wait on a tracee; the
                         # kernel gives up on a userspace silent for 1.5 s
CONTROL_SLICE = 0.005    # seconds of a turn of the loop the control socket may take
CONNECT_RETRY = 0.1      # seconds between tries to reach a kernel not yet listening
KERNEL_START = 30.0      # longest a kernel listening (skas run binds its socket before
                         # it starts: common/activation.py) may take to greet us
WALL = 0x40000000


class Userspace:
    def __init__(self, cfg: GuestConfig):
        self.cfg = cfg
        stub.install(cfg.run_dir)
        self.scratch = stub.Scratch(cfg.run_dir)
        self.jail = Jail(cfg.run_dir, cfg.name, cfg.max_tasks, cfg.host_uid)
        self.ops_deadline = deadline(OPS_DEADLINE)
        self.ops_context = platform.Context(self.adopt, self.wait_group, self.took_over,
                                            self.gone, self.refused)
        self.me = f"{cfg.name}/userspace"
        self.kernel = DirectLink(cfg.endpoints["kernel"], self.me)
        self.control = Endpoint(cfg.endpoints["userspace"], self.me)
        self.by_task: dict[int, Tracee] = {}
        self.by_pid: dict[int, Tracee] = {}
        self.running = True
        self.next_id = 1 << 40   # ids this service originates, clear of the kernel's
        self.link = Liveness(KERNEL_SILENCE, time.monotonic())    # common/liveness.py
        self.births: list[Tracee] = []   # clone children not yet announced
        self.spare: Tracee | None = None  # init's stub, made ahead (make_spare)
        self.deferred: list[tuple] = []  # host events wait_group took for others
        # None unless the guest traces; started here, while SIGCHLD and SIGALRM
        # are still blocked, so the exporter's threads never take them
        self.telemetry = tracing.start(cfg, "userspace")
        self.spans = None
        if self.telemetry is not None:
            from services.userspace.tracing import OpsSpans
            self.spans = OpsSpans(self.telemetry)

    # --- main loop ----------------------------------------------------------
    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})   # deadlines: this thread's
        wake_r = _sigchld_fd()
        stop = Running()          # SIGTERM: its pipe wakes the poll
        poller = zmq.Poller()
        poller.register(self.control.sock, zmq.POLLIN)
        poller.register(wake_r, zmq.POLLIN)
        stop.watch(poller)
        self.make_spare()
        self.send("hello", {"pid": os.getpid()})     # goes once connected
        kernel = -1
        next_ping = time.monotonic() + HEARTBEAT
        while self.running and stop:
            if kernel < 0 and self.connect_kernel():
                kernel = self.kernel.fileno()
                poller.register(kernel, zmq.POLLIN)
            if kernel >= 0:
                self.flush()     # this turn's messages, in one write
            ready = dict(poller.poll(self.wait(kernel >= 0, next_ping)))
            if not ready and self.births:
                self.announce_births()
            if wake_r in ready:
                _drain(wake_r)
                self.reap()
            if kernel in ready:
                try:
                    for _, msg in self.kernel.drain():
                        self.link.received(time.monotonic(), msg.type)
                        self.on_kernel(msg)
                except ConnectionError as exc:
                    self.kernel_gone(exc)
                # heard now: the time spent on its orders (a spawn, ops up to
                # OPS_DEADLINE each) is not the kernel's silence
                self.link.heard = time.monotonic()
            if self.control.sock in ready:
                # a slice of each turn: a peer that keeps the control socket full
                # must not keep the loop from its guest and its kernel (silent 1.5 s:
                # dead), whatever its messages cost to refuse
                for to, msg in self.control.drain(time.monotonic() + CONTROL_SLICE):
                    self.on_control(to, msg)
            now = time.monotonic()
            if now >= next_ping and self.link.busy(now):
                self.send("ping", {})
                next_ping = now + HEARTBEAT
            if kernel >= 0 and (silent := self.link.silent_for(now)):
                log.error("kernel silent for %.1fs: the guest is dead", silent)
                self.running = False
        self.shutdown()
        return 0

    def wait(self, connected: bool, next_ping: float) -> int | None:
        """How long the loop's poll may sleep (ms): for ever when the link
        is idle (common/liveness.py), nothing else being due."""
        if self.births:
            return int(BIRTH_DELAY * 1000)
        if not connected:
            return int(CONNECT_RETRY * 1000)
        now = time.monotonic()
        if not self.link.busy(now):
            return None
        return max(0, int((next_ping - now) * 1000) + 1)

    def flush(self) -> None:
        try:
            self.kernel.flush()
        except ConnectionError as exc:
            self.kernel_gone(exc)

    def kernel_gone(self, exc: Exception) -> None:
        log.error("kernel disconnected (%s): the guest is dead", exc)
        self.running = False

    def connect_kernel(self) -> bool:
        try:
            if not self.kernel.connect(KERNEL_START):
                return False
        except ConnectionError as exc:
            log.error("cannot reach the kernel: %s", exc)
            self.running = False
            return False
        self.link.heard = time.monotonic()
        phases.mark("userspace", "connected")
        return True

    def send(self, type_: str, body: dict, id_: int | None = None) -> int:
        """Every message to the kernel; births it has not heard of go first."""
        if self.births:
            self.announce_births()
        if id_ is None:
            id_, self.next_id = self.next_id, self.next_id + 1
        if type_ not in HEARTBEATS:
            self.link.sent(time.monotonic())
        self.kernel.send(type_, id_, body)
        return id_

    def announce_births(self) -> None:
        """Tell the kernel the host pids of new clone children.  Held back until
        the next message (or BIRTH_DELAY): anything in the guest that could
        need one is a call that reaches the kernel after it, and a fork costs
        a message less."""
        births, self.births = self.births, []
        self.link.sent(time.monotonic())
        for t in births:
            self.kernel.send("spawned", self.next_id, {"task": t.task, "pid": t.pid,
                                                       "listener": False})
            self.next_id += 1

    def shutdown(self) -> None:
        self.drop_spare()
        for t in list(self.by_pid.values()):
            t.kill()
        for t in list(self.by_pid.values()):
            try:
                os.waitpid(t.pid, WALL)
            except ChildProcessError:
                pass
        if self.telemetry is not None:
            self.telemetry.shutdown()      # export what is left

    # --- host process events -----------------------------------------------
    def reap(self) -> None:
        """Every host event waiting now, ends first: a parent's wait4 and its
        child's exit often stop together, and the kernel answers the wait at
        once if it has heard of the exit."""
        events, self.deferred = self.deferred, []
        while True:
            try:
                got = os.wait4(-1, os.WNOHANG | WALL)
            except ChildProcessError:
                break
            if got[0] == 0:
                break
            events.append(got)
        events.sort(key=lambda e: not (os.WIFEXITED(e[1]) or os.WIFSIGNALED(e[1])))
        for pid, status, usage in events:
            t = self.by_pid.get(pid)
            if t is None:
                if self.spare is not None and pid == self.spare.pid:
                    self.drop_spare()     # stirred or died: not init's stub any more
                continue
            try:
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    self.gone(t, status, usage)
                else:
                    self.on_stop(t, status)
            except TraceeGone:
                self.gone(t, getattr(t, "exit_status", 0))

    def on_stop(self, t: Tracee, status: int) -> None:
        event = status >> 8
        if event == SECCOMP_STOP:
            nr, args = t.at_syscall()
            t.interrupting = False      # the kernel has it now: no trap needed
            t.request_id = self.send("syscall", {"task": t.task, "nr": nr, "args": args,
                                                 "rip": t.regs.rip, "rsp": t.regs.rsp})
        elif event >> 8 == PTRACE_EVENT_STOP:
            # Our interrupt's stop: its signal is SIGTRAP, or SIGSTOP in a
            # process the host still counts as group-stopped (the first
            # stub stopped itself before it was seized, and no SIGCONT came).
            if t.interrupting:
                self.trap(t, 0, 0, 0)
            else:
                t.cont()    # a host group-stop, or an interrupt that is no longer needed
        elif event == EXEC_STOP:
            t.cont()
        else:
            # A host signal for the guest (a fault, int3 in guest code): guest
            # signals are the kernel's, so it is reported and not delivered here.
            code, addr = t.siginfo()
            self.trap(t, event & 0x7F, code, addr)

    def wait_group(self, pid: int, tgid: int) -> tuple[int, int]:
        """Block for the next event of pid or tgid; others' wait for reap."""
        while True:
            try:
                got = os.wait4(-1, WALL)
            except ChildProcessError:
                raise TraceeGone(pid) from None
            if got[0] in (pid, tgid):
                return got[0], got[1]
            self.deferred.append(got)

    def took_over(self, t: Tracee, was: int) -> None:
        """A thread's exec ended the rest of its group (they report their ends,
        but the leader does not: the thread goes on under its pid)."""
        leader = self.by_pid.get(t.pid)
        if leader is not None and leader is not t:
            self.gone(leader, 0)
        self.by_pid.pop(was, None)
        self.by_pid[t.pid] = t
        self.births.append(t)           # its new host pid, for the kernel

    def refused(self, t: Tracee, index: int, reason: str) -> None:
        """An op of t's batch was not one (a kernel bug): the kernel hears
        why ahead of that op's failure."""
        self.send("op_refused", {"task": t.task, "index": index, "reason": reason})

    def trap(self, t: Tracee, signo: int, code: int, addr: int) -> None:
        t.interrupting = False
        t.state = PARKED
        t.stopped_in_call()           # else its context is its registers now
        t.request_id = self.send("trap", {"task": t.task, "signo": signo, "code": code,
                                          "addr": addr})

    def gone(self, t: Tracee, status: int, usage=None) -> None:
        """The host process ended; usage is the host's rusage when it was reaped
        here (one reaped inside an op is reported with zeros)."""
        t.close()
        self.by_pid.pop(t.pid, None)
        self.by_task.pop(t.task, None)
        if t in self.births:          # gone before the kernel needed its host pid
            self.births.remove(t)
        used = [0] * 5 if usage is None else [
            round(usage.ru_utime * 1e6), round(usage.ru_stime * 1e6), usage.ru_maxrss,
            usage.ru_minflt, usage.ru_majflt]
        self.send("exited", {"task": t.task, "status": status, "usage": used})

    # --- kernel orders -------------------------------------------------------
    def on_kernel(self, msg: Message) -> None:
        if msg.type in ("pong", "error"):
            if msg.type == "error":
                log.error("kernel refused message #%d: %s", msg.id, msg["reason"])
            return
        if msg.type == "ping":
            self.send("pong", {"service": "userspace"}, msg.id)
            return
        if msg.type == "spawn":
            self.spawn(msg)
            return
        if msg.type == "who":         # a listener call from a child not yet announced
            self.announce_births()
            return
        if msg.type not in ("ret", "host", "ops", "kill", "resume", "interrupt"):
            self.kernel.error(msg.id, f"userspace does not serve {msg.type!r}")
            return
        t = self.by_task.get(msg["task"])
        if t is None:
            # The task died while the kernel was deciding; its exit is reported.
            return
        try:
            if msg.type == "ops" and self.spans is not None and msg.traceparent:
                with self.spans.around(msg), self.ops_deadline:
                    self.apply(t, msg)
            elif msg.type == "ops":
                with self.ops_deadline:
                    self.apply(t, msg)
            else:
                self.apply(t, msg)
        except TraceeGone:
            self.gone(t, getattr(t, "exit_status", 0))
        except NotInCall as exc:
            self.kernel.error(msg.id, str(exc))
        except Overdue:
            log.error("task %d: ops %r outlasted %.1fs: killing it", t.task,
                      [kind_of(op) for op in msg["ops"]], OPS_DEADLINE)
            t.kill()
            self.gone(t, signal.SIGKILL)

    def apply(self, t: Tracee, msg: Message) -> None:
        if msg.type == "kill":
            t.kill()
        elif msg.type == "interrupt":
            t.interrupt()
        elif msg.type == "ret":
            t.finish(msg["value"])
        elif msg.type in ("host", "resume"):
            t.cont()
        else:
            results, regs_set = platform.run_ops(t, msg["ops"], self.ops_context)
            failed = results and isinstance(results[-1], int) and results[-1] < 0
            last = msg["ops"][len(results) - 1] if results else None
            if msg["reply"]:
                self.send("ops_done", {"task": t.task, "results": results}, msg.id)
            elif (failed and kind_of(last) == "clone"
                  and TID.test(last.get("task"))):
                # fork's batch: the caller gets the error, the kernel forgets the child
                self.send("clone_failed", {"task": last["task"], "errno": -results[-1]})
                t.finish(results[-1])
            elif failed:
                # A batch with no reply is one the task cannot survive failing
                # (an exec past the point of no return), as on Linux.
                log.error("task %d: op %r failed (%d): killing it", t.task,
                          kind_of(last), results[-1])
                t.kill()
            elif regs_set:
                t.cont()
            elif t.state == RUNNING:
                pass                     # the batch let it go (a fork in place)
            else:
                t.finish(msg["value"])   # back to the guest's call site with the result

    def adopt(self, t: Tracee) -> None:
        """A clone child: tracked from now on; the kernel hears its host pid
        with userspace's next message."""
        self.by_task[t.task] = t
        self.by_pid[t.pid] = t
        self.births.append(t)

    def make_spare(self) -> None:
        """init's stub (jail, stub, filter), made before the kernel is heard
        from: at a cold start the kernel is still importing its modules
        then, and asks for init as soon as its root is mounted, where making
        it took 6-9 ms of the path to the guest's first instruction.  It is
        the stub ``spawn`` would make (same jail, same filter); one that
        stirs or dies before it is asked for is dropped (``reap``)."""
        try:
            with self.ops_deadline:
                self.spare = platform.spawn(0, self.jail, self.scratch, self.cfg.notify)
        except (OSError, TraceeGone, Overdue) as exc:
            log.warning("no stub made ahead for init (one is made when asked): %s", exc)

    def drop_spare(self) -> None:
        t, self.spare = self.spare, None
        if t is not None:
            t.kill()
            if t.listener >= 0:
                os.close(t.listener)

    def spawn(self, msg: Message) -> None:
        task = msg["task"]
        if self.spare is not None and os.waitid(
                os.P_PID, self.spare.pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT
                | WALL) is not None:
            self.drop_spare()         # it stirred since reap last looked: not init's
        t, self.spare = self.spare, None
        try:
            if t is None:
                with self.ops_deadline:
                    t = platform.spawn(task, self.jail, self.scratch, self.cfg.notify)
            t.task = task
            listener = t.listener >= 0
            if listener:
                self.hand_over(task, t)
        except (OSError, TraceeGone, Overdue) as exc:
            log.error("cannot spawn task %d: %s", task, exc)
            self.kernel.error(msg.id, f"spawn failed: {exc}")
            return
        self.by_task[task] = t
        self.by_pid[t.pid] = t
        self.send("spawned", {"task": task, "pid": t.pid, "listener": listener}, msg.id)
        log.info("task %d runs as host pid %d", task, t.pid)

    def hand_over(self, task: int, t: Tracee) -> None:
        """The stub's seccomp listener to the kernel, which serves the calls
        it notifies: sent over the kernel's fd socket (SCM_RIGHTS) before
        ``spawned``, and closed here."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendmsg([struct.pack("<q", task)],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<i", t.listener))],
                          0, str(self.cfg.fd_socket))
        except OSError as exc:
            t.kill()
            raise OSError(exc.errno, f"cannot hand the seccomp listener to the kernel "
                                     f"({self.cfg.fd_socket}): {exc.strerror}") from None
        finally:
            os.close(t.listener)
            t.listener = -1

    # --- control endpoint -----------------------------------------------------
    def on_control(self, to: bytes, msg: Message) -> None:
        if msg.type == "ping":
            self.control.send("pong", msg.id, {"service": "userspace"}, to)
        elif msg.type == "status":
            state = {"processes": len(self.by_task), "tasks": [{"task": t.task, "host_pid": t.pid, "state": t.state}
                               for t in self.by_task.values()]}
            self.control.send("status_reply", msg.id, {"service": "userspace", "state": state}, to)
        else:
            self.control.error(msg.id, f"userspace does not serve {msg.type!r} here", to)


def _sigchld_fd() -> int:
    """A signalfd for SIGCHLD (blocked since before any thread was made): a
    tracee's stop wakes the loop through poll, with no signal handler run
    and no poll interrupted, several times per guest fork."""
    mask = (ctypes.c_uint64 * 16)(1 << (signal.SIGCHLD - 1))
    fd = _libc.signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "signalfd for SIGCHLD")
    return fd


def _drain(fd: int) -> None:
    """SIGCHLD is not queued twice: one siginfo at most to read."""
    try:
        os.read(fd, 128)
    except BlockingIOError:
        pass


def run(cfg: GuestConfig) -> int:
    # before zmq starts its thread, which would otherwise take SIGCHLD and SIGALRM
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGALRM})
    return Userspace(cfg).run()
