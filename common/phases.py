"""Timestamps of a guest's start and end, for bench/coldstart.py.

Off unless ``SKAS_PHASES`` names a file: then each process appends one line
per ``mark`` (``MONOTONIC_NS PROCESS PHASE``; CLOCK_MONOTONIC is the host's,
so lines from the CLI and the four services line up).  Off, a mark is one
global's test; nothing here is on a guest call's path."""
from __future__ import annotations

import os
import time

_PATH = os.environ.get("SKAS_PHASES")


def mark(process: str, phase: str) -> None:
    if _PATH:
        line = f"{time.monotonic_ns()} {process} {phase}\n".encode()
        fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
