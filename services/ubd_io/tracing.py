"""ubd_io's spans, when the guest traces: one per block request, parented on
the kernel's through the envelope's traceparent, with its queue wait and
its host operation (pwrite, pread, fsync, fallocate) under it, and the COW
bitmap's update under that.

Only imported when tracing is on; the request queue then calls ``begin``
as it takes a request and ``serve`` to run it, on the loop or a worker
thread.  These spans are host-side: they may name the image file (the
operator's own data), never the kernel's buffer path or a peer's pid."""
from __future__ import annotations

import time
from typing import Any, Callable

from common.shared_buffer import SLOT
from common.tracing import Telemetry
from services.ubd_io import images

HOST_OP = {"READ": "pread", "WRITE": "journal pwrite", "WRITE_FRESH": "pwrite", "FLUSH": "commit and fsync",
           "COMMIT": "commit", "DISCARD": "journal", "WRITE_ZEROES": "journal"}
SECTOR = 512


class RequestSpans:
    def __init__(self, telemetry: Telemetry, queue: Any):
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        from opentelemetry import context, trace
        self._context, self._trace = context, trace
        images.step = self.step
        meter = telemetry.meter
        self.requests = meter.create_counter("skas.ubd.requests", description="block requests "
                                             "served, by op")
        self.bytes = meter.create_counter("skas.ubd.bytes", unit="By",
                                          description="bytes read and written, by op")
        from opentelemetry.metrics import Observation
        meter.create_observable_gauge(
            "skas.ubd.queue_depth", description="requests queued or running",
            callbacks=[lambda _options: [Observation(queue.outstanding)]])

    def begin(self, msg, req, image: str) -> None:
        """The request's span, started as it is taken (a malformed or absent
        traceparent: a trace of its own)."""
        attrs = {"ubd.dev": req.dev, "ubd.op": req.op, "ubd.sector": req.offset // SECTOR,
                 "ubd.length": req.length, "ubd_io.image": image}
        if msg.type == "write_shared":
            attrs["ubd.slot"] = msg["at"] // SLOT
        req.span = self.tracer.start_span(f"ubd_io {req.op}", self.telemetry.context(
            msg.traceparent), kind=self.telemetry.SERVER, attributes=attrs)
        req.queued_at = time.time_ns()

    def serve(self, req, run: Callable[[Any], tuple[int, bytes]],
              depth: int) -> tuple[int, bytes]:
        """run(req) under the request's span; its wait in the queue as a span
        before it, the span ended with the status."""
        span = req.span
        span.set_attribute("ubd_io.outstanding", depth)
        token = self._context.attach(self._trace.set_span_in_context(span))
        try:
            self.tracer.start_span("queue wait", start_time=req.queued_at).end()
            with self.tracer.start_as_current_span(HOST_OP[req.op]):
                status, data = run(req)
        finally:
            self._context.detach(token)
        span.set_attribute("ubd.status", status)
        if status < 0:
            self.telemetry.error(span, f"errno {-status}")
        span.end()
        self.requests.add(1, {"op": req.op})
        if req.op in ("READ", "WRITE", "WRITE_FRESH") and status == 0:
            self.bytes.add(req.length, {"op": req.op})
        return status, data

    def step(self, name: str) -> Any:
        """A span for one step of an image's work (images.step while on)."""
        return self.tracer.start_as_current_span(name)
