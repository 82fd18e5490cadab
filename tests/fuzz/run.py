"""The long fuzz run: `python -m tests.fuzz.run --messages 1000000`.

Each service in turn (or those named) gets the messages, in rounds of one
guest's life for kernel and userspace; it prints the figures for
docs/reliability.md and exits 1 at the first crash, hang, traceback or
wrong answer (with hypothesis's report of the batch that did it)."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from deploy import disk as diskmod

from .campaign import campaign
from .targets import TARGETS, Target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="per service")
    ap.add_argument("--service", action="append", choices=TARGETS,
                    help="fuzz only this one (again for more); default: all four")
    ap.add_argument("--mutants", type=int, default=0,
                    help="byte-level mutants sent after each message hypothesis draws")
    ap.add_argument("--seconds", type=float, default=60, help="length of each round's guest")
    ap.add_argument("--work", type=Path, help="keep run directories here (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skas-fuzz-") as tmp:
        work = args.work or Path(tmp)
        tree = work / "tree"
        diskmod.default_tree(tree)
        disk = work / "disk.img"
        diskmod.create(disk, "64M", tree)
        failed = False
        for service in args.service or TARGETS:
            target = Target(service, work / service, disk, args.seconds)
            began = time.monotonic()
            last = [began]

            def progress(sent: int) -> None:
                if time.monotonic() - last[0] > 10:
                    last[0] = time.monotonic()
                    rate = sent / (last[0] - began)
                    print(f"  {service}: {sent} messages, {rate:.0f}/s", flush=True)

            try:
                sent = campaign(target, args.messages, derandomize=False,
                                mutant_count=args.mutants, progress=progress)
            except Exception as exc:        # Failure, or hypothesis reporting one
                cause = exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc
                print(f"{service}: FAILED in round {target.rounds}: {str(cause)[:4000]}",
                      flush=True)
                failed = True
                continue
            took = time.monotonic() - began
            print(f"{service}: {sent} messages in {took:.0f}s ({sent / took:.0f}/s), "
                  f"{target.rounds} rounds, crashes 0, hangs 0", flush=True)
        diskmod.check(disk)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
