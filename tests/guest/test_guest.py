"""Real programs from an ext2 disk run in a guest and behave as they do natively."""
import os
import signal
import subprocess
import time

from conftest import skas, skas_popen


def test_busybox_uname_reports_the_guests_kernel_and_nodename(run_guest):
    r = run_guest("/bin/busybox", "uname", "-a")
    assert r.returncode == 0, r.stderr
    fields = r.stdout.split()
    assert fields[:3] == ["Linux", f"run-{fields[1].split('-')[1]}", "6.1.0-skas"]
    assert os.uname().release not in r.stdout and os.uname().nodename not in r.stdout


def test_hostname_option_sets_the_nodename(disk):
    r = skas("run", "--disk", str(disk), "--hostname", "box", "--", "uname", "-n")
    assert r.stdout == "box\n", r.stderr


def test_ls_shows_the_images_root_not_the_hosts(run_guest, tree):
    r = run_guest("/bin/busybox", "ls", "-1a", "/")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted([".", ".."] + os.listdir(tree) + ["lost+found"])
    long = run_guest("/bin/busybox", "ls", "-l", "/bin/busybox")
    assert long.stdout.startswith("-rwx") and " root " in long.stdout


def test_cat_reads_a_file_from_the_disk(run_guest):
    r = run_guest("/bin/busybox", "cat", "/etc/hostname", "/etc/motd")
    assert r.stdout == "skas\na file from the guest's disk\nline two\n"


def native_vs_guest(run_guest, tree, prog):
    """The same program natively, in a chroot of the image's tree, and in a guest."""
    argv = [f"/bin/{prog}", "/etc/motd", "two words", ""]
    env = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/", "TERM": "linux"}
    native = subprocess.run(["chroot", str(tree), *argv], capture_output=True, text=True, env=env)
    guest = run_guest(*argv)
    assert guest.returncode == native.returncode == 7, guest.stderr
    return native.stdout, guest.stdout


def _normalise(out: str) -> str:
    """Pids differ by design: 1 in the guest."""
    return "\n".join(ln for ln in out.splitlines() if not ln.startswith("pid="))


def test_static_program_matches_native(run_guest, tree):
    native, guest = native_vs_guest(run_guest, tree, "showenv")
    assert "pid=1\n" in guest
    assert _normalise(guest) == _normalise(native)


def test_static_pie_program_matches_native(run_guest, tree):
    native, guest = native_vs_guest(run_guest, tree, "showenv-pie")
    assert "pid=1\n" in guest
    assert _normalise(guest) == _normalise(native)


def test_exit_status_reaches_the_caller(run_guest):
    assert run_guest("sh", "-c", "exit 3").returncode == 3
    r = run_guest("/bin/does-not-exist")
    assert r.returncode == 125 and "No such file or directory" in r.stdout


def _processes_matching(argv: bytes, needle: bytes = b"\x01") -> list[bytes]:
    """Live processes whose command line is argv, or holds needle."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cmd == argv or needle in cmd):
            found.append(cmd)
    return found


def _sleeping_guest(disk, seconds: str) -> tuple[subprocess.Popen, bytes]:
    """skas run of `busybox sleep SECONDS`, once the guest's process is up;
    and what that process's command line is."""
    guest_argv = b"/bin/busybox\x00sleep\x00" + seconds.encode() + b"\x00"
    p = skas_popen("run", "--disk", str(disk), "--", "/bin/busybox", "sleep", seconds)
    deadline = time.monotonic() + 20
    while not _processes_matching(guest_argv):
        assert time.monotonic() < deadline and p.poll() is None, "the guest never started"
        time.sleep(0.05)
    return p, guest_argv


def _command_line(p: subprocess.Popen) -> bytes:
    """skas run's command line, which its services, forks of it, have too
    (its --log-dir tells this run from any other)."""
    return b"\0".join(os.fsencode(a) for a in p.args) + b"\0"


def test_a_killed_skas_run_takes_its_guest_with_it(disk):
    """SIGKILL gives skas no chance to stop the services: they go on their own."""
    p, guest_argv = _sleeping_guest(disk, "078")
    p.kill()
    p.wait()
    deadline = time.monotonic() + 30
    while _processes_matching(guest_argv, _command_line(p)):
        assert time.monotonic() < deadline, "the services outlived skas run"
        time.sleep(0.1)


def test_run_leaves_no_process_behind_even_when_interrupted(disk):
    p, guest_argv = _sleeping_guest(disk, "077")
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 128 + signal.SIGTERM
    assert _processes_matching(guest_argv, _command_line(p)) == []


def test_a_disk_in_use_ends_the_second_run_with_ubd_ios_reason(disk):
    """ubd_io refuses a disk another guest's ubd_io holds; skas run says why
    and ends, instead of leaving a kernel waiting for its disk for ever."""
    first, _ = _sleeping_guest(disk, "076")
    try:
        second = skas("run", "--disk", str(disk), "--", "/bin/busybox", "true")
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)
    assert second.returncode == 125
    assert "ubd_io cannot serve as configured (exit status 78)" in second.stderr
    assert "is in use by another ubd_io" in second.stderr
