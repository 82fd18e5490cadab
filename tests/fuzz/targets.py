"""The services under fuzz, as real processes on their real sockets, and
the checks that say each survived.

kernel and userspace are fuzzed while a real guest runs (a shell writing,
reading and printing a count): the fuzzer is a stranger on the kernel's
endpoint, or on userspace's control endpoint, and the guest must run to its
normal end with its normal output.  userspace-link is userspace alone, its
kernel a double (kernel_double.py) that sends it the fuzz as orders.
ubd_io and sigio are fuzzed alone, as
what a stranger sends them would be the guest's disk and console: ubd_io
serves a scratch image of its own.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import zmq

from common import protocol
from common.config import GuestConfig
from common.transport import context
from deploy import launch

from .frames import refused
from .kernel_double import KernelDouble

TARGETS = ("kernel", "userspace", "userspace-link", "ubd_io", "sigio")

ANSWER_WAIT = 30.0       # seconds a service may take to answer the ping after a batch
GUEST_WAIT = 60.0        # seconds past its own length a guest may take to end
LOG_ALARMS = ("Traceback", "never retrieved")
GUEST_TICK = 0.1         # seconds between the guest's counts


class Failure(AssertionError):
    """A service crashed, hung, logged a traceback, answered wrongly, or its
    guest did not end as it should."""


def guest_script(ticks: int) -> list[str]:
    """A guest that writes, reads back and prints 1..ticks, one a tick."""
    return ["/bin/busybox", "sh", "-c",
            f"i=0; while [ $i -lt {ticks} ]; do i=$((i+1)); echo $i > /tmp/fuzz; "
            f"cat /tmp/fuzz; sleep {GUEST_TICK}; done"]


def guest_output(ticks: int) -> str:
    return "".join(f"{i}\n" for i in range(1, ticks + 1))


class Target:
    """One service under fuzz, its guest's other services beside it (or none).
    A round is one guest's life (kernel, userspace) or the whole run."""

    def __init__(self, service: str, work: Path, disk: Path, seconds: float = 10):
        self.service = service
        self.work = work
        self.disk = disk
        self.ticks = round(seconds / GUEST_TICK)
        self.with_guest = service in ("kernel", "userspace")
        self.kernel: KernelDouble | None = None
        self.rounds = 0
        self.cfg: GuestConfig | None = None
        self.procs: dict = {}
        self.log_read: dict[Path, int] = {}      # how far each log was checked

    def start(self) -> None:
        self.rounds += 1
        run_dir = self.work / f"round{self.rounds}"
        disk = self.disk
        if self.service == "ubd_io":           # it is written to at random
            disk = self.work / "scratch.img"
            if not disk.exists():
                self.work.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.disk, disk)
        link = self.service == "userspace-link"
        # a name of its own: its guest processes get a host uid of their own, and
        # with it their own RLIMIT_NPROC (targets fuzzed at once share no limit)
        self.cfg = GuestConfig(name=f"fuzz-{self.service}", run_dir=run_dir, disks={"ubd0": str(disk)},
                               init=guest_script(self.ticks), console="log",
                               notify=not link, max_tasks=32)  # its stubs: no listener, few
        self.cfg.make_run_dir()
        self.cfg.write()
        if link:
            self.kernel = KernelDouble(self.cfg.endpoints["kernel"])
        self.procs = launch.start(self.cfg, launch.SERVICES if self.with_guest
                                  else ("userspace",) if link else (self.service,))
        if link:
            self.kernel.attach()
        if self.with_guest:                     # a stranger comes once the guest runs
            self.wait_for(lambda: self.console().startswith("1\n"), "the guest to start")

    def fuzzer(self) -> Fuzzer:
        """The stranger's socket on the service's endpoint, or the kernel double."""
        if self.kernel is not None:
            return Fuzzer(self.kernel.sock, "userspace's kernel link", self.kernel.route,
                          self.kernel.lock)
        sock = context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, int(ANSWER_WAIT * 1000))   # a full queue, for so long: hung
        sock.connect(self.cfg.endpoints[self.service])
        return Fuzzer(sock, self.cfg.endpoints[self.service])

    def console(self) -> str:
        try:
            # what the guest echoed of fuzzed console input need not be UTF-8
            return self.cfg.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def time_left(self) -> float:
        """Seconds this round's guest will at least run on (its ticks not yet
        printed: a tick is slower than GUEST_TICK on a busy host, never faster)."""
        if not self.with_guest:
            return float("inf")
        return (self.ticks - self.console().count("\n")) * GUEST_TICK

    def wait_for(self, done, what: str) -> None:
        deadline = time.monotonic() + GUEST_WAIT
        while not done():
            if time.monotonic() > deadline:
                raise Failure(f"{self.service}: waited {GUEST_WAIT:.0f}s for {what}\n"
                              + self.logs())
            self.check_alive()
            time.sleep(0.05)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None and not (self.with_guest and name == "kernel"
                                             and p.returncode == 0):
                raise Failure(f"{name} exited with {p.returncode}\n" + self.logs())

    def check(self) -> None:
        """After a batch: every service alive, no new traceback in a log."""
        self.check_alive()
        self.check_logs()

    def check_logs(self) -> None:
        for log in sorted(self.cfg.run_dir.glob("*.log")):
            with open(log, "rb") as f:
                f.seek(self.log_read.get(log, 0))
                text = f.read().decode(errors="replace")
                self.log_read[log] = f.tell()
            for alarm in LOG_ALARMS:
                if alarm in text:
                    at = text.index(alarm)
                    raise Failure(f"{log.name} holds {alarm!r}:\n{text[max(0, at - 500):at + 3000]}")

    def stacks(self) -> str:
        """Where each service's threads are (gdb's py-bt), to say what a hang waits on."""
        out = []
        for name, p in self.procs.items():
            try:
                bt = subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-iex",
                                     "add-auto-load-safe-path /", "-ex", "thread apply all py-bt"],
                                    capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.TimeoutExpired) as exc:
                bt = f"(no stack: {exc})"
            out.append(f"--- {name}'s threads\n" + "\n".join(
                line for line in bt.splitlines() if line.startswith(("Thread", "  File"))))
        return "\n".join(out)

    def logs(self) -> str:
        return "\n".join(f"--- {s}.log\n{launch.log_tail(self.cfg, s)}" for s in self.procs)

    def stop(self) -> None:
        launch.stop(self.procs)
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None

    def finish(self) -> None:
        """The round's end: its guest ended normally, every service as it should."""
        try:
            if self.with_guest:
                try:
                    code = self.procs["kernel"].wait(self.ticks * GUEST_TICK + GUEST_WAIT)
                except Exception:
                    raise Failure("the guest did not end\n" + self.logs()) from None
                if code != 0 or self.console() != guest_output(self.ticks):
                    raise Failure(f"the guest ended with {code} and printed "
                                  f"{self.console()[-200:]!r}\n" + self.logs())
            else:
                self.check_alive()
        finally:
            self.stop()
        self.check_logs()


