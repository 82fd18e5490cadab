"""services.kernel.core.eager against asyncio's own Tasks: the same outcome for
a call that never waits, waits, raises, or is cancelled before or while it
waits (what a signal does to a guest's system call)."""
import asyncio

import pytest

from services.kernel.core import eager
async def never_waits():
    return 7


async def waits(fut):
    return await fut + 1


async def raises():
    raise OSError(32, "EPIPE")


async def cancels_itself(call_box):
    call_box[0].cancel()            # a signal to the caller, sent by the call itself
    return 3


async def cancels_itself_then_raises(call_box):
    call_box[0].cancel()
    raise OSError(32, "EPIPE")


async def catches_cancel(fut):
    try:
        await fut
    except asyncio.CancelledError:
        return "interrupted"
    return "not interrupted"


async def cancels_itself_then_waits(call_box, fut):
    call_box[0].cancel()
    return await catches_cancel(fut)


async def sleeps_then_returns():
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return "slept"


def outcome(fut):
    if fut.cancelled():
        return "cancelled"
    if fut.exception() is not None:
        return repr(fut.exception())
    return fut.result()


def run(coro_fn):
    async def main():
        loop = asyncio.get_running_loop()
        call = loop.create_future()
        box = [call]
        fut = eager.start(loop, coro_fn(box), call)
        if not fut.done():
            await asyncio.wait([fut])
        return fut, call
    return asyncio.run(main())


def test_a_call_that_never_waits_ends_in_its_first_step():
    async def main():
        loop = asyncio.get_running_loop()
        call = loop.create_future()
        fut = eager.start(loop, never_waits(), call)
        assert fut is call and fut.done()      # no Task, no loop turn
        return fut.result()
    assert asyncio.run(main()) == 7


@pytest.mark.parametrize("body, expect", [
    (lambda box: raises(), "BrokenPipeError(32, 'EPIPE')"),
    (cancels_itself, "cancelled"),
    (cancels_itself_then_raises, "BrokenPipeError(32, 'EPIPE')"),
    (lambda box: sleeps_then_returns(), "slept"),
])
def test_outcomes_are_a_tasks(body, expect):
    fut, _ = run(body)
    assert outcome(fut) == expect

    async def as_task():                         # the same body as a plain Task
        loop = asyncio.get_running_loop()
        box = [None]
        task = loop.create_task(body(box))
        box[0] = task
        await asyncio.wait([task])
        return task
    assert outcome(asyncio.run(as_task())) == expect


def test_a_call_that_waits_carries_on_and_is_cancelled_through_its_wait():
    async def main():
        loop = asyncio.get_running_loop()
        inner = loop.create_future()
        fut = eager.start(loop, waits(inner), loop.create_future())
        assert not fut.done()
        loop.call_soon(inner.set_result, 41)
        assert await fut == 42

        inner = loop.create_future()
        fut = eager.start(loop, catches_cancel(inner), loop.create_future())
        await asyncio.sleep(0)
        fut.cancel()                             # a signal while it waits
        assert await fut == "interrupted"
        assert inner.cancelled()

        inner = loop.create_future()
        call = loop.create_future()
        fut = eager.start(loop, cancels_itself_then_waits([call], inner), call)
        assert await fut == "interrupted"        # cancelled in its first step, then waits
        assert inner.cancelled()
    asyncio.run(main())
