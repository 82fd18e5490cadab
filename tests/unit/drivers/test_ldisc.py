"""N_TTY's corners the pty transcripts do not reach, on a line discipline
with a stand-in terminal: kill without ECHOKE, IXON's stop and start, input
moving between canonical and raw, and the 4095-byte bound both ways."""
from __future__ import annotations

from dataclasses import replace

from services.kernel.abi.termbits import ECHOKE, ICANON, IXANY, N_TTY_BUF_SIZE
from services.kernel.drivers.tty.ldisc import LineDiscipline
from services.kernel.drivers.tty.termios import Termios


class Terminal:
    def __init__(self, **flags):
        self.termios = replace(Termios(), **flags)
        self.echoed = bytearray()
        self.signals: list[int] = []
        self.stopped = False
        self.ldisc = LineDiscipline(self)

    def echo(self, data: bytes) -> None:
        out, _ = self.ldisc.opost(data, 1 << 20)
        self.echoed += out

    def isig(self, sig: int) -> None:
        self.signals.append(sig)
        self.ldisc.flush()

    def flow(self, stopped: bool) -> None:
        self.stopped = stopped


def test_kill_without_echoke_echoes_the_character_and_a_newline():
    tty = Terminal(lflag=Termios().lflag & ~ECHOKE)
    tty.ldisc.receive(b"abc\x15d\n")
    assert bytes(tty.echoed) == b"abc^U\r\nd\r\n"
    assert tty.ldisc.take_line(100) == b"d\n"


def test_ixon_stops_and_starts_output_and_ixany_restarts_it():
    tty = Terminal()
    tty.ldisc.receive(b"\x13")
    assert tty.stopped
    tty.ldisc.receive(b"x")
    assert tty.stopped                     # only ^Q without IXANY
    tty.ldisc.receive(b"\x11")
    assert not tty.stopped
    tty.termios.iflag |= IXANY
    tty.ldisc.receive(b"\x13y")
    assert not tty.stopped
    assert tty.ldisc.line == bytearray(b"xy")


def test_switching_modes_moves_input():
    tty = Terminal()
    tty.ldisc.receive(b"one\ntw")
    old = tty.termios
    tty.termios = replace(old, lflag=old.lflag & ~ICANON)
    tty.ldisc.set_termios(old)
    assert tty.ldisc.take_raw(100) == b"one\ntw"
    tty.ldisc.receive(b"raw")
    old = tty.termios
    tty.termios = replace(old, lflag=old.lflag | ICANON)
    tty.ldisc.set_termios(old)
    assert tty.ldisc.readable() and tty.ldisc.take_line(100) == b"raw"


def test_input_is_bounded_both_ways():
    tty = Terminal()
    flood = b"a" * (3 * N_TTY_BUF_SIZE)
    assert tty.ldisc.receive(flood) == len(flood)      # one line fills it: dropped
    assert tty.ldisc.held == N_TTY_BUF_SIZE - 1
    assert tty.ldisc.receive(b"\nmore") == 1           # a line waits: the writer must
    assert tty.ldisc.inq() == N_TTY_BUF_SIZE
    old = tty.termios
    tty.termios = replace(old, lflag=old.lflag & ~ICANON)
    tty.ldisc.set_termios(old)
    tty.ldisc.take_raw(N_TTY_BUF_SIZE)
    assert tty.ldisc.receive(flood) == N_TTY_BUF_SIZE - 1


def _per_byte(tty, data: bytes) -> int:
    """receive as it was: every byte through _char (the reference)."""
    ldisc = tty.ldisc
    for i, c in enumerate(data):
        if not ldisc.room():
            return i
        ldisc._char(c)
    return len(data)


def test_a_full_line_passes_over_ordinary_bytes_whole_as_byte_by_byte_would():
    """Past a line that fills the buffer, ordinary bytes are dropped a run
    at a time, and what that leaves (lines, echo, signals, flow, count
    taken) is what taking them one by one leaves, on inputs with every
    kind of special byte in them (ISTRIP's high bit too), across flags."""
    import random
    from services.kernel.abi.termbits import ISTRIP, IXON
    from services.kernel.drivers.tty import ldisc as ldisc_mod
    rng = random.Random(18)
    skips = []
    specials = ldisc_mod._specials
    ldisc_mod._specials = lambda cc: (skips.append(1), specials(cc))[1]
    alphabet = b"ab\x80\x8a" + bytes(range(0, 32)) + b"\x7f\xe1\x83"
    for case in range(60):
        flags = {"iflag": Termios().iflag | (ISTRIP if case % 3 == 0 else 0)
                 | (IXANY if case % 4 == 0 else 0) & ~(IXON if case % 5 == 0 else 0)}
        odds = (0.0005, 0.002, 0.02)[case % 3]
        data = bytes(rng.choice(alphabet) if rng.random() < odds else ord("x")
                     for _ in range(rng.randrange(4500, 9000)))
        fast, slow = Terminal(**flags), Terminal(**flags)
        slow.ldisc.receive = lambda d, t=slow: _per_byte(t, d)
        for at in range(0, len(data), 2000):
            taken = fast.ldisc.receive(data[at:at + 2000]), slow.ldisc.receive(data[at:at + 2000])
            assert taken[0] == taken[1], case
        a, b = fast.ldisc, slow.ldisc
        assert (list(a.lines), a.line, a.held, a.lnext) == (list(b.lines), b.line, b.held, b.lnext)
        assert (fast.echoed, fast.signals, fast.stopped) == (slow.echoed, slow.signals, slow.stopped)
    ldisc_mod._specials = specials
    assert len(skips) >= 20                  # the full-line path was taken, often


def test_64_kib_into_a_full_line_is_a_handful_of_byte_steps():
    tty = Terminal()
    steps = []
    char = tty.ldisc._char
    tty.ldisc._char = lambda c: (steps.append(c), char(c))
    assert tty.ldisc.receive(b"y" * N_TTY_BUF_SIZE + b"z" * (64 << 10) + b"\n") > 64 << 10
    assert len(steps) == N_TTY_BUF_SIZE - 1 + 1       # the line's bytes, then its end
    assert tty.ldisc.take_line(1 << 20) == b"y" * (N_TTY_BUF_SIZE - 1) + b"\n"
