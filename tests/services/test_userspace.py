"""The stub and the filter, on real host processes."""
import os
import subprocess

import pytest

from common.layout import STUB_BASE, STUB_END
from common.ops import ExecStub, Mmap, Poke
from services.userspace import jail as jailmod
from services.userspace import platform, seccomp, stub
from services.userspace.jail import Jail
from services.userspace.tracee import Overdue, TraceeGone, deadline


def test_stub_is_an_elf_the_host_accepts(tmp_path):
    path = stub.install(tmp_path)
    header = subprocess.run(["readelf", "-hl", str(path)], capture_output=True, text=True).stdout
    assert "EXEC (Executable file)" in header and "X86-64" in header
    assert f"0x{STUB_BASE:016x}" in header and " R E " in header   # never writable


@pytest.mark.parametrize("notify", [False, True])
def test_filter_jumps_stay_inside_the_program(notify):
    prog = seccomp.program(notify)
    for pc, (code, jt, jf, _) in enumerate(prog):
        if code & 0x07 == 0x05:   # BPF_JMP
            assert pc + 1 + max(jt, jf) < len(prog)
    assert prog[-1][0] == 0x06                      # nothing runs off the end: a return
    returns = {k for code, _, _, k in prog if code == 0x06}
    assert returns == {seccomp.RET_TRACE, seccomp.RET_KILL_PROCESS, seccomp.RET_ALLOW} | (
        {seccomp.RET_USER_NOTIF} if notify else set())


@pytest.mark.parametrize("notify", [False, True])
def test_spawned_stub_is_filtered_holds_only_its_scratch_fd_and_no_host_path(tmp_path, notify):
    stub.install(tmp_path)
    t = platform.spawn(1, Jail(tmp_path, "test", 16), stub.Scratch(tmp_path), notify)
    try:
        status = open(f"/proc/{t.pid}/status").read()
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
        # the listener was taken out; the one fd is the scratch's, read-only
        assert os.listdir(f"/proc/{t.pid}/fd") == [str(stub.SCRATCH_FD)]
        assert os.readlink(f"/proc/{t.pid}/fd/{stub.SCRATCH_FD}") == "/scratch"
        flags = open(f"/proc/{t.pid}/fdinfo/{stub.SCRATCH_FD}").read().split()[3]
        assert int(flags, 8) & 0o3 == os.O_RDONLY
        if notify:
            assert os.readlink(f"/proc/self/fd/{t.listener}") == "anon_inode:seccomp notify"
        else:
            assert t.listener == -1
        maps = open(f"/proc/{t.pid}/maps").read()
        assert str(tmp_path) not in maps                # jailed: no host path
        stack = next(line.split()[0] for line in maps.splitlines() if line.endswith("[stack]"))
        lo, hi = (int(x, 16) for x in stack.split("-"))
        with open(f"/proc/{t.pid}/mem", "rb", buffering=0) as mem:
            assert str(tmp_path).encode() not in os.pread(mem.fileno(), hi - lo, lo)
        assert f"{STUB_BASE:x}-{stub.SCRATCH:x} r-xp" in maps and " /stub" in maps
        assert f"{stub.SCRATCH:x}-{STUB_END:x} r--s" in maps and " /scratch" in maps
        results, regs_set = platform.run_ops(t, [
            ExecStub(),
            Mmap(addr=0x10000000, length=8192, prot=3, flags=0x32, offset=0),
            Poke(addr=0x10000000, data=b"guest")],
            platform.Context(adopt=lambda child: None, wait_group=None, took_over=None,
                             gone=None))
        assert results[0]["vdso"] > 0 and results[1:] == [0x10000000, 0] and not regs_set
        with open(f"/proc/{t.pid}/mem", "rb", buffering=0) as mem:
            assert os.pread(mem.fileno(), 5, 0x10000000) == b"guest"
    finally:
        if t.listener >= 0:
            os.close(t.listener)
        t.kill()
        os.waitpid(t.pid, 0)


def _parked_stub(tmp_path, notify=False):
    stub.install(tmp_path)
    return platform.spawn(1, Jail(tmp_path, "test", 16), stub.Scratch(tmp_path), notify)


