"""A ubd_io double: serves the guest's disks from memory (a copy read at
start), over the real protocol and socket.  Writes change only the copy.
A failing disk on demand: after SIGUSR1 every WRITE and FLUSH is answered
EIO (and changes nothing), after SIGUSR2 they are served again.

python -m tests.doubles.memory_ubd --guest-config FILE"""
from __future__ import annotations

import errno
import signal
import sys

from common.config import GuestConfig
from common.service import main
from common.transport import Endpoint


def run(cfg: GuestConfig) -> int:
    images = {int(name[3:]): bytearray(open(path, "rb").read()) for name, path in cfg.disks.items()}
    endpoint = Endpoint(cfg.endpoints["ubd_io"], f"{cfg.name}/memory_ubd")
    served = 0
    failing = False

    def fail(on: bool) -> None:
        nonlocal failing
        failing = on
        print("failing" if on else "healed", file=sys.stderr, flush=True)   # for the test to wait on
    signal.signal(signal.SIGTERM, lambda *_: exit(0))
    signal.signal(signal.SIGUSR1, lambda *_: fail(True))
    signal.signal(signal.SIGUSR2, lambda *_: fail(False))
    while True:
        if not endpoint.sock.poll(500):
            continue
        for to, msg in endpoint.drain():
            if msg.type == "ping":
                endpoint.send("pong", msg.id, {"service": "ubd_io"}, to)
            elif msg.type == "status":
                endpoint.send("status_reply", msg.id, {"service": "ubd_io",
                                                       "state": {"double": "memory", "requests": served}}, to)
            elif msg.type == "disk_begin":        # no journal: nothing to drop
                endpoint.send("disk_begun", msg.id, {"dev": msg["dev"], "dropped": 0}, to)
            elif msg.type == "block":
                served += 1
                image = images.get(msg["dev"])
                start, end = msg["offset"], msg["offset"] + msg["length"]
                if image is None or end > len(image) or failing and msg["op"] != "READ":
                    status, data = -errno.EIO, b""
                elif msg["op"] == "READ":
                    status, data = 0, bytes(image[start:end])
                elif msg["op"] in ("WRITE", "WRITE_FRESH"):
                    image[start:end] = msg["data"]
                    status, data = 0, b""
                else:
                    status, data = 0, b""
                endpoint.send("block_done", msg.id, {"status": status, "data": data}, to)
            else:
                endpoint.error(msg.id, f"memory_ubd does not serve {msg.type!r}", to)


if __name__ == "__main__":
    main("memory_ubd", run)
