"""Tracing's set-up: off costs no import and no wrapper, a bad traceparent
is a new trace, the sampling specs the CLI takes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common import tracing
from common.config import GuestConfig

ROOT = Path(__file__).resolve().parents[3]


def _cfg(tmp_path, **settings) -> GuestConfig:
    return GuestConfig(name="t", run_dir=tmp_path / "run", disks={}, init=["/bin/true"],
                       **settings)


def test_with_tracing_off_no_service_imports_opentelemetry_and_the_kernel_is_unwrapped():
    """In a fresh interpreter: every service's modules, a Kernel built with
    tracing off, and ubd_io's and sigio's set-up leave OpenTelemetry
    unimported and the Kernel's dispatch and send_answer its own; with
    tracing on, they are wrapped and the SDK is loaded."""
    probe = """
import asyncio, sys, tempfile
from pathlib import Path
from common import tracing
from common.config import GuestConfig
from services.kernel import main
from services.kernel.entry.kernel import Kernel
import services.ubd_io.service, services.sigio.service, services.userspace.service

async def made(trace):
    cfg = GuestConfig(name="probe", run_dir=Path(tempfile.mkdtemp()) / "run", disks={},
                      init=["/bin/true"], trace=trace)
    cfg.make_run_dir()
    k = Kernel(cfg, asyncio.get_running_loop(), main.boot)
    ours = (getattr(k.dispatch, "__func__", None) is Kernel.dispatch
            and getattr(k.send_answer, "__func__", None) is Kernel.send_answer)
    for service in ("ubd_io", "sigio", "userspace"):
        assert tracing.start(cfg, service) is None or trace
    return ours

own = asyncio.run(made(False))
print(own, any(m.startswith("opentelemetry") for m in sys.modules))
own = asyncio.run(made(True))
print(own, any(m.startswith("opentelemetry") for m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    assert out[:2] == ["True False", "False True"]


def test_tracing_is_on_by_flag_or_by_a_named_collector_and_off_when_disabled(tmp_path):
    assert not tracing.wanted(_cfg(tmp_path))
    assert tracing.wanted(_cfg(tmp_path, trace=True))
    assert tracing.wanted(_cfg(tmp_path, otel={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}))
    assert not tracing.wanted(_cfg(tmp_path, otel={"OTEL_TRACES_EXPORTER": "none"}))
    assert not tracing.wanted(_cfg(tmp_path, trace=True, otel={"OTEL_SDK_DISABLED": "true"}))


@pytest.mark.parametrize("bad", ["", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
                                 "00-" + "a" * 32 + "-" + "0" * 16 + "-01",
                                 "zz-" + "a" * 32 + "-" + "b" * 16 + "-01", "00-abc-def-01",
                                 "\x00" * 55])
def test_a_malformed_traceparent_is_a_new_root_never_an_error(tmp_path, bad):
    telemetry = tracing.Telemetry(_cfg(tmp_path, trace=True), "ubd_io")
    try:
        assert telemetry.context(bad) is None
        good = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
        ctx = telemetry.context(good)
        span = telemetry.tracer.start_span("child", ctx)
        assert f"{span.get_span_context().trace_id:032x}" == "ab" * 16
        span.end()
    finally:
        telemetry.shutdown()


def test_sampling_specs():
    assert tracing.parse_sampling("0.01") == ("parentbased_traceidratio", 0.01)
    assert tracing.parse_sampling("always_on") == ("always_on", None)
    assert tracing.parse_sampling("traceidratio:0.5") == ("traceidratio", 0.5)
    for bad in ("1.5", "sometimes", "always_on:0.3", "traceidratio:x"):
        with pytest.raises(ValueError):
            tracing.parse_sampling(bad)
