"""sigio's spans, when the guest traces: one per console_write, from its
arrival to its last byte written out (to the terminal, the console line or
console.log), parented on the kernel's console write through the
envelope's traceparent.  Only imported when tracing is on."""
from __future__ import annotations

from typing import Any

from common.protocol import Message
from common.tracing import Telemetry


class ConsoleSpans:
    def __init__(self, telemetry: Telemetry):
        self.telemetry = telemetry
        self.open: dict[int, Any] = {}        # seq -> its span, until written out

    def begin(self, msg: Message) -> None:
        """A console_write accepted (a resend is not: its span is open)."""
        self.open[msg["seq"]] = self.telemetry.tracer.start_span(
            "sigio console write", self.telemetry.context(msg.traceparent),
            kind=self.telemetry.SERVER,
            attributes={"console.seq": msg["seq"], "console.bytes": len(msg["data"])})

    def written(self, seq: int) -> None:
        span = self.open.pop(seq, None)
        if span is not None:
            span.end()
