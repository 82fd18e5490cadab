"""Traces of a guest's IO across the services: a real dd in a real guest,
exported as JSON lines (read back by skas trace), over OTLP/HTTP to a
receiver this test runs (decoded with opentelemetry-proto), and with
ubd_io as a separate process on tcp with CURVE."""
from __future__ import annotations

import http.server
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import zmq.auth

from common.config import GuestConfig
from common.trace_files import Span, Tail, latest_metrics
from conftest import HERE, _command, disk_of, make_tree, skas, skas_popen
from deploy import launch

DD = ("/bin/busybox", "dd", "if=/dev/zero", "of=/f", "bs=64k", "count=16", "conv=fsync")
WAIT = 60.0        # seconds for exported spans to arrive: generous, ends as soon as they do


@pytest.fixture
def ddisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "ttree"))


def check_dd(spans: list[Span], image: Path) -> None:
    """One trace per write(2) of dd's and one for its fsync, each rooted at
    the kernel's span of the call; ubd_io's spans parented on the kernel's
    request spans across the process boundary; every byte of the file
    written to ubd_io and flushed; the fsync's flush linked to every write."""
    by_id = {s.span_id: s for s in spans}
    services = {s.service for s in spans}
    assert {"skas-kernel", "skas-ubd_io"} <= services
    writes = [s for s in spans if s.name == "write" and s.attributes.get("file.path") == "/f"]
    assert len(writes) == 16
    for w in writes:
        assert not w.parent_id and w.attributes["io.bytes"] == 65536
        assert w.attributes["guest.pid"] == 1 and w.attributes["syscall.result"] == 65536
    fsync = [s for s in spans if s.name == "fsync" and s.service == "skas-kernel"]
    assert len(fsync) == 1 and fsync[0].attributes["file.path"] == "/f"
    for s in spans:
        if s.service == "skas-ubd_io" and s.name.startswith("ubd_io "):
            parent = by_id[s.parent_id]          # the kernel's request: across processes
            assert parent.service == "skas-kernel" and parent.name == "ubd " + s.name[7:]
            assert parent.trace_id == s.trace_id
            assert parent.attributes["ubd.sector"] == s.attributes["ubd.sector"]
        if s.service == "skas-kernel":          # the guest's view only
            assert str(image) not in str(s.attributes)

    def root(s: Span) -> Span:
        while s.parent_id:
            s = by_id[s.parent_id]
        return s
    written = [s for s in spans if s.name in ("ubd_io WRITE", "ubd_io WRITE_FRESH")]
    roots = {root(s).name for s in written}
    assert roots <= {"write", "fsync"}, roots
    assert sum(s.attributes["ubd.length"] for s in written) >= 16 * 65536
    flushes = [s for s in spans if s.name == "ubd_io FLUSH" and root(s) is fsync[0]]
    assert flushes, "the fsync's FLUSH reached ubd_io in its trace"
    flush = by_id[by_id[flushes[0].parent_id].parent_id]
    assert flush.name == "ubd flush"
    assert {w.span_id for w in writes} <= {span_id for _, span_id in flush.links}


