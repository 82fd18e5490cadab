"""Run the benchmarks natively (in a chroot of the image tree) and in a
guest; print µs per operation and ratios.

    .venv/bin/python bench/run.py [--calls N] [--procs N] [--only SECTION] [--mib N]
                                  [--ptrace-only]
    .venv/bin/python bench/run.py --only debian   # needs debootstrap and the network
    .venv/bin/python bench/run.py --against uml[,proot] [--rounds N]   # bench/setup-uml.sh

bench/syscalls.c times getppid and open+read+close; bench/processes.c
fork+_exit+waitpid, fork+execve(/bin/true)+waitpid and a pipe ping-pong;
the busybox shell loop of issue 3 is timed whole, less the time of a guest
that runs `true` (booting and halting); bench/storage.c measures sequential
write+fsync and cached reads in MB/s, open+read+close and stat, and busybox
tar creating and extracting 2000 small files, natively on the same ext2
image loop-mounted on the host (a chroot of the tree on the host's
filesystem when it cannot be mounted).  `--only debian` starts Debian's
dynamic /bin/true and `python3 -c pass` (bench/spawn.c) in a chroot of a
debootstrap tree and in a guest of its image.  Not a test: numbers depend on the
machine.  The guest is pinned to one CPU, its ubd_io to the next (skas run's
default); the syscall and process sections also run the native program
pinned to one CPU, for a comparison on the same footing.  `--against`
prints issue 18's table instead: the same programs natively, under
User-Mode Linux (and PRoot) and under skas, interleaved (against.py)."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import against  # noqa: E402
from deploy import disk, distro  # noqa: E402
from programs import (SHELL_LOOP, STORAGE_DIR, STORAGE_DISK, build, parse,  # noqa: E402
                      parse_storage)
from systems import AGAINST, GUEST_OPTIONS, on_image_copy, skas_run, timed  # noqa: E402


def storage(tmp: Path, tree: Path, mib: int, calls: int) -> None:
    build(tree, "storage")
    img = tmp / "storage.img"
    disk.create(img, STORAGE_DISK, tree)
    cmd = ["/bin/storage", STORAGE_DIR, str(mib), str(calls)]
    native, where = on_image_copy(tmp, tree, img, cmd)
    guest = timed(skas_run(img, cmd), cwd=HERE.parent)[0]
    n, g = parse_storage(native), parse_storage(guest)
    print(f"\nstorage: {mib} MiB file, {STORAGE_DISK} ext2 image; native on {where}")
    print(f"{'operation':<18} {'native':>12} {'guest':>12} {'guest/native':>13}")
    for name, (unit, value) in n.items():
        ratio = g[name][1] / value
        print(f"{name:<18} {value:>9.2f} {unit:<3}{g[name][1]:>9.2f} {unit:<3}{ratio:>12.3f}x")
    write = g["write_fsync"][1] / n["write_fsync"][1]
    print(f"budget: write+fsync at least half of native (the rounds after the first): "
          f"{write:.2f} of native, {'met' if write >= 0.5 else 'NOT met'}")
    for name in ("read_64k", "read_1m"):
        read = g[name][1]
        print(f"budget: cached read at least 500 MB/s: {name} {read:.0f} MB/s, "
              f"{'met' if read >= 500 else 'NOT met'}")


def both(tree: Path, img: Path, cmd: list[str]) -> tuple[str, str, float, float]:
    """stdout and wall seconds natively and in a guest."""
    native, native_s = timed(["chroot", str(tree), *cmd])
    guest, guest_s = timed(skas_run(img, cmd), cwd=HERE.parent)
    return native, guest, native_s, guest_s


def debian(tmp: Path, n: int) -> None:
    """Debian's dynamic /bin/true and `python3 -c pass` started n times
    each (bench/spawn.c), natively in a chroot of a minbase tree and in a
    guest booted from an image of it."""
    tree = tmp / "debian"
    print("debootstrap bookworm (minbase, python3) ...", file=sys.stderr)
    distro.debootstrap(tree, distro.DEFAULT_SUITE, ["python3"])
    build(tree, "spawn", "usr/local/bin")
    img = tmp / "debian.img"
    disk.create(img, distro.image_size(tree), tree)
    print(f"{'operation':<18} {'native µs':>10} {'guest µs':>10} {'ratio':>8}   (medians "
          f"of {n})")
    for name, prog in (("exec_dyn_true", ["/bin/true"]),
                       ("python3_c_pass", ["/usr/bin/python3", "-c", "pass"])):
        native, guest, _, _ = both(tree, img, ["/usr/local/bin/spawn", name, str(n), *prog])
        nat, gst = parse(native)[name][0], parse(guest)[name][0]
        print(f"{name:<18} {nat:>10.0f} {gst:>10.0f} {gst / nat:>8.1f}x")


def against_systems(value: str) -> list[str]:
    """--against's list: each a system against.py knows, whose program is on PATH."""
    names = value.split(",")
    for name in names:
        if name not in AGAINST:
            raise argparse.ArgumentTypeError(f"{name}: not one of "
                                             f"{', '.join(AGAINST)}")
        if shutil.which(AGAINST[name]) is None:
            raise argparse.ArgumentTypeError(f"{AGAINST[name]} is not on PATH: "
                                             "run bench/setup-uml.sh")
    return names


