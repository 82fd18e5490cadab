"""A stand-in kernel for fuzzing userspace's link to its kernel: only a
kernel can send userspace its orders, so this one binds the kernel's
endpoint, takes userspace's hello, has it spawn task 1 (a real stub, so
orders for a live task reach the host), and then sends what the fuzzer
gives it.  A thread keeps the link busy between batches (userspace takes a
kernel silent for 1.5 s for dead)."""
from __future__ import annotations

import threading
import time

import zmq

from common import protocol
from common.transport import context

KEEPALIVE = 0.3          # seconds between this double's pings when the fuzzer is quiet
HELLO_WAIT = 30.0


class KernelDouble:
    def __init__(self, endpoint: str):
        self.sock = context().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # nothing dropped either way: a real kernel reads all userspace says,
        # and a pong dropped at a high-water mark reads as a silent kernel
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.bind(endpoint)
        self.lock = threading.Lock()      # the socket is the fuzzer's and the keepalive's
        self.route: bytes | None = None
        self.spawned = False
        self.stopped = threading.Event()

    def attach(self) -> None:
        """Wait for userspace's hello, spawn task 1, start the keepalive."""
        deadline = time.monotonic() + HELLO_WAIT
        while self.route is None or not self.spawned:
            if not self.sock.poll(int(max(0, deadline - time.monotonic()) * 1000)):
                raise TimeoutError("userspace never said hello and spawned task 1")
            route, raw = self.sock.recv_multipart()
            msg = protocol.decode(raw)
            if msg.type == "hello":
                self.route, self.spawned = route, False
                self.send([protocol.encode("spawn", 1, "fuzz/kernel", {"task": 1})])
            elif msg.type == "spawned" and msg["task"] == 1:
                self.spawned = True
        threading.Thread(target=self._keepalive, daemon=True).start()

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart([self.route, *frames], copy=False)

    def _keepalive(self) -> None:
        """A pong now and then, and what userspace said read (and dropped)
        between the fuzzer's batches, as a kernel's loop reads it."""
        while not self.stopped.wait(KEEPALIVE):
            with self.lock:
                self.send([protocol.encode("pong", 0, "fuzz/kernel", {"service": "kernel"})])
                while self.sock.poll(0):
                    self.sock.recv_multipart()

    def close(self) -> None:
        self.stopped.set()
        with self.lock:
            self.sock.close(linger=0)
