"""/proc and /sys as stock programs read them, the guest's memory size, and
the mounts a guest makes: Linux's formats (compared with the host's own
files and busybox run natively, values masked), the guest's figures (never
the host's), and nothing of the host showing through."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import disk_of, make_tree, skas

FSTAB = """proc /proc proc defaults 0 0
sysfs /sys sysfs nosuid,nodev,noexec 0 0
tmpfs /tmp tmpfs size=8m,mode=1777 0 0
devtmpfs /mnt/dev devtmpfs defaults 0 0
"""


@pytest.fixture(scope="module")
def pstree(tmp_path_factory) -> Path:
    root = make_tree(tmp_path_factory, "pstree", ["procsys"])
    (root / "etc/fstab").write_text(FSTAB)
    for d in ("mnt/dev", "mnt/a", "mnt/b"):
        (root / d).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def psdisk(tmp_path_factory, pstree):
    yield from disk_of(tmp_path_factory, pstree)


def sh(img, script: str, *options: str) -> subprocess.CompletedProcess:
    r = skas("run", "--disk", str(img), *options, "--", "/bin/sh", "-c", script, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def keys(text: str) -> list[str]:
    return [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]


def in_order(some: list[str], every: list[str]) -> bool:
    """Whether some are among every, in the same order."""
    it = iter(every)
    return all(k in it for k in some)


def kb_layout(line: str) -> tuple[int, str]:
    """Where a meminfo value ends and its unit: Linux right-aligns the values
    at column 24 (a name padded to 16, the number to 8) and adds " kB"."""
    m = re.fullmatch(r"(\S+:\s+)(\d+)( kB)?", line)
    assert m, line
    end = len(m[1]) + len(m[2])
    return (24 if len(m[2]) <= 8 and end == 24 else end), m[3] or ""


# --- memory ----------------------------------------------------------------------------

def test_meminfo_is_the_guests_in_linux_layout(psdisk):
    r = sh(psdisk, "cat /proc/meminfo", "--mem", "300m")
    host = Path("/proc/meminfo").read_text()
    mine = keys(r.stdout)
    assert in_order(mine, keys(host)), (mine, keys(host))
    for k in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal",
              "Shmem", "AnonPages", "Hugepagesize"):
        assert k in mine
    host_layout = {line.split(":")[0]: kb_layout(line) for line in host.splitlines()}
    values = {}
    for line in r.stdout.splitlines():
        assert kb_layout(line) == host_layout[line.split(":")[0]], line
        values[line.split(":")[0]] = int(line.split()[1])
    assert values["MemTotal"] == 300 << 10
    assert values["MemTotal"] != int(host.split()[1])
    assert 0 < values["MemFree"] <= values["MemAvailable"] <= values["MemTotal"]
    assert values["SwapTotal"] == 0


def test_sysinfo_and_free_agree_with_meminfo(psdisk):
    r = sh(psdisk, "/bin/procsys sysinfo; echo ---; free; echo ---; free -m", "--mem", "200m")
    info, free_kb, free = r.stdout.split("---\n")
    assert "totalram_kb=204800 memtotal_kb=204800" in info
    assert "freeram_between=yes" in info and "totalswap=0 procs_positive=yes" in info
    shared, shmem = re.search(r"shared_kb=(\d+) shmem_kb=(\d+)", info).groups()
    assert shared == shmem
    rows = {line.split()[0]: line.split()[1:] for line in free.splitlines()[1:]}
    assert rows["Mem:"][0] == "200" and rows["Swap:"][0] == "0"
    # the same columns as busybox's free natively (values aside)
    native = subprocess.run(["busybox", "free"], capture_output=True, text=True).stdout
    assert free_kb.splitlines()[0] == native.splitlines()[0]
    assert masked(free_kb) == masked(native)


def test_tmpfs_defaults_to_half_the_guests_memory(psdisk):
    """--tmpfs without a size, mount -t tmpfs without size=, /run and /dev:
    half the memory, as Linux's shmem_default_max_blocks."""
    r = sh(psdisk, "mount -t tmpfs none /mnt/a; mount -t tmpfs -o size=1m none /mnt/b;"
                   " df -k /tmp /mnt/a /mnt/b /run /dev | tail -n +2", "--mem", "96m",
           "--tmpfs", "/tmp")
    sizes = [int(line.split()[1]) for line in r.stdout.splitlines()]
    assert sizes == [48 << 10, 48 << 10, 1 << 10, 48 << 10, 48 << 10], r.stdout


