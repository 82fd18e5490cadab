"""Allocation bitmaps and runs: scanned a byte, not a bit, at a time."""
from __future__ import annotations

import bisect
import itertools
from typing import Iterator


def find_zero(bm: bytes, start: int, nbits: int) -> int | None:
    """The first clear bit from start (then from 0) below nbits."""
    for begin in (start, 0):
        bit = first_clear(bm, begin, nbits)
        if bit is not None:
            return bit
    return None


def first_clear(bm: bytes, bit: int, nbits: int) -> int | None:
    """The first clear bit at or after bit below nbits: bytes of set bits are
    skipped by bytes.lstrip, at C speed (a bit at a time cost ~5 µs a block)."""
    while bit < nbits:
        byte = bm[bit >> 3] | ((1 << (bit & 7)) - 1)       # the bits before count as set
        if byte != 0xFF:
            found = (bit & ~7) + ((byte + 1) & ~byte).bit_length() - 1
            return found if found < nbits else None
        rest = bm[(bit >> 3) + 1:(nbits + 7) >> 3]
        bit = ((bit >> 3) + 1 + len(rest) - len(rest.lstrip(b"\xff"))) * 8
    return None


def clear_avoiding(bm: bytes, bit: int, nbits: int, base: int,
                   avoid: list[int]) -> tuple[int, int] | None:
    """The first clear bit at or after bit below nbits whose block (base +
    bit) is not in avoid (sorted block numbers), and where the next avoided
    block lies (a bit, at most nbits); None if there is none.  A run of
    avoided blocks is stepped over at once, by bisection."""
    while True:
        found = first_clear(bm, bit, nbits)
        if found is None:
            return None
        i = bisect.bisect_left(avoid, base + found)
        if i == len(avoid):
            return found, nbits
        if avoid[i] != base + found:
            return found, min(nbits, avoid[i] - base)
        bit = avoid[run_end(avoid, i, len(avoid)) - 1] - base + 1


def clear_run(bm: bytes, bit: int, end: int) -> int:
    """How many bits from bit (a clear one) up to end are clear in a row."""
    i = bit + 1
    while i < end:
        if not i & 7:                                       # whole clear bytes at once
            rest = bm[i >> 3:(end + 7) >> 3]
            i += (len(rest) - len(rest.lstrip(b"\0"))) * 8
            if i >= end:
                break
        if bm[i >> 3] >> (i & 7) & 1:
            break
        i += 1
    return min(i, end) - bit


def bytes_within(bit: int, end: int) -> tuple[int, int]:
    """The bits bit..end-1 as whole bytes: where they start and end (bits)."""
    lo = min(end, (bit + 7) & ~7)
    return lo, max(lo, end & ~7)


def set_run(bm: bytearray, bit: int, count: int, on: bool = True) -> None:
    """Set (or clear) count bits from bit: the whole bytes among them in one slice."""
    end = bit + count
    lo, hi = bytes_within(bit, end)
    for b in itertools.chain(range(bit, lo), range(hi, end)):
        if on:
            bm[b >> 3] |= 1 << (b & 7)
        else:
            bm[b >> 3] &= ~(1 << (b & 7)) & 0xFF
    bm[lo >> 3:hi >> 3] = (b"\xff" if on else b"\0") * ((hi - lo) >> 3)


def all_set(bm: bytes, bit: int, count: int) -> bool:
    """Whether the count bits from bit are all set."""
    end = bit + count
    lo, hi = bytes_within(bit, end)
    return (all(bm[b >> 3] >> (b & 7) & 1 for b in itertools.chain(range(bit, lo), range(hi, end)))
            and not bm[lo >> 3:hi >> 3].lstrip(b"\xff"))


def block_runs(numbers: list[int], longest: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive numbers in a sorted list without repeats (first,
    how many), at most longest each: found by bisection, not one by one
    (a 64 MiB file's 16,384 blocks are a handful of runs)."""
    i, n = 0, len(numbers)
    while i < n:
        end = run_end(numbers, i, min(n, i + longest))
        yield numbers[i], end - i
        i = end


def run_end(numbers: list[int], i: int, limit: int) -> int:
    """Where the run of consecutive numbers from numbers[i] ends (an index,
    at most limit), in a sorted list without repeats."""
    first = numbers[i]
    return bisect.bisect_right(range(i, limit), 0, key=lambda j: numbers[j] - first - (j - i)) + i
