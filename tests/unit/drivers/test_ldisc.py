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
