"""Sockets handed to a service already listening (common/activation.py); a
service given one serves it: tests/services/test_forked.py."""
import os

from common import activation


def test_a_socket_handed_to_another_process_is_not_taken_and_the_variables_go(monkeypatch):
    monkeypatch.setattr(activation, "_inherited", None)
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert activation.handed_over("/nowhere.sock") is None
    assert "LISTEN_PID" not in os.environ and "LISTEN_FDS" not in os.environ
