"""The supervisord event listener of one guest: when its kernel or userspace
exits, the guest is over, so the whole group is stopped; so it is when
ubd_io or sigio exits common/exits.py's CONFIG (it cannot serve as
configured: a disk another guest is using), which supervisord does not
restart and without which the kernel would wait for ever; and if the kernel
ended with common/exits.py's REBOOT (the guest asked to boot again), the
group is started anew, as UML re-executes itself on reboot.

``python -m deploy.listener NAME`` speaks supervisord's listener protocol on
stdin/stdout (READY, header and payload, RESULT 2 OK); stdout is the protocol,
so it logs to stderr, and it must never die on an event it does not expect:
a dead listener stops watching the guest.

It runs beside every guest for as long as the guest does, mostly idle, so
it speaks the protocol itself and imports supervisor's RPC client only when
it has a group to stop: supervisor.childutils brings its HTTP server, email
and XML modules, 13 MiB of the listener's 24 (bench/idle.py)."""
from __future__ import annotations

import os
import sys

from common.exits import REBOOT

GUEST_CORE = ("kernel", "userspace")
HELPERS = ("ubd_io", "sigio")      # restarted by supervisord, unless they exit CONFIG
LIVE = ("STARTING", "RUNNING", "BACKOFF", "STOPPING")     # supervisord's states with a process


def log(text: str) -> None:
    print(f"listener: {text}", file=sys.stderr, flush=True)


def next_event(stdin, stdout) -> tuple[dict[str, str], str]:
    """READY, then one event: a header line (key:value tokens, len among
    them) and its payload (supervisor's childutils.listener.wait)."""
    stdout.write("READY\n")
    stdout.flush()
    line = stdin.readline()
    if not line:
        sys.exit(0)             # supervisord has gone
    headers = dict(tok.split(":", 1) for tok in line.split())
    return headers, stdin.read(int(headers["len"]))


def main(name: str) -> None:
    core = {f"{name}-{s}" for s in GUEST_CORE}
    helpers = {f"{name}-{s}" for s in HELPERS}
    rpc = None
    while True:
        headers, payload = next_event(sys.stdin, sys.stdout)
        try:
            fields = dict(tok.split(":", 1) for tok in payload.split("\n", 1)[0].split())
            process = fields.get("processname")
            # (a helper's exit is "expected" only with CONFIG: supervisor.py's exitcodes)
            gave_up = (process in helpers and fields.get("expected") == "1"
                       and headers["eventname"] == "PROCESS_STATE_EXITED")
            if fields.get("groupname") == name and (process in core or gave_up):
                if rpc is None:
                    from supervisor import childutils
                    rpc = childutils.getRPCInterface(os.environ)
                guest_ended(rpc.supervisor, name, fields, headers["eventname"])
        except Exception as exc:   # noqa: BLE001 -- any failure: log it, keep listening
            log(f"{exc!r} on {headers.get('eventname')} {payload!r}")
        sys.stdout.write("RESULT 2\nOK")
        sys.stdout.flush()


def guest_ended(supervisor, name: str, fields: dict, event: str) -> None:
    """A core service of guest name ended, or a helper gave up: stop the group, and start it again
    if the kernel's code says reboot.  An event of a process that a reboot
    has already replaced (its pid is not the running one's) is old news; so
    is one that finds the group down already (the kernel's death makes
    userspace exit too, and the group was stopped on the first of the two
    events): a stop then would land on a new life if one were started in
    between."""
    process = fields["processname"]
    group = {p["name"]: p for p in supervisor.getAllProcessInfo() if p["group"] == name}
    info = group[process]
    if info["statename"] in LIVE and str(info["pid"]) != fields.get("pid"):
        return
    reboot = process == f"{name}-kernel" and info["exitstatus"] == REBOOT
    if not reboot and not any(p["statename"] in LIVE for p in group.values()):
        return
    why = "" if process.endswith(GUEST_CORE) else " (it cannot serve as configured: see its log)"
    log(f"{process} {event}{why}: stopping {name}")
    supervisor.stopProcessGroup(name, True)
    kernel = supervisor.getProcessInfo(f"{name}:{name}-kernel")
    if kernel["exitstatus"] == REBOOT:
        log(f"the kernel asked for a reboot: starting {name} again")
        supervisor.startProcessGroup(name, False)

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m deploy.listener GUEST_NAME")
    main(sys.argv[1])
