"""OpenTelemetry for a service: whether it is on, and its set-up when it is.

In a nutshell: tracing is off unless the guest config says ``trace`` or the
OTEL_* variables it captured (``otel``, from ``skas run``/``skas create``'s
environment) name a collector.  Off, nothing here imports OpenTelemetry:
``start`` answers None before any import, and each service keeps None.  On,
``start`` builds the SDK's tracer and meter providers with a resource naming
the guest and the service, the sampler the config asks for, and one
exporter: OTLP over HTTP or gRPC when a collector is named (the standard
variables), else OTLP's JSON encoding, one line per batch, in the guest's
trace directory (``common/trace_files.py``), which ``skas trace`` reads.

The W3C trace context of a request travels in the envelope's traceparent
(``common/protocol.py``); ``Telemetry.context`` reads one back, and a
malformed one starts a new trace, never an error."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from common.config import GuestConfig

log = logging.getLogger(__name__)

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
            "parentbased_always_off", "parentbased_traceidratio")
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
METRICS_INTERVAL_MS = 5000


def wanted(cfg: GuestConfig) -> bool:
    """Is tracing on for this guest?  (No import: this is all a service
    asks when it is off.)"""
    otel = cfg.otel
    if otel.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = otel.get("OTEL_TRACES_EXPORTER", "")
    return cfg.trace or exporter not in ("", "none") or any(otel.get(v) for v in ENDPOINT_VARS)


def parse_sampling(spec: str) -> tuple[str, float | None]:
    """A sampling spec as the CLI and the config take it: a ratio (``0.01``:
    parent-based, by trace id), or an OTEL_TRACES_SAMPLER name with its
    argument after a colon (``traceidratio:0.5``, ``always_on``).
    ValueError saying what is accepted."""
    name, _, arg = spec.partition(":")
    try:
        ratio = float(name)
    except ValueError:
        ratio = None
    if ratio is not None:
        name, arg = "parentbased_traceidratio", name
    if name not in SAMPLERS:
        raise ValueError(f"sampling {spec!r}: give a ratio (0.01) or one of {', '.join(SAMPLERS)}"
                         " (with :RATIO for the traceidratio ones)")
    if not arg:
        return name, None
    value = float(arg) if _is_number(arg) else -1.0
    if not 0.0 <= value <= 1.0 or "traceidratio" not in name:
        raise ValueError(f"sampling {spec!r}: a ratio is a number from 0 to 1, for "
                         "traceidratio or parentbased_traceidratio")
    return name, value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def trace_dir(cfg: GuestConfig) -> Path:
    """Where the JSON exporter writes: the config's trace_dir, else RUN_DIR/traces."""
    return Path(cfg.trace_dir) if cfg.trace_dir else cfg.run_dir / "traces"


def start(cfg: GuestConfig, service: str) -> Telemetry | None:
    """The service's telemetry when tracing is on, else None (and nothing
    imported).  A set-up that fails is logged and leaves tracing off: a
    guest never fails to boot for its telemetry."""
    if not wanted(cfg):
        return None
    try:
        return Telemetry(cfg, service)
    except Exception as exc:  # noqa: BLE001 - an SDK or exporter that cannot start
        log.error("%s: tracing is off: %s: %s", service, type(exc).__name__, exc)
        return None


class Telemetry:
    """One service's tracer, meter and propagator (the SDK imported here only)."""

    def __init__(self, cfg: GuestConfig, service: str):
        for key, value in cfg.otel.items():     # the exporters read them themselves
            os.environ.setdefault(key, value)
        # userspace forks its stubs, which run Python until their exec: gRPC's
        # fork handlers would abort them (and nothing of gRPC runs in a child)
        os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
        from opentelemetry import trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.service = service
        resource = Resource.create({"service.name": f"skas-{service}",
                                    "service.namespace": "skas",
                                    "service.instance.id": f"{cfg.name}/{service}",
                                    "skas.guest": cfg.name})
        self.provider = TracerProvider(resource=resource, sampler=_sampler(cfg.trace_sampling))
        spans, metrics = _exporters(cfg, service)
        self.provider.add_span_processor(BatchSpanProcessor(spans))
        self.meters = MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(metrics, export_interval_millis=METRICS_INTERVAL_MS)])
        self.tracer = self.provider.get_tracer(f"skas.{service}")
        self.meter = self.meters.get_meter(f"skas.{service}")
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.SERVER, self.CLIENT = trace.SpanKind.SERVER, trace.SpanKind.CLIENT

    def context(self, traceparent: str | None) -> Any:
        """The context a received traceparent names, or None (a new root)
        when there is none or it is not a valid W3C traceparent."""
        if not traceparent:
            return None
        ctx = self._propagator.extract({"traceparent": traceparent})
        return ctx if self._trace.get_current_span(ctx).get_span_context().is_valid else None

    def traceparent(self, span: Any) -> str | None:
        """The W3C traceparent of span, for an envelope (None if it is not recorded)."""
        sc = span.get_span_context()
        if not sc.is_valid:
            return None
        return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"

    def in_context(self, span: Any) -> Any:
        """A context whose current span is span (to parent others on it)."""
        return self._trace.set_span_in_context(span)

    def link(self, span_context: Any) -> Any:
        return self._trace.Link(span_context)

    def error(self, span: Any, description: str) -> None:
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    def shutdown(self) -> None:
        """Export what is left (the service is ending)."""
        self.provider.shutdown()
        self.meters.shutdown()


def _sampler(spec: str) -> Any:
    """The config's sampler; None (the SDK's own choice: OTEL_TRACES_SAMPLER,
    else parent-based always on) when it names none."""
    if not spec:
        return None
    from opentelemetry.sdk.trace import sampling
    name, ratio = parse_sampling(spec)
    return {"always_on": lambda: sampling.ALWAYS_ON,
            "always_off": lambda: sampling.ALWAYS_OFF,
            "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
            "parentbased_always_off": lambda: sampling.ParentBased(sampling.ALWAYS_OFF),
            "traceidratio": lambda: sampling.TraceIdRatioBased(1.0 if ratio is None else ratio),
            "parentbased_traceidratio": lambda: sampling.ParentBased(
                sampling.TraceIdRatioBased(1.0 if ratio is None else ratio))}[name]()


def _exporters(cfg: GuestConfig, service: str) -> tuple[Any, Any]:
    """(span exporter, metric exporter): OTLP when a collector is named,
    over gRPC if OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL says grpc, else HTTP;
    without one, JSON lines in the trace directory."""
    env = {**cfg.otel, **{k: v for k, v in os.environ.items() if k.startswith("OTEL_")}}
    if not any(env.get(v) for v in ENDPOINT_VARS):
        from common import trace_files
        directory = trace_dir(cfg)
        return (trace_files.span_exporter(directory, service),
                trace_files.metric_exporter(directory, service))
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(), OTLPMetricExporter()