def test_dd_traced_to_json_lines_and_shown_by_skas_trace(ddisk, tmp_path):
    logs = tmp_path / "logs"
    r = skas("run", "--log-dir", str(logs), "--trace", "--disk", str(ddisk), "--", *DD)
    assert r.returncode == 0, r.stderr
    spans = Tail(logs / "traces").read()
    check_dd(spans, ddisk)
    fsync = next(s for s in spans if s.name == "fsync" and s.service == "skas-kernel")
    listed = skas("trace", str(logs), "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if fsync.trace_id in ln)
    assert " fsync " in line and "kernel,ubd_io" in line
    shown = skas("trace", str(logs), fsync.trace_id[:12])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("fsync [kernel] +0.000ms") and "file.path=/f" in lines[0]
    assert any(ln.lstrip().startswith("ubd_io FLUSH [ubd_io]") for ln in lines)
    assert sum("links to" in ln for ln in lines) >= 16
    slowest = skas("trace", str(logs), "--slowest", "3").stdout.splitlines()
    assert len(slowest) == 4


def test_calls_the_sampler_leaves_out_make_no_spans_below_them(ddisk, tmp_path):
    """Sampling 0: no call is kept, and neither is the work under it (ext2,
    the page cache, ubd requests, ubd_io's side): nothing is exported but
    the metrics, which count every call."""
    logs = tmp_path / "logs"
    r = skas("run", "--log-dir", str(logs), "--trace", "--trace-sampling", "0",
             "--disk", str(ddisk), "--", *DD)
    assert r.returncode == 0, r.stderr
    assert Tail(logs / "traces").read() == []
    metrics = latest_metrics(logs / "traces")
    calls = {p["attributes"]["call"]: int(p["asInt"])
             for p in metrics["kernel"]["skas.syscalls"]}
    assert calls["write"] >= 16 and calls["fsync"] == 1, calls


def test_console_output_is_traced_into_sigio(ddisk, tmp_path):
    """A write(2) to the console: the kernel's console write under the
    call's span, and sigio's, from its arrival to its last byte out, under
    that, across the process boundary."""
    logs = tmp_path / "logs"
    r = skas("run", "--log-dir", str(logs), "--trace", "--disk", str(ddisk), "--",
             "/bin/busybox", "echo", "traced hello")
    assert r.returncode == 0 and r.stdout == "traced hello\n", r.stderr
    spans = Tail(logs / "traces").read()
    by_id = {s.span_id: s for s in spans}
    ours = [s for s in spans if s.service == "skas-sigio" and s.name == "sigio console write"]
    assert ours, {(s.service, s.name) for s in spans}
    sent = by_id[ours[0].parent_id]
    assert (sent.service, sent.name) == ("skas-kernel", "console write")
    assert sent.attributes["console.bytes"] == ours[0].attributes["console.bytes"] == 13
    call = by_id[sent.parent_id]
    assert (call.name, call.attributes["fd"], call.attributes["io.bytes"]) == ("write", 1, 13)


def test_an_execs_ops_are_traced_into_userspace(ddisk, tmp_path):
    """An execve's address-space ops carry its trace context: userspace's
    span of them is under the call's span, across the process boundary."""
    logs = tmp_path / "logs"
    r = skas("run", "--log-dir", str(logs), "--trace", "--disk", str(ddisk), "--",
             "/bin/busybox", "sh", "-c", "/bin/busybox true; echo ran")
    assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
    spans = Tail(logs / "traces").read()
    by_id = {s.span_id: s for s in spans}
    ops = [s for s in spans if s.service == "skas-userspace" and s.name == "userspace ops"]
    under_exec = [s for s in ops if s.parent_id in by_id and by_id[s.parent_id].name == "execve"]
    kinds = {s.attributes["ops.kinds"] for s in under_exec}
    assert "exec_stub" in kinds, {(s.service, s.name) for s in spans}
    assert any(k.startswith("mmap,") and k.endswith("set_regs") for k in kinds), kinds
    assert all(by_id[s.parent_id].trace_id == s.trace_id for s in under_exec)


def test_skas_trace_follow_lists_a_trace_once_it_is_complete(ddisk, tmp_path):
    """--follow started before the guest's dd: the fsync's trace is listed
    as it completes, and nothing from before it started is."""
    logs = tmp_path / "logs"
    (logs / "traces").mkdir(parents=True)
    guest = skas_popen("run", "-i", "--log-dir", str(logs), "--trace", "--disk", str(ddisk),
                       "--", "/bin/busybox", "sh", "-c", "read go; " + " ".join(DD) + "; read end",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    follow = subprocess.Popen(_command(("trace", str(logs), "--follow")), cwd=HERE.parent,
                              stdout=subprocess.PIPE)
    out = follow.stdout.fileno()          # read raw: a buffered reader hides lines from select

    def listed_until(word: bytes) -> bytes:
        got = b""
        deadline = time.monotonic() + WAIT
        while word not in got:
            assert time.monotonic() < deadline, got
            if select.select([out], [], [], 1)[0]:
                got += os.read(out, 65536)
        return got
    try:
        listed_until(b"TRACE")                             # the header: it is following
        guest.stdin.write(b"go\n")
        guest.stdin.flush()
        assert b" write " in listed_until(b" fsync ")
        guest.stdin.write(b"end\n")
        guest.stdin.close()
        assert guest.wait(WAIT) == 0
    finally:
        follow.terminate()
        follow.wait()
        if guest.poll() is None:
            guest.kill()
            guest.wait()


# --- OTLP ---------------------------------------------------------------------------------

class Receiver:
    """An OTLP/HTTP receiver: decodes each export with opentelemetry-proto."""

    def __init__(self):
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        self.spans: list[Span] = []
        self.metrics: list = []
        self.lock = threading.Lock()
        self.serve(trace_service_pb2, metrics_service_pb2)

    def got(self, traces=None, metrics=None) -> None:
        with self.lock:
            if traces is not None:
                self.spans += list(_spans(traces))
            if metrics is not None:
                self.metrics.append(metrics)

    def serve(self, trace_service_pb2, metrics_service_pb2) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    receiver.got(traces=trace_service_pb2.ExportTraceServiceRequest.FromString(
                        body))
                    reply = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    receiver.got(metrics=metrics_service_pb2.ExportMetricsServiceRequest
                                 .FromString(body))
                    reply = metrics_service_pb2.ExportMetricsServiceResponse()
                out = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, done) -> list[Span]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self.lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            time.sleep(0.1)
        return spans

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class GrpcReceiver(Receiver):
    """The same over OTLP/gRPC: the collector's two services on a grpc server."""

    def serve(self, trace_service_pb2, metrics_service_pb2) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                receiver.got(traces=request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                receiver.got(metrics=request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def close(self):
        self.server.stop(None)


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _spans(req):
    for rs in req.resource_spans:
        service = {a.key: _value(a.value) for a in rs.resource.attributes}["service.name"]
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                           service, s.start_time_unix_nano, s.end_time_unix_nano,
                           {a.key: _value(a.value) for a in s.attributes},
                           [(lk.trace_id.hex(), lk.span_id.hex()) for lk in s.links])


def _flushed(spans: list[Span]) -> bool:
    return any(s.name == "ubd_io FLUSH" for s in spans) and any(s.name == "fsync" for s in spans)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_dd_traced_over_otlp_http_arrives_complete(ddisk, receiver):
    r = skas("run", "--trace", "--disk", str(ddisk), "--", *DD,
             env={**_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                  "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert r.returncode == 0, r.stderr
    check_dd(receiver.wait_for(_flushed), ddisk)


def test_dd_traced_over_otlp_grpc_arrives_complete(ddisk):
    receiver = GrpcReceiver()
    try:
        r = skas("run", "--trace", "--disk", str(ddisk), "--", *DD,
                 env={**_env(), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
        assert r.returncode == 0, r.stderr
        check_dd(receiver.wait_for(_flushed), ddisk)
        assert receiver.metrics, "the metrics came over gRPC too"
    finally:
        receiver.close()


def _env() -> dict:
    return dict(os.environ)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_remote_ubd_io_on_tcp_with_curve_is_in_the_same_trace(ddisk, receiver, tmp_path):
    """ubd_io as a program of its own (its own config and run directory, as
    on another host), on tcp with CURVE keys: the kernel's spans and its
    are one trace per call."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("ubd_io", "kernel"):
        zmq.auth.create_certificates(keys, name)
    tcp = f"tcp://127.0.0.1:{_free_port()}"
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    image = tmp_path / "disk.img"
    shutil.copy(ddisk, image)
    guest, remote = (GuestConfig(name="tcpguest", run_dir=tmp_path / d, disks={"ubd0": str(image)},
                                 init=list(DD), console="log", endpoints={"ubd_io": tcp},
                                 curve={"kernel": str(keys / "kernel.key_secret"),
                                        "ubd_io": str(keys / "ubd_io.key")}, otel=otel)
                     for d in ("run", "remote"))
    remote.curve = {"ubd_io": str(keys / "ubd_io.key_secret"), "kernel": str(keys / "kernel.key")}
    for cfg in (guest, remote):
        cfg.make_run_dir()
        cfg.write()
    ubd_io = launch.start(remote, ("ubd_io",))
    try:
        procs = launch.start(guest, ("kernel", "userspace", "sigio"))
        try:
            assert launch.wait_guest(procs) == 0, launch.log_tail(guest, "kernel")
        finally:
            launch.stop(procs)
    finally:
        launch.stop(ubd_io)
    assert "CURVE" not in (remote.run_dir / "ubd_io.log").read_text()
    check_dd(receiver.wait_for(_flushed), image)
