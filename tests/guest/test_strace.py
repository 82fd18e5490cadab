"""`skas run --strace`: the calls a guest makes, decoded as `strace -f -tt -T`
prints them, to a file or to the kernel's log; bounded whatever the guest
passes."""
from __future__ import annotations

import re

import pytest

from conftest import disk_of, make_tree, skas

LINE = re.compile(r"\[pid (\d+)\] (\d\d:\d\d:\d\d\.\d{6}) (.*)")
DURATION = re.compile(r" <\d+\.\d{6}>$")


@pytest.fixture(scope="module")
def sdisk(tmp_path_factory):
    yield from disk_of(tmp_path_factory, make_tree(tmp_path_factory, "stree", ("strace_calls",)))


def traced(disk, tmp_path, *cmd: str) -> tuple[str, list[str]]:
    """The guest's output and its --strace=FILE lines, each checked for
    strace's prefix ([pid N] HH:MM:SS.micro) and stripped of it and of the
    duration and the padding before " = "."""
    out = tmp_path / "strace.txt"
    r = skas("run", "--disk", str(disk), "--hostname", "box", f"--strace={out}", "--", *cmd)
    assert r.returncode == 0, r.stderr
    lines = []
    for raw in out.read_text().splitlines():
        m = LINE.fullmatch(raw)
        assert m, raw
        body = m[3]
        if not body.startswith(("---", "+++")) and not body.endswith("<unfinished ...>"):
            assert DURATION.search(body), raw
            body = re.sub(r"\s+= ", " = ", DURATION.sub("", body), count=1)
        lines.append(f"[{m[1]}] {body}")
    return r.stdout, lines


def test_ls_shows_exec_opens_dirents_stats_and_writes_decoded(sdisk, tmp_path):
    stdout, lines = traced(sdisk, tmp_path, "/bin/ls", "-l", "/")
    assert " bin" in stdout
    text = "\n".join(lines)
    assert lines[0] == '[1] execve("/bin/ls", ["/bin/ls", "-l", "/"], [/* 3 vars */]) = 0'
    assert re.search(r'openat\(AT_FDCWD, "/", O_RDONLY\|O_NONBLOCK\|O_CLOEXEC\|O_DIRECTORY\) = 3',
                     text)
    assert re.search(r"getdents64\(3, 0x[0-9a-f]+ /\* \d+ entries \*/, \d+\) = [1-9]", text)
    assert re.search(r'newfstatat\(AT_FDCWD, "/bin", \{st_mode=S_IFDIR\|0755, st_size=\d+, '
                     r'\.\.\.\}, AT_SYMLINK_NOFOLLOW\) = 0', text)
    assert re.search(r'write\(1, "total \d+\\ndrwx.{10,}"\.\.\., \d+\) = \d+', text)
    assert lines[-1] == "[1] +++ exited with 0 +++"


def test_strace_alone_writes_to_the_kernels_log(sdisk, tmp_path):
    r = skas("run", "--log-dir", str(tmp_path), "--disk", str(sdisk), "--strace", "--",
             "/bin/strace_calls")
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "kernel.log").read_text()
    assert re.search(r'\[pid 1\] \d\d:\d\d:\d\d\.\d{6} openat\(AT_FDCWD, "/no/such/file", '
                     r"O_RDONLY\) = -1 ENOENT \(No such file or directory\) <\d", log)


def joined(lines: list[str]) -> list[str]:
    """Each call cut by another task's line (`read(3, <unfinished ...>` ...
    `<... read resumed>"hi", 64) = 2`) made one line again, where it began:
    when the host runs the child's exit and the parent's wait4 is theirs."""
    out, open_at = [], {}
    for line in lines:
        pid, body = line.split(" ", 1)
        m = re.match(r"<\.\.\. \w+ resumed>(.*)", body)
        if m and pid in open_at:
            i = open_at.pop(pid)
            out[i] = out[i].removesuffix("<unfinished ...>") + m[1]
            continue
        if body.endswith("<unfinished ...>"):
            open_at[pid] = len(out)
        out.append(line)
    return out


def test_known_calls_print_as_predicted(sdisk, tmp_path):
    _, lines = traced(sdisk, tmp_path, "/bin/strace_calls")
    lines = joined(lines)
    assert [line for line in lines if line.startswith("[2]")] == ["[2] +++ exited with 3 +++"]
    lines = [line for line in lines if not line.startswith("[2]")]
    start = lines.index('[1] openat(AT_FDCWD, "/no/such/file", O_RDONLY) = '
                        "-1 ENOENT (No such file or directory)")
    shown = [re.sub(r"0x[0-9a-f]{5,}", "ADDR", line) for line in lines[start:]]
    assert shown == [
        '[1] openat(AT_FDCWD, "/no/such/file", O_RDONLY) = -1 ENOENT (No such file or directory)',
        "[1] pipe2([3, 4], O_CLOEXEC) = 0",
        '[1] write(4, "hello\\n", 6) = 6',
        '[1] read(3, "hello\\n", 64) = 6',
        "[1] clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
        "child_tidptr=ADDR) = 2",
        "[1] wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 2",
        "[1] rt_sigaction(SIGUSR1, {sa_handler=ADDR, sa_mask=[], sa_flags=SA_RESTORER, "
        "sa_restorer=ADDR}, NULL, 8) = 0",
        "[1] getpid() = 1",
        "[1] kill(1, SIGUSR1) = 0",
        "[1] --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=1, si_uid=0} ---",
        "[1] rt_sigreturn({mask=[]}) = 0",
        "[1] openat(AT_FDCWD, 0x1, O_RDONLY) = -1 EFAULT (Bad address)",
        "[1] write(1, 0x8, 5) = -1 EFAULT (Bad address)",
        '[1] uname({sysname="Linux", nodename="box", ...}) = 0',
        "[1] +++ exited with 0 +++",
    ]


def test_a_hostile_guest_gets_bounded_lines_and_no_kernel_bug(sdisk, tmp_path):
    logs = tmp_path / "logs"
    out = tmp_path / "strace.txt"
    r = skas("run", "--log-dir", str(logs), "--disk", str(sdisk), f"--strace={out}", "--",
             "/bin/strace_calls", "hostile")
    assert r.returncode == 0, r.stderr
    raw = out.read_text().splitlines()
    assert all(len(line) < 4 * 4096 + 200 for line in raw)
    text = "\n".join(raw)
    # a string that runs into an unmapped page: its address, as strace shows it
    assert re.search(r"openat\(AT_FDCWD, 0x[0-9a-f]+, O_RDONLY\) = -1", text)
    assert re.search(r'write\(1, "A{32}"\.\.\., 70368744177664\) = -1 EFAULT', text)
    assert re.search(r"getdents64\(0, 0x[0-9a-f]+, 1099511627776\) = -1 ENOTDIR", text)
    assert re.search(r'openat\(AT_FDCWD, "/p{4095}", O_RDONLY\) += -1 ENAMETOOLONG', text)
    assert re.search(r'execve\(0x[0-9a-f]+, \["x", "A{32}"\.\.\.\], 0x[0-9a-f]+ /\* 2 vars \*/\)',
                     text)
    log = (logs / "kernel.log").read_text()
    assert "Traceback" not in log and "strace: cannot show" not in log
