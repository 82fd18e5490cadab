"""ext2's on-disk layout: the superblock, group descriptor, inode and
directory entry formats, the features we read, and the sizes and times
they encode."""
from __future__ import annotations

import stat as S
import struct
import time
from typing import Protocol


class BlockSource(Protocol):
    async def read(self, offset: int, length: int) -> bytes: ...

class Ext2Error(OSError):
    """The device does not hold an ext2 filesystem we can read, or it is corrupt."""

EXT2_MAGIC = 0xEF53

ROOT_INO = 2

NDIR_BLOCKS = 12

INCOMPAT_FILETYPE = 0x0002

# the incompatible features we cannot read, named for the mount error
INCOMPAT_NAMES = {0x0001: "compression", 0x0004: "needs_recovery", 0x0008: "journal_dev",
                  0x0010: "meta_bg", 0x0040: "extent", 0x0080: "64bit", 0x0100: "mmp",
                  0x0200: "flex_bg", 0x0400: "ea_inode", 0x1000: "dirdata",
                  0x2000: "metadata_csum_seed", 0x4000: "large_dir", 0x8000: "inline_data",
                  0x10000: "encrypt", 0x20000: "casefold"}

RO_COMPAT_SPARSE_SUPER = 0x0001

RO_COMPAT_LARGE_FILE = 0x0002

INDEX_FL = 0x1000          # EXT2_INDEX_FL: the directory has an htree

DIRTY_LIMIT = 1024         # dirty blocks held before they are written back
COMMIT_BYTES = 32 << 20    # written back uncommitted before a commit point is made
PREALLOC_BYTES = 1 << 20   # a regular file's blocks taken ahead in one allocation

LINK_MAX = 65000           # links to an inode, as Linux's ext4 driver (serving ext2) allows

FT_FROM_MODE = {S.S_IFREG: 1, S.S_IFDIR: 2, S.S_IFCHR: 3, S.S_IFBLK: 4, S.S_IFIFO: 5,
                S.S_IFSOCK: 6, S.S_IFLNK: 7}

GD = struct.Struct("<3I3H")   # block bitmap, inode bitmap, inode table, free blocks/inodes, dirs

INODE_HEAD = struct.Struct("<HHIIIIIHHII")

MAX_RUN_BYTES = 1 << 20    # data fetched in one device request

CACHE_BLOCKS = 1024

INO_BITS = 0xFFFFFFFF

# the cost of a directory walk's work, in blocks passed over (known to be full, ~0.15 µs)
RECORD_WORK = 4            # a record parsed and used

BLOCK_WORK = 32            # a block mapped and read

# counts, first data block, block size, group sizes; magic; revision; inode size;
# features; reserved GDT blocks (for growing the filesystem)
SUPER = struct.Struct("<11I12xH18xI8xH2x3I102xH")

GROUP = struct.Struct("<8xI2H16x")    # inode table, free blocks, free inodes

INODE = struct.Struct("<HHIIIIIHHII4x60sIIII")

IDS_HI = struct.Struct("<HH")        # osd2 uid/gid high halves, at 120

U16 = struct.Struct("<H")

U32 = struct.Struct("<I")

BLOCKPTRS = struct.Struct("<15I")

DIRENT = struct.Struct("<IHBB")

DT_FROM_MODE = {S.S_IFREG: 8, S.S_IFDIR: 4, S.S_IFLNK: 10, S.S_IFCHR: 2, S.S_IFBLK: 6,
                S.S_IFIFO: 1, S.S_IFSOCK: 12}

DT_FROM_FT = {1: 8, 2: 4, 3: 2, 4: 6, 5: 1, 6: 12, 7: 10}

def has_super(group: int) -> bool:
    """With sparse_super, groups 0, 1 and powers of 3, 5 and 7 carry superblock backups."""
    if group <= 1:
        return True
    for base in (3, 5, 7):
        n = group
        while n % base == 0:
            n //= base
        if n == 1:
            return True
    return False

def max_size(bits: int) -> int:
    """Linux's ext2_max_size for blocks of 1 << bits bytes: what the block map
    addresses, unless i_blocks (32 bits of 512-byte sectors, indirect blocks
    included) runs out first."""
    ppb = 1 << (bits - 2)
    limit = ((1 << 32) - 1) >> (bits - 9)
    blocks = NDIR_BLOCKS + ppb + ppb ** 2 + ppb ** 3
    if blocks + 3 + 2 * ppb + ppb ** 2 <= limit:
        return blocks << bits
    rest = limit - NDIR_BLOCKS - ppb
    if rest < ppb ** 2:
        meta = 2 + -(-rest // ppb)
    else:
        rest -= ppb ** 2
        meta = 3 + ppb + -(-rest // ppb) + -(-rest // ppb ** 2)
    return (limit - meta) << bits

def decode_time(base: int, extra: int) -> tuple[int, int]:
    """Seconds and nanoseconds as Linux decodes them: the 32-bit seconds are signed,
    the low 2 bits of the extra field add epochs of 2**32 s, the rest is ns << 2."""
    return (base ^ 0x80000000) - 0x80000000 + ((extra & 3) << 32), extra >> 2

def timestamp() -> tuple[int, int]:
    return divmod(time.time_ns(), 1_000_000_000)

def encode_time(sec: int, ns: int) -> tuple[int, int]:
    """The 32-bit seconds and the extra field (epoch bits, ns << 2) Linux stores."""
    lo = sec & 0xFFFFFFFF
    epoch = ((sec - ((lo ^ 0x80000000) - 0x80000000)) >> 32) & 3
    return lo, (ns << 2) | epoch
