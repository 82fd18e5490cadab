"""The kernel service: its messages, the syscall dispatcher, task lifetimes, the halt."""
from __future__ import annotations

import asyncio
import errno
import inspect
import os
import logging
import time
from typing import Awaitable, Callable


from common import phases, tracing
from common.config import GuestConfig
from common.exits import BOOT_FAILED, REBOOT
from common.liveness import Liveness
from common.ops import GetContext, SetContext
from common.protocol import MESSAGES, Message
from common.syscalls import NOTIFIED, name
from common.transport import AsyncLink, LoopEndpoint, give_back_freed_memory
from services.kernel.core import eager
from services.kernel.drivers.console import Console
from services.kernel.drivers.ubd import UbdDevice
from services.kernel.abi.arch import U64
from services.kernel.abi.signal import SIGSEGV
from services.kernel.abi.threads import PID_MAX
from services.kernel.core.errors import Errno, bug_errno
from services.kernel.syscalls.read_write import unmount_all
from services.kernel.sched.exec import ExecFailed
from services.kernel.entry.freezer import Freezer
from services.kernel.entry.listener import FdSocket, Listener
from services.kernel.entry import mconsole
from services.kernel.fs.pagecache import PageCache
from services.kernel.core.answers import HOST, Ops
from services.kernel.syscalls.table import TABLE
from services.kernel.fs.files import FdTable
from services.kernel.sched.task import CURRENT, Credentials, FsContext, Process, Task
from services.kernel.fs.vfs import Vfs
from services.kernel.mm.filecache import FILE_CACHE
from services.kernel.sched import fork
from services.kernel.sched.load import LoadAverage
from services.kernel.sched import signals
from services.kernel.sched import wait
from services.kernel.abi.errno import ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS
log = logging.getLogger("kernel")

CONSOLE_INPUT = ("console_input", "console_winsize")
USERSPACE_SILENCE = 1.5    # seconds without a word from userspace: the guest is dead
USERSPACE_CHECK = 0.25     # seconds between looks at that silence, while the link is busy
I64_MIN, U64_MAX = -(1 << 63), (1 << 64) - 1     # what a number in an answer may be


class TaskGone(Exception):
    """The task's host process died while the kernel was waiting on it."""


