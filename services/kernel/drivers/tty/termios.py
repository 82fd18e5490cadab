"""struct termios as the TCGETS family reads and writes it, and Linux's defaults.

The kernel's struct termios (not glibc's, which tcgetattr fills from it) is
36 bytes: four flag words, the line discipline and 19 control characters;
termios2 (TCGETS2) adds the input and output speeds."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from services.kernel.abi.termbits import (
    B38400, CREAD, CS8, ECHO, ECHOCTL, ECHOE, ECHOK, ECHOKE, HUPCL, ICANON, ICRNL, IEXTEN,
    ISIG, IXON, ONLCR, OPOST)

TERMIOS = struct.Struct("<IIIIB19s")
TERMIOS2 = struct.Struct("<IIIIB19sII")
# INIT_C_CC: ^C ^\ DEL ^U ^D, TIME 0, MIN 1, SWTC 0, ^Q ^S ^Z, EOL 0, ^R ^O ^W ^V, EOL2 0
INIT_C_CC = bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0])


@dataclass
class Termios:
    iflag: int = ICRNL | IXON
    oflag: int = OPOST | ONLCR
    cflag: int = B38400 | CS8 | CREAD | HUPCL
    lflag: int = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN
    line: int = 0
    cc: bytes = field(default=INIT_C_CC)
    ispeed: int = 38400
    ospeed: int = 38400

    def pack(self, two: bool = False) -> bytes:
        head = (self.iflag, self.oflag, self.cflag, self.lflag, self.line, self.cc)
        return TERMIOS2.pack(*head, self.ispeed, self.ospeed) if two else TERMIOS.pack(*head)

    def unpacked(self, data: bytes, two: bool = False) -> Termios:
        """What a TCSETS (or TCSETS2) of data sets: the old speeds stay for
        TCSETS."""
        if two:
            return Termios(*TERMIOS2.unpack(data))
        return replace(self, **dict(zip(("iflag", "oflag", "cflag", "lflag", "line", "cc"),
                                        TERMIOS.unpack(data))))

    @staticmethod
    def size(two: bool) -> int:
        return TERMIOS2.size if two else TERMIOS.size
