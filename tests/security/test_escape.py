"""Escape attempts from a guest fail, and the kernel keeps serving."""
import os
import signal
import subprocess

from services.userspace import stub


def test_int80_kills_the_guest_process(run_guest):
    r = run_guest("/bin/escape", "int80")
    assert "int80 returned" not in r.stdout
    assert r.returncode == 128 + signal.SIGSYS


def test_host_only_path_is_not_there(run_guest, tree):
    for path in ("/etc/debian_version", "/usr/bin/python3", os.path.abspath(__file__)):
        assert os.path.exists(path) and not os.path.exists(f"{tree}{path}")
        r = run_guest("/bin/escape", "open", path)
        assert r.stdout == f"open {path}: No such file or directory\n"


def test_calls_made_from_the_stub_are_the_kernels_too(run_guest):
    """The filter sends no call made at the stub's address to the listener
    (userspace's injected calls come from there); a guest that jumps to the
    stub's syscall instruction is still served by the kernel, as a ptrace
    stop: it sees the guest's files and pids, not the host's."""
    host_only = os.path.abspath(__file__)
    r = run_guest("/bin/escape", "gadget", hex(stub.GADGET), host_only)
    assert r.stdout == f"open {host_only}: No such file or directory\ngetppid 0\n", r.stderr
    r = run_guest("/bin/escape", "gadget", hex(stub.GADGET), "/etc/motd")
    assert r.stdout == "open /etc/motd: opened\ngetppid 0\n", r.stderr


def test_guest_cannot_signal_or_see_a_host_pid(run_guest):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        r = run_guest("/bin/escape", "kill", str(victim.pid))
        lines = r.stdout.splitlines()
        assert lines[0].startswith(f"kill {victim.pid}: ") and not lines[0].endswith("sent")
        assert lines[1] == "getpid 1 getppid 0"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_bad_pointer_is_efault_and_the_kernel_keeps_serving(run_guest):
    r = run_guest("/bin/escape", "efault")
    assert r.stdout == ("write(bad pointer) = -1 errno Bad address\n"
                        "write(unmapped) = -1 errno Bad address\n"
                        "still served\n")
    assert r.returncode == 0
