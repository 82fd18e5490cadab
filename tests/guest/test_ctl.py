"""`skas ctl`: UML's mconsole for a running guest.  Guests are started from
a test's own run directory (the four services as processes) and managed
with the real `skas ctl RUN_DIR VERB` over the kernel's socket."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import msgpack
import pytest

from common import protocol
from common.exits import REBOOT
from conftest import ask, disk_of, make_config, make_tree, skas
from deploy import disk as diskmod
from deploy import launch

BOUND = 60          # seconds: the most anything here may take on a loaded host

# Counts for ever: the tight loop makes no system call at all.
SPIN_C = r"""
int main(void) { volatile unsigned long n = 0; for (;;) n++; }
"""


@pytest.fixture(scope="module")
def ctl_disk(tmp_path_factory):
    root = make_tree(tmp_path_factory, "ctltree", ["reboot"])
    (root / "mnt").mkdir()
    src = root / "spin.c"
    src.write_text(SPIN_C)
    subprocess.run(["gcc", "-O0", "-static", "-o", str(root / "bin/spin"), str(src)], check=True)
    src.unlink()
    yield from disk_of(tmp_path_factory, root)


@pytest.fixture
def own_disk(tmp_path, ctl_disk):
    """A copy of the disk for a test whose guest writes it (checked after)."""
    img = tmp_path / "own.img"
    img.write_bytes(ctl_disk.read_bytes())
    yield img
    diskmod.check(img)


class Guest:
    """A guest's four services started from tmp_path/run; ctl runs `skas ctl`."""

    def __init__(self, tmp_path: Path, disk: Path, script: str):
        self.cfg = make_config(tmp_path, disk, ["/bin/sh", "-c", script])
        self.procs = launch.start(self.cfg)

    def ctl(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = skas("ctl", str(self.cfg.run_dir), *args, timeout=BOUND)
        assert (done.returncode == 0) == ok, (args, done.stdout, done.stderr,
                                               launch.log_tail(self.cfg, "kernel"))
        return done

    def json(self, *args: str, ok: bool = True) -> dict:
        reply = json.loads(self.ctl(*args, "--json", ok=ok).stdout)
        assert reply["ok"] == ok and reply["guest"] == self.cfg.name
        return reply

    def console(self) -> str:
        path = self.cfg.console_log
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_console(self, text: str) -> None:
        """Until the guest has printed text (event: its console log grows)."""
        deadline = time.monotonic() + BOUND
        while text not in self.console():
            assert time.monotonic() < deadline, f"no {text!r} on the console: {self.console()!r}"
            assert self.procs["kernel"].poll() is None, launch.log_tail(self.cfg, "kernel")
            time.sleep(0.05)

    def exit_code(self) -> int:
        return self.procs["kernel"].wait(BOUND)

    def stop(self) -> None:
        launch.stop(self.procs)

    def kernel_log(self) -> str:
        return (self.cfg.run_dir / "kernel.log").read_text(errors="replace")


@pytest.fixture
def guest(tmp_path, ctl_disk):
    started = []

    def start(script: str, disk: Path | None = None) -> Guest:
        g = Guest(tmp_path, disk or ctl_disk, script)
        started.append(g)
        return g
    yield start
    for g in started:
        g.stop()


def test_version_help_log_and_json(guest):
    g = guest("echo up; exec sleep 1000")
    g.wait_console("up")
    version = g.json("version")["data"]
    assert version == {"sysname": "Linux", "nodename": "svc", "release": g.cfg.release,
                       "version": "#1 SMP PREEMPT_DYNAMIC", "machine": "x86_64"}
    assert g.ctl("version").stdout.split() == ["Linux", "svc", g.cfg.release, "#1", "SMP",
                                               "PREEMPT_DYNAMIC", "x86_64"]
    text = g.ctl("help").stdout
    for verb in ("version", "halt", "reboot", "config", "remove", "sysrq", "cad", "stop", "go",
                 "log", "proc", "help"):
        assert f"\n    {verb}" in text
    g.ctl("log", "hello", "from\nthe host")
    assert "mconsole log: hello from\\nthe host" in g.kernel_log()


def test_proc_reads_guest_files_as_root_with_errno_names(guest):
    g = guest("echo up; exec sleep 1000")
    g.wait_console("up")
    meminfo = g.ctl("proc", "meminfo").stdout
    assert meminfo.startswith("MemTotal:") and "MemFree:" in meminfo
    status = g.ctl("proc", "1/status").stdout
    assert "Name:\tsleep" in status and "Pid:\t1\n" in status
    assert "ubd0=ubda" in g.ctl("proc", "cmdline").stdout
    missing = g.json("proc", "nosuch", ok=False)
    assert missing["data"]["error"] == "ENOENT" and "/proc/nosuch" in missing["text"]
    assert g.json("proc", "1", ok=False)["data"]["error"] == "EISDIR"
    assert g.json("proc", "/".join(["."] * 40), ok=False)["data"]["error"] == "ENAMETOOLONG"


def test_unknown_verbs_bad_args_and_malformed_messages_get_clear_errors(guest):
    g = guest("echo up; exec sleep 1000")
    g.wait_console("up")
    bad = g.ctl("frobnicate", ok=False)
    assert "guest svc: frobnicate: unknown verb 'frobnicate': try help" in bad.stderr
    assert "usage: sysrq KEY" in g.ctl("sysrq", ok=False).stderr
    assert "usage: version" in g.ctl("version", "extra", ok=False).stderr
    assert "a disk is ubd0 to ubd15" in g.ctl("config", "ubd99=/x", ok=False).stderr
    assert "is not stopped" in g.ctl("go", ok=False).stderr
    endpoint = g.cfg.endpoints["kernel"]
    for body in ({"verb": "version"}, {"verb": 1, "args": []}, {"verb": "log", "args": [7]},
                 {"verb": "log", "args": ["x"] * 100}, {"verb": "log", "args": ["x" * 5000]},
                 {"verb": "proc", "args": ["meminfo"], "extra": 1}):
        raw = msgpack.packb([protocol.VERSION, "ctl", 9, "test", None, body])
        reply = ask(endpoint, raw)
        assert reply.id == 9 and (reply.type == "error" or reply.type == "ctl_reply"
                                  and not reply["ok"]), (body, reply)
    assert g.ctl("version").returncode == 0          # the kernel lives on
    assert "Traceback" not in g.kernel_log()


def test_a_guest_that_does_not_answer_is_named_with_how_to_check(tmp_path, ctl_disk):
    cfg = make_config(tmp_path, ctl_disk, ["/bin/true"])       # written, never started
    done = skas("ctl", str(cfg.run_dir), "version", "--timeout", "0.5")
    assert done.returncode == 1
    assert "guest svc is not answering (no reply in 0.5s); check it: skas status svc" \
        in done.stderr


def test_sysrq_s_then_halt_leaves_a_clean_disk_with_the_file(guest, own_disk, tmp_path):
    g = guest("echo written by the guest > /note; echo up; exec sleep 1000", own_disk)
    g.wait_console("up")
    assert g.ctl("sysrq", "s").stdout.strip() == "sysrq: Emergency Sync complete"
    # written through: the image is clean and has the file while the guest runs
    out = subprocess.run(["debugfs", "-R", "cat /note", str(own_disk)], capture_output=True,
                         text=True, check=True).stdout
    assert out == "written by the guest\n"
    diskmod.check(own_disk)
    assert g.ctl("halt").stdout.strip() == "halting"
    assert g.exit_code() == 0


def test_sysrq_u_remounts_read_only(guest, own_disk):
    g = guest("echo up; exec sleep 1000", own_disk)
    g.wait_console("up")
    assert "rw," in g.ctl("proc", "mounts").stdout.splitlines()[0]
    assert g.ctl("sysrq", "u").stdout.strip() == "sysrq: Emergency Remount complete"
    for line in g.ctl("proc", "mounts").stdout.splitlines():
        assert line.split()[3].startswith("ro,"), line
    assert g.ctl("proc", "1/exe").stdout == "/bin/busybox\n"


def test_sysrq_t_m_e_i_and_help(guest):
    g = guest("sleep 1000 & sleep 1001 & echo up; wait; echo reaped; exec sleep 1000")
    g.wait_console("up")
    tasks = g.json("sysrq", "t")["data"]["tasks"]
    by_pid = {t["pid"]: t for t in tasks}
    assert by_pid[1]["comm"] == "sh" and by_pid[1]["wchan"] == "rt_sigsuspend"   # busybox wait
    assert sorted(t["comm"] for t in tasks) == ["sh", "sleep", "sleep"]
    text = g.ctl("sysrq", "t").stdout
    assert text.startswith("sysrq: Show State\n") and " rt_sigsuspend" in text
    memory = g.json("sysrq", "m")
    assert memory["data"]["meminfo_kb"]["MemTotal"] == g.cfg.mem >> 10
    assert memory["text"].startswith("sysrq: Show Memory\nMemTotal:")
    assert g.ctl("sysrq", "h").stdout.startswith("sysrq: HELP : reboot(b)")
    assert g.ctl("sysrq", "x").stdout.startswith("sysrq: HELP : ")
    terminated = g.json("sysrq", "e")["data"]["pids"]
    assert len(terminated) == 2 and 1 not in terminated
    g.wait_console("reaped")            # init's children ended, init lives on
    assert g.json("sysrq", "i")["data"]["pids"] == []
    assert {t["comm"] for t in g.json("sysrq", "t")["data"]["tasks"]} == {"sleep"}


def test_sysrq_i_kills_what_ignores_sigterm(guest):
    g = guest("sh -c 'trap \"\" TERM; echo ignoring; exec sleep 1000' & wait; echo gone;"
              " exec sleep 1000")
    g.wait_console("ignoring")
    g.ctl("sysrq", "e")
    assert len(g.json("sysrq", "t")["data"]["tasks"]) == 2   # sleep ignores SIGTERM too
    assert len(g.json("sysrq", "i")["data"]["pids"]) == 1
    g.wait_console("gone")


def test_reboot_and_sysrq_b_end_the_kernel_with_reboot(guest, own_disk):
    g = guest("echo up; exec sleep 1000", own_disk)
    g.wait_console("up")
    assert g.ctl("reboot").stdout.strip() == "rebooting"
    assert g.exit_code() == REBOOT and g.console().endswith("reboot: Restarting system\n")
    g.stop()
    h = guest("echo again; exec sleep 1000")       # the same run directory: a new word
    h.wait_console("again")
    assert h.ctl("sysrq", "b").stdout.strip() == "sysrq: Resetting"
    assert h.exit_code() == REBOOT


def test_cad_with_c_a_d_on_restarts(guest):
    g = guest("echo up; exec sleep 1000")
    g.wait_console("up")
    assert g.json("cad")["data"] == {"action": "restart"}
    assert g.exit_code() == REBOOT


def utime(g: Guest, pid: int) -> int:
    """utime + stime of a guest process, in clock ticks (/proc/PID/stat)."""
    fields = g.ctl("proc", f"{pid}/stat").stdout.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def syscalls(g: Guest) -> int:
    reply = ask(g.cfg.endpoints["kernel"], protocol.encode("status", 1, "test"))
    return reply["state"]["syscalls"]


def wait_moving(what, before: int) -> int:
    """Until what() is past before (event: the guest counts)."""
    deadline = time.monotonic() + BOUND
    while (now := what()) <= before:
        assert time.monotonic() < deadline, "the guest does not count"
        time.sleep(0.05)
    return now


def test_stop_freezes_a_computing_guest_and_a_calling_one_and_go_resumes(guest):
    g = guest("spin & echo up; i=0; while true; do i=$((i+1)); echo $i > /dev/null; done")
    g.wait_console("up")      # pid 2 is spin; init counts with system calls
    spin = lambda: utime(g, 2)           # noqa: E731
    wait_moving(spin, 0)
    wait_moving(lambda: syscalls(g), 0)
    assert g.ctl("stop").stdout.startswith("stopped (2 tasks)")
    frozen_cpu, frozen_calls = spin(), syscalls(g)
    assert {t["state"] for t in g.json("sysrq", "t")["data"]["tasks"]} == {"S"}
    assert g.json("stop", ok=False)["data"]["error"] == "EALREADY"
    for _ in range(5):
        time.sleep(0.2)             # time passes: nothing the guest does may show
        assert spin() == frozen_cpu
        # each proc request is 0 calls of the guest's: the kernel counts guest calls
        assert syscalls(g) == frozen_calls
    assert g.json("go")["data"]["released"] == 2
    wait_moving(spin, frozen_cpu)
    wait_moving(lambda: syscalls(g), frozen_calls)


def test_stop_holds_a_forking_guest_and_go_lets_it_on(guest):
    g = guest("while true; do /bin/true; done")
    wait_moving(lambda: syscalls(g), 100)
    for _ in range(3):
        g.ctl("stop")
        frozen = syscalls(g)
        time.sleep(0.3)
        assert syscalls(g) == frozen
        g.ctl("go")
        wait_moving(lambda: syscalls(g), frozen)


def test_config_mount_remove_hot_plug_a_disk(guest, own_disk, tmp_path):
    tree = tmp_path / "extra"
    tree.mkdir()
    (tree / "hello").write_text("from the hot-plugged disk\n")
    extra = tmp_path / "extra.img"
    diskmod.create(extra, "8M", tree)
    script = ("sh -c 'trap \"umount /mnt && echo unmounted\" TERM;"
              " while [ ! -b /dev/ubdb ]; do sleep 0.05; done;"
              " mount /dev/ubdb /mnt && cat /mnt/hello && echo new > /mnt/new && echo mounted;"
              " sleep 1000 & wait' & echo up; exec sleep 1000")
    g = guest(script, own_disk)
    g.wait_console("up")
    assert "say which image" in g.ctl("config", "ubd1=", ok=False).stderr
    missing = g.ctl("config", f"ubd1={tmp_path / 'nosuch.img'}", ok=False).stderr
    assert "cannot open" in missing and "No such file or directory" in missing
    assert g.json("config", f"ubd0={extra}", ok=False)["data"]["error"] == "EBUSY"
    plugged = g.json("config", f"ubd1={extra}")["data"]
    assert plugged == {"device": "/dev/ubdb", "size": 8 << 20, "kind": "image"}
    g.wait_console("mounted")
    assert "from the hot-plugged disk\n" in g.console()
    assert g.ctl("config", "ubd1").stdout.strip() == f"ubd1={extra}"
    assert g.ctl("proc", "mounts").stdout.count("/dev/ubdb /mnt ext2 rw") == 1
    busy = g.json("remove", "ubd1", ok=False)
    assert busy["data"]["error"] == "EBUSY" and "mounted on /mnt" in busy["text"]
    g.ctl("sysrq", "e")
    g.wait_console("unmounted")
    assert g.ctl("remove", "ubd1").stdout.strip() == "ubd1 removed"
    assert g.json("remove", "ubd1", ok=False)["data"]["error"] == "ENODEV"
    diskmod.check(extra)
    out = subprocess.run(["debugfs", "-R", "cat /new", str(extra)], capture_output=True,
                         text=True, check=True).stdout
    assert out == "new\n"
    g.ctl("halt")
    assert g.exit_code() == 0


def test_config_of_an_unreadable_image_is_refused(guest, tmp_path):
    g = guest("echo up; exec sleep 1000")
    g.wait_console("up")
    text = g.ctl("config", f"ubd2={tmp_path}", ok=False).stderr     # a directory
    assert "cannot open" in text and "ubd2" in text
    assert g.ctl("remove", "ubd2", ok=False).returncode == 1
    assert g.ctl("remove", "ubd0", ok=False).stderr.rstrip().endswith("is mounted on /")


def test_cad_with_c_a_d_off_is_sigint_to_init(guest):
    """Once init turned C_A_D off with reboot(2), as busybox init does,
    Ctrl-Alt-Del is SIGINT to it: its handler ends the guest with its code."""
    g = guest("trap 'echo got INT; exit 7' INT; /bin/reboot cad-off; echo up; "
              "while true; do sleep 1; done")
    g.wait_console("up")
    assert g.json("cad") == {"guest": "svc", "verb": "cad", "ok": True,
                             "text": "SIGINT sent to init (C_A_D off)",
                             "data": {"action": "sigint"}}
    assert g.exit_code() == 7 and "cad off: 0\nup\ngot INT" in g.console()


def test_the_boot_disk_has_its_device_node_and_mounts_again(ctl_disk):
    """/dev/ubda is there from boot, as hot-plugged disks' nodes are; a
    second mount of it is the same filesystem as the root."""
    r = skas("run", "--disk", str(ctl_disk), "--", "/bin/sh", "-c",
             "stat -c '%F %t:%T' /dev/ubda; mount /dev/ubda /mnt && ls /mnt/bin/spin; "
             "umount /mnt && echo unmounted", timeout=BOUND)
    assert r.stdout == "block special file 62:0\n/mnt/bin/spin\nunmounted\n", r.stdout + r.stderr
