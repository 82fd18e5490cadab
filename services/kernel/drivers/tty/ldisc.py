"""N_TTY, the line discipline: what a terminal's input becomes before a
read sees it, and what a write becomes on the way out.

In a nutshell: ``receive`` takes the bytes typed (a pty master's writes,
later the console's input) one at a time as Linux's n_tty_receive_buf:
ISTRIP, IXON's stop and start, ISIG's signal characters, the CR/NL maps,
then in canonical mode the editing characters (ERASE, KILL, WERASE,
LNEXT, REPRINT) and the line ends (NL, EOL, EOL2, EOF), echoing as the
ECHO flags say.  Completed lines wait in ``lines``, each with its end
(EOF is kept as a NUL, which a read drops, as Linux's __DISABLED_CHAR);
noncanonical input waits in ``raw``.  At most N_TTY_BUF_SIZE - 1 bytes
are held: past that a receive takes nothing (the writer waits), but for a
canonical line that fills the buffer alone, which takes and drops all
but its end (so it can still end).  ``opost`` is the output side (OPOST, ONLCR, OCRNL, ONOCR,
ONLRET, tabs), with the column it needs."""
from __future__ import annotations

import functools
import re
from collections import deque

from services.kernel.abi.signal import SIGINT, SIGQUIT, SIGTSTP
from services.kernel.abi.termbits import (
    ECHO, ECHOCTL, ECHOE, ECHOK, ECHOKE, ECHONL, ICANON, ICRNL, IEXTEN, IGNCR, INLCR, ISIG,
    ISTRIP, IUTF8, IXANY, IXON, N_TTY_BUF_SIZE, OCRNL, OLCUC, ONLCR, ONLRET, ONOCR, OPOST,
    TABDLY, VEOF, VEOL, VEOL2, VERASE, VINTR, VKILL, VLNEXT, VQUIT, VREPRINT, VSTART, VSTOP,
    VSUSP, VWERASE, XTABS)

HOLD = N_TTY_BUF_SIZE - 1
ERASE, WERASE, KILL = 0, 1, 2


def _cntrl(c: int) -> bool:
    return c < 32 or c == 127


@functools.lru_cache(maxsize=64)
def _specials(cc: bytes) -> re.Pattern:
    """The bytes ``_char`` may do more with than store (whatever the flags
    say, and with ISTRIP's high bit either way): every other one is
    dropped unechoed once a canonical line fills the buffer."""
    chars = {10, 13} | {cc[i] for i in (VSTART, VSTOP, VINTR, VQUIT, VSUSP, VERASE, VKILL,
                                          VWERASE, VLNEXT, VREPRINT, VEOF, VEOL, VEOL2)}
    chars |= {c | 0x80 for c in chars}
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(chars)) + b"]")


