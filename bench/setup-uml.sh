#!/bin/sh
# Installs what `bench/run.py --against uml,proot` runs beside skas: Debian's
# User-Mode Linux (linux.uml, Linux 6.1) and PRoot.  A bench step, not the
# project's set-up: the tests never need either.  gVisor's runsc is not in
# Debian; `--against gvisor` runs only where runsc is already on PATH.
set -e
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    user-mode-linux proot
