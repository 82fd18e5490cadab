"""The stub and the filter, on real host processes."""
import os
import subprocess

import pytest

from services.userspace import platform, seccomp, stub


def test_stub_is_an_elf_the_host_accepts(tmp_path):
    path = stub.install(tmp_path)
    header = subprocess.run(["readelf", "-hl", str(path)], capture_output=True, text=True).stdout
    assert "EXEC (Executable file)" in header and "X86-64" in header
    assert f"0x{stub.STUB_BASE:016x}" in header and "RWE" in header


@pytest.mark.parametrize("notify", [False, True])
def test_filter_jumps_stay_inside_the_program(notify):
    prog = seccomp.program(notify)
    for pc, (code, jt, jf, _) in enumerate(prog):
        if code & 0x07 == 0x05:   # BPF_JMP
            assert pc + 1 + max(jt, jf) < len(prog)
    ends = [(0x06, 0, 0, seccomp.RET_TRACE), (0x06, 0, 0, seccomp.RET_KILL_PROCESS),
            (0x06, 0, 0, seccomp.RET_ALLOW)]
    if notify:
        ends.append((0x06, 0, 0, seccomp.RET_USER_NOTIF))
    assert prog[-len(ends):] == ends


@pytest.mark.parametrize("notify", [False, True])
def test_spawned_stub_is_filtered_holds_no_fd_and_no_host_stack(tmp_path, notify):
    t = platform.spawn(1, str(stub.install(tmp_path)), notify)
    try:
        status = open(f"/proc/{t.pid}/status").read()
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
        assert os.listdir(f"/proc/{t.pid}/fd") == []     # the listener was taken out
        if notify:
            assert os.readlink(f"/proc/self/fd/{t.listener}") == "anon_inode:seccomp notify"
        else:
            assert t.listener == -1
        maps = open(f"/proc/{t.pid}/maps").read()
        assert "[stack]" not in maps and str(tmp_path) in maps   # only the stub is a file
        results, regs_set = platform.run_ops(t, [
            {"op": "exec_stub"},
            {"op": "mmap", "addr": 0x10000000, "length": 8192, "prot": 3, "flags": 0x32,
             "offset": 0},
            {"op": "poke", "addr": 0x10000000, "data": b"guest"}],
            platform.Context(str(tmp_path / "stub"), adopt=lambda child: None,
                             wait_group=None, took_over=None, gone=None))
        assert results[0]["vdso"] > 0 and results[1:] == [0x10000000, 0] and not regs_set
        with open(f"/proc/{t.pid}/mem", "rb", buffering=0) as mem:
            assert os.pread(mem.fileno(), 5, 0x10000000) == b"guest"
    finally:
        if t.listener >= 0:
            os.close(t.listener)
        t.kill()
        os.waitpid(t.pid, 0)
