"""``skas trace``: the traces a guest's services wrote as JSON lines, listed
and shown as trees, without a collector (common/trace_files.py reads them).

A trace is listed by its root span (the guest's system call): when it
started, the guest pid, the call, its duration, the bytes it moved, its
span count and the services it crossed.  A trace shown whole is a tree of
spans with per-span durations and attributes; a span's links (a flush's to
the writes it made durable) are named under it."""
from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

from common.trace_files import Span, Tail

# --follow: a trace is shown once no span came for it this long: past the
# services' batch export delay (the SDK's 5 s), so that a trace's spans from
# every service are in (ubd_io's and the kernel's come in separate batches)
SETTLE = 6.0


class Trace:
    """The spans of one trace id as they have arrived."""

    def __init__(self, trace_id: str):
        self.id = trace_id
        self.spans: list[Span] = []

    @property
    def root(self) -> Span:
        ids = {s.span_id for s in self.spans}
        roots = [s for s in self.spans if s.parent_id not in ids]
        return min(roots or self.spans, key=lambda s: s.start)

    @property
    def duration(self) -> int:
        return max(s.end for s in self.spans) - min(s.start for s in self.spans)

    @property
    def services(self) -> list[str]:
        return sorted({s.service.removeprefix("skas-") for s in self.spans})


def collect(spans: Iterable[Span], traces: dict[str, Trace] | None = None) -> dict[str, Trace]:
    traces = {} if traces is None else traces
    for s in spans:
        traces.setdefault(s.trace_id, Trace(s.trace_id)).spans.append(s)
    return traces


def header() -> str:
    return (f"{'TIME':<15} {'TRACE':<32} {'PID':>5} {'CALL':<18} {'DURATION':>10} "
            f"{'BYTES':>9} {'SPANS':>5}  SERVICES")


def summary(t: Trace) -> str:
    root = t.root
    when = datetime.fromtimestamp(root.start / 1e9).strftime("%H:%M:%S.%f")
    pid = root.attributes.get("guest.pid", "-")
    nbytes = root.attributes.get("io.bytes", "-")
    return (f"{when:<15} {t.id:<32} {pid:>5} {root.name:<18} {_ms(t.duration):>10} "
            f"{nbytes:>9} {len(t.spans):>5}  {','.join(t.services)}")


def tree(t: Trace) -> Iterator[str]:
    """The trace's spans as an indented tree, children by start time."""
    children: dict[str, list[Span]] = defaultdict(list)
    ids = {s.span_id for s in t.spans}
    for s in t.spans:
        children[s.parent_id if s.parent_id in ids else ""].append(s)
    base = min(s.start for s in t.spans)

    def walk(s: Span, depth: int) -> Iterator[str]:
        attrs = " ".join(f"{k}={v}" for k, v in sorted(s.attributes.items()))
        error = f"  ERROR {s.error}" if s.error else ""
        yield (f"{'  ' * depth}{s.name} [{s.service.removeprefix('skas-')}] "
               f"+{_ms(s.start - base)} {_ms(s.duration)}  {attrs}{error}")
        for trace_id, span_id in s.links:
            yield f"{'  ' * depth}  ↳ links to {trace_id}/{span_id}"
        for c in sorted(children.get(s.span_id, []), key=lambda c: c.start):
            yield from walk(c, depth + 1)

    for root in sorted(children[""], key=lambda s: s.start):
        yield from walk(root, 0)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f}ms"


def find(traces: dict[str, Trace], prefix: str) -> Trace | None:
    """The one trace whose id starts with prefix (None if none or several)."""
    found = [t for tid, t in traces.items() if tid.startswith(prefix.lower())]
    return found[0] if len(found) == 1 else None


def listing(traces: dict[str, Trace], slowest: int | None, limit: int) -> list[Trace]:
    """The traces to list: the slowest N, else the most recent limit, in time order."""
    if slowest:
        return sorted(traces.values(), key=lambda t: t.duration, reverse=True)[:slowest]
    recent = sorted(traces.values(), key=lambda t: t.root.start)
    return recent[-limit:] if limit else recent


def follow(directory: Path, echo) -> None:
    """Print each new trace once it is complete (no span came for it for
    SETTLE seconds), until interrupted."""
    tail = Tail(directory)
    tail.read()                      # what was there before is not new
    traces: dict[str, Trace] = {}
    last: dict[str, float] = {}
    echo(header())
    while True:
        now = time.monotonic()
        new = tail.read()
        collect(new, traces)
        for s in new:
            last[s.trace_id] = now
        for trace_id, at in list(last.items()):
            if now - at >= SETTLE:
                del last[trace_id]
                echo(summary(traces.pop(trace_id)))
        time.sleep(0.5)


def metrics_lines(metrics: dict[str, dict]) -> Iterator[str]:
    """What skas status shows of the services' last exported metrics (JSON
    exporter only): each counter and gauge by its attributes."""
    if not metrics:
        return
    yield "\nMETRICS (the last export; with a collector, see it instead)"
    for service, named in sorted(metrics.items()):
        for name, points in sorted(named.items()):
            for p in points:
                label = ",".join(f"{k}={v}" for k, v in sorted(p["attributes"].items()))
                number = p.get("asInt", p.get("asDouble", 0))
                yield f"{service:<8} {name} {label}: {number}"

