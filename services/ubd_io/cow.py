"""User-Mode Linux's COW file format (version 3), as uml_mkcow and uml_moo
read and write it; the facts come from Linux's arch/um/drivers/cow_user.c
and ubd_kern.c.

A COW file is a header, a bitmap with one bit per sector of the backing
file (bit set: the sector's data is in the COW file), then the data, at the
same offsets as in the backing file::

    0      magic "MOOO" (0x4f4f4f4d, big-endian)   u32
    4      version 3                               u32
    8      backing file's mtime, seconds           u32
    12     backing file's size, bytes              u64
    20     sectorsize (512)                        u32
    24     alignment (4096)                        u32
    28     cow_format (0: bitmap)                  u32
    32     backing file's absolute path, NUL-padded, 4096 bytes
    4128   (end of the packed header)
    round_up(4128, alignment)                      bitmap, bit i of byte
           n is sector 8n+i (least significant bit first)
    round_up(bitmap end, alignment)                data

Every field is big-endian.  The file is sparse: uml_mkcow writes one byte at
data_offset + size - 1 and leaves the rest as a hole.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

MAGIC = 0x4f4f4f4d
_MAGIC_BYTES = MAGIC.to_bytes(4, "big")   # "OOOM" on disk
VERSION = 3
SECTOR = 512
ALIGNMENT = 4096              # what uml_mkcow and UML's ubd use (PAGE_SIZE)
PATH_LEN = 4096
_FIELDS = struct.Struct(">IIIQIII")
HEADER_SIZE = _FIELDS.size + PATH_LEN      # 4128, packed
COW_BITMAP = 0


class CowError(Exception):
    """A COW file that cannot be used as it is; the message says what to do."""


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


@dataclass(frozen=True)
class Header:
    backing: str
    mtime: int
    size: int
    sectorsize: int = SECTOR
    alignment: int = ALIGNMENT

    @property
    def bitmap_offset(self) -> int:
        return _round_up(HEADER_SIZE, self.alignment)

    @property
    def bitmap_len(self) -> int:
        sectors = (self.size + self.sectorsize - 1) // self.sectorsize
        return (sectors + 7) // 8

    @property
    def data_offset(self) -> int:
        return _round_up(self.bitmap_offset + self.bitmap_len, self.alignment)

    def pack(self) -> bytes:
        path = self.backing.encode()
        if len(path) > PATH_LEN - 1:
            raise CowError(f"backing file path {self.backing!r} is longer than "
                           f"{PATH_LEN - 1} bytes: move the backing file to a shorter path")
        return (_FIELDS.pack(MAGIC, VERSION, self.mtime & 0xffffffff, self.size,
                             self.sectorsize, self.alignment, COW_BITMAP)
                + path.ljust(PATH_LEN, b"\0"))

    def check_backing(self, path: str) -> None:
        """Refuse a backing file whose size or mtime differ from the header's,
        as UML does: the overlay's sectors would not fit the backing's."""
        st = os.stat(path)
        if st.st_size != self.size:
            raise CowError(f"size mismatch: the COW header says {self.size} bytes, backing "
                           f"file {path} has {st.st_size}; was the backing file changed "
                           "or is this the wrong one?")
        if int(st.st_mtime) & 0xffffffff != self.mtime:
            raise CowError(f"mtime mismatch: the COW header says {self.mtime}, backing file "
                           f"{path} has {int(st.st_mtime)}; the backing file was modified "
                           "since the overlay was made, so the overlay no longer fits it")


def is_cow(fd: int) -> bool:
    return os.pread(fd, 4, 0) == _MAGIC_BYTES


def read_header(fd: int, name: str) -> Header:
    """The header of a version 3 COW file (CowError for anything else)."""
    raw = os.pread(fd, HEADER_SIZE, 0)
    if len(raw) < _FIELDS.size or raw[:4] != _MAGIC_BYTES:
        raise CowError(f"{name} is not a UML COW file (no 'MOOO' magic)")
    _magic, version, mtime, size, sectorsize, alignment, fmt = _FIELDS.unpack_from(raw)
    if version != VERSION:
        raise CowError(f"{name}: COW version {version} is not supported (only 3, what "
                       "uml_mkcow writes): merge it with uml_moo and make a new overlay")
    if len(raw) < HEADER_SIZE:
        raise CowError(f"{name}: short COW header ({len(raw)} of {HEADER_SIZE} bytes)")
    if raw[_FIELDS.size:_FIELDS.size + 4] == b"\0\0\0\0":
        raise CowError(f"{name}: an old 64-bit COW header layout (before 2006); "
                       "merge it with uml_moo and make a new overlay")
    if fmt != COW_BITMAP or sectorsize <= 0 or sectorsize % SECTOR or alignment <= 0:
        raise CowError(f"{name}: unsupported COW header (format {fmt}, sectorsize "
                       f"{sectorsize}, alignment {alignment})")
    backing = raw[_FIELDS.size:].split(b"\0", 1)[0].decode(errors="surrogateescape")
    return Header(backing, mtime, size, sectorsize, alignment)


def absolute(path: str) -> str:
    """The backing path as UML records it: its directory resolved, then its name."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), tail)


def create(overlay: str, backing: str, force: bool = False) -> Header:
    """Write a new, empty COW file for backing, as uml_mkcow does."""
    backing = absolute(backing)
    st = os.stat(backing)
    header = Header(backing, int(st.st_mtime), st.st_size)
    packed = header.pack()
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(overlay, flags, 0o644)
    try:
        os.pwrite(fd, packed, 0)
        os.pwrite(fd, b"\0", header.data_offset + header.size - 1)   # sets EOF; all else a hole
        os.fsync(fd)
    finally:
        os.close(fd)
    return header


def rewrite_backing(fd: int, header: Header, backing: str) -> Header:
    """Point the header at a moved backing file (UML does this when the
    backing named on its command line differs but has the same size and mtime)."""
    moved = Header(absolute(backing), header.mtime, header.size, header.sectorsize,
                   header.alignment)
    os.pwrite(fd, moved.pack(), 0)
    return moved


def runs(bitmap: bytes | bytearray, first: int, count: int):
    """Yield (sector, n, in_cow) for the runs of equal bits in sectors
    [first, first + count), a whole byte at a time where it is 0 or 0xff."""
    sector, end = first, first + count
    while sector < end:
        bit = bitmap[sector >> 3] >> (sector & 7) & 1
        start = sector
        while sector < end:
            byte = bitmap[sector >> 3]
            if sector & 7 == 0 and end - sector >= 8 and byte == (0xff if bit else 0):
                sector += 8
            elif byte >> (sector & 7) & 1 == bit:
                sector += 1
            else:
                break
        yield start, sector - start, bool(bit)


def set_bits(bitmap: bytearray, first: int, count: int) -> tuple[int, int] | None:
    """Set sectors [first, first + count); the byte range that changed, or None."""
    lo_byte, hi_byte = first >> 3, (first + count + 7) >> 3
    before = bytes(bitmap[lo_byte:hi_byte])
    end = first + count
    sector = first
    while sector < end:
        if sector & 7 == 0 and end - sector >= 8:
            full = (end - sector) >> 3
            bitmap[sector >> 3:(sector >> 3) + full] = b"\xff" * full
            sector += full * 8
        else:
            bitmap[sector >> 3] |= 1 << (sector & 7)
            sector += 1
    return None if bytes(bitmap[lo_byte:hi_byte]) == before else (lo_byte, hi_byte)
