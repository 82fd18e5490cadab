"""Run a system call's coroutine at once, not as a new asyncio Task.

Most calls that are coroutines never wait (a write into the cache, a
lookup of a cached inode): creating a Task for each, and waiting a loop
turn for it to start and another for its done callback, cost ~14 µs of
the kernel's CPU per call (a 64 KiB write to /dev/null: 76 -> 62 µs in a
guest).  So the first step runs here; only a call that does wait becomes
a Task, which drives the coroutine on from where it stopped.

What a signal sees is kept as it was with a Task from the start:
``call``, the future that stands for the call while its first step runs,
is what a signal cancels; cancelled then, the call ends cancelled (unless
it raised: an EPIPE with the SIGPIPE it sent its own caller), as a Task
cancelled while running does (3.11's Task.__step), or, if it goes on to
wait, has that wait cancelled."""
from __future__ import annotations

import asyncio
import types

Coroutine = types.CoroutineType


def start(loop: asyncio.AbstractEventLoop, coro, call: asyncio.Future) -> asyncio.Future:
    """Run coro's first step; call (pending) is done with its outcome if it
    ended there.  Returns call, or the Task that carries on with coro."""
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
    return loop.create_task(_carry_on(coro, step, call.cancelled()))


async def _carry_on(coro, step, cancelled: bool):
    """Drive coro from a wait it yielded (step: a future, or None for a bare
    yield), as Task.__step does: cancelling this Task cancels the future it
    waits on, and the coroutine sees that; a cancel that finds the future
    done already is thrown into the coroutine instead."""
    throw = False
    while True:
        if cancelled:                 # the coroutine sees its wait cancelled, or is told
            cancelled = False
            throw = step is None or not step.cancel()
        if not throw:
            if step is None:
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    throw = True
            else:
                step._asyncio_future_blocking = False
                try:
                    await step
                except asyncio.CancelledError:
                    throw = not step.cancelled()   # this Task was cancelled, not the wait
                except BaseException:               # noqa: BLE001 - the coroutine reads it
                    pass
        try:
            step = coro.throw(asyncio.CancelledError()) if throw else coro.send(None)
        except StopIteration as stop:
            return stop.value
        throw = False
