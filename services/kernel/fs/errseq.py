"""Write-back errors as Linux's errseq_t reports them (lib/errseq.c): a
failed write-back is recorded where it happened, and every open file that
asks (fsync) is told of it once, whoever met it first.  Without this, a
sync(2), a halt's write-back or another file's fsync that met the error
took it, and a later fsync of the file whose data was lost returned 0.

Kept per filesystem here, not per inode: ext2 writes its dirty blocks back
by number and does not know whose they are, so every file open on the
filesystem hears of the error (a false alarm is possible; a missed one is
not)."""
from __future__ import annotations


class ErrSeq:
    def __init__(self) -> None:
        self.seq = 0          # errors recorded so far
        self.errno = 0        # the last one's
        self.seen = True      # whether an fsync has reported it

    def record(self, code: int) -> None:
        self.seq += 1
        self.errno = code
        self.seen = False

    def sample(self) -> int:
        """What a file opened now has seen: an error nobody was told of yet
        is still news to it (errseq_sample)."""
        return self.seq if self.seen else self.seq - 1

    def report(self, since: int) -> tuple[int, int]:
        """(the errno to report to a file that had seen since, or 0; what it
        has seen now) (errseq_check_and_advance)."""
        if since == self.seq:
            return 0, since
        self.seen = True
        return self.errno, self.seq
