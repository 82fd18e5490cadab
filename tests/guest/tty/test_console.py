"""The guest console as a terminal, driven through a pty the test opens
(`skas run -it`): a shell with job control on tty0 (busybox cttyhack), ^C,
^Z with jobs and fg, stty size following the outer terminal's size, vi
saving a file, util-linux's script on a guest pty; `cat` of 4 MiB to
a slow reader, through -t and through a pipe, every byte in order; and the
default disk booting busybox init to a login shell, then powered off."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import HERE, _command, add_libraries, disk_of, make_tree
from terminal import PROMPT, Terminal, run_line

BIG = 4 << 20
# a sleep that says when it runs in front (the shell has given it the terminal
# and left its line editor's modes): a ^C typed before would be a byte to read
SLEEP = b"sh -c 'echo ready; exec sleep 100'\r"


@pytest.fixture(scope="module")
def contree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "contree")
    (root / "big").write_bytes(os.urandom(BIG))
    script = root / "usr/bin/script"
    script.unlink(missing_ok=True)          # never write through an applet's link
    shutil.copy("/usr/bin/script", script)
    add_libraries(root, script)
    return root


@pytest.fixture(scope="module")
def condisk(tmp_path_factory, contree) -> Path:
    yield from disk_of(tmp_path_factory, contree)


def shell(disk: Path, *options: str) -> Terminal:
    """skas run -it of an interactive shell whose controlling terminal is the
    console: not init itself, as Linux counts a group whose only parent
    outside is init as orphaned, and discards its ^Z."""
    t = Terminal(_command(("run", *options, "-it", "--disk", str(disk), "--", "/bin/sh", "-c",
                           "setsid cttyhack /bin/sh -i; echo shell ended")), cwd=HERE.parent)
    t.expect(PROMPT)
    return t


def test_a_shell_on_the_console_echoes_and_has_job_control(condisk):
    t = shell(condisk)
    try:
        assert run_line(t, b"echo hi") == b"hi"
        assert run_line(t, b"tty") == b"/dev/tty0"
        t.send(SLEEP)
        t.expect(rb"ready\r\n")
        t.send(b"\x03")                              # ^C: SIGINT to the foreground group
        t.expect(PROMPT)
        assert run_line(t, b"echo alive $?") == b"alive 130"
        t.send(SLEEP)
        t.expect(rb"ready\r\n")
        t.send(b"\x1a")                              # ^Z: SIGTSTP
        t.expect(PROMPT)
        assert b"exec sleep 100" in run_line(t, b"jobs")
        t.send(b"fg\r")
        t.expect(rb"exec sleep 100['\"]?\r\n")
        for _ in range(60):        # fg gives it the terminal after it says so: until then
            t.send(b"\x03")        # a ^C goes to the shell, which prompts anew
            try:
                t.expect(PROMPT, timeout=1)
            except AssertionError:
                continue
            if b"exec sleep" not in run_line(t, b"jobs"):
                break
        else:
            raise AssertionError("^C never reached the job fg resumed")
        t.send(b"exit\r")
        assert t.wait() == 0
    finally:
        t.close()


def test_stty_size_follows_the_outer_terminal(condisk):
    t = shell(condisk)
    try:
        assert run_line(t, b"stty size") == b"24 80"
        # the resize while a foreground job waits for its SIGWINCH (not while
        # the shell edits a line, which a resize makes it redraw)
        t.send(b"sh -c 'trap \"stty size; exit\" WINCH; echo armed; "
               b"while :; do sleep 1; done'\r")
        t.expect(rb"armed\r\n")
        t.resize(40, 100)          # SIGWINCH to skas, which sigio reads the size for
        t.expect(rb"40 100\r\n")
        t.expect(PROMPT)
        assert run_line(t, b"stty size") == b"40 100"
        t.send(b"exit\r")
        assert t.wait() == 0
    finally:
        t.close()


def test_vi_edits_and_saves_a_file(condisk, tmp_path):
    t = shell(condisk)
    try:
        t.send(b"vi /vi.txt\r")
        t.expect(rb"/vi\.txt")
        t.send(b"ihello from vi\rsecond line")
        t.expect(rb"I /vi\.txt \[Modified\] 2/2")
        t.send(b"\x1b")           # alone: vi takes ESC and what follows at once as a key
        t.expect(rb"- /vi\.txt \[Modified\]")
        t.send(b":wq\r")
        t.expect(PROMPT)
        assert run_line(t, b"od -c /vi.txt | head -3") == (
            b"0000000   h   e   l   l   o       f   r   o   m       v   i  \\n   s   e\r\n"
            b"0000020   c   o   n   d       l   i   n   e  \\n\r\n"
            b"0000032")
        t.send(b"rm /vi.txt; sync; exit\r")
        assert t.wait() == 0
    finally:
        t.close()


def test_script_runs_a_shell_on_a_guest_pty(condisk):
    t = shell(condisk)
    try:
        out = run_line(t, b"script -q -c 'tty; echo in script' /dev/null")
        assert out.split(b"\r\n")[-2:] == [b"/dev/pts/0", b"in script"], out
        t.send(b"exit\r")
        assert t.wait() == 0
    finally:
        t.close()


def _slowly(fd: int, until_eof=True) -> bytes:
    """Read fd to its end a little at a time, as a slow terminal would."""
    got = bytearray()
    while True:
        try:
            piece = os.read(fd, 4096)
        except OSError:           # a pty's master once the other side is gone
            piece = b""
        if not piece:
            return bytes(got)
        got += piece
        if len(got) % (256 << 10) < 4096:
            time.sleep(0.05)      # slow: the guest's writes must wait, not be lost


def test_cat_to_a_slow_terminal_delivers_every_byte(condisk, contree):
    want = (contree / "big").read_bytes().replace(b"\n", b"\r\n")    # ONLCR
    t = Terminal(_command(("run", "-it", "--disk", str(condisk), "--", "/bin/cat", "/big")),
                 cwd=HERE.parent, read=False)
    try:
        got = _slowly(t.master)
        assert t.wait() == 0
    finally:
        t.close()
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()


def test_cat_to_a_slow_pipe_delivers_every_byte(condisk, contree):
    want = (contree / "big").read_bytes()
    p = subprocess.Popen(_command(("run", "--disk", str(condisk), "--", "/bin/cat", "/big")),
                         cwd=HERE.parent, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    got = _slowly(p.stdout.fileno())
    assert p.wait(60) == 0
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()


def test_input_through_a_pipe_arrives_exactly_and_ends(condisk):
    data = bytes(range(256)) * 64 + b"no newline at the end"
    r = subprocess.run(_command(("run", "-i", "--disk", str(condisk), "--", "/bin/sh", "-c",
                                 "cat; echo; echo after-eof")),
                       cwd=HERE.parent, input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data + b"\nafter-eof\n"


def test_without_i_the_console_reads_eof(condisk):
    r = subprocess.run(_command(("run", "--disk", str(condisk), "--", "/bin/sh", "-c",
                                 "cat; echo done")),
                       cwd=HERE.parent, input=b"not for the guest", capture_output=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (0, b"done\n"), r.stderr


def test_t_needs_a_terminal(condisk):
    r = subprocess.run(_command(("run", "-t", "--disk", str(condisk), "--", "/bin/true")),
                       cwd=HERE.parent, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "-t needs a terminal on stdin" in r.stderr


def test_raw_mode_is_restored_after_skas_is_killed(condisk):
    t = shell(condisk)
    try:
        lflag = termios.tcgetattr(t.master)[3]
        assert not lflag & termios.ICANON          # raw while the guest runs
        t.proc.kill()
        t.proc.wait()
        for _ in range(600):                       # the guardian restores when it sees the end
            if termios.tcgetattr(t.master)[3] & termios.ICANON:
                break
            time.sleep(0.05)
        assert termios.tcgetattr(t.master)[3] & termios.ICANON
    finally:
        t.close()


def test_the_default_disk_boots_init_to_a_shell_and_powers_off(tmp_path):
    """`skas run -it` with no command boots the default disk's busybox init:
    a login shell on tty0 with job control; poweroff runs init's shutdown
    and skas exits 0 with a clean disk."""
    img = tmp_path / "default.img"
    r = subprocess.run(_command(("disk", "create", str(img))), cwd=HERE.parent,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    t = Terminal(_command(("run", "-it", "--disk", str(img))), cwd=HERE.parent)
    try:
        t.expect(PROMPT)
        assert run_line(t, b"tty; echo $0") == b"/dev/tty0\r\n-/bin/sh"     # a login shell
        t.send(SLEEP)
        t.expect(rb"ready\r\n")
        t.send(b"\x1a")
        t.expect(rb"Stopped")
        t.expect(PROMPT)
        assert b"sleep 100" in run_line(t, b"jobs")
        t.send(b"poweroff\r")
        t.expect(rb"reboot: Power down")
        assert t.wait() == 0
    finally:
        t.close()
    subprocess.run(["e2fsck", "-fn", str(img)], check=True, capture_output=True)