class Kernel:
    """The guest's kernel as the other services see it: its messages, the
    dispatch of guest calls, their answers, task lifetimes and the halt.
    boot(kernel) runs when userspace says hello (services/kernel/main.py)."""

    def __init__(self, cfg: GuestConfig, loop: asyncio.AbstractEventLoop,
                 boot: Callable[[Kernel], Awaitable[None]]):
        self.cfg = cfg
        self.loop = loop
        self.boot = boot
        self.me = f"{cfg.name}/kernel"
        self.sigio_name = f"{cfg.name}/sigio"          # console input's only sender
        self.endpoint = LoopEndpoint(loop, cfg.endpoints["kernel"], self.me, self.on_message,
                                     self.on_lost)
        self.ubd = AsyncLink(loop, cfg.endpoints["ubd_io"], self.me,
                             keys=cfg.curve_files("kernel", "ubd_io"))
        self.console = Console(self, AsyncLink(loop, cfg.endpoints["sigio"], self.me),
                               terminal=cfg.console_tty, input=cfg.console_input)
        self.pagecache = PageCache(cfg.run_dir, cfg.pagecache_limit)
        FILE_CACHE.resize(cfg.file_cache_limit)
        self.disks: dict[int, UbdDevice] = {}         # the guest's ubd disks, by number
        self.load = LoadAverage()                      # /proc/loadavg's and sysinfo's
        self.userspace: bytes | None = None      # routing id of userspace's link
        self.userspace_stirred = asyncio.Event()       # an idle link carries work again
        self.link = Liveness(USERSPACE_SILENCE, time.monotonic(),
                             self.userspace_stirred.set)      # common/liveness.py
        self.tasks: dict[int, Task] = {}                # by tid: every live thread
        self.processes: dict[int, Process] = {}         # by pid: live ones and zombies
        self.pids: set[int] = set()                     # tids and pids in use
        self.waiting: dict[int, asyncio.Future] = {}   # task -> its ops_done
        self.spawning: dict[int, asyncio.Future] = {}  # task -> spawned, for a spawn
        self.next_tid = 1
        self.next_id = 1
        self.vfs: Vfs | None = None
        self.exit_code: asyncio.Future = loop.create_future()
        self.enosys_logged: set[int] = set()
        self.syscall_count = 0
        self.halting = False
        self.power_action: str | None = None     # halt, poweroff or restart, once asked
        self.cad_enabled = True      # Ctrl-Alt-Del restarts at once; reboot(CAD_OFF):
                                     # it is SIGINT to init instead (Linux's C_A_D)
        self.fd_socket = FdSocket(loop, cfg.fd_socket, self.took_listener)
        self.listeners: dict[int, Listener] = {}       # by the spawned task they came with
        self.listener_waits: dict[int, asyncio.Future] = {}
        self.userspace_pid = 0                         # from its hello
        self.by_host: dict[int, Task] = {}             # host pid (tid) -> task
        self.strangers: dict[int, list] = {}           # listener calls from pids not yet known
        self.freezer = Freezer(self)                   # skas ctl stop/go
        self.strace = None                             # the decoded syscall log, when on
        if cfg.syscall_log:
            from services.kernel.entry.strace.tracer import Strace
            self.strace = Strace.to(cfg.syscall_log)
        self.telemetry = tracing.start(cfg, "kernel")     # None when the guest does not trace
        if self.telemetry is not None:
            from services.kernel.entry.tracing import SyscallSpans
            SyscallSpans(self, self.telemetry).wrap()

    # --- messages ------------------------------------------------------------------
    def on_message(self, to: bytes, msg: Message) -> None:
        """One message, each apart: a bug in handling one must not reach the
        link (an exception there would close userspace's and end the guest);
        the task it named, if the kernel still holds it, dies of SIGSEGV."""
        try:
            self.handle(to, msg)
        except Exception:
            self.unhandled(f"{msg.type} #{msg.id}", self.tasks.get(msg.body.get("task")))
        eager.run_woken()           # those it woke (console input, a pipe's last writer gone)
        if self.freezer.settled is not None:
            self.freezer.settle()

    def handle(self, to: bytes, msg: Message) -> None:
        kind = msg.type
        if to == self.userspace:
            self.link.received(time.monotonic(), kind)
        if to != self.userspace and kind != "hello" and MESSAGES[kind].sender == "userspace":
            # another peer on the endpoint (a stale userspace, a tool, a fuzzer) must not
            # end, trap or answer for the guest's tasks
            self.endpoint.error(msg.id, f"only the guest's userspace sends {kind!r}", to)
            return
        if kind in CONSOLE_INPUT and msg.sender != self.sigio_name:
            # the guest's terminal is sigio's to type on: a stranger's keys are refused
            self.endpoint.error(msg.id, f"only the guest's sigio ({self.sigio_name}) sends "
                                f"{kind!r}", to)
            return
        if kind == "syscall":
            self.syscall(msg)
        elif kind == "ops_done":
            fut = self.waiting.pop(msg["task"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "spawned":
            fut = self.spawning.pop(msg["task"], None)
            t = self.tasks.get(msg["task"])
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif t is not None and t.host_pid != msg["pid"]:
                self.attach(t, msg["pid"])   # a clone child, or a thread whose exec
                                             # made it its group's leader (its pid)
        elif kind == "trap":
            self.trap(msg)
        elif kind == "op_refused":      # a kernel bug: the op's failure follows
            log.error("%r: userspace refused op %d of its batch: %s",
                      self.tasks.get(msg["task"], msg["task"]), msg["index"], msg["reason"])
        elif kind == "clone_failed":
            child = self.tasks.get(msg["task"])
            if child is not None and child.created_by is not None and not child.host_pid:
                log.warning("%s: host clone failed (%d)", child.created_by, -msg["errno"])
                fork.clone_failed(child)
        elif kind == "exited":
            t = self.tasks.get(msg["task"])
            if t is not None:
                if self.strace is not None:
                    code = t.process.exit_code
                    self.strace.exited(t, msg["status"] if code is None else code)
                if self.by_host.get(t.host_pid) is t:
                    del self.by_host[t.host_pid]
                fut = self.waiting.pop(t.tid, None)
                if fut is not None and not fut.done():
                    fut.set_exception(TaskGone(t.tid))
                    # Expected, and its waiter may be gone with the task (its
                    # call is cancelled just below): not a bug for asyncio to
                    # report as never retrieved (seen under python's
                    # test_subprocess, after an EMFILE; a waiter still there
                    # gets it all the same).
                    fut.exception()
                wait.task_exited(t, msg["status"], msg["usage"])
            if self.strangers:
                self.forget_strangers()
        elif kind == "error" and to == self.userspace:
            log.error("userspace refused request #%d: %s", msg.id, msg["reason"])
            for fut in (*self.waiting.values(), *self.spawning.values()):
                if not fut.done():
                    fut.set_exception(TaskGone(msg["reason"]))
        elif kind == "hello":
            if self.userspace is None:
                self.userspace = to
                self.userspace_pid = msg["pid"]
                asyncio.ensure_future(self.boot(self))
            else:
                self.endpoint.error(msg.id, "a userspace is already attached", to)
        elif kind == "console_input":
            problem = self.console.input(msg["data"], msg["eof"], lambda: self.endpoint.send(
                "console_input_ack", msg.id, {}, to))
            if problem:
                self.endpoint.error(msg.id, problem, to)
        elif kind == "console_winsize":
            problem = self.console.resize(msg["rows"], msg["cols"])
            if problem:
                self.endpoint.error(msg.id, problem, to)
        elif kind == "ping":
            self.endpoint.send("pong", msg.id, {"service": "kernel"}, to)
        elif kind == "pong":
            pass
        elif kind == "status":
            self.endpoint.send("status_reply", msg.id, {"service": "kernel",
                                                        "state": self.state()}, to)
        elif kind == "ctl":
            mconsole.serve(self, to, msg)
        else:
            self.endpoint.error(msg.id, f"the kernel does not serve {kind!r}", to)

    def to_userspace(self, kind: str, id_: int, body: dict) -> None:
        if kind in ("ret", "host", "resume") or kind == "ops" and not body["reply"]:
            t = self.tasks.get(body["task"])
            if t is not None and self.freezer.holds(t):
                t.flight.held = (kind, id_, body)     # let go by SIGCONT, or skas ctl go
                return
        self.link.sent(time.monotonic())
        self.endpoint.send(kind, id_, body, self.userspace)

    def state(self) -> dict:
        return {"tasks": [{"pid": t.tid, "tgid": t.tgid, "ppid": t.ppid, "host_pid": t.host_pid,
                           "comm": t.comm.decode(errors="replace"),
                           "state": "T" if t.process.stopped else "S" if t.flight.in_kernel else "R"}
                          for t in self.tasks.values()],
                "zombies": [p.pid for p in self.processes.values() if p.zombie],
                "syscalls": self.syscall_count}

    # --- system calls --------------------------------------------------------------
    def syscall(self, msg: Message) -> None:
        t = self.tasks.get(msg["task"])
        if t is None:
            self.endpoint.error(msg.id, f"no task {msg['task']}", self.userspace)
            return
        t.flight.request_id = msg.id
        t.flight.in_kernel = True
        t.flight.user_sp = msg["rsp"]
        self.dispatch(t, msg["nr"], msg["args"])

    def dispatch(self, t: Task, nr: int, args: list[int]) -> None:
        """A call, trapped or from the listener: its handler, then the answer."""
        self.syscall_count += 1
        if self.strace is not None:
            self.strace.enter(t, nr, args)
        entry = TABLE.get(nr)
        if entry is None:
            if nr not in self.enosys_logged:
                self.enosys_logged.add(nr)
                log.warning("unimplemented syscall %s (%d) from %r: ENOSYS", name(nr), nr, t)
            self.answer(t, -errno.ENOSYS, name(nr), args)
            return
        token = CURRENT.set(t)
        try:
            result = entry.handler(t, *args)
        except Errno as e:
            result = -e.code
        except Exception as exc:
            result = self.handler_bug(t, entry.name, exc)
        if type(result) is eager.Coroutine:
            t.flight.call = first = self.loop.create_future()   # what a signal cancels meanwhile
            t.flight.call = call = eager.start(                 # a Carried keeps CURRENT
                self.loop, result, first, lambda done: self.finish(t, entry.name, args, done))
            CURRENT.reset(token)
            if isinstance(call, eager.Carried):
                call.name = entry.name                 # the call it waits in, for sysrq t
                eager.run_woken()                      # the calls it woke, before it goes on
            else:
                eager.run_woken()                      # the calls it woke, answered first
                self.finish(t, entry.name, args, call)
        elif inspect.isawaitable(result):
            t.flight.call = asyncio.ensure_future(result)   # what a signal cancels; keeps CURRENT
            if isinstance(t.flight.call, asyncio.Task):
                t.flight.call.set_name(entry.name)
            CURRENT.reset(token)
            t.flight.call.add_done_callback(lambda done: self.finish(t, entry.name, args, done))
        else:
            CURRENT.reset(token)
            eager.run_woken()
            self.answer(t, result, entry.name, args)

    def finish(self, t: Task, call: str, args: list, call_task: asyncio.Future) -> None:
        """Answer a call whose handler waited, now that it is done or cut short."""
        try:
            result = call_task.result()
            t.flight.signalled = False        # a signal may have cut it short to a partial result
        except Errno as e:
            result = -e.code
        except TaskGone:
            return
        except asyncio.CancelledError:
            if not t.flight.signalled or t.tid not in self.tasks:
                return                 # the task is gone
            t.flight.signalled = False        # a signal cut the wait short
            result = -(ERESTARTNOHAND if call in signals.NO_RESTART
                       else ERESTARTNOINTR if call in signals.ALWAYS_RESTART
                       else ERESTARTSYS)
        except ExecFailed as exc:
            log.error("%s: %s; killing it", t, exc)
            self.to_userspace("kill", t.flight.request_id, {"task": t.tid})
            return
        except Exception as exc:
            result = self.handler_bug(t, call, exc)
        if t.flight.call is call_task:
            t.flight.call = None
        if t.tid in self.tasks:
            self.answer(t, result, call, args)

    @staticmethod
    def handler_bug(t: Task, call: str, exc: Exception) -> int:
        """A handler failed with exc, not Errno: a kernel bug, logged with the
        call and the task; the call ends with the errno that fits."""
        code = bug_errno(exc)
        log.error("%r: kernel bug in %s: %s", t, call, errno.errorcode[code], exc_info=exc)
        return -code

    def answer(self, t: Task, result, call: str = "", args=()) -> None:
        """Send a call's answer.  One that is no answer (a number past 64
        bits, anything but a number, HOST or Ops) or cannot be sent (ops that
        do not encode) is a kernel bug, logged: the call ends with EIO
        instead, or, for ops, the task with SIGSEGV (part of them may stand:
        exec's old image may be gone)."""
        try:
            if not (type(result) is int and I64_MIN <= result <= U64_MAX or result is HOST
                    or isinstance(result, Ops)):
                raise TypeError(f"not an answer: {type(result).__name__} {result!r:.80}")
            self.send_answer(t, result, call, args)
        except Exception as exc:
            log.error("%r: kernel bug in %s's answer: %s", t, call,
                      "SIGSEGV" if isinstance(result, Ops) else "EIO", exc_info=exc)
            if isinstance(result, Ops):
                signals.terminate(t.process, SIGSEGV)
            else:
                self.send_answer(t, -errno.EIO, call, args)

    def send_answer(self, t: Task, result, call: str, args) -> None:
        if self.strace is not None:
            self.strace.leave(t, result)
        if t.flight.notif is not None and self.answer_notified(t, result, call, args):
            return
        if isinstance(result, int) and signals.deliverable(t):
            asyncio.ensure_future(self.signal_return(t, result))
            return
        t.flight.in_kernel = False
        if result is HOST:
            self.to_userspace("host", t.flight.request_id, {"task": t.tid})
        elif isinstance(result, Ops):
            self.to_userspace("ops", t.flight.request_id, {"task": t.tid, "ops": result.ops,
                                                    "reply": False, "value": result.value})
        else:
            self.to_userspace("ret", t.flight.request_id, {"task": t.tid, "value": result})
        if signals.deliverable(t):
            self.interrupt(t)   # sent as the call ended (its handler done, not answered): next

    # --- calls through the seccomp listener (listener.py) ----------------------
    def took_listener(self, sender: int, task: int, fd: int) -> None:
        """userspace handed over a spawned task's listener: taken only from
        userspace, while that task is being spawned, and only once."""
        if (sender != self.userspace_pid or task in self.listeners
                or task not in self.listener_waits):
            log.error("a seccomp listener for task %d from pid %d, not userspace spawning "
                      "it: dropped", task, sender)
            os.close(fd)
            return
        self.listeners[task] = Listener(self.loop, fd, self.on_call)
        fut = self.listener_waits.pop(task, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def attach(self, t: Task, host_pid: int) -> None:
        if self.by_host.get(t.host_pid) is t:
            del self.by_host[t.host_pid]     # a thread's exec gave it the leader's pid
        t.attach(host_pid)
        self.by_host[host_pid] = t
        for call in self.strangers.pop(host_pid, ()):
            self.take_call(*call)

    def forget_strangers(self) -> None:
        """Listener calls of clone children that died before userspace
        announced them: nobody waits for their answers any more."""
        for pid in list(self.strangers):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                del self.strangers[pid]
            except PermissionError:
                pass        # alive: a guest process is another uid, and the kernel has no CAP_KILL

    def unhandled(self, what: str, t: Task | None) -> None:
        """A kernel bug no narrower boundary caught (in the except that
        called this): logged, and the task it was for, if the kernel still
        holds it, dies of SIGSEGV rather than wait for an answer for ever."""
        log.exception("kernel bug handling %s for %r", what, t)
        if t is not None and t.flight.in_kernel:
            signals.terminate(t.process, SIGSEGV)

    def on_call(self, listener: Listener, nid: int, pid: int, nr: int, args: list[int]) -> None:
        """A call waiting in the listener: served as a trapped one is."""
        try:
            self.take_call(listener, nid, pid, nr, args)
        except Exception:
            self.unhandled(f"listener call {name(nr)}", self.by_host.get(pid))

    def take_call(self, listener: Listener, nid: int, pid: int, nr: int, args: list[int]) -> None:
        t = self.by_host.get(pid)
        if t is None or t.host_pid != pid or self.tasks.get(t.tid) is not t:
            # A clone child whose host pid userspace has not announced yet.
            if pid not in self.strangers:
                self.next_id += 1
                self.to_userspace("who", self.next_id, {"pid": pid})
            self.strangers.setdefault(pid, []).append((listener, nid, pid, nr, args))
            return
        if t.flight.notif is not None:      # cannot be: it waits in the listener for that one
            log.error("%r: a listener call while one is being served: refused", t)
            listener.answer(nid, -errno.EAGAIN)
            return
        t.flight.notif = (listener, nid)
        t.flight.in_kernel = True
        self.dispatch(t, nr, args)

    def answer_notified(self, t: Task, result, call: str, args) -> bool:
        """Answer a listener call: a number (or HOST) goes back through the
        listener; anything else needs the task stopped, so userspace stops
        it (its wait in the listener ends, the call cut short) and the
        answer waits for that trap.  False: answer it as a trapped call."""
        listener, nid = t.flight.notif
        if not self.freezer.holds(t):
            sent = None
            if type(result) is int and not signals.deliverable(t):
                sent = listener.answer(nid, result)
            elif result is HOST:
                sent = listener.run_on_host(nid)
            if sent:
                t.flight.notif = None
                t.flight.in_kernel = False
                return True
            # sent False: a host stop cut the wait short, its trap is coming
        t.flight.unsent = (result, call, args)
        self.stop_notified(t)
        return True

    def stop_notified(self, t: Task) -> asyncio.Future:
        """Have userspace stop a task waiting in the listener; done at its trap."""
        if t.flight.stopping is None:
            t.flight.stopping = self.loop.create_future()
            self.interrupt(t)
        return t.flight.stopping

    def stopped_notified(self, t: Task) -> None:
        """The trap of a task that was waiting in the listener: from now on
        its call is a trapped one (userspace has its registers)."""
        t.flight.notif = None
        fut, t.flight.stopping = t.flight.stopping, None
        if fut is not None and not fut.done():
            fut.set_result(None)
        if t.flight.unsent is not None:
            (result, call, args), t.flight.unsent = t.flight.unsent, None
            self.answer(t, result, call, args)
        elif (signals.deliverable(t) and t.flight.call is not None and not t.flight.call.done()
              and not t.flight.in_ops):
            t.flight.signalled = True           # as signals._wake: the call ends for the signal
            t.flight.call.cancel()

    async def run_ops(self, t: Task, ops: list[dict]) -> list:
        """Run address-space ops in a stopped task and wait for their results.
        A task already gone gets no answer from userspace: TaskGone at once
        (a handler can outlive its task: exec at boot while a halt kills init)."""
        if t.flight.notif is not None:
            await self.stop_notified(t)
        if self.tasks.get(t.tid) is not t:
            raise TaskGone(t.tid)
        fut = self.loop.create_future()
        self.waiting[t.tid] = fut
        self.to_userspace("ops", t.flight.request_id, {"task": t.tid, "ops": ops, "reply": True,
                                                "value": 0})
        t.flight.in_ops = True
        try:
            return (await fut)["results"]
        finally:
            t.flight.in_ops = False

    # --- signals -------------------------------------------------------------------
    def trap(self, msg: Message) -> None:
        """A task stopped outside a call: a fault, or our interrupt."""
        t = self.tasks.get(msg["task"])
        if t is None:
            return
        t.flight.request_id = msg.id
        t.flight.in_kernel = True
        if msg["signo"]:
            signals.force(t, msg["signo"], msg["code"], msg["addr"])
        if t.flight.notif is not None:
            self.stopped_notified(t)    # its call goes on, answered as a trapped one
            return
        if signals.deliverable(t):
            asyncio.ensure_future(self.signal_return(t, None))
        else:
            self.resume(t)

    async def context(self, t: Task) -> tuple[dict, bytes]:
        ctx = (await self.run_ops(t, [GetContext()]))[0]
        if not isinstance(ctx, dict):
            raise TaskGone(f"no registers: {ctx}")
        return ctx["regs"], ctx["xstate"]

    async def signal_return(self, t: Task, result: int | None) -> None:
        """The way back to the guest when a signal waits: its handler's frame
        (or the default action), then the guest runs on.  A kernel bug on the
        way is logged and the task dies of SIGSEGV (it cannot run on)."""
        try:
            await self.deliver_signal(t, result)
        except TaskGone:
            pass
        except Exception:
            log.exception("%r: kernel bug delivering a signal: SIGSEGV", t)
            signals.terminate(t.process, SIGSEGV)

    async def deliver_signal(self, t: Task, result: int | None) -> None:
        regs, xstate = await self.context(t)
        if result is not None:
            regs["rax"] = result & U64
        elif (regs["rax"] == -ERESTARTSYS & U64
              and regs["orig_rax"] in NOTIFIED):
            # a listener call our stop cut short before the kernel saw it:
            # nothing of it happened, so it runs again, handler or not
            regs["rax"] = -ERESTARTNOINTR & U64
        after = await signals.deliver(t, regs, xstate, self.strace and self.strace.signal)
        self.set_context(t, after)

    def set_context(self, t: Task, regs: dict | None, xstate: bytes | None = None) -> None:
        t.flight.call = None
        if regs is None or t.tid not in self.tasks:
            return                    # the signal killed it
        t.flight.in_kernel = False
        op = SetContext(regs=regs, xstate=xstate)
        self.to_userspace("ops", t.flight.request_id, {"task": t.tid, "ops": [op], "reply": False,
                                                "value": 0})
        if signals.deliverable(t):
            self.interrupt(t)          # another one came meanwhile: its turn next

    async def sigreturn(self, t: Task) -> Ops:
        """rt_sigreturn; a kernel bug in it is logged and the task dies of
        SIGSEGV (an errno would return into the handler's restorer)."""
        try:
            return await self.restore_frame(t)
        except TaskGone:
            raise
        except Exception:
            log.exception("%r: kernel bug in rt_sigreturn: SIGSEGV", t)
            signals.terminate(t.process, SIGSEGV)
            raise TaskGone(t.tid) from None

    async def restore_frame(self, t: Task) -> Ops:
        regs, xstate = await self.context(t)
        regs, new_x = signals.sigreturn(t, regs, xstate)
        if signals.deliverable(t):
            regs = await signals.deliver(t, regs, new_x or xstate,
                                         self.strace and self.strace.signal)
            if regs is None:
                raise TaskGone(t.tid)
        return Ops([SetContext(regs=regs, xstate=new_x)])

    def interrupt(self, t: Task) -> None:
        self.next_id += 1
        self.to_userspace("interrupt", self.next_id, {"task": t.tid})

    # --- tasks ---------------------------------------------------------------------
    def alloc_pid(self) -> int:
        """The next free pid, counting up and wrapping below PID_MAX as Linux."""
        pid = self.next_tid
        while pid in self.pids:
            pid = pid + 1 if pid + 1 < PID_MAX else 2
        self.next_tid = pid + 1 if pid + 1 < PID_MAX else 2
        self.pids.add(pid)
        return pid

    def free_pid(self, pid: int) -> None:
        self.pids.discard(pid)

    def resume(self, t: Task) -> None:
        t.flight.in_kernel = False
        t.flight.call = None
        self.next_id += 1
        self.to_userspace("resume", self.next_id, {"task": t.tid})

    def kill_task(self, t: Task) -> None:
        self.next_id += 1
        self.to_userspace("kill", self.next_id, {"task": t.tid})

    async def spawn(self, cred: Credentials) -> Task:
        pid = self.alloc_pid()
        proc = Process(self, pid, None, pid, pid)
        self.processes[pid] = proc
        t = Task(self, pid, proc, cred, FdTable(), FsContext(self.vfs.root, self.vfs.root))
        self.tasks[t.tid] = t
        fut = self.loop.create_future()
        self.spawning[t.tid] = fut
        listener = self.listener_waits[t.tid] = self.loop.create_future()
        t.flight.request_id = self.next_id
        self.next_id += 1
        self.to_userspace("spawn", t.flight.request_id, {"task": t.tid})
        try:
            if (await fut)["listener"]:
                await asyncio.wait_for(listener, 5)
        except asyncio.TimeoutError:
            raise TaskGone(f"its seccomp listener never reached {self.cfg.fd_socket}") from None
        finally:
            self.listener_waits.pop(t.tid, None)
        reply = fut.result()
        self.attach(t, reply["pid"])
        return t

    def init_exited(self, status: int) -> None:
        code = status >> 8 & 0xFF if status & 0x7F == 0 else 128 + (status & 0x7F)
        log.info("init exited (wait status %#x): the guest halts with %d", status, code)
        phases.mark("kernel", "init_exit")
        asyncio.ensure_future(self.shutdown(code))

    def power(self, action: str, command: str = "", write_back: bool = True) -> None:
        """Halt, power off or restart the guest (Linux's kernel_halt,
        kernel_power_off, kernel_restart): the console's last line says
        which, as Linux's does, then the shutdown."""
        if self.halting or self.power_action:
            return
        self.power_action = action
        line = {"halt": "System halted", "poweroff": "Power down",
                "restart": "Restarting system"}[action]
        if command:
            line += f" with command '{command}'"
        log.info("reboot: %s", line)
        asyncio.ensure_future(self._power(f"reboot: {line}\n".encode(),
                                          REBOOT if action == "restart" else 0, write_back))

    async def _power(self, line: bytes, code: int, write_back: bool) -> None:
        await self.console.write(line)
        await self.shutdown(code, write_back)

    async def shutdown(self, code: int, write_back: bool = True) -> None:
        """Halt: every task killed, the disks written back (unless not
        write_back: an emergency restart, sysrq b), the console out; the
        kernel then exits with code (common/exits.py: REBOOT boots again)."""
        if self.halting:
            return
        self.halting = True
        for t in list(self.tasks.values()):
            self.kill_task(t)
            t.files.close_all()     # killed: nothing of theirs is open any more
        for listener in self.listeners.values():
            listener.close()        # their callers are being killed
        if self.vfs is not None and write_back:
            try:
                await asyncio.wait_for(self._write_back(), 10)
            except (asyncio.TimeoutError, Errno) as exc:
                log.error("could not write the filesystems back at halt: %r", exc)
                for disk in self.disks.values():
                    if disk.failed.bytes:
                        log.error("ubd%d: %d bytes its disk did not take are lost; check the "
                                  "image before its next use: skas disk check IMAGE",
                                  disk.dev, disk.failed.bytes)
            except Exception:
                log.exception("kernel bug writing the filesystems back at halt")
        try:
            await asyncio.wait_for(self.console.drain(), 5)
        except asyncio.TimeoutError:
            log.error("sigio did not take the last console output")
        if not self.exit_code.done():
            self.exit_code.set_result(code)

    async def _write_back(self) -> None:
        """What shared maps changed, then the filesystems."""
        await self.pagecache.write_back_all()
        await unmount_all(self.vfs)

    def on_lost(self, to: bytes) -> None:
        """Userspace's link closed: it died (its tracees die with it,
        PTRACE_O_EXITKILL), and so has the guest."""
        if to == self.userspace:
            self.userspace_dead("userspace's link closed")

    async def watch_userspace(self) -> None:
        """A userspace that hangs keeps its link open: silence ends the guest
        too, while the link carries work; an idle link wakes nothing until
        it carries work again (common/liveness.py)."""
        while not self.exit_code.done():
            if not self.link.busy(time.monotonic()):
                give_back_freed_memory()      # the guest is idle: its buffers can go
                self.userspace_stirred.clear()
                await self.userspace_stirred.wait()
                continue
            await asyncio.sleep(USERSPACE_CHECK)
            if self.userspace and (silent := self.link.silent_for(time.monotonic())):
                self.userspace_dead(f"userspace silent for {silent:.1f}s")

    def userspace_dead(self, why: str) -> None:
        """The guest is dead; what it wrote is still written back."""
        if self.halting:
            return
        log.error("%s: the guest is dead", why)
        asyncio.ensure_future(self.shutdown(BOOT_FAILED if not self.tasks else 128 + 9))
