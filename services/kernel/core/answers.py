"""What a handler may answer besides a number (services/kernel/syscalls/table.py)."""
from __future__ import annotations

HOST = object()      # answer: run the call on the host as it is


class Ops:
    """answer: run ops in the task, then return value (or resume at set registers)."""

    def __init__(self, ops: list[dict], value: int = 0):
        self.ops = ops
        self.value = value