def hide_opentelemetry(where: Path) -> None:
    """Make `import opentelemetry` fail in the guests' services, as if the
    packages were not installed."""
    (where / "opentelemetry").mkdir(parents=True)
    (where / "opentelemetry" / "__init__.py").write_text(
        'raise ImportError("hidden by bench/run.py --without-otel")\n')
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(where),
                                                             os.environ.get("PYTHONPATH")]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000, help="iterations of each syscall loop")
    ap.add_argument("--procs", type=int, default=200, help="iterations of each process loop")
    ap.add_argument("--only", choices=("syscalls", "processes", "shell", "storage", "debian"),
                    help="run one section only (debian is not in the default run: it "
                         "needs debootstrap and the network)")
    ap.add_argument("--mib", type=int, default=64, help="size of the storage file in MiB")
    ap.add_argument("--ptrace-only", action="store_true",
                    help="run the guest with skas run --ptrace-only (every call a ptrace stop)")
    ap.add_argument("--trace", metavar="SAMPLING",
                    help="run the guests traced: skas run --trace --trace-sampling SAMPLING "
                         "(1.0, 0.01 ...), the spans as JSON lines in a temporary directory")
    ap.add_argument("--without-otel", action="store_true",
                    help="run the guests with the opentelemetry packages hidden (a package "
                         "of that name that refuses to import, first on PYTHONPATH), to "
                         "compare tracing off with tracing not installed")
    ap.add_argument("--against", type=against_systems, metavar="uml[,proot]",
                    help="issue 18's table instead of the sections: native, these systems "
                         "and skas, interleaved over --rounds (bench/setup-uml.sh installs "
                         "them; run as root)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --against (medians)")
    args = ap.parse_args()
    if args.ptrace_only:
        GUEST_OPTIONS.append("--ptrace-only")
    with tempfile.TemporaryDirectory(prefix="skas-bench-") as tmp:
        tmp = Path(tmp)
        if args.trace:
            GUEST_OPTIONS.extend(["--trace", "--trace-sampling", args.trace,
                                  "--log-dir", str(tmp / "traced")])
        if args.without_otel:
            hide_opentelemetry(tmp / "hidden")
        if args.against:
            against.compare(args.against, args.rounds, args.calls, args.procs, args.mib, tmp)
            return
        tree = tmp / "tree"
        disk.default_tree(tree)
        sections = [args.only] if args.only else ["syscalls", "processes", "shell", "storage"]
        if sections == ["debian"]:
            debian(tmp, max(args.procs // 10, 5))
            return
        for prog in ("syscalls", "processes"):
            build(tree, prog)
        img = tmp / "bench.img"
        disk.create(img, "64M", tree)
        cmds = {"syscalls": ["/bin/syscalls", str(args.calls), "/etc/hostname"],
                "processes": ["/bin/processes", str(args.procs)]}
        if {"syscalls", "processes"} & set(sections):
            print(f"{'operation':<18} {'native µs':>10} {'1-CPU µs':>10} {'guest µs':>10} "
                  f"{'ratio':>8} {'to 1-CPU':>9}   (medians; 1-CPU: native pinned to "
                  "one CPU, as the guest is)")
        for section in ("syscalls", "processes"):
            if section not in sections:
                continue
            native, guest, _, _ = both(tree, img, cmds[section])
            n, g = parse(native), parse(guest)
            one = parse(subprocess.run(["chroot", str(tree), *cmds[section]], check=True,
                                       capture_output=True, text=True,
                                       preexec_fn=lambda: os.sched_setaffinity(0, {0})).stdout)
            for name in n:
                print(f"{name:<18} {n[name][0]:>10.2f} {one[name][0]:>10.2f} "
                      f"{g[name][0]:>10.2f} {g[name][0] / n[name][0]:>8.1f}x "
                      f"{g[name][0] / one[name][0]:>8.1f}x")
        if "shell" in sections:
            _, _, native_boot, guest_boot = both(tree, img, ["/bin/true"])
            _, _, native_loop, guest_loop = both(tree, img, ["/bin/sh", "-c", SHELL_LOOP])
            native_s, guest_s = native_loop - native_boot, guest_loop - guest_boot
            print(f"{'shell loop (s)':<18} {native_s:>10.2f} {guest_s:>10.2f} "
                  f"{guest_s / native_s:>8.1f}x   (2000 iterations; guest boot "
                  f"{guest_boot:.2f} s subtracted)")
        if "storage" in sections:
            storage(tmp, tree, args.mib, args.calls)
        if "debian" in sections:
            debian(tmp, max(args.procs // 10, 5))


if __name__ == "__main__":
    main()
