"""Debian's own userland, unmodified (issue 15): the same scripts in a
chroot of a debootstrap minbase tree and in a guest booted from an image of
it give the same output, pids, times and inode numbers aside."""
from __future__ import annotations


SHELL = r"""
set -e
greet() { echo "hello $1"; }
trap 'echo trapped $?' EXIT
greet "$(echo sub | tr a-z A-Z)"
for i in 3 1 2; do echo $i; done | sort | tr '\n' ' '; echo
echo redirected > /tmp/r.txt; cat < /tmp/r.txt; echo more >> /tmp/r.txt; wc -l < /tmp/r.txt
read -r a b <<< "here string"; echo "$b/$a"
( exit 3 ) || echo "subshell status $?"
"""

COREUTILS = r"""
set -e
ls -l /etc/apt | sed 1d | awk '{print $1, $3, $4, $5, $9}'
sort /etc/passwd | cut -d: -f1,3 | head -5
printf 'b\na\nb\nc\na\n' | sort | uniq -c
wc -c /etc/passwd /etc/group
find /etc/apt -type f -exec md5sum {} \; | sort
ls /etc | head -20 | xargs -n 5 echo
stat -c '%n %s %a %U %G %F %h' /etc/passwd /etc /usr/bin/bash
du -sb --apparent-size /usr/share/doc/bash/* | sort
date -d @86400 -u
grep -n root /etc/passwd | sed 's/root/ROOT/g'
awk -F: '$3 < 3 {print $1 "=" $3}' /etc/passwd
mkdir -p /tmp/t/a/b && echo x > /tmp/t/a/b/f && tar czf /tmp/t.tgz -C /tmp t
tar tzf /tmp/t.tgz | sort; rm -r /tmp/t; tar xzf /tmp/t.tgz -C /tmp; cat /tmp/t/a/b/f
gzip -c /etc/passwd | gzip -dc | md5sum
id; id -un nobody
df -k / | awk 'NR==1 {print $1, $6}'
"""

PACKAGES = r"""
set -e
ps -o user,tty,comm
su -c 'id; echo "$HOME"' nobody -s /bin/sh
mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/bin
printf 'Package: hello-skas\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: a test package\n' > /tmp/pkg/DEBIAN/control
printf '#!/bin/sh\necho hello from the package\n' > /tmp/pkg/usr/bin/hello-skas
chmod 755 /tmp/pkg/usr/bin/hello-skas
dpkg-deb --build --root-owner-group /tmp/pkg /tmp/hello.deb
dpkg -i /tmp/hello.deb
hello-skas
dpkg -l hello-skas | tail -1
dpkg -L hello-skas
dpkg -r hello-skas
dpkg -l | wc -l
apt-cache policy bash
apt-cache show dpkg | grep -c '^Package'
dpkg --verify dpkg && echo verified
"""


def _same(in_chroot, in_guest, script: str, mask=lambda s: s):
    want = in_chroot("/bin/bash", "-c", script)
    got = in_guest("/bin/bash", "-c", script)
    assert got.returncode == want.returncode, got.stdout + got.stderr
    assert mask(got.stdout) == mask(want.stdout), got.stderr


def test_bash_scripts(in_chroot, in_guest):
    _same(in_chroot, in_guest, SHELL)


def test_coreutils_grep_sed_awk_tar_gzip(in_chroot, in_guest):
    _same(in_chroot, in_guest, COREUTILS)


def test_ps_su_dpkg_and_apt(in_chroot, in_guest):
    """A .deb built in the guest by dpkg-deb, installed, run and removed by
    dpkg (its database's locks are fcntl locks), apt's cache read; su
    through PAM to another user."""
    _same(in_chroot, in_guest, PACKAGES)


PIDFDS = r"""
import asyncio, os, select, signal
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)
    os._exit(7)
fd = os.pidfd_open(pid)
p = select.poll()
p.register(fd, select.POLLIN)
print("running", p.poll(0))
os.write(w, b"x")
print("ended", [e for _, e in p.poll(-1)])
si = os.waitid(os.P_PIDFD, fd, os.WEXITED)
print("waitid", si.si_code == os.CLD_EXITED, si.si_status, si.si_pid == pid)
print("reaped", [e for _, e in p.poll(0)])
try:
    signal.pidfd_send_signal(fd, signal.SIGTERM)
except ProcessLookupError:
    print("pidfd_send_signal: ESRCH")


async def main():
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", "exit 3")
    print("asyncio's pidfd child watcher:", await proc.wait())
asyncio.run(main())
"""


def test_python_pidfds(in_chroot, in_guest):
    """os.pidfd_open, poll, os.waitid(P_PIDFD), signal.pidfd_send_signal
    and asyncio's PidfdChildWatcher, as CPython uses them."""
    want = in_chroot("/usr/bin/python3", "-c", PIDFDS)
    assert "asyncio's pidfd child watcher: 3" in want.stdout, want.stdout
    got = in_guest("/usr/bin/python3", "-c", PIDFDS)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), got.stderr
