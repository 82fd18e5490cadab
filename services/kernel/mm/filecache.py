"""The file cache: pages of regular files as read, in one host mapping.

Linux keeps a file's pages in its address_space; a cached read() is one
copy from them to the caller.  Here a filesystem's read makes Python bytes
(the block map, the device's cache, joins and slices: ~18% of the kernel's
time in a loop of 64 KiB cached reads), so the pages a read() has been
given are kept in one anonymous mapping, the arena, in PAGE-sized slots,
and a read that finds all its pages there is a single process_vm_writev
whose local iovecs point into the arena: no Python object is made for the
data.  Slots filled one after another lie one after another, so a
sequential file's read is usually one iovec.

Coherence is the filesystem's part: whatever changes a file's bytes
(write, truncate, fallocate, freeing it) calls ``drop`` for the range once
the change is made, which also moves the file's ``generation``; a fill
whose read began before a drop (the generation moved meanwhile) is not
kept.  A file while it has a live host file (shared maps,
services/kernel/fs/pagecache.py) is read through that, not from here.

Memory is bounded by the arena's size (the guest config's
``file_cache_limit``); its pages cost the host only once touched.  Slots
are taken back by a clock (second chance), as Linux approximates LRU: a
read sets its slots' referenced bits, the hand clears them as it passes
and takes the first slot it finds clear."""
from __future__ import annotations

import ctypes
import mmap

from services.kernel.abi.arch import PAGE
from services.kernel.abi.mman import MADV_POPULATE_WRITE

POPULATE = 512               # slots given host pages at once (2 MiB)


class FilePages:
    """One file's cached pages (Linux's address_space): page index -> slot."""
    __slots__ = ("slots", "generation")

    def __init__(self):
        self.slots: dict[int, int] = {}
        self.generation = 0        # moved by every drop: a fill begun before is stale


class FileCache:
    """The arena and its slots."""

    def __init__(self, limit: int = 0):
        self.resize(limit)

    def resize(self, limit: int) -> None:
        """An empty arena of limit bytes (whole pages; 0: no cache): files
        that had pages in the last one have none."""
        for pages in {id(p): p for p in getattr(self, "owner", ()) if p is not None}.values():
            pages.slots.clear()
            pages.generation += 1
        self.count = limit // PAGE
        self.arena = mmap.mmap(-1, self.count * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) \
            if self.count else None
        self.base = 0
        if self.count:
            self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.arena))
        self.free = list(range(self.count - 1, -1, -1))    # popped lowest first
        self.touched = 0             # slots below this have their host pages
        self.owner: list[FilePages | None] = [None] * self.count
        self.index = [0] * self.count                      # the page index a slot holds
        self.referenced = bytearray(self.count)
        self.hand = 0

    @property
    def used(self) -> int:
        """Slots holding a page (/proc/meminfo's Cached counts them)."""
        return self.count - len(self.free)

    def pieces(self, pages: FilePages, offset: int, length: int) -> list[tuple[int, int]] | None:
        """Where the bytes [offset, offset + length) of the file are in this
        process's memory, as (address, length) runs; None unless every page
        of the range is cached.  length > 0."""
        first, last = offset // PAGE, (offset + length - 1) // PAGE + 1
        slots = list(map(pages.slots.get, range(first, last)))
        start, count = slots[0], last - first
        if start is not None and slots[-1] == start + count - 1 \
                and slots == list(range(start, start + count)):       # one run: most reads
            self.referenced[start:start + count] = b"\1" * count
            return [(self.base + start * PAGE + offset % PAGE, length)]
        if None in slots:
            return None
        referenced = self.referenced
        for s in slots:
            referenced[s] = 1
        runs = []
        prev = start
        for s in slots[1:]:
            if s != prev + 1:
                runs.append([self.base + start * PAGE, (prev + 1 - start) * PAGE])
                start = s
            prev = s
        runs.append([self.base + start * PAGE, (prev + 1 - start) * PAGE])
        runs[0][0] += offset % PAGE
        runs[0][1] -= offset % PAGE
        runs[-1][1] -= last * PAGE - (offset + length)
        return [(a, n) for a, n in runs]

    def fill(self, pages: FilePages, offset: int, data: bytes, generation: int) -> None:
        """Keep data, the file's bytes from offset (page-aligned) as read
        when pages.generation was generation: unless a drop came since, its
        pages not yet cached go in, the last one padded with zeros (bytes
        past the end of the file, which a read never returns); pages that
        got slots one after another are copied in one piece."""
        if generation != pages.generation or not self.count or not data:
            return
        first = offset // PAGE
        slots, owner, index = pages.slots, self.owner, self.index
        placed = []                               # (page, slot) of the new pages
        for page in range(first, first + -(-len(data) // PAGE)):
            if page not in slots:
                s = slots[page] = self._take()
                owner[s], index[s] = pages, page
                self.referenced[s] = 1            # the read that fills it wants it
                placed.append((page, s))
        if len(data) % PAGE:
            data = bytes(data) + bytes(PAGE - len(data) % PAGE)
        view, arena = memoryview(data), self.arena
        i = 0
        while i < len(placed):
            page, s = placed[i]
            j = i + 1
            while j < len(placed) and placed[j] == (page + j - i, s + j - i):
                j += 1
            at = (page - first) * PAGE
            arena[s * PAGE:(s + j - i) * PAGE] = view[at:at + (j - i) * PAGE]
            i = j

    def drop(self, pages: FilePages, start: int, end: int | None = None) -> None:
        """The file's bytes [start, end) (None: to its end) changed: the
        pages holding any of them go, and a fill begun before is not kept."""
        pages.generation += 1
        slots = pages.slots
        if not slots:
            return
        first = start // PAGE
        if end is None or -(-end // PAGE) - first > len(slots):
            doomed = [i for i in slots if i >= first and (end is None or i * PAGE < end)]
        else:
            doomed = [i for i in range(first, -(-end // PAGE)) if i in slots]
        freed = sorted((slots.pop(i) for i in doomed), reverse=True)
        for s in freed:
            self.owner[s] = None
            self.referenced[s] = 0
        self.free += freed

    def _take(self) -> int:
        """A slot for a new page: a free one, else the clock's next slot
        not referenced since the hand last passed."""
        if self.free:
            s = self.free.pop()
            if s >= self.touched:
                self._populate(s)
            return s
        referenced, hand = self.referenced, self.hand
        while referenced[hand]:
            referenced[hand] = 0
            hand = (hand + 1) % self.count
        self.hand = (hand + 1) % self.count
        del self.owner[hand].slots[self.index[hand]]
        return hand

    def _populate(self, slot: int) -> None:
        """Host pages for the POPULATE slots from slot's on, in one call:
        first touches one fault at a time cost more (here 64 KiB of a new
        anonymous map: 37-40 µs of CPU by faults, 22-25 µs populated 2 MiB
        at a time; both vary several-fold with the host).  A host without
        MADV_POPULATE_WRITE (Linux 5.14) faults them in as they are written."""
        end = min(self.count, slot + POPULATE)
        try:
            self.arena.madvise(MADV_POPULATE_WRITE, slot * PAGE, (end - slot) * PAGE)
        except OSError:
            pass
        self.touched = end


FILE_CACHE = FileCache()     # the kernel's; sized from the guest config at boot
