"""The one way a service starts: ``python -m services.NAME --guest-config FILE``.

Same command line under supervisord, ``skas run`` and the tests."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Callable

from common import config as guest_config
from common.config import GuestConfig
from common.transport import pin_cpu


def main(service: str, run: Callable[[GuestConfig], int]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}",
                                     description=f"the {service} service of a skas guest")
    parser.add_argument("--guest-config", required=True, metavar="FILE",
                        help="the guest's TOML configuration (written by skas create/run)")
    args = parser.parse_args()
    try:
        cfg = guest_config.load(args.guest_config)
    except (OSError, ValueError, TypeError) as exc:
        sys.exit(f"{service}: cannot read guest config: {exc}")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format=f"%(asctime)s {cfg.name}/{service} %(levelname)s %(name)s: %(message)s")
    pin_cpu(cfg.cpu)
    sys.exit(run(cfg))


class Running:
    """True until SIGTERM: a service's loop runs while this is true, so a stop
    finishes the work in hand instead of dying in the middle of it."""

    def __init__(self) -> None:
        self.value = True
        signal.signal(signal.SIGTERM, self.stop)

    def stop(self, *_) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value
