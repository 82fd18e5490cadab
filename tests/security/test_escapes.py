"""Escapes from a guest to the host, each tried by a real guest program, must
fail: the host is untouched (no marker file, no host tid in guest memory)
and a bystander process in the same guest runs on.  docs/security.md says
what each boundary is; tests/security/test_escape.py holds the earlier ones (int 0x80,
host paths, host pids, bad pointers, the stub's gadget)."""
from __future__ import annotations

import os
import stat
import struct
import subprocess

import pytest

from common import privileges
from common.layout import STUB_BASE
from conftest import disk_of, make_tree, skas, skas_popen
from services.userspace import jail, stub


def _elf(vaddr: int, memsz: int, code: bytes = bytes.fromhex("b83c00000031ff0f05")) -> bytes:
    """A static ELF of one PT_LOAD at vaddr (code: exit(0))."""
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                       vaddr + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, vaddr, vaddr, 120 + len(code), memsz, 0x1000)
    return ehdr + phdr + code


CRAFTED = {
    "overstub": _elf(STUB_BASE, 0x1000),                       # maps over the stub
    "belowstub": _elf(STUB_BASE - 0x1000, 0x2000),             # runs into it
    "wraps": _elf(0x400000, (1 << 64) - 0x1000),               # p_vaddr + p_memsz past 2^64
}


@pytest.fixture(scope="module")
def sectree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "sectree", ("sec_stub",))
    for name, image in CRAFTED.items():
        (root / "bin" / name).write_bytes(image)
        os.chmod(root / "bin" / name, 0o755)
    return root


@pytest.fixture(scope="module")
def secdisk(tmp_path_factory, sectree):
    yield from disk_of(tmp_path_factory, sectree)


def with_bystander(disk, attack: str, *options: str) -> subprocess.CompletedProcess:
    """Run attack in a guest beside a process that waits for it to end and
    then says so: the attack must leave the rest of the guest working."""
    script = ("go=/tmp/go.$$; mkfifo $go; (read x < $go; echo bystander $x) & "
              f"{attack}; echo \"attacker $?\"; echo alive > $go; wait; rm $go")
    return skas("run", "--disk", str(disk), *options, "--", "/bin/sh", "-c", script,
                timeout=120)


def sec_stub(marker, mode: str) -> str:
    return (f"/bin/sec_stub {STUB_BASE:#x} {stub.GADGET_RETURN:#x} {stub.SCRATCH:#x} "
            f"{marker} {mode}")


def attack(disk, tmp_path, mode: str, *options: str) -> list[str]:
    """sec_stub MODE beside a bystander: the attacker ends normally, the
    bystander runs on, and nothing appears on the host; the attacker's lines."""
    marker = tmp_path / "escaped"
    r = with_bystander(disk, sec_stub(marker, mode), *options)
    assert "attacker 0" in r.stdout and "bystander alive" in r.stdout, r.stdout + r.stderr
    assert not marker.exists()
    return r.stdout.splitlines()


@pytest.mark.parametrize("ptrace_only", [False, True])
def test_the_stub_and_its_scratch_cannot_be_changed(secdisk, tmp_path, ptrace_only):
    """Writing the gadget's int3 (so that an injected call returns into guest
    code), writing the scratch an injected call reads its path from, and
    mapping, unmapping, protecting, remapping or advising either: every way
    fails, and the injected calls that follow run as userspace built them."""
    lines = attack(secdisk, tmp_path, "touch", *["--ptrace-only"] * ptrace_only)
    assert lines[:15] == [
        "write the gadget: fault",
        "write the scratch: fault",
        "mprotect the stub rwx: Cannot allocate memory",
        "mprotect the scratch rw: Cannot allocate memory",
        "mprotect across the stub, 8 GiB: Cannot allocate memory",
        "mmap over the stub: Cannot allocate memory",
        "mmap overlapping the stub: Cannot allocate memory",
        "munmap the stub: Invalid argument",
        "munmap the scratch: Invalid argument",
        "munmap 8 GiB around the stub: Invalid argument",
        "madvise dontfork: Cannot allocate memory",
        "madvise dontneed the scratch: Cannot allocate memory",
        "mremap onto the stub: Invalid argument",
        "pkey_mprotect the stub: Function not implemented",
        "file maps: done"], lines


def test_proc_self_mem_reaches_no_host_memory(secdisk, tmp_path):
    """/proc is the guest kernel's: there is no mem file to write the stub through."""
    assert attack(secdisk, tmp_path, "procmem")[:2] == [
        "open /proc/self/mem: No such file or directory", "file maps: done"]


