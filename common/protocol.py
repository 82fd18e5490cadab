"""The wire protocol: every message the four services exchange.

In a nutshell: a message is a msgpack array
``[version, type, id, sender, traceparent, body]`` where ``body`` is a map
whose fields are fixed per type in ``MESSAGES`` below.  A reply carries the id
of the request it answers.  ``decode`` checks everything and raises
``ProtocolError`` with a reason that the receiver sends back in an ``error``
reply; nothing a peer sends can crash a service.

Nothing outside this module builds or parses an envelope.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from common.ops import TYPES as OP_TYPES

VERSION = 1

INT = (int,)
BYTES = (bytes,)
STR = (str,)
LIST = (list,)
DICT = (dict,)
BOOL = (bool,)


@dataclass(frozen=True)
class Spec:
    """One message type: who sends it, who answers, and its fields."""
    sender: str
    receiver: str
    fields: dict[str, tuple]
    doc: str


MESSAGES: dict[str, Spec] = {
    # any service <-> any service
    "ping": Spec("any", "any", {}, "liveness probe; answered by pong"),
    "pong": Spec("any", "any", {"service": STR}, "answer to ping"),
    "error": Spec("any", "any", {"reason": STR},
                  "a request could not be served (bad message, unknown type, failure)"),
    "status": Spec("any", "any", {}, "ask a service for its state; answered by status_reply"),
    "status_reply": Spec("any", "any", {"service": STR, "state": DICT}, "a service's state"),
    # userspace <-> kernel: the platform contract
    "hello": Spec("userspace", "kernel", {"pid": INT},
                  "userspace is up (its host pid); the kernel may start spawning tasks"),
    "spawn": Spec("kernel", "userspace", {"task": INT},
                  "start a fresh stub address space for task and keep it stopped"),
    "spawned": Spec("userspace", "kernel", {"task": INT, "pid": INT, "listener": BOOL},
                    "task runs as host pid: the answer to spawn (a stopped stub), or, "
                    "unasked, a clone child's, sent ahead of userspace's next message; "
                    "listener: the stub's seccomp listener was sent to the kernel's fd "
                    "socket (GuestConfig.fd_socket) for task"),
    "who": Spec("kernel", "userspace", {"pid": INT},
                "a call came through the listener from host pid, which the kernel "
                "does not know yet: announce the clone children now"),
    "syscall": Spec("userspace", "kernel",
                    {"task": INT, "nr": INT, "args": LIST, "rip": INT, "rsp": INT},
                    "task stopped in a trapped system call"),
    "ret": Spec("kernel", "userspace", {"task": INT, "value": INT},
                "skip the call on the host, return value, resume"),
    "host": Spec("kernel", "userspace", {"task": INT},
                 "run the call on the host as it is, resume"),
    "ops": Spec("kernel", "userspace",
                {"task": INT, "ops": LIST, "reply": BOOL, "value": INT},
                "run address-space ops in task (each a map whose fields are fixed "
                "per op in common/ops.py); then answer ops_done (reply) "
                "or finish the call with value and resume; an op failing in a "
                "batch with no reply kills the task (clone's: clone_failed)"),
    "ops_done": Spec("userspace", "kernel", {"task": INT, "results": LIST},
                     "results of each op in order, up to the first failure (-errno); "
                     "exec_stub's is a map {vdso, stack_top}; task stays stopped"),
    "op_refused": Spec("userspace", "kernel", {"task": INT, "index": INT, "reason": STR},
                       "op index of task's batch is not one common/ops.py declares "
                       "(reason names the op and the field): it failed with -EINVAL "
                       "without running, and what follows is that failure's (ops_done, "
                       "or the task killed); sent ahead of it"),
    "exited": Spec("userspace", "kernel",
                   {"task": INT, "status": INT, "usage": LIST},
                   "the host process of task is gone; its host wait status and the "
                   "resources it used, from the host's wait4: [utime us, stime us, "
                   "maxrss KiB, minor faults, major faults] (zeros if unknown)"),
    "kill": Spec("kernel", "userspace", {"task": INT}, "kill the host process of task"),
    "trap": Spec("userspace", "kernel", {"task": INT, "signo": INT, "code": INT, "addr": INT},
                 "task stopped outside a system call: at the kernel's interrupt (signo 0) "
                 "or by a host fault (its signal, si_code, si_addr); it stays stopped"),
    "interrupt": Spec("kernel", "userspace", {"task": INT},
                      "stop the running task and report a trap (a signal is waiting for "
                      "it); nothing if it is stopped already"),
    "clone_failed": Spec("userspace", "kernel", {"task": INT, "errno": INT},
                         "the host clone for new task failed; the caller got -errno"),
    "resume": Spec("kernel", "userspace", {"task": INT},
                   "let a stopped task run on from its registers (a new child after clone)"),
    # kernel <-> ubd_io
    "block": Spec("kernel", "ubd_io",
                  {"dev": INT, "op": STR, "offset": INT, "length": INT, "data": BYTES},
                  "a block request on device dev: READ, WRITE, WRITE_FRESH, FLUSH, COMMIT, "
                  "DISCARD or WRITE_ZEROES, by byte offset, length at most BLOCK_MAX; idempotent, "
                  "so it may be resent with the same id.  The writes between two commit "
                  "points (COMMIT, or FLUSH: a COMMIT made durable) reach the image as one "
                  "unit, at the second (services/ubd_io/journal.py); a WRITE_FRESH (blocks "
                  "the filesystem took since its last commit point from ones free at it) "
                  "goes to the image at once"),
    "write_shared": Spec("kernel", "ubd_io",
                         {"dev": INT, "offset": INT, "length": INT, "buffer": STR, "at": INT,
                          "fresh": BOOL},
                         "a WRITE (a WRITE_FRESH if fresh) whose data is the length bytes at byte at of the kernel's "
                         "shared buffer (common/shared_buffer.py), a memfd ubd_io opens by "
                         "its /proc path; answered as block is, or error if ubd_io cannot "
                         "use that buffer (the kernel then sends block)"),
    "block_done": Spec("ubd_io", "kernel", {"status": INT, "data": BYTES},
                       "0 or -errno, and the data read"),
    "busy": Spec("ubd_io", "kernel", {"outstanding": INT, "retry_ms": INT},
                 "the request was not queued (outstanding requests at the bound); "
                 "send it again after about retry_ms"),
    # kernel <-> sigio
    "console_write": Spec("kernel", "sigio", {"seq": INT, "data": BYTES},
                          "guest console output, numbered from 1 in order"),
    "console_ack": Spec("sigio", "kernel", {"seq": INT},
                        "every byte up to seq has been written to the host side"),
    # kernel -> ubd_io: hot-plugged disks (`skas ctl NAME config ubdN=...` / `remove ubdN`)
    "disk_open": Spec("kernel", "ubd_io", {"dev": INT, "path": STR, "backing": STR},
                      "serve device dev from image path (an overlay of backing when backing "
                      "is not empty, as IMAGE,BACKING of a --disk); answered disk_opened, or "
                      "error naming why (dev in use, no such file, not readable)"),
    "disk_opened": Spec("ubd_io", "kernel", {"dev": INT, "size": INT, "kind": STR},
                        "device dev is served: its size in bytes, image or cow"),
    "disk_close": Spec("kernel", "ubd_io", {"dev": INT},
                       "stop serving device dev (its image synced and closed); answered "
                       "disk_closed, or error if dev is not served"),
    "disk_closed": Spec("ubd_io", "kernel", {"dev": INT}, "device dev is no longer served"),
    "disk_begin": Spec("kernel", "ubd_io", {"dev": INT},
                       "a kernel starts to use device dev (at boot): the writes a dead one "
                       "made after its last commit point are dropped; answered disk_begun, "
                       "or error if dev is not served"),
    "disk_begun": Spec("ubd_io", "kernel", {"dev": INT, "dropped": INT},
                       "dev is the asker's: the bytes of the journal dropped"),
    # anyone -> kernel: management, as UML's mconsole (services/kernel/entry/mconsole.py)
    "ctl": Spec("any", "kernel", {"verb": STR, "args": LIST},
                "a management request: verb (version, halt, reboot, cad, sysrq, stop, go, "
                "log, proc, config, remove, help) and its arguments, each a string; "
                "answered ctl_reply"),
    "ctl_reply": Spec("kernel", "any", {"ok": BOOL, "text": STR, "data": DICT},
                      "what a ctl request did: ok, text for humans, and the same as data "
                      "for programs (the fields per verb, in docs/architecture.md)"),
    "console_input": Spec("sigio", "kernel", {"data": BYTES, "eof": BOOL},
                          "bytes typed on the host side (at most 64 KiB), then, with eof, "
                          "the end of input (a terminal console's is a hang-up); one at "
                          "a time: answered by console_input_ack once the line discipline "
                          "took all of data.  Also a console client's to sigio"),
    "console_input_ack": Spec("kernel", "sigio", {},
                              "all of a console_input's data is in the line discipline"),
    "console_winsize": Spec("sigio", "kernel", {"rows": INT, "cols": INT},
                            "the host side's window size (0..65535 each): TIOCSWINSZ's "
                            "effect, SIGWINCH to the foreground group; no answer unless "
                            "an error.  Also a console client's to sigio"),
    # console client (skas console) <-> sigio's console socket
    "console_attach": Spec("client", "sigio", {},
                           "take the console line (from any client attached before); "
                           "answered by console_attached, then console_output"),
    "console_attached": Spec("sigio", "client", {"screen": BYTES, "at": INT},
                             "the last screenful already delivered (to show first); "
                             "at: the offset of the output that follows"),
    "console_output": Spec("sigio", "client", {"at": INT, "data": BYTES},
                           "guest output from offset at; sigio sends at most a window "
                           "past what the client said it took"),
    "console_took": Spec("client", "sigio", {"upto": INT},
                         "the client has written out every byte before offset upto "
                         "(its credit: sigio may send a window more)"),
    "console_detach": Spec("client", "sigio", {}, "the client lets the line go"),
    "console_detached": Spec("sigio", "client", {"reason": STR},
                             "the line was taken from the client (another attached, the "
                             "guest halted)"),
}

CTL_ARGS_MAX = 16          # arguments in one ctl request
CTL_ARG_MAX = 4096         # characters in one of them

BLOCK_MAX = 16 << 20   # bytes in one block READ, WRITE, DISCARD or WRITE_ZEROES

OPS = tuple(OP_TYPES)   # the op types an ops message may carry


class ProtocolError(Exception):
    """A message that cannot be accepted; str(self) is the reason sent back."""


@dataclass
class Message:
    type: str
    id: int
    sender: str
    body: dict[str, Any]
    traceparent: str | None = None

    def __getitem__(self, field: str) -> Any:
        return self.body[field]


_packer = msgpack.Packer(use_bin_type=True)


def encode(type_: str, id_: int, sender: str, body: dict[str, Any] | None = None,
           traceparent: str | None = None) -> bytes:
    """Build one message; refuses (ProtocolError) what decode would refuse."""
    body = body or {}
    _check(type_, body)
    return _packer.pack([VERSION, type_, id_, sender, traceparent, body])


ENVELOPE = "envelope must be a 6-element array [version, type, id, sender, traceparent, body]"


ARRAY_HEADER_MAX = 5         # msgpack's array 32: a byte and four of length


def _array_header(raw: bytes, whole: bool = False) -> tuple[int, msgpack.Unpacker] | None:
    """The length of the array raw starts with and an unpacker past its
    header (fed only the header's bytes unless whole: feeding copies, and
    a block's data in a message is up to 16 MiB), or None if raw does not
    start with one: a frame that is not an envelope is refused by its
    first bytes, not after decoding a million elements."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw if whole else memoryview(raw)[:ARRAY_HEADER_MAX])
    try:
        return unpacker.read_array_header(), unpacker
    except Exception:         # msgpack raises several unrelated types
        return None


def decode(raw: bytes) -> Message:
    """Parse and validate one message, or raise ProtocolError saying why."""
    header = _array_header(raw)
    if header is None:
        raise ProtocolError(f"not msgpack, or not an array: {ENVELOPE}")
    if header[0] != 6:
        raise ProtocolError(ENVELOPE)
    try:
        frame = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"not msgpack: {exc.__class__.__name__}") from None
    version, type_, id_, sender, traceparent, body = frame
    if version != VERSION:
        raise ProtocolError(f"protocol version {version!r} not supported (this is {VERSION})")
    if not isinstance(type_, str):
        raise ProtocolError("message type must be a string")
    if not isinstance(id_, int) or isinstance(id_, bool):
        raise ProtocolError("request id must be an integer")
    if not isinstance(sender, str):
        raise ProtocolError("sender must be a string")
    if traceparent is not None and not isinstance(traceparent, str):
        raise ProtocolError("traceparent must be a string or nil")
    if not isinstance(body, dict):
        raise ProtocolError("body must be a map")
    _check(type_, body)
    return Message(type_, id_, sender, body, traceparent)


def request_id(raw: bytes) -> int:
    """Best-effort id of a message that failed to decode, for the error reply:
    the third element of the array it starts with, if an integer (not a
    bool, which msgpack tells apart and decode refuses)."""
    header = _array_header(raw, whole=True)
    try:
        if header is not None and header[0] > 2:
            unpacker = header[1]
            unpacker.skip()
            unpacker.skip()
            id_ = unpacker.unpack()
            if type(id_) is int:
                return id_
    except Exception:         # msgpack raises several unrelated types
        pass
    return 0


def _check(type_: str, body: dict[str, Any]) -> None:
    spec = MESSAGES.get(type_)
    if spec is None:
        raise ProtocolError(f"unknown message type {type_!r}")
    for name, types in spec.fields.items():
        if name not in body:
            raise ProtocolError(f"{type_}: missing field {name!r}")
        value = body[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{type_}: field {name!r} must be {types[0].__name__}")
    extra = body.keys() - spec.fields.keys()
    if extra:
        raise ProtocolError(f"{type_}: unknown field(s) {sorted(extra)}")
