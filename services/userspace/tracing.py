"""userspace's spans, when the guest traces: one per batch of address-space
ops the kernel sent under a traced call (exec's maps, a fork's clone, an
mmap), parented on the call's span through the envelope's traceparent.
Only imported when tracing is on; the op kinds and counts are the guest's
view, never a host pid or address of the stub."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from common.ops import kind_of
from common.protocol import Message
from common.tracing import Telemetry


class OpsSpans:
    def __init__(self, telemetry: Telemetry):
        self.telemetry = telemetry

    @contextmanager
    def around(self, msg: Message) -> Iterator[None]:
        ops = msg["ops"]
        span = self.telemetry.tracer.start_span(
            "userspace ops", self.telemetry.context(msg.traceparent), kind=self.telemetry.SERVER,
            attributes={"guest.tid": msg["task"], "ops.count": len(ops),
                        "ops.kinds": ",".join(kind_of(op) for op in ops[:16])})
        try:
            yield
        finally:
            span.end()
