"""The ubd_io service's main loop: receive, queue, answer.  The loop itself
never does disk IO (the queue's workers do), so it always answers at once."""
from __future__ import annotations

import logging
import os

import zmq

from common import phases, privileges, tracing
from common.exits import CONFIG
from common.config import UBD_MAX, GuestConfig, parse_disk
from common.protocol import Message
from common.service import Running
from common.transport import Endpoint, keep_freed_memory
from services.ubd_io.block_queue import BlockQueue
from services.ubd_io.cow import CowError
from services.ubd_io.images import open_image
from services.ubd_io.journal import Journaled, JournalError

log = logging.getLogger("ubd_io")


def open_disk(path: str, backing: str | None = None) -> Journaled:
    """An image (or overlay) with its journal, what a dead ubd_io committed
    applied (services/ubd_io/journal.py)."""
    image = open_image(path, backing)
    try:
        return Journaled(image)
    except BaseException:
        image.close()
        raise


def open_disks(disks: dict[str, str]) -> dict[int, Journaled]:
    """The guest's disks by device number, from specs IMAGE or OVERLAY,BACKING."""
    images: dict[int, Journaled] = {}
    try:
        for name, spec in disks.items():
            if not name.startswith("ubd") or not name[3:].isdigit():
                raise ValueError(f"disk name {name!r} must be ubdN")
            images[int(name[3:])] = open_disk(*parse_disk(spec))
    except BaseException:
        for image in images.values():
            image.close()
        raise
    return images


def run(cfg: GuestConfig) -> int:
    try:
        images = open_disks(cfg.disks)
    except (OSError, ValueError, CowError, JournalError) as exc:
        log.error("cannot open the guest's disks: %s", exc)
        return CONFIG
    privileges.drop("ubd_io")          # with its images open, before zmq's thread
    address = cfg.endpoints["ubd_io"]
    try:
        endpoint = Endpoint(address, f"{cfg.name}/ubd_io", cfg.curve_files("ubd_io", "kernel"))
    except (ValueError, zmq.ZMQError) as exc:
        log.error("cannot serve at %s: %s", address, exc)
        return CONFIG
    keep_freed_memory()
    blocks = BlockQueue(images, cfg.ubd_queue)
    telemetry = tracing.start(cfg, "ubd_io")          # None when the guest does not trace
    if telemetry is not None:
        from services.ubd_io.tracing import RequestSpans
        blocks.spans = RequestSpans(telemetry, blocks)
    poller = zmq.Poller()
    poller.register(endpoint.sock, zmq.POLLIN)
    poller.register(blocks.fd, zmq.POLLIN)
    running = Running(endpoint)
    running.watch(poller)
    phases.mark("ubd_io", "serving")
    log.info("serving %s at %s", ", ".join(f"ubd{d}={i.path} ({i.kind})"
                                           for d, i in images.items()), address)
    while running:
        poller.poll(running.timeout())
        for to, msg in endpoint.drain():
            serve(endpoint, blocks, to, msg)
        answer(endpoint, blocks.completed())
    answer(endpoint, blocks.finish())
    for image in images.values():
        image.close()
    if telemetry is not None:
        telemetry.shutdown()
    return 0


def serve(endpoint: Endpoint, blocks: BlockQueue, to: bytes, msg: Message) -> None:
    if msg.type in ("block", "write_shared"):
        reply = blocks.add(to, msg)
        if reply:
            kind, body = reply
            endpoint.send(kind, msg.id, body, to)
    elif msg.type in ("disk_open", "disk_close", "disk_begin"):
        try:
            kind, body = begin(blocks, msg) if msg.type == "disk_begin" else hot_plug(blocks, msg)
        except (OSError, ValueError, CowError, JournalError) as exc:
            endpoint.error(msg.id, f"ubd{msg['dev']}: {_reason(exc)}", to)
            return
        endpoint.send(kind, msg.id, body, to)
    elif msg.type == "ping":
        endpoint.send("pong", msg.id, {"service": "ubd_io"}, to)
    elif msg.type == "status":
        state = {"devices": {f"ubd{d}": i.describe() for d, i in blocks.images.items()},
                 "outstanding": blocks.outstanding, "depth": blocks.depth, **blocks.stats}
        endpoint.send("status_reply", msg.id, {"service": "ubd_io", "state": state}, to)
    else:
        endpoint.error(msg.id, f"ubd_io does not serve {msg.type!r}", to)


def hot_plug(blocks: BlockQueue, msg: Message) -> tuple[str, dict]:
    """disk_open or disk_close, as UML's ubd_config/ubd_remove: the image
    is opened with what is left of this service's privileges, so a file it
    may not read is refused (EACCES) as any other that cannot be opened."""
    dev = msg["dev"]
    if not 0 <= dev < UBD_MAX:
        raise ValueError(f"no such device (ubd0 to ubd{UBD_MAX - 1})")
    if msg.type == "disk_close":
        blocks.unplug(dev).close()
        log.info("ubd%d removed", dev)
        return "disk_closed", {"dev": dev}
    if dev in blocks.images:
        raise ValueError(f"in use (serving {blocks.images[dev].path})")
    paths = [msg["path"], *([msg["backing"]] if msg["backing"] else [])]
    if not all(os.path.isabs(p) for p in paths):
        raise ValueError("image paths must be absolute")
    image = open_disk(*paths)
    image.drop_uncommitted()         # nobody's: this kernel has not written it yet
    blocks.plug(dev, image)
    log.info("ubd%d=%s (%s) plugged", dev, image.path, image.kind)
    return "disk_opened", {"dev": dev, "size": image.size, "kind": image.kind}


def begin(blocks: BlockQueue, msg: Message) -> tuple[str, dict]:
    """disk_begin: a kernel starts on dev, so what a dead one staged after
    its last commit point is dropped."""
    image = blocks.images.get(msg["dev"])
    if image is None:
        raise ValueError("no such device")
    dropped = image.drop_uncommitted()
    if dropped:
        log.info("ubd%d: dropped %d bytes a kernel staged and never committed",
                 msg["dev"], dropped)
    return "disk_begun", {"dev": msg["dev"], "dropped": dropped}


def _reason(exc: Exception) -> str:
    """What went wrong, as one line: an OSError's strerror and file."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)


def answer(endpoint: Endpoint, finished) -> None:
    for req, status, data in finished:
        endpoint.send("block_done", req.id, {"status": status, "data": data}, req.to)
