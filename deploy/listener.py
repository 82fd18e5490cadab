"""The supervisord event listener of one guest: when its kernel or userspace
exits, the guest is over, so the whole group is stopped.

``python -m deploy.listener NAME`` speaks supervisord's listener protocol on
stdin/stdout (READY, header and payload, RESULT 2 OK); stdout is the protocol,
so it logs to stderr, and it must never die on an event it does not expect:
a dead listener stops watching the guest."""
from __future__ import annotations

import os
import sys

from supervisor import childutils

GUEST_CORE = ("kernel", "userspace")


def log(text: str) -> None:
    print(f"listener: {text}", file=sys.stderr, flush=True)


def main(name: str) -> None:
    core = {f"{name}-{s}" for s in GUEST_CORE}
    rpc = childutils.getRPCInterface(os.environ)
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            fields = dict(tok.split(":", 1) for tok in payload.split("\n", 1)[0].split())
            if fields.get("groupname") == name and fields.get("processname") in core:
                log(f"{fields['processname']} {headers['eventname']}: stopping {name}")
                rpc.supervisor.stopProcessGroup(name, False)
        except Exception as exc:   # noqa: BLE001 -- any failure: log it, keep listening
            log(f"{exc!r} on {headers.get('eventname')} {payload!r}")
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m deploy.listener GUEST_NAME")
    main(sys.argv[1])
