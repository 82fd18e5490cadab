"""The ubd driver's kept failed writes (drivers/ubd.py's FailedWrites)
against a model that keeps one value per byte: random adds, trims,
overlays and takes must agree with it, and the ranges stay disjoint and
sorted however finely a guest cuts them."""
from __future__ import annotations

import random

import pytest

from services.kernel.drivers.ubd import FailedWrites

SPAN = 4096


def check(failed: FailedWrites, model: dict[int, int]) -> None:
    assert failed.starts == sorted(failed.data)
    ends = [at + len(failed.data[at]) for at in failed.starts]
    assert all(end <= nxt for end, nxt in zip(ends, failed.starts[1:]))      # disjoint
    assert all(failed.data.values())                                        # no empty piece
    got = {at + i: b for at, data in failed.data.items() for i, b in enumerate(data)}
    assert got == model
    assert failed.bytes == len(model)


@pytest.mark.parametrize("seed", range(40))
def test_failed_writes_agree_with_a_byte_model(seed):
    rng = random.Random(seed)
    failed, model = FailedWrites(), {}
    for step in range(200):
        start = rng.randrange(SPAN)
        end = min(SPAN, start + rng.choice((1, 7, 64, 512, 1500)))
        action = rng.random()
        if action < 0.45:
            data = bytes(rng.randrange(256) for _ in range(end - start))
            failed.add(start, data, 5)
            model.update((start + i, b) for i, b in enumerate(data))
        elif action < 0.8:
            failed.trim(start, end)
            for at in range(start, end):
                model.pop(at, None)
        elif action < 0.97:
            disk = bytes(rng.randrange(256) for _ in range(end - start))
            want = bytes(model.get(start + i, b) for i, b in enumerate(disk))
            assert failed.overlay(start, disk) == want
        else:
            pieces = dict(failed.data)
            runs = failed.take(300)
            got = {at + i: b for at, data in runs for i, b in enumerate(data)}
            assert got == model
            assert [at for at, _ in runs] == sorted(at for at, _ in runs)
            # a run is joined up to 300 bytes, or is one piece that was longer
            assert all(len(data) <= 300 or pieces.get(at) == data for at, data in runs)
            # and adjacent pieces that fit together were joined
            assert all(a + len(d) < b or len(d) + len(pieces[b]) > 300
                       for (a, d), (b, _) in zip(runs, runs[1:]))
            model = {}
        check(failed, model)
        assert bool(failed) == bool(model)


def test_take_joins_adjacent_pieces_up_to_the_longest_run():
    failed = FailedWrites()
    for at in range(0, 10):
        failed.add(at * 100, bytes([at]) * 100, 28)
    failed.add(5000, b"z" * 10, 28)
    runs = failed.take(400)
    assert [(at, len(data)) for at, data in runs] == [(0, 400), (400, 400), (800, 200),
                                                       (5000, 10)]
    assert runs[1][1] == b"".join(bytes([i]) * 100 for i in range(4, 8))
    assert not failed and failed.bytes == 0