def test_rseq_is_refused_so_no_critical_section_covers_the_stub(secdisk, tmp_path):
    """An rseq critical section over the stub would move rip from an injected
    call's int3 to the guest's abort handler on the next preemption."""
    assert attack(secdisk, tmp_path, "rseq")[:2] == ["rseq: Function not implemented",
                                                     "file maps: done"]


def test_pi_futexes_never_put_a_host_tid_in_guest_memory(secdisk, tmp_path):
    assert attack(secdisk, tmp_path, "pi")[:6] == [
        "lock_pi_private: Function not implemented",
        "trylock_pi_private: Function not implemented",
        "lock_pi2_private: Function not implemented",
        "lock_pi: Function not implemented",
        "word 0",
        "wake_private: done"]


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_an_elf_on_the_stub_or_past_user_space_is_enoexec(secdisk, name):
    """Checked before the old image goes, so the caller sees ENOEXEC."""
    r = with_bystander(secdisk, sec_stub(0, f"exec /bin/{name}"))
    assert r.stdout.splitlines()[0] == f"exec /bin/{name}: Exec format error", r.stdout + r.stderr
    assert "bystander alive" in r.stdout


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _field(status: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in status.splitlines()
                if line.startswith(name + ":"))


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement needs root")
def test_guest_processes_run_unprivileged_in_empty_namespaces(secdisk):
    """Checked from the host while the guest runs: every guest process is the
    guest's own uid, holds no capability, may gain none, and lives in mount,
    network, IPC and UTS namespaces of its own whose root holds only the
    stub, the scratch and the page cache; each service holds only the
    capabilities common/privileges.py lists for it."""
    proc = skas_popen("run", "--disk", str(secdisk), "--", *sec_stub(0, "wait").split(),
                      stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        guests = {}
        for pid in _descendants(proc.pid):
            try:
                if os.readlink(f"/proc/{pid}/exe") == "/stub":
                    guests[pid] = open(f"/proc/{pid}/status").read()
            except OSError:
                continue
        assert len(guests) == 2          # the program and its child
        expected = jail.guest_uid(f"run-{proc.pid}")
        for pid, status in guests.items():
            assert _field(status, "Uid").split() == [str(expected)] * 4
            assert _field(status, "Gid").split() == [str(expected)] * 4
            assert _field(status, "Groups") == ""
            for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(_field(status, caps), 16) == 0, caps
            assert _field(status, "NoNewPrivs") == "1" and _field(status, "Seccomp") == "2"
            for ns in ("mnt", "net", "ipc", "uts"):
                assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
            root = f"/proc/{pid}/root"
            assert sorted(os.listdir(root)) == ["pagecache", "scratch", "shared", "stub"]
            assert os.listdir(f"/proc/{pid}/fd") == [str(stub.SCRATCH_FD)]    # read-only
            mounts = {m.split()[1]: m.split()[3].split(",")
                      for m in open(f"/proc/{pid}/mounts").read().splitlines()}
            assert sorted(mounts) == ["/", "/pagecache", "/scratch", "/shared", "/stub"]
            # only the live files of shared maps can be written, and no set-ID
            # or device file of them counts; the guest uid can add none there
            assert all("ro" in opts for m, opts in mounts.items() if m != "/shared"), mounts
            assert {"rw", "nosuid", "nodev"} <= set(mounts["/shared"]), mounts
            for cache in ("pagecache", "shared"):
                st = os.stat(f"{root}/{cache}")
                assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o711), cache
        services = {}
        for pid in _descendants(proc.pid):
            comm = open(f"/proc/{pid}/comm").read().strip()     # skas run forks skas-SERVICE
            if comm.startswith("skas-"):
                services[comm.removeprefix("skas-")] = pid
        assert set(services) == set(privileges.KEEP)
        for name, pid in services.items():     # every thread of each: zmq's too
            want = sum(1 << privileges.CAP[c] for c in privileges.KEEP[name])
            for tid in os.listdir(f"/proc/{pid}/task"):
                status = open(f"/proc/{pid}/task/{tid}/status").read()
                assert int(_field(status, "CapEff"), 16) == want, (name, tid)
                assert int(_field(status, "CapBnd"), 16) == want, (name, tid)
                assert _field(status, "NoNewPrivs") == "1", name
        proc.terminate()              # skas halts the guest
        assert proc.wait(timeout=60) != 0
        assert not any(os.path.exists(f"/proc/{pid}") for pid in guests)
    finally:
        proc.kill()
        proc.wait()
