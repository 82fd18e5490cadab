"""bench/uml.py reads a UML boot's console right: the command's lines are
those between init's markers, whatever the kernel printed around them; a
boot that panicked or a command that failed is an error, not figures; and
a command the kernel's command line would split is refused before a boot.
The consoles are as linux.uml 6.1 printed them."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import uml  # noqa: E402

RAN = """SELinux: CONFIG_SECURITY_SELINUX_CHECKREQPROT_VALUE is non-zero.
mmapper_init - find_iomem failed
@@bench-begin
getppid median_us 38.700 mean_us 40.112
open_read_close median_us 80.400 mean_us 83.000
@@bench-end 0
reboot: System halted
"""
PANICKED = """mmapper_init - find_iomem failed
@@bench-begin
Kernel panic - not syncing: Attempted to kill init! exitcode=0x00007f00
CPU: 0 PID: 1 Comm: bench-init Not tainted 6.1.176 #1
"""


def test_the_output_is_the_lines_between_the_markers():
    assert uml.output(RAN) == ("getppid median_us 38.700 mean_us 40.112\n"
                               "open_read_close median_us 80.400 mean_us 83.000\n")


def test_a_boot_that_never_reached_the_end_marker_is_an_error():
    with pytest.raises(uml.UMLError, match="Attempted to kill init"):
        uml.output(PANICKED)


def test_a_command_that_failed_is_an_error_with_its_output():
    failed = "@@bench-begin\n/bin/storage: No such file or directory\n@@bench-end 127\n"
    with pytest.raises(uml.UMLError, match="exited 127:\n/bin/storage: No such"):
        uml.output(failed)


def test_init_gets_the_command_after_the_double_dash():
    argv = uml.command(Path("/tmp/b.img"), ["/bin/syscalls", "5000", "/etc/hostname"])
    assert argv[0] == "linux.uml" and "init=/sbin/bench-init" in argv
    assert argv[argv.index("--"):] == ["--", "/bin/syscalls", "5000", "/etc/hostname"]
    assert "console=tty0" in argv[:argv.index("--")]     # else UML appends it after --


def test_an_argument_the_kernel_would_split_is_refused():
    with pytest.raises(ValueError):
        uml.command(Path("/tmp/b.img"), ["/bin/sh", "-c", "echo a; echo b"])
