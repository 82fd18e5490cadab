"""A supervised guest's console line: what ``skas console`` attaches to.

In a nutshell: guest output goes into ``backlog`` (at most the config's
``console_backlog`` bytes no client has taken yet); past that sigio takes
no more and withholds its console_acks, so guest writes wait as on a tty
nobody reads: a slow or absent client slows the guest and loses nothing.
The attached client is sent output from where it last said it took
(``console_took``), at most ``WINDOW`` bytes ahead, so a slow client
slows sigio, not its memory.  What a client took is dropped from the
backlog, and its last ``SCREEN`` bytes kept: a client that attaches
gets that screenful first, then every byte no client took (also what
was sent to a client that went away without saying it took it).  One
client at a time: a new attach takes the line over, and the one before
is told (``console_detached``)."""
from __future__ import annotations

from common.transport import Endpoint

WINDOW = 64 << 10        # sent to the client ahead of what it took
PIECE = 16 << 10         # of output in one console_output
SCREEN = 8 << 10         # kept of what was taken, shown first on attach
MAX_MESSAGE = 256 << 10  # a client's message (an input piece is at most 64 KiB)
CLIENT_QUEUE = 64        # messages queued from or to a client


class ConsoleLine:
    def __init__(self, endpoint: Endpoint, backlog_max: int):
        self.ep = endpoint
        self.max = backlog_max
        self.backlog = bytearray()    # output from offset base that no client took
        self.base = 0
        self.sent = 0                 # the attached client has been sent up to here
        self.screen = bytearray()
        self.client: bytes | None = None

    def room(self) -> int:
        return max(self.max - len(self.backlog), 0)

    def put(self, data: bytes) -> int:
        """Guest output in; how much fits."""
        n = min(len(data), self.room())
        self.backlog += data[:n]
        self.push()
        return n

    def push(self) -> None:
        end = self.base + len(self.backlog)
        while self.client is not None and self.sent < end and self.sent - self.base < WINDOW:
            start = self.sent - self.base
            piece = bytes(self.backlog[start:start + min(PIECE, WINDOW - start)])
            self.ep.send("console_output", 0, {"at": self.sent, "data": piece}, self.client)
            self.sent += len(piece)

    def attach(self, to: bytes, id_: int) -> None:
        if self.client is not None and self.client != to:
            self.ep.send("console_detached", 0, {"reason": "another client attached"},
                         self.client)
        self.client, self.sent = to, self.base
        self.ep.send("console_attached", id_, {"screen": bytes(self.screen), "at": self.base}, to)
        self.push()

    def took(self, to: bytes, id_: int, upto: int) -> None:
        if to != self.client:
            self.ep.error(id_, "console_took: this client is not attached", to)
            return
        if not self.base <= upto <= self.sent:
            self.ep.error(id_, f"console_took: {upto} is not between {self.base} and "
                               f"{self.sent}, what was sent", to)
            return
        taken = upto - self.base
        self.screen += self.backlog[:taken]
        del self.screen[:-SCREEN]
        del self.backlog[:taken]
        self.base = upto
        self.push()

    def detach(self, to: bytes, reason: str | None = None) -> None:
        """The client goes (reason: sigio tells it why)."""
        if to == self.client:
            if reason is not None:
                self.ep.send("console_detached", 0, {"reason": reason}, to)
            self.client = None

    def state(self) -> dict:
        return {"attached": self.client is not None, "backlog": len(self.backlog),
                "taken": self.base}
