"""The ``skas`` command's entry point: ``skas run``'s kernel is forked
before the command's own imports (deploy/forked.py's ``prefork_for``), as
``python -m deploy.cli`` does at the top of deploy/cli.py."""
from __future__ import annotations

import sys


def main():
    from deploy import forked
    forked.prefork_for(sys.argv[1:])
    from deploy.cli import main as cli
    return cli()