class LineDiscipline:
    """One terminal's N_TTY state.  Its tty gives ``termios`` and takes
    ``echo(bytes)`` (output that bypasses writers), ``isig(sig)`` and
    ``flow(stopped)``."""

    def __init__(self, tty) -> None:
        self.tty = tty
        self.lines: deque[bytearray] = deque()   # canonical: completed lines, ends and all
        self.line = bytearray()                  # canonical: the line being edited
        self.raw = bytearray()                   # noncanonical input
        self.lnext = False                       # the next byte is taken literally
        self.column = 0                          # of the output, for ONOCR and tabs
        self.held = 0                            # bytes in lines, line and raw

    # --- what readers see -------------------------------------------------------
    def readable(self) -> bool:
        """Whether a read would return now (a line, or any byte when raw)."""
        return bool(self.lines) if self.canonical else bool(self.raw)

    @property
    def canonical(self) -> bool:
        return bool(self.tty.termios.lflag & ICANON)

    def inq(self) -> int:
        """TIOCINQ: the bytes of completed lines (EOF marks not counted), or all raw."""
        if not self.canonical:
            return len(self.raw)
        return sum(len(ln) - (ln[-1:] == b"\0") for ln in self.lines)

    def take_line(self, count: int) -> bytes:
        """A canonical read: up to count bytes of the first line; its end
        goes with its last byte, and a NUL end (EOF) is not returned."""
        line = self.lines[0]
        n = min(count, len(line))
        out = bytes(line[:n])
        if n == len(line):
            self.lines.popleft()
            if out.endswith(b"\0"):
                out = out[:-1]
        else:
            del line[:n]
        self.held -= n
        return out

    def take_raw(self, count: int) -> bytes:
        out = bytes(self.raw[:count])
        del self.raw[:count]
        self.held -= len(out)
        return out

    def flush(self) -> None:
        """Drop all input (TCIFLUSH, a signal character without NOFLSH)."""
        self.lines.clear()
        self.line.clear()
        self.raw.clear()
        self.held = 0
        self.lnext = False

    def set_termios(self, old) -> None:
        """ICANON switched: canonical input becomes raw input, or raw input a line."""
        now = self.canonical
        if now == bool(old.lflag & ICANON):
            return
        if now:
            if self.raw:
                self.lines.append(self.raw)
                self.raw = bytearray()
        else:
            for ln in self.lines:
                self.raw += ln[:-1] if ln.endswith(b"\0") else ln
            self.raw += self.line
            self.lines.clear()
            self.line = bytearray()
            self.held = len(self.raw)

    # --- input ------------------------------------------------------------------
    def room(self) -> bool:
        """Whether a typed byte is taken now (Linux's receive_room)."""
        return self.held < HOLD or self.canonical and not self.lines

    def receive(self, data: bytes) -> int:
        """Take typed bytes; how many were taken (fewer once it is full).
        A canonical line that fills the buffer drops the ordinary bytes
        after it unechoed, until one that means something (a line end, an
        editing or a signal character): such a run is passed over whole,
        not a byte at a time (a 64 KiB write into a full line took 75 ms)."""
        i, n = 0, len(data)
        while i < n:
            if not self.room():
                return i
            if self.held >= HOLD and not self.lnext and self.canonical:
                found = _specials(self.tty.termios.cc).search(data, i)
                end = found.start() if found else n
                if end > i:
                    iflag = self.tty.termios.iflag
                    if iflag & IXON and iflag & IXANY:
                        self.tty.flow(False)     # as each of them would have
                    i = end
                    continue
            self._char(data[i])
            i += 1
        return n

    def _char(self, c: int) -> None:
        tio = self.tty.termios
        iflag, lflag, cc = tio.iflag, tio.lflag, tio.cc
        if iflag & ISTRIP:
            c &= 0x7F
        if self.lnext:
            self.lnext = False
            self._store(c, lflag)
            return
        if iflag & IXON:
            if c == cc[VSTART]:
                self.tty.flow(False)
                return
            if c == cc[VSTOP]:
                self.tty.flow(True)
                return
        if lflag & ISIG:
            sig = {cc[VINTR]: SIGINT, cc[VQUIT]: SIGQUIT, cc[VSUSP]: SIGTSTP}.get(c)
            if sig is not None:
                self.tty.isig(sig)
                if iflag & IXON:
                    self.tty.flow(False)
                if lflag & ECHO:
                    self._echo_char(c, lflag)
                return
        if iflag & IXON and iflag & IXANY:
            self.tty.flow(False)
        if c == 13:
            if iflag & IGNCR:
                return
            if iflag & ICRNL:
                c = 10
        elif c == 10 and iflag & INLCR:
            c = 13
        if lflag & ICANON:
            iext = lflag & IEXTEN
            if c == cc[VERASE] or c == cc[VKILL] or c == cc[VWERASE] and iext:
                self._erase(c, tio)
                return
            if c == cc[VLNEXT] and iext:
                self.lnext = True
                if lflag & ECHO and lflag & ECHOCTL:
                    self.tty.echo(b"^\b")
                return
            if c == cc[VREPRINT] and lflag & ECHO and iext:
                self._echo_char(c, lflag)
                self.tty.echo(b"\n")
                for b in self.line:
                    self._echo_char(b, lflag)
                return
            if c == 10:
                if lflag & (ECHO | ECHONL):
                    self.tty.echo(b"\n")
                self._end_line(10)
                return
            if c == cc[VEOF]:
                self._end_line(0)
                return
            if c == cc[VEOL] or c == cc[VEOL2] and iext:
                if lflag & ECHO:
                    self._echo_char(c, lflag)
                self._end_line(c)
                return
        self._store(c, lflag)

    def _store(self, c: int, lflag: int) -> None:
        """An ordinary byte: echoed and kept (dropped when the buffer is full)."""
        if self.held >= HOLD:
            return
        if lflag & ECHO:
            if c == 10:
                self.tty.echo(b"\n")
            else:
                self._echo_char(c, lflag)
        (self.line if lflag & ICANON else self.raw).append(c)
        self.held += 1

    def _end_line(self, end: int) -> None:
        self.line.append(end)
        self.lines.append(self.line)
        self.line = bytearray()
        self.held += 1

    def _echo_char(self, c: int, lflag: int) -> None:
        if lflag & ECHOCTL and _cntrl(c) and c != 9:
            self.tty.echo(bytes([ord("^"), c ^ 0o100]))
        else:
            self.tty.echo(bytes([c]))

    def _erase(self, c: int, tio) -> None:
        """ERASE, WERASE and KILL, echoed as Linux's eraser (ECHOPRT's
        \\...\\ form aside); a UTF-8 character goes whole under IUTF8."""
        lflag, cc = tio.lflag, tio.cc
        line = self.line
        if not line:
            return
        kind = ERASE if c == cc[VERASE] else WERASE if c == cc[VWERASE] else KILL
        if kind == KILL:
            if not lflag & ECHO:
                self.held -= len(line)
                line.clear()
                return
            if not (lflag & ECHOK and lflag & ECHOKE and lflag & ECHOE):
                self.held -= len(line)
                line.clear()
                self._echo_char(c, lflag)
                if lflag & ECHOK:
                    self.tty.echo(b"\n")
                return
        utf8 = tio.iflag & IUTF8
        alnums = 0
        while line:
            head = len(line) - 1
            while utf8 and head > 0 and line[head] & 0xC0 == 0x80:
                head -= 1
            ch = line[head]
            if utf8 and ch & 0xC0 == 0x80:
                break                               # do not erase part of a character
            if kind == WERASE:
                if chr(ch).isalnum() and ch < 128 or ch == ord("_"):
                    alnums += 1
                elif alnums:
                    break
            self.held -= len(line) - head
            del line[head:]
            if lflag & ECHO:
                if kind == ERASE and not lflag & ECHOE:
                    self._echo_char(cc[VERASE], lflag)
                elif ch == 9:
                    self.tty.echo(b"\b" * self._tab_width(line))
                else:
                    if _cntrl(ch) and lflag & ECHOCTL:
                        self.tty.echo(b"\b \b")
                    if not _cntrl(ch) or lflag & ECHOCTL:
                        self.tty.echo(b"\b \b")
            if kind == ERASE:
                break

    def _tab_width(self, before: bytes) -> int:
        """How far back an erased tab's echo went: to the column the line's
        text before it ends at (the line taken to start at column 0)."""
        col = 0
        for ch in before:
            col = (col | 7) + 1 if ch == 9 else col + (2 if _cntrl(ch) else 1)
        return 8 - col % 8

    # --- output -----------------------------------------------------------------
    def opost(self, data: bytes, room: int) -> tuple[bytes, int]:
        """data as the output flags make it, as much as fits in room: the
        bytes to send and how many of data they are."""
        oflag = self.tty.termios.oflag
        if not oflag & OPOST:
            return bytes(data[:room]), min(len(data), room)
        out = bytearray()
        for i, c in enumerate(data):
            piece = self._out_char(c, oflag)
            if len(out) + len(piece) > room:
                return bytes(out), i
            out += piece
            self._advance(piece)
        return bytes(out), len(data)

    def _out_char(self, c: int, oflag: int) -> bytes:
        if c == 10:
            return b"\r\n" if oflag & ONLCR else b"\n"
        if c == 13:
            if oflag & ONOCR and self.column == 0:
                return b""
            return b"\n" if oflag & OCRNL else b"\r"
        if c == 9 and oflag & TABDLY == XTABS:
            return b" " * (8 - self.column % 8)
        if oflag & OLCUC and 97 <= c <= 122:
            return bytes([c - 32])
        return bytes([c])

    def _advance(self, piece: bytes) -> None:
        oflag = self.tty.termios.oflag
        for c in piece:
            if c == 10:
                if oflag & (ONLRET | ONLCR):
                    self.column = 0
            elif c == 13:
                self.column = 0
            elif c == 9:
                self.column = (self.column | 7) + 1
            elif c == 8:
                self.column = max(self.column - 1, 0)
            elif not _cntrl(c) and not (self.tty.termios.iflag & IUTF8 and c & 0xC0 == 0x80):
                self.column += 1
