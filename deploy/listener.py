"""The supervisord event listener of one guest: when its kernel or userspace
exits, the guest is over, so the whole group is stopped.

``python -m deploy.listener NAME`` speaks supervisord's listener protocol on
stdin/stdout; it must never die on an event it does not expect."""
from __future__ import annotations

import os
import sys

from supervisor import childutils

GUEST_CORE = ("kernel", "userspace")


def main(name: str) -> None:
    core = {f"{name}-{s}" for s in GUEST_CORE}
    rpc = childutils.getRPCInterface(os.environ)
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            fields = dict(tok.split(":", 1) for tok in payload.split("\n", 1)[0].split())
            if fields.get("groupname") == name and fields.get("processname") in core:
                print(f"{fields['processname']} {headers['eventname']}: stopping {name}",
                      file=sys.stderr, flush=True)
                rpc.supervisor.stopProcessGroup(name, False)
        except Exception as exc:   # a listener that dies stops watching the guest
            print(f"listener: {exc!r} on {headers.get('eventname')}", file=sys.stderr, flush=True)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
