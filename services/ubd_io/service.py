"""The ubd_io service's main loop."""
from __future__ import annotations

import errno
import logging
import os

import zmq

from common.config import GuestConfig
from common.protocol import Message
from common.service import Running
from common.transport import Endpoint

log = logging.getLogger("ubd_io")

MAX_REQUEST = 16 << 20   # bytes in one READ or WRITE


class Disks:
    """The open image files, by device number."""

    def __init__(self, disks: dict[str, str]):
        self.fds: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.names: dict[int, str] = {}
        for name, path in disks.items():
            if not name.startswith("ubd") or not name[3:].isdigit():
                raise ValueError(f"disk name {name!r} must be ubdN")
            dev = int(name[3:])
            self.fds[dev] = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            self.sizes[dev] = os.fstat(self.fds[dev]).st_size
            self.names[dev] = path

    def serve(self, op: str, dev: int, offset: int, length: int, data: bytes) -> tuple[int, bytes]:
        fd = self.fds.get(dev)
        if fd is None:
            return -errno.ENXIO, b""
        if offset < 0 or length < 0 or length > MAX_REQUEST:
            return -errno.EINVAL, b""
        try:
            if op == "READ":
                if offset + length > self.sizes[dev]:
                    return -errno.EIO, b""   # beyond the end of the device
                return 0, os.pread(fd, length, offset)
            if op == "WRITE":
                if len(data) != length or offset + length > self.sizes[dev]:
                    return -errno.EINVAL if len(data) != length else -errno.ENOSPC, b""
                os.pwrite(fd, data, offset)
                return 0, b""
            if op == "FLUSH":
                os.fsync(fd)
                return 0, b""
        except OSError as exc:
            log.error("ubd%d %s at %d+%d: %s", dev, op, offset, length, exc)
            return -(exc.errno or errno.EIO), b""
        return -errno.EOPNOTSUPP, b""


def run(cfg: GuestConfig) -> int:
    try:
        disks = Disks(cfg.disks)
    except (OSError, ValueError) as exc:
        log.error("cannot open the guest's disks: %s", exc)
        return 1
    endpoint = Endpoint(cfg.endpoints["ubd_io"], f"{cfg.name}/ubd_io")
    running = Running()
    served = 0
    log.info("serving %s", ", ".join(f"ubd{d}={p}" for d, p in disks.names.items()))
    while running:
        if not endpoint.sock.poll(200, zmq.POLLIN):
            continue
        for to, msg in endpoint.drain():
            served += 1
            reply(endpoint, to, msg, disks, served)
    for fd in disks.fds.values():
        os.fsync(fd)
    return 0


def reply(endpoint: Endpoint, to: bytes, msg: Message, disks: Disks, served: int) -> None:
    if msg.type == "block":
        status, data = disks.serve(msg["op"], msg["dev"], msg["offset"], msg["length"],
                                   msg["data"])
        endpoint.send("block_done", msg.id, {"status": status, "data": data}, to)
    elif msg.type == "ping":
        endpoint.send("pong", msg.id, {"service": "ubd_io"}, to)
    elif msg.type == "status":
        state = {"devices": {f"ubd{d}": {"path": p, "size": disks.sizes[d]}
                             for d, p in disks.names.items()}, "requests": served}
        endpoint.send("status_reply", msg.id, {"service": "ubd_io", "state": state}, to)
    else:
        endpoint.error(msg.id, f"ubd_io does not serve {msg.type!r}", to)
