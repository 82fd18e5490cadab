"""Traces and metrics as files: OTLP's JSON encoding, one batch a line.

Each service writes its own files in the guest's trace directory
(``SERVICE.spans.jsonl``, ``SERVICE.metrics.jsonl``): one writer a file, so
no two processes interleave a line.  A line is an ExportTraceServiceRequest
(or ExportMetricsServiceRequest) as OTLP/JSON spells it, ids in hex, as an
OpenTelemetry collector's file exporter writes them; past ROTATE_BYTES a
file becomes ``.1`` (the one before is dropped).  ``skas trace`` and ``skas
status`` read them back with ``Tail`` and ``latest_metrics``."""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROTATE_BYTES = 16 << 20
SPANS, METRICS = ".spans.jsonl", ".metrics.jsonl"
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


class _Lines:
    """Appends lines to one file, rotating it past ROTATE_BYTES."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def append(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            if self.path.stat().st_size + len(line) > ROTATE_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _otlp_json(message: Any) -> dict:
    """A protobuf request as OTLP/JSON: camelCase fields, enums as numbers,
    trace and span ids in hex (protobuf's JSON would give them in base64)."""
    from google.protobuf.json_format import MessageToDict
    return _hex_ids(MessageToDict(message, use_integers_for_enums=True))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: base64.b64decode(v).hex() if k in _ID_KEYS and isinstance(v, str)
                else _hex_ids(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def span_exporter(directory: Path, service: str) -> Any:
    """A span exporter (the SDK's interface) writing SERVICE.spans.jsonl
    (the SDK is imported only here: its classes are made on demand)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Exporter(SpanExporter):
        def __init__(self) -> None:
            self.lines = _Lines(Path(directory) / f"{service}{SPANS}")

        def export(self, spans) -> SpanExportResult:
            try:
                self.lines.append(_otlp_json(encode_spans(spans)))
            except OSError:
                return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

    return Exporter()


def metric_exporter(directory: Path, service: str) -> Any:
    """A metric exporter (the SDK's interface) writing SERVICE.metrics.jsonl."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class Exporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.lines = _Lines(Path(directory) / f"{service}{METRICS}")

        def export(self, metrics_data, timeout_millis: float = 10_000,
                   **_kwargs) -> MetricExportResult:
            try:
                self.lines.append(_otlp_json(encode_metrics(metrics_data)))
            except OSError:
                return MetricExportResult.FAILURE
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **_kwargs) -> None:
            pass

    return Exporter()


# --- reading them back (no OpenTelemetry needed) ------------------------------------

@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    start: int          # ns since the epoch
    end: int
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)   # (trace id, span id)
    error: str = ""

    @property
    def duration(self) -> int:
        return self.end - self.start


def value(v: dict) -> Any:
    """An OTLP/JSON AnyValue as Python."""
    for key, cast in (("stringValue", str), ("intValue", int), ("doubleValue", float),
                      ("boolValue", bool)):
        if key in v:
            return cast(v[key])
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    return None


def attributes(items: list[dict]) -> dict[str, Any]:
    return {a["key"]: value(a.get("value", {})) for a in items}


def spans_of(record: dict) -> Iterator[Span]:
    """The spans of one line of a spans file."""
    for rs in record.get("resourceSpans", []):
        service = attributes(rs.get("resource", {}).get("attributes", [])).get("service.name", "")
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                status = s.get("status", {})
                yield Span(s["traceId"], s["spanId"], s.get("parentSpanId", ""), s["name"],
                           service, int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]),
                           attributes(s.get("attributes", [])),
                           [(lk["traceId"], lk["spanId"]) for lk in s.get("links", [])],
                           status.get("message", "") if status.get("code") == 2 else "")


class Tail:
    """The spans files of a directory, read on from where the last read
    stopped (``--follow``); a rotated file is read from its start."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.offsets: dict[Path, tuple[int, int]] = {}     # path -> (inode, offset)

    def read(self) -> list[Span]:
        found: list[Span] = []
        names = sorted(self.directory.glob(f"*{SPANS}.1")) + sorted(
            self.directory.glob(f"*{SPANS}"))
        for path in names:
            try:
                with open(path, "rb") as f:
                    ino = os.fstat(f.fileno()).st_ino
                    known, at = self.offsets.get(path, (ino, 0))
                    f.seek(at if known == ino else 0)
                    data = f.read()
            except FileNotFoundError:
                continue
            whole = data[:data.rfind(b"\n") + 1]     # a line being written waits
            self.offsets[path] = (ino, (at if known == ino else 0) + len(whole))
            for line in whole.splitlines():
                try:
                    found.extend(spans_of(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue                 # a damaged line: the others still count
        return found


def latest_metrics(directory: Path) -> dict[str, dict[str, Any]]:
    """Each service's last exported metrics: {service: {metric name: data points}}."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob(f"*{METRICS}")):
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            service = path.name[:-len(METRICS)]
            for rm in record.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        kind = next((k for k in ("sum", "gauge", "histogram") if k in m), None)
                        if kind:
                            out.setdefault(service, {})[m["name"]] = [
                                {**p, "attributes": attributes(p.get("attributes", []))}
                                for p in m[kind].get("dataPoints", [])]
            break
    return out
