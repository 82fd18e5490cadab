#!/bin/sh
# Installs everything skas needs on Debian: the packages, then a virtualenv
# in .venv with skas and its test tools.  Safe to run again.
set -e
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! dpkg -s busybox-static debootstrap e2fsprogs gcc libc6-dev python3-venv uml-utilities >/dev/null 2>&1; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q busybox-static debootstrap e2fsprogs gcc libc6-dev python3 python3-venv \
        uml-utilities procps
fi
# Debian's own Python 3, the one the packages above are for, not whichever
# python3 comes first on PATH: a pyenv build (--enable-shared, without
# --enable-optimizations) ran Python ~30% slower, the kernel's 64 KiB
# writes ~12% (bench/README.md, seventh session)
[ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv
# compat: the checkout on sys.path by a .pth line; setuptools' default editable
# finder cost every python start ~10 ms of imports (bench/coldstart.py: 25 -> 14 ms)
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
# Compiled now, as a package install compiles them: with PYTHONDONTWRITEBYTECODE
# set nothing else would, and every skas run would compile the kernel's ~150
# modules again (measured: ~110 ms more CPU a cold start).
.venv/bin/python -m compileall -q common services deploy >/dev/null
echo "skas is installed: .venv/bin/skas --help"
