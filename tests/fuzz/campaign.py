"""A fuzz campaign against one service: hypothesis draws batches of
messages, a Fuzzer sends them, the Target checks the service after each."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common.config import SERVICES

from .frames import messages
from .targets import Failure, Target

FLOODS = (1,) * 8 + (50, 500)      # a batch's smallest message sent this many times
                                   # over without reading
ROUND_MARGIN = 2.0                 # seconds of its guest's life a round leaves unfuzzed


class _RoundOver(Exception):
    """The guest of this round is near its end (or the goal is reached)."""


def batches(senders: tuple[str, ...]) -> st.SearchStrategy:
    return st.tuples(st.lists(messages(senders), min_size=1, max_size=20),
                     st.sampled_from(FLOODS))


def _size(frames: list[bytes]) -> int:
    return sum(map(len, frames))


def mutants(frames: list[bytes], rng: random.Random, count: int) -> list[list[bytes]]:
    """count byte-level mutants of a message (bytes changed, cut, doubled),
    cheaper by far than a hypothesis draw: the long run's multiplier."""
    out = []
    for _ in range(count):
        raw = bytearray(rng.choice(frames))
        how = rng.randrange(3)
        if how == 0 and raw:
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif how == 1:
            del raw[rng.randrange(len(raw) + 1):]
        else:
            at = rng.randrange(len(raw) + 1)
            raw[at:at] = raw[:rng.randint(1, 64)]
        out.append([bytes(raw)])
    return out


def campaign(target: Target, goal: int, *, derandomize: bool, mutant_count: int = 0,
             progress=lambda sent: None) -> int:
    """Fuzz target's service with at least goal messages, round after round,
    and return how many were sent; Failure at the first sign of trouble."""
    sent = 0
    rng = random.Random(0)
    while sent < goal:
        target.start()
        fuzzer = target.fuzzer()
        # every sender name but, for the kernel, the guest's own sigio's: the
        # kernel takes console input from it alone, and what its console does
        # with that (an EOF hangs a terminal up, output and all) is the
        # guest's trusted console at work, not a stranger's doing
        senders = ("fuzz", *(f"{target.cfg.name}/{s}" for s in SERVICES
                             if (target.service, s) != ("kernel", "sigio")))

        @settings(max_examples=10 ** 9, database=None, deadline=None, derandomize=derandomize,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                  report_multiple_bugs=False)
        @given(batches(senders))
        def one(batch):
            if sent + fuzzer.sent >= goal or target.time_left() < ROUND_MARGIN:
                raise _RoundOver
            drawn, floods = batch
            # a flood is of the batch's smallest message: 500 of 16 MiB are 8 GB to decode,
            # work a service may take longer over than a ping's answer waits
            msgs = list(drawn) if floods == 1 else [min(drawn, key=_size)] * floods
            for frames in drawn if mutant_count else ():
                msgs += mutants(frames, rng, mutant_count)
            try:
                fuzzer.batch(msgs, flood=floods > 1)
            except Failure as exc:
                target.check_alive()       # a dead service says more than no answer
                sizes = sorted(map(_size, msgs), reverse=True)[:5]
                raise Failure(f"{exc}\nthe batch: {len(msgs)} messages (flood {floods}), "
                              f"the largest of {sizes} bytes\n{target.stacks()}") from None
            target.check()
            progress(sent + fuzzer.sent)

        try:
            one()
        except _RoundOver:
            pass
        except BaseException:
            target.stop()
            raise
        finally:
            fuzzer.close()
            sent += fuzzer.sent
        target.finish()
    return sent