# --- /proc files -------------------------------------------------------------------------

def test_status_has_linux_fields_in_linux_order_and_no_sandbox(psdisk):
    r = sh(psdisk, "cat /proc/self/status")
    host = keys(Path("/proc/self/status").read_text())
    mine = keys(r.stdout)
    assert in_order(mine, host), (mine, host)
    for k in ("Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid",
              "Gid", "FDSize", "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "VmPeak",
              "VmRSS", "Threads", "SigQ", "SigPnd", "CapEff", "NoNewPrivs", "Seccomp",
              "Cpus_allowed", "Cpus_allowed_list", "Mems_allowed",
              "voluntary_ctxt_switches"):
        assert k in mine, k
    fields = dict(line.split(":\t", 1) for line in r.stdout.splitlines())
    assert fields["TracerPid"] == "0" and fields["Seccomp"] == "0"
    assert fields["NoNewPrivs"] == "0" and fields["Seccomp_filters"] == "0"
    assert fields["NSpid"] == fields["Pid"] and fields["NStgid"] == fields["Tgid"]
    assert re.fullmatch(r"\d+\t\d+\t\d+\t\d+", fields["Uid"])


def test_limits_in_linux_columns(psdisk):
    r = sh(psdisk, "cat /proc/self/limits")
    host = Path("/proc/self/limits").read_text().splitlines()
    mine = r.stdout.splitlines()
    assert [line[:26] for line in mine] == [line[:26] for line in host]
    assert mine[0] == host[0]
    stack = next(line for line in mine if line.startswith("Max stack size"))
    assert stack.split()[3:] == ["8388608", "unlimited", "bytes"]


def test_mountinfo_in_linux_format_and_bind_roots(psdisk):
    r = sh(psdisk, "mount --bind /sys/devices /mnt/a; cat /proc/self/mountinfo; echo ---;"
                   " cat /proc/1/mountinfo")
    mine, other = r.stdout.split("---\n")
    assert mine == other
    form = re.compile(r"(\d+) (\d+) (\d+):(\d+) (\S+) (\S+) (\S+)( \S+:\S+)* - (\S+) (\S+) (\S+)")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        assert form.fullmatch(line), line          # the pattern is Linux's
    rows = [form.fullmatch(line).groups() for line in mine.splitlines()]
    assert all(rows), mine
    ids = {row[0] for row in rows}
    assert len(ids) == len(rows) and all(row[1] in ids for row in rows)
    by_point = {row[5]: row for row in rows}
    assert by_point["/"][8:10] == ("ext2", "/dev/root")
    assert by_point["/proc"][8] == "proc" and by_point["/sys"][8] == "sysfs"
    assert by_point["/mnt/a"][4] == "/devices" and by_point["/mnt/a"][8] == "sysfs"
    assert by_point["/mnt/a"][2:4] == by_point["/sys"][2:4]     # the same filesystem