def test_an_injected_call_that_meets_another_stop_kills_the_task(tmp_path):
    """The gadget's int3 rewritten (here from the host, through the mem file,
    as no guest can) into a second syscall: the tracer sees a seccomp stop it
    did not ask for and kills the task instead of letting the call run."""
    t = _parked_stub(tmp_path)
    try:
        with open(f"/proc/{t.pid}/mem", "r+b", buffering=0) as mem:
            os.pwrite(mem.fileno(), b"\x0f\x05\xcc", stub.GADGET_RETURN)
        with pytest.raises(TraceeGone):
            t.inject(39)                                  # getpid, then "syscall" again
        _, status = os.waitpid(t.pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    finally:
        t.kill()


def test_a_wait_on_a_tracee_has_a_deadline(tmp_path):
    """An injected call that never ends (pause) raises Overdue rather than
    holding userspace: the guest's other processes go on being served."""
    t = _parked_stub(tmp_path)
    try:
        with pytest.raises(Overdue), deadline(0.2):
            t.inject(34)
    finally:
        t.kill()
        os.waitpid(t.pid, 0)


def test_an_unconfined_stub_names_its_files_relative_to_the_run_directory(tmp_path):
    """Where skas is not root there is no jail: the stub's working directory
    is the run directory, and the same relative names reach the same files."""
    stub.install(tmp_path)
    jail = Jail(tmp_path, "test", 16)
    jail.confined = False                 # what a host that refuses namespaces gets
    (tmp_path / "pagecache" / "f").write_bytes(b"page-cache bytes".ljust(4096, b"\0"))
    t = platform.spawn(1, jail, stub.Scratch(tmp_path), False)
    try:
        assert os.readlink(f"/proc/{t.pid}/cwd") == str(tmp_path)
        results, _ = platform.run_ops(t, [
            ExecStub(),
            Mmap(addr=0x10000000, length=4096, prot=1, flags=0x12, path="pagecache/f",
                 offset=0)],
            platform.Context(adopt=None, wait_group=lambda pid, tgid: os.waitpid(pid, 0x40000000),
                             took_over=None, gone=None))
        assert results[1] == 0x10000000
        with open(f"/proc/{t.pid}/mem", "rb", buffering=0) as mem:
            assert os.pread(mem.fileno(), 16, 0x10000000) == b"page-cache bytes"
    finally:
        t.kill()
        os.waitpid(t.pid, 0)


def test_without_namespaces_a_stub_still_drops_to_the_guest_uid(tmp_path):
    """Root on a host that refuses the namespaces: the guest's uid, no
    capabilities, and the run directory (0711) to find its names in."""
    stub.install(tmp_path)
    jail = Jail(tmp_path, "test", 16)
    jail.namespaces = False               # what such a host gets
    os.chmod(tmp_path, 0o711)
    t = platform.spawn(1, jail, stub.Scratch(tmp_path), True)
    try:
        status = open(f"/proc/{t.pid}/status").read()
        assert f"Uid:\t{jail.uid}\t{jail.uid}\t{jail.uid}\t{jail.uid}" in status
        assert "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status
        assert os.readlink(f"/proc/{t.pid}/cwd") == str(tmp_path)
        assert os.readlink(f"/proc/{t.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    finally:
        os.close(t.listener)
        t.kill()
        os.waitpid(t.pid, 0)


def test_two_running_guests_never_share_a_host_uid(tmp_path):
    """A uid is leased while its guest's userspace lives: a second guest of
    the same name (another run directory), or one whose name hashes alike,
    gets the next free one, and a uid whose guest is gone is free again."""
    leases = tmp_path / "uids"
    first, held = jailmod.lease_uid("web", leases)
    assert first == jailmod.guest_uid("web")
    second, held2 = jailmod.lease_uid("web", leases)
    assert second == first + 1 or (first, second) == (jailmod.UID_BASE + jailmod.UID_COUNT - 1,
                                                      jailmod.UID_BASE)
    os.close(held)                                  # the first guest's userspace ends
    again, held3 = jailmod.lease_uid("web", leases)
    assert again == first
    os.close(held2)
    os.close(held3)
    for i in range(3):
        (tmp_path / str(i)).mkdir()
    guests = [Jail(tmp_path / str(i), "same", 16) for i in range(3)]   # as root: leased
    assert len({g.uid for g in guests}) == 3


def _userspace(tmp_path):
    """A userspace service object for a guest config of its own (no kernel:
    what it sends waits in its link)."""
    from common.config import GuestConfig
    from services.userspace.service import Userspace
    cfg = GuestConfig(name="spare", run_dir=tmp_path / "run", disks={"ubd0": "/dev/null"},
                      init=["/bin/true"], console="log", notify=False)
    cfg.make_run_dir()
    cfg.write()
    return Userspace(cfg)


def _spawn_request(u, task):
    from common.protocol import Message
    sent = []
    u.send = lambda type_, body, id_=None: sent.append((type_, body))
    u.spawn(Message("spawn", 7, "kernel", {"task": task}))
    return sent


def test_init_gets_the_stub_made_ahead_and_a_stirred_one_is_dropped(tmp_path):
    """The stub made before the kernel is heard from is init's when the
    kernel asks; one that stirred first (here: killed) is dropped as its
    event is reaped, and init gets a new one made then."""
    u = _userspace(tmp_path)
    try:
        u.make_spare()
        spare = u.spare
        assert spare is not None and "Seccomp:\t2" in open(f"/proc/{spare.pid}/status").read()
        sent = _spawn_request(u, 1)
        assert sent == [("spawned", {"task": 1, "pid": spare.pid, "listener": False})]
        assert u.spare is None and u.by_task[1] is spare and spare.task == 1

        u.make_spare()
        stirred = u.spare
        os.kill(stirred.pid, 9)
        os.waitid(os.P_PID, stirred.pid, os.WEXITED | os.WNOWAIT)
        u.reap()
        assert u.spare is None
        sent = _spawn_request(u, 2)
        assert sent[0][0] == "spawned" and sent[0][1]["pid"] not in (stirred.pid, spare.pid)

        u.make_spare()                  # killed, and asked for before reap saw it
        late = u.spare
        os.kill(late.pid, 9)
        os.waitid(os.P_PID, late.pid, os.WEXITED | os.WNOWAIT)
        sent = _spawn_request(u, 3)
        assert sent[0][0] == "spawned" and sent[0][1]["pid"] != late.pid
        assert u.by_task[3].pid != late.pid
    finally:
        u.shutdown()
