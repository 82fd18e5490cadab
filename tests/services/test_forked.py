"""Services forked from skas run's own process (deploy/forked.py), given
their endpoints' sockets bound beforehand (common/activation.py).

A fork keeps one thread and no usable zmq context, so each case forks
from a fresh interpreter (as skas run is), not from the test's."""
from __future__ import annotations

import subprocess
import sys

from conftest import HERE, make_config

LAUNCHER = """
import os, signal, subprocess, sys
from pathlib import Path
import zmq
from common import activation, protocol
from common.config import load
from deploy import forked

if sys.argv[3].startswith("prefork"):
    forked.prefork("sigio", "services.sigio.service")
    assert forked._early["sigio"]
    if sys.argv[3] == "prefork unused":       # skas done without it: its socket's end
        proc, sock = forked._early.pop("sigio")
        sock.close()
        print(proc.wait(30))
        sys.exit()
config, log = Path(sys.argv[1]), os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
if sys.argv[3] == "unreadable config":
    print(forked.start("sigio", config, log, False).wait())
    sys.exit()
endpoint = load(config).endpoints["sigio"]
sock = activation.listen(endpoint[len("ipc://"):])
bound = os.stat(endpoint[len("ipc://"):]).st_ino
dealer = zmq.Context().socket(zmq.DEALER)    # before the service runs: no retry needed
dealer.connect(endpoint)
dealer.send(protocol.encode("ping", 7, "test", {}))
early = forked._early["sigio"][0].pid if "sigio" in forked._early else None
service = forked.start("sigio", config, log, False, sock)
sock.close()
assert early in (None, service.pid) and not forked._early, "not the child forked ahead"
assert dealer.poll(30000), "no pong"
print(protocol.decode(dealer.recv()).type, os.stat(endpoint[len("ipc://"):]).st_ino == bound)
try:
    service.wait(0.05)
except subprocess.TimeoutExpired:
    print("serving")
service.send_signal(signal.SIGTERM)
print(service.wait(30))
"""


def launch(tmp_path, config, case: str) -> tuple[list[str], str]:
    log = tmp_path / "sigio.log"
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(config), str(log), case],
                         cwd=HERE.parent, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), log.read_text() if log.exists() else ""


def test_a_forked_service_that_cannot_start_exits_1_with_the_reason_in_its_log(tmp_path):
    printed, log = launch(tmp_path, tmp_path / "missing.toml", "unreadable config")
    assert printed == ["1"]
    assert "sigio: cannot read guest config" in log and "missing.toml" in log


def test_a_forked_service_serves_the_socket_it_is_given_and_stops_on_sigterm(tmp_path, disk):
    cfg = make_config(tmp_path, disk, ["/bin/true"])
    printed, log = launch(tmp_path, cfg.path, "serve")
    # a ping sent before the service ran is answered, on the socket bound for it
    assert printed == ["pong", "True", "serving", "0"], log


def test_a_service_forked_ahead_serves_once_started_and_stops_on_sigterm(tmp_path, disk):
    """prefork: the service forked before its config exists (skas run's
    kernel, while skas parses its options) gets its config, log and socket
    from start, and is then the same service."""
    cfg = make_config(tmp_path, disk, ["/bin/true"])
    printed, log = launch(tmp_path, cfg.path, "prefork serve")
    assert printed == ["pong", "True", "serving", "0"], log


def test_a_service_forked_ahead_and_never_started_exits_with_skas(tmp_path):
    """skas failing or done before it starts the service (skas run with a
    bad option): the child forked ahead reads its socket's end and exits 0
    by itself, with skas still alive (not by PDEATHSIG's SIGTERM, which
    only a skas that dies gives it)."""
    printed, _ = launch(tmp_path, tmp_path / "unused.toml", "prefork unused")
    assert printed == ["0"]


def test_importing_the_cli_leaves_collection_on():
    """deploy/cli.py turns the cyclic collector off for its own imports only:
    a program that imports it (a test, a tool) keeps collecting."""
    out = subprocess.run([sys.executable, "-c", "import gc, deploy.cli; print(gc.isenabled())"],
                         capture_output=True, text=True, cwd=HERE.parent, check=True).stdout
    assert out.strip() == "True"
