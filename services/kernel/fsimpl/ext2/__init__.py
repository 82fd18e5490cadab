"""ext2 in the on-disk format mke2fs and e2fsck agree on.

In a nutshell: the superblock (byte 1024) and group descriptors are read and
checked at mount; inodes are found through their group's inode table and
cached by number; file data goes through the block map (12 direct blocks,
then single, double and triple indirect), holes read as zeros, and runs of
contiguous blocks are fetched from the device in one request.  Directories
with ``dir_index`` are read linearly, which their format allows.

Metadata (inode tables, indirect blocks) and single data blocks (directory
blocks, small files) have separate block caches; runs of file data are left
to the device's own page cache, so that streaming a big file pushes neither
out, and its data is not copied through two caches.
A directory is listed from its blocks, a position being a byte offset, as
Linux's ext2 lists one.  Its names, and the block each is in, are read once
for lookups (under the lock) and kept up to date as entries come and go, so
that a lookup, unlink or rename in a big directory parses one block at most.
Whatever walks a directory's blocks lets the loop have a turn every
``DIR_STEP`` records or so (a big directory holds it a bounded time), and
a change takes those turns before it changes anything.

Writing: changed blocks are kept dirty in memory, at most
``DIRTY_LIMIT`` of them, and written back, adjacent ones merged, when there are
more, on ``sync`` (which then writes the superblock and group descriptors and
ends with a device FLUSH), ``Inode.fsync`` and ``unmount``.  Blocks and inodes
are allocated through the group bitmaps, the group and superblock free counts
(and each group's directory count) kept right.  A write goes run by run:
as many contiguous blocks as are free are allocated (bitmaps scanned a byte,
not a bit, at a time), entered in the block map in one pass and put in one
piece (measured, 64 KiB written: ~150 µs of CPU block by block, ~50 so);
a regular file's allocation takes blocks ahead for its next writes, given
back at its last close or the next commit point (``Ext2.take_blocks``).
An indexed (dir_index) directory that is changed loses its EXT2_INDEX_FL,
as Linux's ext2 does, so it is read linearly afterwards and stays valid.
Mutations hold the filesystem's lock, so each is atomic with respect to the
others.
"""
from services.kernel.fsimpl.ext2.inode import Inode
from services.kernel.fsimpl.ext2.layout import BlockSource, Ext2Error
from services.kernel.fsimpl.ext2.super import Ext2

__all__ = ["BlockSource", "Ext2", "Ext2Error", "Inode"]
