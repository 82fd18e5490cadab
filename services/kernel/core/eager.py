"""Run a system call's coroutine at once, not as a new asyncio Task, and
run a woken call's next step at once, not a loop turn later.

Most calls that are coroutines never wait (a write into the cache, a
lookup of a cached inode): creating a Task for each, and waiting a loop
turn for it to start and another for its done callback, cost ~14 µs of
the kernel's CPU per call (a 64 KiB write to /dev/null: 76 -> 62 µs in a
guest).  So the first step runs here; only a call that does wait goes on,
as a ``Carried``: a future that drives the coroutine from where it stopped,
as a Task would, and says when it is done by calling ``finished`` at once.

A wait-queue sleeper waits on a ``Wake``; a wake-up puts the call that
waits on it on the run queue, and the dispatcher runs the queue as soon as
the waking call's handler has returned, before that call's answer
(``run_woken``): the reader a pipe write woke is answered before the
writer, in the same loop turn, as Linux's wake_up makes the reader
runnable before the writer returns (a one-byte pipe ping-pong in a guest
saved two loop turns and a blocking read per round trip).  A wake-up
from anything else (a reply from ubd_io, a timer) steps the call from
the loop, as a Task's wake-up does.

What a signal sees is kept as it was with a Task from the start:
``call``, the future that stands for the call while its first step runs,
is what a signal cancels; cancelled then, the call ends cancelled (unless
it raised: an EPIPE with the SIGPIPE it sent its own caller), as a Task
cancelled while running does (3.11's Task.__step), or, if it goes on to
wait, has that wait cancelled.  A ``Carried`` is cancelled as a Task is:
through the future it waits on, or, when that is done already, by
throwing CancelledError into the coroutine at its next step."""
from __future__ import annotations

import asyncio
import contextvars
import types
from collections import deque
from typing import Callable

Coroutine = types.CoroutineType


def start(loop: asyncio.AbstractEventLoop, coro, call: asyncio.Future,
          finished: Callable[[asyncio.Future], None] | None = None) -> asyncio.Future:
    """Run coro's first step; call (pending) is done with its outcome if it
    ended there.  Returns call, or the Carried that goes on with coro and
    calls finished(itself) when it is done."""
    try:
        step = coro.send(None)
    except StopIteration as stop:
        if not call.cancelled():
            call.set_result(stop.value)
        return call
    except asyncio.CancelledError:
        call.cancel()
        return call
    except BaseException as exc:      # noqa: BLE001 - handed on whole, as a Task would
        if call.cancelled():          # an error wins over a cancel, as in a Task
            call = loop.create_future()
        call.set_exception(exc)
        return call
    return Carried(loop, coro, step, call.cancelled(), finished)


class Wake(asyncio.Future):
    """What a wait-queue sleeper waits on (core/waitqueue.py's PollTable):
    ``wake`` sets it and makes the Carried that waits on it runnable."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__(loop=loop)
        self.carrier: Carried | None = None

    def wake(self) -> None:
        if not self.done():
            self.set_result(None)
            if self.carrier is not None:
                _RUNNABLE.append(self.carrier)


_RUNNABLE: deque[Carried] = deque()      # woken calls, stepped by run_woken
_running = False


def run_woken() -> None:
    """Step the calls that wake-ups made runnable, now: a call's handler
    has returned and its answer is not sent yet.  A call it steps may wake
    others, which follow in turn; a bug in one is the loop's to report, as
    in a callback, and never reaches the caller."""
    global _running
    if _running or not _RUNNABLE:
        return
    _running = True
    try:
        while _RUNNABLE:
            carried = _RUNNABLE.popleft()
            waiting = carried.waiting
            if waiting is not None and waiting.done():
                try:
                    carried.step()
                except Exception as exc:          # noqa: BLE001 - reported, not raised
                    carried.get_loop().call_exception_handler(
                        {"message": "a woken call's step failed", "exception": exc})
    finally:
        _running = False


class Carried(asyncio.Future):
    """A call that waited, driven on from its yield as 3.11's Task.__step
    drives a coroutine (in a copy of the context it started in, so CURRENT
    stays its task), with finished(itself) called as soon as it is done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coro, step, cancelled: bool,
                 finished: Callable[[asyncio.Future], None] | None):
        super().__init__(loop=loop)
        self.coro = coro
        self.context = contextvars.copy_context()
        self.finished = finished
        self.waiting: asyncio.Future | None = None    # what the coroutine waits on
        self.must_cancel = False
        self.name = ""                                # the call, for sysrq t
        self.carry(step)
        if cancelled:
            self.cancel()

    def carry(self, step) -> None:
        """Wait for what the coroutine yielded: a future, or None (a bare
        yield: the next loop turn)."""
        if step is None:
            self.get_loop().call_soon(self.step)
            return
        if not asyncio.isfuture(step):
            self.coro.close()
            self.set_exception(RuntimeError(f"a call yielded {step!r:.60}, not a future"))
            self.done_now()
            return
        step._asyncio_future_blocking = False
        self.waiting = step
        if type(step) is Wake:
            step.carrier = self
        step.add_done_callback(self.wakeup)

    def cancel(self, msg=None) -> bool:
        if self.done():
            return False
        if self.waiting is not None and self.waiting.cancel():
            return True               # the coroutine sees its wait cancelled
        self.must_cancel = True       # it is told at its next step
        return True

    def wakeup(self, fut: asyncio.Future) -> None:
        if fut is self.waiting:       # not stepped already from the run queue
            self.step()

    def step(self) -> None:
        if self.done():
            return
        self.waiting = None
        throw, self.must_cancel = self.must_cancel, False
        try:
            if throw:
                step = self.context.run(self.coro.throw, asyncio.CancelledError())
            else:
                step = self.context.run(self.coro.send, None)
        except StopIteration as stop:
            if self.must_cancel:      # cancelled in this step: ends cancelled, as a Task
                super().cancel()
            else:
                self.set_result(stop.value)
        except asyncio.CancelledError:
            super().cancel()
        except BaseException as exc:  # noqa: BLE001 - handed on whole, as a Task would
            self.set_exception(exc)
        else:
            self.carry(step)
            if self.must_cancel and self.waiting is not None and self.waiting.cancel():
                self.must_cancel = False
            return
        self.done_now()

    def done_now(self) -> None:
        if self.finished is not None:
            try:
                self.finished(self)
            except Exception as exc:          # noqa: BLE001 - as a done callback's
                self.get_loop().call_exception_handler(
                    {"message": "a call's finish failed", "exception": exc, "future": self})
