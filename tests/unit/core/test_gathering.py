"""gather_all: device reads issued together, a few at a time."""
from __future__ import annotations

import asyncio

import pytest

from services.kernel.core.gathering import gather_all


def test_results_come_in_order_a_group_at_a_time():
    flying, most = [0], [0]

    async def job(n):
        flying[0] += 1
        most[0] = max(most[0], flying[0])
        await asyncio.sleep(0.001 * (5 - n % 5))
        flying[0] -= 1
        return n
    assert asyncio.run(gather_all([job(n) for n in range(20)], 3)) == list(range(20))
    assert most[0] == 3


def test_a_failure_is_raised_after_its_group_and_the_rest_never_run():
    ran = []

    async def job(n):
        await asyncio.sleep(0.001)
        ran.append(n)
        if n == 1:
            raise OSError("the device")
        return n

    async def go():
        jobs = [job(n) for n in range(6)]
        with pytest.raises(OSError, match="the device"):
            await gather_all(jobs, 2)
        return jobs
    jobs = asyncio.run(go())
    assert sorted(ran) == [0, 1]                   # its group finished; the others closed
    assert all(j.cr_frame is None for j in jobs[2:])
