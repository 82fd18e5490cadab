"""common/service.py's Running: a SIGTERM that the host hands to a thread
other than the main one (ubd_io's pool, an exporter's worker) still ends the
main thread's poll, which has no timeout while the service idles.  Before
the wakeup fd, such a service slept on until supervisord's SIGKILL, and a
traced sigio lost its last spans that way (1 suite run in 5)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import signal, sys, threading, zmq
    from common.service import Running

    SIGNALS = [getattr(signal, name) for name in sys.argv[1:]]
    running = Running()
    signal.signal(signal.SIGUSR1, lambda *_: None)
    poller = zmq.Poller()
    running.watch(poller)
    main = threading.get_native_id()
    turns = 0

    def in_poll() -> bool:
        # the main thread is blocked in poll(2) (7) or ppoll (271)
        with open(f"/proc/self/task/{main}/syscall") as f:
            return f.read().split()[0] in ("7", "271")

    def worker():
        for i, signum in enumerate(SIGNALS):
            while turns < i or not in_poll():      # back in its poll after i turns
                pass
            signal.pthread_kill(threading.get_ident(), signum)   # to this thread

    threading.Thread(target=worker, daemon=True).start()
    while running:
        poller.poll(running.timeout())
        turns += 1
    print("stopped after", turns, "turn(s)", flush=True)
""")


def stopped_after(*signals: str) -> str:
    r = subprocess.run([sys.executable, "-c", CHILD, *signals], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout


def test_a_sigterm_taken_by_another_thread_ends_the_idle_poll():
    assert stopped_after("SIGTERM") == "stopped after 1 turn(s)\n"


def test_other_signals_wake_the_poll_once_and_do_not_stop_it():
    """A signal with a Python handler (sigio's SIGWINCH, userspace's SIGALRM)
    writes the wakeup fd too: the loop takes one turn for each, no more (its
    byte is drained), and runs on until SIGTERM."""
    assert stopped_after("SIGUSR1", "SIGUSR1", "SIGTERM") == "stopped after 3 turn(s)\n"
