"""Write-back errors reach every open file's fsync once, whoever met them."""
from __future__ import annotations

import errno

from services.kernel.fs.errseq import ErrSeq


def test_an_error_a_sync_met_is_reported_once_to_each_file_open_before_it():
    wb = ErrSeq()
    a, b = wb.sample(), wb.sample()
    wb.record(errno.ENOSPC)               # met by sync(2), which reports nothing
    code, a = wb.report(a)
    assert code == errno.ENOSPC
    assert wb.report(a) == (0, a)         # told once
    assert wb.report(b)[0] == errno.ENOSPC


def test_a_file_opened_after_an_unreported_error_hears_of_it_but_not_of_a_reported_one():
    wb = ErrSeq()
    wb.record(errno.EIO)
    late = wb.sample()
    assert wb.report(late)[0] == errno.EIO
    assert wb.report(wb.sample()) == (0, wb.seq)
