"""Every service fuzzed for a few seconds, derandomized (the same messages
each run): it answers every bad message with an error and ping with pong,
stays up with a clean log, and a guest running meanwhile ends as it would.
The long run is `python -m tests.fuzz.run` (docs/reliability.md)."""
from __future__ import annotations

import pytest


from .campaign import campaign
from .targets import TARGETS, Target

MESSAGES = 1000          # per service, floods included


@pytest.mark.parametrize("service", TARGETS)
def test_fuzzed_messages_leave_the_service_serving(service, tmp_path, disk):
    assert campaign(Target(service, tmp_path, disk, seconds=5), MESSAGES,
                    derandomize=True) >= MESSAGES