def test_global_files(psdisk):
    r = sh(psdisk, "for f in version cmdline filesystems loadavg uptime; do cat /proc/$f;"
                   " echo ---; done; readlink /proc/mounts; echo ---; head -1 /proc/stat;"
                   " echo ---; grep -c ^processor /proc/cpuinfo; echo ---;"
                   " cd /proc/sys; cat kernel/hostname kernel/osrelease kernel/ostype"
                   " kernel/pid_max kernel/random/boot_id kernel/random/boot_id"
                   " kernel/random/uuid kernel/random/uuid fs/file-max fs/nr_open"
                   " vm/overcommit_memory", "--mem", "256m", "--hostname", "box")
    (version, cmdline, filesystems, loadavg, uptime, mounts, stat, cpus, sysctl) = \
        r.stdout.split("---\n")
    assert version.startswith("Linux version 6.1.0-skas ")
    assert "mem=256M" in cmdline and "/tmp" not in cmdline
    assert "nodev\tsysfs" in filesystems and "nodev\tproc" in filesystems
    assert "\text2" in filesystems.splitlines()
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d \d+\.\d\d [1-9]\d*/[1-9]\d* \d+\n", loadavg)
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", uptime)
    assert mounts == "self/mounts\n"
    assert re.fullmatch(r"cpu  \d+ 0 \d+ \d+ 0 0 0 0 0 0\n", stat), stat
    assert int(cpus) == 1                   # skas run pins a guest to one CPU
    (host, release, ostype, pid_max, boot1, boot2, uuid1, uuid2, file_max, nr_open,
     overcommit) = sysctl.split()
    assert (host, release, ostype, pid_max) == ("box", "6.1.0-skas", "Linux", "4194304")
    assert boot1 == boot2 and uuid1 != uuid2 and re.fullmatch(r"[0-9a-f-]{36}", boot1)
    assert boot1 != Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert int(file_max) == (256 << 20) // 10240 and nr_open == "1048576"
    assert overcommit == "0"


def test_run_queue_counts_the_guests_runnable_tasks(psdisk):
    """Three busy loops and cat are running; the shell waits."""
    r = sh(psdisk, "for i in 1 2 3; do (while :; do :; done) & done; cat /proc/loadavg;"
                   " kill %1 %2 %3")
    running, total = map(int, r.stdout.split()[3].split("/"))
    assert running >= 4 and total >= 5, r.stdout


def test_environ_and_links_are_the_owners_or_roots(psdisk):
    """Another user's /proc/PID/environ and exe, cwd, root links are EACCES
    (Linux's ptrace_may_access); one's own links are readable, and its
    environ once it is dumpable again (setuid made it root's, as on Linux)."""
    r = sh(psdisk, "cd /mnt; /bin/procsys peek 1; echo ---; cat /proc/1/environ | tr '\\0' '\\n'")
    peek, environ = r.stdout.split("---\n")
    assert peek.splitlines() == [
        "1 environ: Permission denied", "1 exe: Permission denied",
        "1 cwd: Permission denied", "1 root: Permission denied",
        "self environ: Permission denied", "self exe: /bin/procsys", "self cwd: /mnt",
        "self root: /",
        "self environ: read", "self exe: /bin/procsys", "self cwd: /mnt", "self root: /"]
    assert "PATH=/sbin:/usr/sbin:/bin:/usr/bin" in environ.splitlines()


# --- the programs that read them ---------------------------------------------------------

def masked(text: str) -> list[str]:
    return [re.sub(r"\d+(\.\d+)?", "N", re.sub(r" +", " ", line)).strip()
            for line in text.splitlines()]


def test_top_header_as_natively(psdisk):
    r = sh(psdisk, "top -bn1 | head -4")
    native = subprocess.run(["busybox", "top", "-bn1"], capture_output=True, text=True).stdout
    assert masked(r.stdout)[:3] == masked(native)[:3]
    assert masked(r.stdout)[3] == masked(native)[3]           # the column heads
    used, free = re.match(r"Mem: (\d+)K used, (\d+)K free", r.stdout).groups()
    assert int(used) + int(free) == 512 << 10                # the default --mem


def test_df_and_mount_show_the_one_shot_mounts(psdisk):
    r = sh(psdisk, "mount; echo ---; df")
    mounts, df = r.stdout.split("---\n")
    assert mounts.splitlines() == [
        "/dev/root on / type ext2 (rw,relatime)",
        "devtmpfs on /dev type devtmpfs (rw,nosuid,relatime,mode=755)",
        "devpts on /dev/pts type devpts (rw,nosuid,noexec,relatime,mode=600,ptmxmode=000)",
        "tmpfs on /run type tmpfs (rw,nosuid,nodev,relatime,mode=755)",
        "proc on /proc type proc (rw,nosuid,nodev,noexec,relatime)",
        "sysfs on /sys type sysfs (rw,nosuid,nodev,noexec,relatime)"]
    assert [line.split()[-1] for line in df.splitlines()[1:]] == ["/", "/dev", "/run"]


