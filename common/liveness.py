"""Whether the peer at the other end of the kernel–userspace link is alive.

A peer that dies closes its socket, and the other side sees the end of the
file at once.  A peer that hangs (SIGSTOP, a loop that never returns)
keeps it open, so while the link carries work each side pings (userspace)
or answers (the kernel), and a silence longer than the limit ends the
guest.  An idle guest's link carries nothing: once QUIET seconds have
passed without a message that is not a heartbeat, nobody pings and nobody
watches, so the guest's services sleep in the host kernel until something
happens; the first message after that starts the watch again, counting
the silence from it.  A peer that hung while all was quiet is found out
as soon as the guest needs it, and that is the first time its hanging
matters."""
from __future__ import annotations

HEARTBEATS = ("ping", "pong")
QUIET = 3.0      # seconds of no work after which the link is idle: twice the silence
                 # limit, so the pings outlast every silence the other side would judge


class Liveness:
    """One side's view of the link: when it last heard the peer, when the
    link last carried work.  ``woken`` is called when an idle link carries
    work again (the kernel's watch waits for that)."""

    def __init__(self, silence: float, now: float, woken=None) -> None:
        self.silence = silence
        self.heard = self.worked = now
        self.woken = woken

    def sent(self, now: float) -> None:
        """A message that is not a heartbeat went to the peer."""
        if now - self.worked >= QUIET:
            self.heard = now          # the silence counts from here, not from the idle time
            if self.woken is not None:
                self.woken()
        self.worked = now

    def received(self, now: float, kind: str) -> None:
        self.heard = now
        if kind not in HEARTBEATS:
            self.sent(now)

    def busy(self, now: float) -> bool:
        return now - self.worked < QUIET

    def silent_for(self, now: float) -> float:
        """How long the peer has been silent past the limit while the link
        was busy; 0 when it is alive or the link idle."""
        quiet = now - self.heard
        return quiet if quiet > self.silence and self.busy(now) else 0.0
