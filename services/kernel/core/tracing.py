"""What the kernel's lower layers (the filesystems, the page cache, the ubd
driver) may ask of tracing, and nothing more: a span around some work, the
current traceparent for a request, and the bookkeeping of span links.

In a nutshell: ``tracer`` is ``OFF``, whose methods do nothing and make no
object, until the entry installs an ``On`` (``entry/tracing.py``, only when
the guest traces).  The current span is this module's context variable
``SPAN``, not OpenTelemetry's: a system call's first step runs in the
dispatcher's context and the rest, if it waits, in a Task's copy
(``core/eager.py``), so a token taken in one could not be reset in the
other.  A span here restores the value it found, and the dispatcher resets
its own.

Links: a posted write is done later (a write-back, a flush), on behalf of
the system calls that dirtied what it writes.  Each span carries its
``origins`` (the system calls it serves: its own call's span, or the spans
it links to), ``dirtied(key)`` adds the current ones to what key (a
filesystem, a device) holds dirty, and ``take(key)`` hands them over as the
links of the span that writes them back."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class _Null:
    """The span of tracing off: takes attributes and drops them."""

    __slots__ = ()

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        return None


NULL = _Null()


class Off:
    on = False

    def span(self, name: str, attributes: dict | None = None, links: Any = ()) -> Any:
        return NULL

    def traceparent(self) -> str | None:
        return None

    def dirtied(self, key: object) -> None:
        return None

    def take(self, key: object) -> tuple:
        return ()

    def count(self, metric: str, n: int = 1) -> None:
        return None


OFF = Off()
tracer: Off | On = OFF
SPAN: ContextVar[Any] = ContextVar("skas_span", default=None)   # the current _Span


class _Span:
    """One span as a context manager; its origins (span contexts) go with it."""

    __slots__ = ("span", "origins", "prev")

    def __init__(self, span: Any, origins: tuple):
        self.span = span
        self.origins = origins

    def __enter__(self) -> _Span:
        self.prev = SPAN.get()
        SPAN.set(self)
        return self

    def __exit__(self, kind, exc, _tb) -> None:
        if isinstance(exc, Exception) and tracer.on:     # a cancel is a signal, not a failure
            tracer.failed(self.span, exc)
        SPAN.set(self.prev)
        self.span.end()

    def set(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)


class On:
    """Tracing on: spans from the service's telemetry (common/tracing.py)."""

    on = True

    def __init__(self, telemetry: Any):
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        # id(key) -> the origins of what it holds dirty, by (trace id, span id)
        self.pending: dict[int, dict[tuple[int, int], Any]] = {}
        self.totals: dict[str, int] = {}      # count()'s, read by the meter at its export
        from opentelemetry.metrics import Observation
        self._observation = Observation

    def root(self, name: str, attributes: dict) -> _Span:
        """A new trace's first span (a system call's), its own origin (none
        when the sampler left it out: nothing links to what is not kept)."""
        span = self.tracer.start_span(name, context=_root_context, attributes=attributes)
        context = span.get_span_context()
        return _Span(span, (context,) if context.trace_flags.sampled else ())

    def span(self, name: str, attributes: dict | None = None, links: Any = ()) -> Any:
        """A span under the current one; under a span the sampler left out,
        nothing (NULL): the work of a call not kept costs no span objects."""
        parent = SPAN.get()
        if parent is not None and not links and not parent.span.get_span_context().trace_flags.sampled:
            return NULL             # (sampled, not is_recording: a posted write outlives its parent)
        links = list(links)
        span = self.tracer.start_span(
            name, context=_root_context if parent is None else self.telemetry.in_context(parent.span),
            attributes=attributes, links=[self.telemetry.link(sc) for sc in links])
        origins = tuple(links) if links else parent.origins if parent else ()
        return _Span(span, origins)

    def traceparent(self) -> str | None:
        current = SPAN.get()
        return None if current is None else self.telemetry.traceparent(current.span)

    def dirtied(self, key: object) -> None:
        current = SPAN.get()
        if current is not None and current.origins:
            held = self.pending.setdefault(id(key), {})
            for sc in current.origins:
                held[sc.trace_id, sc.span_id] = sc

    def take(self, key: object) -> tuple:
        return tuple(self.pending.pop(id(key), {}).values())

    def count(self, metric: str, n: int = 1) -> None:
        """Add n to the counter metric: a sum kept here, which an observable
        counter (made at the first count) reports at each export, so a
        count on the syscall path is one dict update, not an SDK call."""
        total = self.totals.get(metric)
        if total is None:
            self.telemetry.meter.create_observable_counter(
                metric, callbacks=[lambda _options: [self._observation(self.totals[metric])]])
            total = 0
        self.totals[metric] = total + n

    def failed(self, span: Any, exc: BaseException) -> None:
        code = getattr(exc, "code", None)     # an Errno: the call's own answer, not a bug
        self.telemetry.error(span, f"errno {code}" if code else type(exc).__name__)


_root_context: Any = None      # the empty OpenTelemetry context, set by install


def install(on: On) -> None:
    """Tracing on for the whole kernel (the entry calls this once, at start)."""
    global tracer, _root_context
    from opentelemetry.context import Context
    _root_context = Context()
    tracer = on