def test_fstab_mounts_with_mount_a(psdisk):
    """A guest's init mounts what its /etc/fstab says (busybox mount -a): what
    is mounted already is left, the rest mounted, shown as Linux shows them."""
    r = sh(psdisk, "umount /proc/../sys; mount -a; cat /proc/mounts; ls /mnt/dev/null;"
                   " /bin/procsys magic /sys; /bin/procsys magic /proc; /bin/procsys magic /tmp")
    lines = r.stdout.splitlines()
    assert "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0" in lines
    assert "tmpfs /tmp tmpfs rw,relatime,size=8192k 0 0" in lines
    assert "devtmpfs /mnt/dev devtmpfs rw,relatime,mode=755 0 0" in lines
    assert sum(" /proc proc " in line for line in lines) == 1
    assert "/mnt/dev/null" in lines
    assert lines[-3:] == ["62656572", "9fa0", "1021994"]


# --- sysfs -------------------------------------------------------------------------------

@pytest.mark.parametrize("cpu", [None, "-1"], ids=["pinned", "unpinned"])
def test_sysfs_cpus_are_the_guests(psdisk, cpu):
    r = sh(psdisk, "cd /sys/devices/system/cpu; cat online possible present; ls -1d cpu[0-9]*;"
                   " grep -c ^processor /proc/cpuinfo; grep ^Cpus_allowed_list /proc/self/status",
           *(("--cpu", cpu) if cpu else ()))
    n = 1 if cpu is None else len(os.sched_getaffinity(0))
    ranges = "0" if n == 1 else f"0-{n - 1}"
    assert r.stdout.splitlines() == [ranges] * 3 + [f"cpu{i}" for i in range(n)] + [
        str(n), f"Cpus_allowed_list:\t{ranges}"]


def test_sysfs_disk_size_and_read_only(psdisk):
    r = sh(psdisk, "cat /sys/block/ubda/size /sys/class/block/ubda/dev; ls /sys/fs;"
                   " ls /sys/fs/cgroup 2>&1; (echo 1 > /sys/block/ubda/ro) 2>&1; echo $?;"
                   " cat /sys/kernel/mm/transparent_hugepage/enabled")
    lines = r.stdout.splitlines()
    assert lines[0] == str(psdisk.stat().st_size // 512) and lines[1] == "98:0"
    assert "No such file or directory" in lines[2] and "Permission denied" in lines[3]
    assert lines[4] == "1"
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    assert lines[5:] == ([thp.read_text().strip()] if thp.exists() else [])


# --- nothing of the host ---------------------------------------------------------------

def test_nothing_of_the_host_in_proc_and_sys(psdisk):
    logs = tempfile.mkdtemp(prefix="procsys-logs-")
    r = sh(psdisk, "sleep 5 & find /sys /proc/sys -type f | while read f; do echo \"$f: $(cat $f)\";"
                   " done; cat /proc/meminfo /proc/cpuinfo /proc/stat /proc/uptime /proc/cmdline"
                   " /proc/*/status /proc/*/limits /proc/*/mountinfo; kill %1",
           "--log-dir", logs, "--hostname", "guesthost")
    out = r.stdout
    host_kb = Path("/proc/meminfo").read_text().split()[1]
    assert not re.search(rf"\b{host_kb}\b", out)
    assert Path("/proc/sys/kernel/random/boot_id").read_text().strip() not in out
    hostname = socket.gethostname()
    assert "guesthost" in out
    assert not re.search(rf"(?<![\w/-]){re.escape(hostname)}(?![\w/-])", out)
    assert "skas-run-" not in out and logs not in out and str(psdisk) not in out
    assert "microcode" not in out
    log = Path(logs, "kernel.log").read_text()
    host_pids = set(re.findall(r"host pid (\d+)", log))
    assert host_pids and not host_pids & set(re.findall(r"\b\d+\b", "\n".join(
        line for line in out.splitlines() if re.match(r"(Pid|Tgid|PPid|NS\w+):", line))))


def test_mem_must_be_a_size_a_guest_can_boot_with(psdisk):
    for bad in ("1k", "lots", "0"):
        r = skas("run", "--mem", bad, "--disk", str(psdisk), "--", "/bin/true")
        assert r.returncode == 2 and "--mem" in r.stderr, r.stderr
