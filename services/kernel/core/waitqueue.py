"""Wait queues: who sleeps on an object until it may have changed (Linux's
wait_queue_head with keyed wake-ups), and a sleeper's registrations on
several of them (poll_table).  Files, pipes, wait4 and sigsuspend all sleep
here; a sleeper re-checks its condition after each wake, and cancelling it
(a signal) leaves nothing registered.  A sleeper waits on an
``eager.Wake``: a system call that sleeps is stepped on by its waker's
dispatch, before the waker's answer (core/eager.py)."""
from __future__ import annotations

import asyncio
from typing import Callable

from services.kernel.core.eager import Wake

ALL_EVENTS = 0xFFFFFFFF


class WaitQueue:
    """Who waits on one object: callbacks run with the POLL* bits of each wake
    (Linux's wait_queue_head with keyed wake-ups)."""

    def __init__(self) -> None:
        self.callbacks: dict[Callable[[int], None], None] = {}   # an ordered set

    def add(self, callback: Callable[[int], None]) -> None:
        self.callbacks[callback] = None

    def remove(self, callback: Callable[[int], None]) -> None:
        self.callbacks.pop(callback, None)

    def wake(self, events: int = ALL_EVENTS) -> None:
        for callback in list(self.callbacks):
            callback(events)

    async def wait(self, events: int = ALL_EVENTS) -> None:
        """Sleep until a wake with any of events; the caller re-checks its condition."""
        table = PollTable(events)
        table.add(self)
        try:
            await table.sleep(None)
        finally:
            table.close()


class PollTable:
    """One sleeper's registrations on wait queues (Linux's poll_table)."""

    def __init__(self, events: int = ALL_EVENTS):
        self.events = events
        self.woken = Wake(asyncio.get_running_loop())
        self.queues: list[WaitQueue] = []

    def add(self, queue: WaitQueue) -> None:
        queue.add(self._wake)
        self.queues.append(queue)

    def _wake(self, events: int) -> None:
        if events & self.events:
            self.woken.wake()

    async def sleep(self, deadline: float | None) -> None:
        timer = None
        if deadline is not None:
            timer = asyncio.get_running_loop().call_at(deadline, self._wake, ALL_EVENTS)
        try:
            await self.woken
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        for queue in self.queues:
            queue.remove(self._wake)
