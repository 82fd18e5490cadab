"""Test doubles that stand in for one service, speaking the real protocol."""
