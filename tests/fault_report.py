"""The reliability tests' report (a plugin, tests/conftest.py): each fault case records its outcome, and
the session ends by printing them as a table (docs/reliability.md)."""
from __future__ import annotations

import pytest

OUTCOMES: dict[str, str] = {}


@pytest.fixture
def outcome(request):
    """outcome(text): this case's line in the matrix."""
    def record(text: str) -> None:
        spec = getattr(request.node, "callspec", None)
        OUTCOMES[spec.id if spec else request.node.name.removeprefix("test_")] = text
    return record


def pytest_terminal_summary(terminalreporter):
    if OUTCOMES:
        terminalreporter.section("fault matrix (case -> outcome)")
        width = max(map(len, OUTCOMES))
        for case, text in OUTCOMES.items():
            terminalreporter.line(f"{case:<{width}}  {text}")
