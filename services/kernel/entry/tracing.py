"""Tracing of guest system calls: a span for each call that does IO, from
its dispatch to its answer, whether it came through the seccomp listener
or a ptrace stop.

In a nutshell: only imported when the guest traces.  ``SyscallSpans.wrap``
puts itself around the Kernel's ``dispatch`` and ``send_answer`` (so with
tracing off the Kernel runs its own methods, without even an attribute
test), and installs ``core/tracing.py``'s ``On`` so the layers below add
their spans under the call's.  A call's span names it and carries the
guest's view only: pid and tid, the fd, its guest path and inode number,
the byte count, the result and the route; never a host pid, path or fd."""
from __future__ import annotations

import bisect
import errno
import logging
import time
from typing import Any

from common.syscalls import name as call_name
from common.tracing import Telemetry
from services.kernel.core import tracing
from services.kernel.core.answers import HOST, Ops

# The calls that move file data or make it durable, or name the file they open.
DATA = frozenset(("read", "write", "pread64", "pwrite64", "readv", "writev", "preadv",
                  "pwritev", "preadv2", "pwritev2", "sendfile", "copy_file_range", "splice",
                  "tee", "getdents64"))
SYNC = frozenset(("fsync", "fdatasync", "sync", "syncfs", "sync_file_range"))
SIZE = frozenset(("truncate", "ftruncate", "fallocate"))
OPENS = frozenset(("open", "openat", "openat2", "creat"))
EXECS = frozenset(("execve", "execveat"))    # read a file in, and map it (userspace's ops)
IO_CALLS = DATA | SYNC | SIZE | OPENS | EXECS
log = logging.getLogger("kernel")

ERRNO_MAX = 4096                # a result past -4096 is a number, not an errno
# µs: the upper bounds of the latency buckets (a call past the last is in one more)
LATENCY_BOUNDS = (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000,
                  100_000, 200_000, 500_000, 1_000_000)
PERCENTILES = (50, 90, 99)


def percentile(counts: list[int], q: int) -> int:
    """The bound of the bucket the q-th percentile's call fell in (µs); past
    the last bound, twice it."""
    total, seen = counts[0], 0
    for i, n in enumerate(counts[1:]):
        seen += n
        if seen * 100 >= q * total:
            return LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else 2 * LATENCY_BOUNDS[-1]
    return 0
NO_FD = frozenset(("sync", "truncate", "execve", *OPENS))   # their first argument is not an fd


class SyscallSpans:
    """The open span of each task's call, by tid; its metrics besides."""

    def __init__(self, kernel: Any, telemetry: Telemetry):
        self.kernel = kernel
        self.on = tracing.On(telemetry)
        self.open: dict[int, Any] = {}          # tid -> the _Span of its call
        self.started: dict[int, tuple[int, str, str]] = {}   # tid -> (ns, call, route)
        # (call, route) -> [count, then a count per LATENCY_BOUNDS bucket]: kept
        # here and read by the meter at each export, so that a call costs a
        # dict update and a bisect, not the SDK's instruments
        self.stats: dict[tuple[str, str], list[int]] = {}
        self.buggy = False
        from opentelemetry.metrics import Observation
        meter = telemetry.meter
        meter.create_observable_counter(
            "skas.syscalls", description="guest system calls served, by name and route",
            callbacks=[lambda _o: [Observation(v[0], {"call": c, "route": r})
                                   for (c, r), v in list(self.stats.items())]])
        for q in PERCENTILES:
            meter.create_observable_gauge(
                f"skas.syscall.duration.p{q}", unit="us",
                description=f"from dispatch to answer: the {q}th percentile's bucket bound",
                callbacks=[lambda _o, q=q: [Observation(percentile(v, q), {"call": c, "route": r})
                                            for (c, r), v in list(self.stats.items())]])

    def wrap(self) -> None:
        tracing.install(self.on)
        k = self.kernel
        dispatch, send_answer = k.dispatch, k.send_answer

        def traced_dispatch(t, nr: int, args: list[int]) -> None:
            try:
                span = self.enter(t, nr, args)
            except Exception:        # a tracing bug must not cost the guest its call
                self.bug()
                span = None
            if span is None:
                dispatch(t, nr, args)
                return
            token = tracing.SPAN.set(span)    # the handler's first step runs under it
            try:
                dispatch(t, nr, args)
            finally:
                tracing.SPAN.reset(token)

        def traced_send_answer(t, result, call: str, args) -> None:
            try:
                self.leave(t, result)
            except Exception:
                self.bug()
            send_answer(t, result, call, args)

        k.dispatch, k.send_answer = traced_dispatch, traced_send_answer
        send = k.endpoint.send

        def traced_send(kind: str, id_: int, body=None, to=None, traceparent=None) -> None:
            """ops carry the current call's trace context, so that userspace's
            span of them joins its trace."""
            if kind == "ops" and traceparent is None:
                traceparent = tracing.tracer.traceparent()
            send(kind, id_, body, to, traceparent)

        k.endpoint.send = traced_send

    def bug(self) -> None:
        if not self.buggy:
            self.buggy = True
            log.exception("tracing failed (logged once; the calls go on)")

    def enter(self, t, nr: int, args: list[int]) -> Any:
        call = call_name(nr)
        route = "trap" if t.flight.notif is None else "listener"
        self.started[t.tid] = (time.monotonic_ns(), call, route)
        if call not in IO_CALLS:
            return None
        attrs = {"guest.pid": t.tgid, "guest.tid": t.tid, "syscall.route": route}
        if call not in NO_FD:
            attrs["fd"] = args[0]
            self.describe_fd(t, args[0], attrs)
        if call in DATA | SIZE:
            attrs["io.requested"] = args[2] if call not in SIZE else args[1]
        span = self.on.root(call, attrs)
        if span.origins:             # sampled: its answer ends it (else it is nothing to end)
            self.open[t.tid] = span
        return span

    @staticmethod
    def describe_fd(t, fd: int, attrs: dict) -> None:
        """The guest path and inode number of fd, if it is open (a bad fd is
        the call's EBADF, not the tracer's)."""
        entry = t.files.fds.get(fd)
        if entry is None:
            return
        loc = getattr(entry[0], "loc", None)      # a console or a socket has none
        if loc is None:
            return
        attrs["file.path"] = loc.path.decode(errors="replace")
        ino = getattr(loc.inode, "ino", None)
        if isinstance(ino, int):
            attrs["file.inode"] = ino

    def leave(self, t, result) -> None:
        started = self.started.pop(t.tid, None)
        if started is not None:
            at, call, route = started
            counts = self.stats.get((call, route))
            if counts is None:
                counts = self.stats[call, route] = [0] * (len(LATENCY_BOUNDS) + 2)
            counts[0] += 1
            counts[1 + bisect.bisect_left(LATENCY_BOUNDS, (time.monotonic_ns() - at) // 1000)] += 1
        span = self.open.pop(t.tid, None)
        if span is None:
            return
        value = result.value if isinstance(result, Ops) else None if result is HOST else result
        if value is not None:
            span.set("syscall.result", value)
            if -ERRNO_MAX < value < 0:
                self.on.telemetry.error(span.span, errno.errorcode.get(-value, str(-value)))
            elif span.span.name in DATA:
                span.set("io.bytes", value)
            elif span.span.name in OPENS:
                self.describe_fd(t, value, span_attrs := {})
                for key, v in span_attrs.items():
                    span.set(key, v)
        span.span.end()
