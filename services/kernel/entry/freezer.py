"""Freezing the whole guest (`skas ctl NAME stop` / `go`), as UML's
mconsole stop and Linux's freezer: every guest task stops where it is and
nothing of it shows to the guest (no signal, no SIGCHLD, no WUNTRACED).

It is job control's holding without its signals: while the guest is
frozen, the message that would let a task run on (``ret``, ``host``,
``resume``, ``ops`` without a reply) is kept in the task's ``held`` slot
(Kernel.to_userspace), a running task is interrupted and held at its
trap, and one waiting in the seccomp listener is stopped when its answer
comes (Kernel.answer_notified).  A task the kernel is serving stays
frozen by that: its answer is held when it comes.  A fork's clone op is
held like any answer, so no child is born frozen or unfrozen by mistake.
Thawing sends each held message once, except to a task whose process a
stop signal stopped (SIGCONT lets that one go, as before the freeze)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.kernel.sched import signals

if TYPE_CHECKING:
    from services.kernel.entry.kernel import Kernel
    from services.kernel.sched.task import Task


class Freezer:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.frozen = False
        self.settled: asyncio.Future | None = None   # a freeze waiting for the last stop

    def holds(self, t: Task) -> bool:
        """Whether what resumes t must wait: the guest frozen, or t's process stopped."""
        return self.frozen or t.process.stopped

    async def freeze(self, timeout: float) -> list[int]:
        """Stop every task; the tids still running after timeout (none: frozen)."""
        k = self.kernel
        self.frozen = True
        for t in list(k.tasks.values()):
            if not t.flight.in_kernel and t.flight.held is None:
                k.interrupt(t)
        self.settled = k.loop.create_future()
        self.settle()
        try:
            await asyncio.wait_for(asyncio.shield(self.settled), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.settled = None
        return self.running()

    def running(self) -> list[int]:
        return sorted(t.tid for t in self.kernel.tasks.values() if not self._still(t))

    @staticmethod
    def _still(t: Task) -> bool:
        """In the kernel (its answer will be held), held, or a clone child
        whose birth is its creator's held op."""
        if t.flight.in_kernel or t.flight.held is not None:
            return True
        creator = t.created_by
        return not t.host_pid and creator is not None and creator.flight.held is not None

    def settle(self) -> None:
        """After each message from userspace while a freeze waits: was it the last stop?"""
        if self.settled is not None and not self.settled.done() and not self.running():
            self.settled.set_result(None)

    def thaw(self) -> int:
        """Let every held task go; how many were."""
        k = self.kernel
        self.frozen = False
        released = 0
        for t in list(k.tasks.values()):
            if t.flight.held is None or t.process.stopped:
                continue
            held, t.flight.held = t.flight.held, None
            k.to_userspace(*held)
            released += 1
            if signals.deliverable(t):
                k.interrupt(t)    # one sent while it was held found it stopped: again
        return released