class Fuzzer:
    """A stranger's socket on a service's endpoint (or the kernel double's,
    with userspace's route): sends what it is given, reads what comes back,
    and asks ping after each batch."""

    def __init__(self, sock: zmq.Socket, name: str, route: bytes | None = None,
                 lock: threading.Lock | None = None):
        self.sock = sock
        self.endpoint = name
        self.route = [route] if route is not None else []
        self.lock = lock or threading.Lock()
        self.pings = 0
        self.first_ping = 1
        self.sent = 0
        self.errors = 0

    def batch(self, messages: list[list[bytes]], flood: bool = False) -> None:
        """Send every message (reading replies as they come, unless flooding),
        then ping: Failure if no pong comes, if a reply is not a message, or
        if fewer errors came than messages the protocol refuses."""
        must_refuse = 0 if flood else sum(map(refused, messages))
        before = self.errors
        with self.lock:
            for frames in messages:
                try:
                    self.sock.send_multipart(self.route + frames, copy=False)
                except zmq.Again:
                    raise Failure(f"{self.endpoint}: took nothing for {ANSWER_WAIT:.0f}s "
                                  "(a hang)") from None
                if not flood:
                    self._read(None)
            self.sent += len(messages)
            self.first_ping = self.pings + 1
            deadline = time.monotonic() + ANSWER_WAIT
            while True:   # pinged again each second: past a flood, ZeroMQ may drop a pong
                self.pings += 1
                ping = protocol.encode("ping", -self.pings, "fuzz", {})  # an id never drawn
                self.sock.send_multipart(self.route + [ping])
                if self._read(min(deadline, time.monotonic() + 1)):
                    break
                if time.monotonic() >= deadline:
                    raise Failure(f"{self.endpoint}: no pong in {ANSWER_WAIT:.0f}s (a hang)")
        if self.errors - before < must_refuse:
            raise Failure(f"{self.endpoint}: {must_refuse} messages refused, "
                          f"{self.errors - before} error replies")

    def _read(self, until: float | None) -> bool:
        """Read the replies waiting (or coming until then); True once a pong
        to this batch's pings came."""
        while True:
            if until is not None and not self.sock.poll(max(0, int((until - time.monotonic())
                                                                  * 1000))):
                return False
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            if len(frames) != len(self.route) + 1:
                raise Failure(f"{self.endpoint}: a reply of {len(frames)} frames")
            raw = frames[-1]
            try:
                reply = protocol.decode(raw)
            except protocol.ProtocolError as exc:
                raise Failure(f"{self.endpoint}: a reply that is not a message ({exc}): "
                              f"{raw[:200]!r}") from None
            if reply.type == "pong" and -self.pings <= reply.id <= -self.first_ping:
                return True
            self.errors += reply.type == "error"

    def close(self) -> None:
        if not self.route:          # the double's socket is the double's to close
            self.sock.close(linger=0)
