"""The kernel service: its messages, the dispatch of guest calls and their
answers, the seccomp listener, signal delivery and the halt."""
