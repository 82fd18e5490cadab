"""The ``skas`` command: make disks, run one-shot guests, manage supervised guests."""
from __future__ import annotations

from common import phases
phases.mark("cli", "start")

import gc
# Imports make many objects and no garbage: the collections they set off
# cost ~7 ms of a cold start.  Off while this module's imports run, on
# again at its end, what they made frozen (gc.freeze: no collection walks
# those objects again, nor, in a service forked from skas, copies their
# pages); each fork imports its own modules with collection off
# (deploy/forked.py) and freezes them too (common/service.py).
gc.disable()

if __name__ == "__main__":      # (the console script's entry, deploy/entry.py, does the same)
    import sys
    from deploy import forked
    forked.prefork_for(sys.argv[1:])     # skas run's kernel, imported meanwhile

import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import click

from common import config as guest_config
from common import tracing
from common.config import SERVICES, GuestConfig, default_run_root
from common.exits import BOOT_FAILED, CONFIG, REBOOT
from common.transport import Link
from deploy import disk as diskmod
from deploy import distro
from deploy import launch, terminal

GUEST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")   # a file name and a supervisord group
STATUS_TIMEOUT_MS = 1000
INIT = "/sbin/init"         # what a guest defined without a command boots, as Linux's kernel
CTL_TIMEOUT = 30.0           # seconds: a sync of big disks, a halt, a freeze's wait


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """skas: run Linux programs from a disk image under a user-mode kernel.

    Each guest is four host processes (kernel, userspace, ubd_io, sigio)."""


# --- disks -------------------------------------------------------------------------

@main.group()
def disk() -> None:
    """Make, check and merge guest disk images (ext2) and UML COW overlays."""


@disk.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", help="image size, as mke2fs takes it  [default: 64M; with --distro "
                             "the tree's size plus a third plus 256M]")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="copy this directory tree instead of the default busybox tree")
@click.option("--distro", "distro_spec", metavar="debian[:SUITE]",
              help="a Debian root made by debootstrap --variant=minbase (needs root and "
                   "the network; SUITE defaults to bookworm)")
@click.option("--include", metavar="PKG,...", help="with --distro: packages to add")
@click.option("--mirror", default=distro.DEFAULT_MIRROR, show_default=True,
              help="with --distro: the Debian mirror")
@click.option("--cow", "backing", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="make PATH an empty UML COW overlay of this image instead "
                   "(as uml_mkcow; use it as --disk PATH)")
@click.option("--force", is_flag=True, help="overwrite PATH if it exists")
def disk_create(path: Path, size: str | None, source: Path | None, distro_spec: str | None,
                include: str | None, mirror: str, backing: Path | None, force: bool) -> None:
    """Build an ext2 image at PATH (default content: Debian's busybox-static;
    --from a directory; --distro a Debian root), or with --cow BACKING a COW
    overlay of BACKING."""
    try:
        if backing is not None:
            if size or source or distro_spec:
                raise click.UsageError("--cow makes an overlay of BACKING: it takes no "
                                       "--size, --from or --distro")
            header = diskmod.create_cow(backing, path, force)
            click.echo(f"{path}: COW overlay of {header.backing}, {header.size} bytes")
            return
        if distro_spec is None:
            if include:
                raise click.UsageError("--include adds packages to a --distro root")
            files = diskmod.create(path, size or "64M", source, force)
            click.echo(f"{path}: ext2, {size or '64M'}, {files} files and directories, "
                       "e2fsck clean")
            return
        if source is not None:
            raise click.UsageError("--from and --distro both say what the disk holds: pick one")
        _, suite = distro.parse(distro_spec)
        names = distro.packages(include)
        if path.exists() and not force:
            raise diskmod.DiskError(f"{path} exists: pass --force to overwrite it, or choose "
                                    "another path")
        with tempfile.TemporaryDirectory(prefix="skas-distro-", dir=path.parent) as tmp:
            tree = Path(tmp) / "root"
            click.echo(f"debootstrap {suite} (minbase{', ' + ', '.join(names) if names else ''})"
                       f" from {mirror}; packages are cached in {distro.cache_dir()}", err=True)
            distro.debootstrap(tree, suite, names, mirror,
                               progress=lambda line: click.echo("  " + line, err=True))
            size = size or distro.image_size(tree)
            click.echo(f"writing {path} ({size}) with mke2fs -d, then e2fsck", err=True)
            files = diskmod.create(path, size, tree, force)
        click.echo(f"{path}: ext2, {size}, Debian {suite}, {files} files and directories, "
                   "e2fsck clean")
    except (diskmod.DiskError, distro.DistroError) as exc:
        raise click.ClickException(str(exc))


@disk.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def disk_check(path: Path) -> None:
    """Check an image (or a COW overlay, merged first) with e2fsck -fn (read-only)."""
    try:
        click.echo(diskmod.check(path).strip())
    except diskmod.DiskError as exc:
        raise click.ClickException(str(exc))


@disk.command("merge")
@click.argument("overlay", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="overwrite OUT if it exists")
def disk_merge(overlay: Path, out: Path, force: bool) -> None:
    """Write COW OVERLAY over its backing file as a full image OUT (as uml_moo).

    The backing file and the overlay are left as they are."""
    try:
        size = diskmod.merge(overlay, out, force)
    except diskmod.DiskError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"{out}: {size} bytes, {overlay} merged with its backing file")


# --- guest definitions ------------------------------------------------------------------

def _check_env(_ctx, _param, values: tuple[str, ...]) -> tuple[str, ...]:
    for kv in values:
        if "=" not in kv.lstrip("="):
            raise click.BadParameter(f"{kv!r} is not K=V (e.g. --env LANG=C)")
    return values


def _guest_options(f):
    f = click.option("--read-only", is_flag=True,
                     help="mount the root disk read-only (UML's \"ro\")")(f)
    f = click.option("--ptrace-only", is_flag=True,
                     help="stop every guest call for the tracer, none through the seccomp "
                          "listener (slower: for comparison, or a host without listeners)")(f)
    f = click.option("--hostname", help="the guest's nodename (default: the guest's name)")(f)
    f = click.option("--cpu", type=int, help="pin the guest's services to this host CPU "
                     "(default for run: one CPU, chosen by pid; -1: do not pin)")(f)
    f = click.option("--io-cpu", type=int, help="pin ubd_io, the disk I/O, to this host CPU "
                     "instead (default: the CPU after --cpu's, if the host has more than "
                     "one; -1: with the rest)")(f)
    f = click.option("--env", "env", multiple=True, metavar="K=V", callback=_check_env,
                     help="set in init's environment (repeatable)")(f)
    f = click.option("--tmpfs", "tmpfs", multiple=True, metavar="PATH[:SIZE]",
                     callback=_check_tmpfs,
                     help="mount a tmpfs on this directory of the image at boot, of SIZE "
                          "(e.g. 256m; default half of --mem) (repeatable); the image's /tmp "
                          "is the disk's unless you ask: --tmpfs /tmp")(f)
    f = click.option("--mem", callback=_check_mem, metavar="SIZE",
                     help="the guest's memory, as UML's mem= (e.g. 1g): what /proc/meminfo, "
                          "sysinfo and free show  [default: 512m]")(f)
    f = click.option("--disk", "disk_path", required=True, metavar="IMAGE|OVERLAY,BACKING",
                     callback=_check_disk,
                     help="the root disk: an image, or a UML COW overlay and its backing "
                          "image (the overlay is made if missing; see: skas disk create)")(f)
    return f


def _trace_options(f):
    """--trace and --trace-sampling, for run and create (common/tracing.py)."""
    f = click.option("--trace-sampling", metavar="RATIO|SAMPLER[:RATIO]", default="",
                     callback=_check_sampling,
                     help="which traces to keep: a ratio (0.01: one trace in a hundred, "
                          "parent-based), or always_on, always_off, traceidratio:R, "
                          "parentbased_always_on ...  [default: OTEL_TRACES_SAMPLER's, "
                          "else all]")(f)
    f = click.option("--trace", is_flag=True,
                     help="trace the guest's IO with OpenTelemetry: to the collector the "
                          "OTEL_EXPORTER_OTLP_* variables name, else as JSON lines that "
                          "skas trace reads (also on when those variables name one)")(f)
    return f


def _check_sampling(_ctx, _param, spec: str) -> str:
    if spec:
        try:
            tracing.parse_sampling(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc))
    return spec


def _set_tracing(cfg: GuestConfig, trace: bool, sampling: str, trace_dir: Path | None) -> None:
    """The tracing settings and the OTEL_* variables skas was given (a
    supervised guest's services do not see skas's environment)."""
    cfg.trace, cfg.trace_sampling = trace, sampling
    cfg.otel = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    if trace_dir is not None:
        cfg.trace_dir = str(trace_dir)


def _check_tmpfs(_ctx, _param, values: tuple) -> tuple:
    for spec in values:
        try:
            guest_config.parse_tmpfs(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc))
    return values


def _check_mem(_ctx, _param, value: str | None) -> int:
    if value is None:
        return guest_config.DEFAULT_MEM
    try:
        mem = guest_config.parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))
    if mem < guest_config.MIN_MEM:
        raise click.BadParameter(f"{value}: a guest needs {guest_config.MIN_MEM >> 20}m at least")
    return mem


def _check_disk(_ctx, _param, spec: str) -> str:
    """The disk spec with absolute paths, once its files are there."""
    try:
        path, backing = guest_config.parse_disk(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc))
    must_exist = backing or path          # a missing overlay is made by ubd_io
    if not Path(must_exist).is_file():
        raise click.BadParameter(f"{must_exist} is not a file (make one: skas disk create)")
    try:
        diskmod.check_overlay(Path(path), backing and Path(backing))
    except diskmod.DiskError as exc:
        raise click.BadParameter(str(exc))
    return ",".join(str(Path(p).resolve()) for p in (path, backing) if p is not None)


def _usable_cpu(cpu: int | None, option: str, allowed: list[int]) -> int | None:
    """cpu (None and -1 pass) if this process may run there, else a usage error."""
    if cpu not in (None, -1) and cpu not in allowed:
        raise click.BadParameter(f"CPU {cpu} is not one this process may use "
                                 f"({', '.join(map(str, allowed))})", param_hint=option)
    return cpu


def _config(name: str, run_dir: Path, disk_path: str, cmd: tuple, hostname, cpu, io_cpu,
            env, console: str, read_only: bool, ptrace_only: bool,
            tmpfs: tuple = (), mem: int = guest_config.DEFAULT_MEM) -> GuestConfig:
    allowed = sorted(os.sched_getaffinity(0))
    cpu = _usable_cpu(None if cpu == -1 else cpu, "--cpu", allowed)
    io_cpu = _usable_cpu(io_cpu, "--io-cpu", allowed)
    if io_cpu is None and cpu is not None and len(allowed) > 1:
        # the next CPU this process may use; measured: 64 KiB write+fsync 380 -> 445 MB/s
        io_cpu = next((c for c in allowed if c > cpu), allowed[0])
    cfg = GuestConfig(name=name, run_dir=run_dir, disks={"ubd0": disk_path},
                      init=list(cmd), hostname=hostname or "", console=console,
                      cpu=cpu, io_cpu=None if io_cpu == -1 else io_cpu, read_only=read_only,
                      notify=not ptrace_only, tmpfs=list(tmpfs), mem=mem)
    keys = {kv.split("=", 1)[0] for kv in env}
    cfg.env = [kv for kv in cfg.env if kv.split("=", 1)[0] not in keys] + list(env)
    return cfg


def _need_cmd(cmd: tuple) -> None:
    if not cmd:
        raise click.UsageError("say what to run in the guest: ... -- CMD [ARGS] (or -it "
                               "without CMD to boot the image's /sbin/init)")


# --- one-shot guests ------------------------------------------------------------------

@main.command(context_settings={"ignore_unknown_options": True})
@_guest_options
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep the services' logs (kernel.log ...) in this directory")
@click.option("--strace", is_flag=False, flag_value="log", default="", metavar="[=FILE]",
              help="log each guest system call the kernel serves, decoded as strace -f -tt "
                   "-T prints it, to kernel.log or (--strace=FILE) to FILE; calls the "
                   "filter lets run on the host (brk, anonymous mmap, futex, "
                   "clock_gettime, exit_group ...) never reach the kernel and are not shown")
@click.option("-i", "--interactive", is_flag=True,
              help="pass skas's stdin to the guest's console (else the guest reads EOF)")
@click.option("-t", "--tty", "want_tty", is_flag=True,
              help="make the console a terminal; with -i, the user's terminal is raw while "
                   "the guest runs (Ctrl-C, Ctrl-Z go to the guest): -it for a shell")
@_trace_options
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def run(disk_path, hostname, read_only, ptrace_only, cpu, io_cpu, env, tmpfs, mem, log_dir,
        strace, interactive, want_tty, trace, trace_sampling, cmd) -> None:
    """Run CMD as pid 1 of a one-shot guest (with -it and no CMD: the
    image's /sbin/init).

    skas exits with CMD's status: 128+N if it was killed by signal N, 125 if
    the guest could not boot or lost a service it needs (its disk's, say); 0
    when the guest halts or powers off (reboot(2)), and a reboot boots it
    again.  Ctrl-C, SIGTERM or a hangup stop the guest, and
    skas exits with 128+N for that signal.  The guest's console is a terminal
    with -t, or when skas's stdin and stdout both are one.

    Example: skas run --disk disk.img -- /bin/busybox uname -a
             skas run -it --disk disk.img -- /bin/sh -i"""
    phases.mark("cli", "run")
    if not cmd and interactive and want_tty:
        cmd = (INIT,)               # -it alone: boot the image's init, as skas create does
    _need_cmd(cmd)
    if want_tty and not sys.stdin.isatty():
        raise click.UsageError("-t needs a terminal on stdin (run skas from one, or use ssh "
                               "-t, tmux, script); without a terminal leave -t out")
    if cpu is None:
        allowed = sorted(os.sched_getaffinity(0))
        cpu = allowed[os.getpid() % len(allowed)]
    traces = None if log_dir is None else log_dir.absolute() / "traces"
    if trace and traces is None and not any(os.environ.get(v) for v in tracing.ENDPOINT_VARS):
        raise click.UsageError("--trace without a collector (OTEL_EXPORTER_OTLP_ENDPOINT) "
                               "writes JSON lines, and the run directory goes at the end: "
                               "give --log-dir DIR to keep them in DIR/traces")
    run_dir = Path(tempfile.mkdtemp(prefix="skas-run-"))     # mode 0700
    try:
        cfg = _config(f"run-{os.getpid()}", run_dir, disk_path, cmd, hostname, cpu, io_cpu, env,
                      "stdio", read_only, ptrace_only, tmpfs, mem)
        cfg.syscall_log = _strace_to(strace)
        _set_tracing(cfg, trace, trace_sampling, traces)
        # As a pipe to `docker run` without -t: a guest writing to a file or a pipe
        # sees no terminal (ls prints a column, programs do not colour their output).
        cfg.console_tty = want_tty or sys.stdin.isatty() and sys.stdout.isatty()
        cfg.console_input = interactive
        cfg.write()
        if want_tty and interactive:     # the typing is the guest's: Ctrl-C is a byte for it
            with terminal.raw(sys.stdin.fileno()):
                code = _run_guest(cfg)
        else:
            code = _run_guest(cfg)
    finally:
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            for log in run_dir.glob("*.log"):
                shutil.copy(log, log_dir / log.name)
        shutil.rmtree(run_dir, ignore_errors=True)
    phases.mark("cli", "exit")
    # Out at once, as the forked services go: the interpreter's teardown of
    # every module skas imported does nothing for a process that ends (measured:
    # 60-280 ms of CPU at each skas run's end on the development VM).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _strace_to(where: str) -> str:
    """--strace's value as the config says it: "log", or FILE made absolute and
    empty.  `--strace CMD` (no `--`) would take CMD for FILE: a program or
    anything but a regular file is refused, never emptied."""
    if where in ("", "log"):
        return where
    path = Path(where).absolute()
    if path.exists() and (not path.is_file() or path.stat().st_mode & 0o111):
        raise click.BadParameter(f"{where} is not a file to write the log to (to log to "
                                 "kernel.log: --strace -- CMD)", param_hint="--strace")
    path.write_text("")          # the kernel appends: a reboot's boots go on in it
    return str(path)


def _run_guest(cfg: GuestConfig) -> int:
    """Start the services, wait for the kernel, stop the rest; the guest's
    code, or 128+N when skas itself was stopped by signal N."""
    procs: dict = {}
    interrupted: list[int] = []

    def interrupt(signum, _frame):
        interrupted.append(signum)
        if procs:                    # the kernel halts the guest
            procs["kernel"].send_signal(signal.SIGTERM)

    def resized(_signum, _frame):     # sigio, in a session of its own, reads the new size
        if procs:
            procs["sigio"].send_signal(signal.SIGWINCH)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    if cfg.console_tty:
        signal.signal(signal.SIGWINCH, resized)
    code = REBOOT
    while code == REBOOT and not interrupted:     # reboot(2): all four services anew
        gc.freeze()
        procs.update(launch.start(cfg, fork=True))
        if interrupted:              # while starting: stop at once
            procs["kernel"].send_signal(signal.SIGTERM)
        try:
            code = launch.wait_guest(procs)
            phases.mark("cli", "halted")
        except launch.ServiceEnded as exc:
            click.echo(f"skas: {exc}; the end of its log:\n"
                       f"{launch.log_tail(cfg, exc.service)}", err=True)
            return BOOT_FAILED
        finally:
            launch.stop(procs)
    if interrupted:
        return 128 + interrupted[0]
    if code < 0 or code == BOOT_FAILED:
        how = f"the kernel was killed by signal {-code}" if code < 0 else "the guest could not boot"
        click.echo(f"skas: {how}; the end of the kernel's log:\n"
                   f"{launch.log_tail(cfg, 'kernel')}", err=True)
        code = BOOT_FAILED
    return code


# --- supervised guests -------------------------------------------------------------------

def _guest_dir(name: str) -> Path:
    return default_run_root() / name


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@_guest_options
@_trace_options
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def create(name, disk_path, hostname, read_only, ptrace_only, cpu, io_cpu, env, tmpfs, mem,
           trace, trace_sampling, cmd) -> None:
    """Define guest NAME, to run under supervisord: CMD as its pid 1, or
    without CMD the image's own /sbin/init (the default disk's is busybox
    init, with a shell on the console).  poweroff or halt in the guest stop
    it; reboot starts it again.

    Start it with: skas supervisorctl start 'NAME:*'

    Example: skas create web --disk disk.img -- /bin/busybox httpd -f"""
    from deploy import supervisor     # here, as in the other commands: xmlrpc and supervisor
                                      # are not for skas run's start
    if not GUEST_NAME.fullmatch(name):
        raise click.UsageError(f"guest name {name!r}: use letters, digits, '_', '.', '-'")
    cmd = cmd or (INIT,)
    if supervisor.include_path(name).exists():
        raise click.ClickException(f"guest {name!r} exists: remove it first (skas destroy {name})")
    cfg = _config(name, _guest_dir(name), disk_path, cmd, hostname, cpu, io_cpu, env, "socket",
                  read_only, ptrace_only, tmpfs, mem)
    cfg.console_input = True
    _set_tracing(cfg, trace, trace_sampling, None)
    cfg.make_run_dir()
    cfg.write()
    try:
        include = supervisor.install(cfg)
    except supervisor.SupervisorError as exc:
        raise click.ClickException(str(exc))
    start = shlex.quote(f"{name}:*")
    click.echo(f"guest {name}: config {cfg.path}, supervisord include {include}\n"
               f"start it:  supervisorctl -c {supervisor.main_conf()} start {start}\n"
               f"   or:     skas supervisorctl start {start}\n"
               f"console:   skas console {name}  (a record: {cfg.console_log})")


def _need_supervisord_conf() -> None:
    from deploy import supervisor
    if not supervisor.main_conf().exists():
        raise click.ClickException(f"no skas supervisord config at {supervisor.main_conf()}: "
                                   "define a guest first (skas create), or set SKAS_HOME")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def supervisorctl(args) -> None:
    """Run supervisorctl against skas's supervisord.

    Example: skas supervisorctl start 'NAME:*'"""
    from deploy import supervisor
    _need_supervisord_conf()
    cmd = [*supervisor.SUPERVISORCTL, "-c", str(supervisor.main_conf()), *args]
    os.execv(cmd[0], cmd)


def _ask_status(endpoint: str, keys) -> str | dict:
    """A service's status_reply state, or why there is none (keys: CURVE
    files, used when the endpoint is tcp)."""
    link = Link(endpoint, "cli", keys)
    try:
        link.send("status", 1, {})
        if link.sock.poll(STATUS_TIMEOUT_MS):
            for _, msg in link.drain():
                if msg.type == "status_reply":
                    return msg["state"]
                if msg.type == "error":
                    return f"error: {msg['reason']}"
        return "not answering"
    finally:
        link.close()


def _summary(state: str | dict) -> str:
    if isinstance(state, str):
        return state
    return ", ".join(f"{k}={v}" for k, v in state.items() if not isinstance(v, (list, dict)))


@main.command()
@click.argument("name")
def status(name) -> None:
    """Show the services and processes of guest NAME.

    For each service: supervisord's state, and what it says of itself when
    running; then the guest's processes."""
    from deploy import supervisor
    path = _guest_dir(name) / f"{name}.toml"
    if not path.exists():
        raise click.ClickException(f"no guest {name!r} (expected {path}); define one: skas create")
    cfg = guest_config.load(path)
    up = supervisor.running()
    procs = supervisor.group_state(name) if up else {}
    click.echo(f"guest {name}  run dir {cfg.run_dir}")
    if not up:
        click.echo("supervisord is not running; start it: "
                   + shlex.join([*supervisor.SUPERVISORD, "-c", str(supervisor.main_conf())]))
    click.echo(f"{'SERVICE':<10} {'SUPERVISOR':<10} {'PID':>7}  STATE")
    states = {}
    for service in SERVICES:
        info = procs.get(service, {})
        states[service] = (_ask_status(cfg.endpoints[service], cfg.curve_files("kernel", service))
                           if info.get("pid") else _ended(cfg, service, info))
        click.echo(f"{service:<10} {info.get('statename', 'unknown'):<10} "
                   f"{info.get('pid') or '-':>7}  {_summary(states[service])}")
    kernel = states["kernel"]
    tasks = kernel.get("tasks", []) if isinstance(kernel, dict) else []
    if tasks:
        click.echo(f"\n{'PID':>5} {'TID':>5} {'PPID':>5} S {'HOST PID':>9}  COMMAND")
        for t in sorted(tasks, key=lambda t: (t["tgid"], t["pid"])):
            click.echo(f"{t['tgid']:>5} {t['pid']:>5} {t['ppid']:>5} {t['state']} "
                       f"{t['host_pid']:>9}  {t['comm']}")
        for pid in kernel.get("zombies", []):
            click.echo(f"{pid:>5} {pid:>5} {'':>5} Z {'-':>9}  <defunct>")
    if tracing.wanted(cfg):
        from common.trace_files import latest_metrics
        from deploy import trace as trace_view
        for line in trace_view.metrics_lines(latest_metrics(tracing.trace_dir(cfg))):
            click.echo(line)


def _ended(cfg: GuestConfig, service: str, info: dict) -> str:
    """What status says of a service with no process: how it exited, if it
    did on its own (CONFIG: why, and where to read more)."""
    if info.get("statename") != "EXITED":
        return "-"
    code = info.get("exitstatus")
    if code == CONFIG:
        return (f"exit {code}: cannot serve as configured; see "
                f"{cfg.run_dir / (service + '.log')}")
    return f"exit {code}"


def _guest_config(where: str) -> GuestConfig:
    """A guest's config: by name (a supervised guest), or by its run
    directory (any guest, a `skas run` one too: the one NAME.toml there)."""
    path = Path(where)
    if "/" in where or path.is_dir():
        found = sorted(path.glob("*.toml")) if path.is_dir() else []
        if len(found) != 1:
            raise click.ClickException(f"{where}: not a guest's run directory (it should hold "
                                       "one NAME.toml)")
        return guest_config.load(found[0])
    path = _guest_dir(where) / f"{where}.toml"
    if not path.exists():
        raise click.ClickException(f"no guest {where!r} (expected {path}); define one: "
                                   "skas create")
    return guest_config.load(path)


def _ctl_args(verb: str, args: tuple) -> list[str]:
    """config's image paths made absolute, as ubd_io needs them."""
    if verb != "config" or len(args) != 1 or "=" not in args[0]:
        return list(args)
    disk, _, spec = args[0].partition("=")
    paths = [str(Path(p).absolute()) if p else p for p in spec.split(",", 1)]
    return [f"{disk}={','.join(paths)}"]


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("guest")
@click.argument("verb")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "as_json", is_flag=True, help="print the reply as one JSON object")
@click.option("--timeout", default=CTL_TIMEOUT, show_default=True,
              help="seconds to wait for the guest's answer")
def ctl(guest, verb, args, as_json, timeout) -> None:
    """Manage running guest GUEST (a name, or a run directory), as UML's
    mconsole: VERB is one of version, help, halt, reboot, cad, sysrq KEY,
    stop, go, log TEXT, proc PATH, config ubdN=IMAGE[,BACKING], remove ubdN.

    Example: skas ctl web sysrq s"""
    cfg = _guest_config(guest)
    link = Link(cfg.endpoints["kernel"], "cli", cfg.curve_files("kernel", "kernel"))
    try:
        link.send("ctl", 1, {"verb": verb, "args": _ctl_args(verb, args)})
        reply = None
        while reply is None and link.sock.poll(int(timeout * 1000)):
            reply = next((m for _, m in link.drain() if m.id == 1), None)
    finally:
        link.close()
    if reply is None:
        raise click.ClickException(f"guest {cfg.name} is not answering (no reply in "
                                   f"{timeout:g}s); check it: skas status {cfg.name}")
    if reply.type == "ctl_reply":
        ok, text, data = reply["ok"], reply["text"], reply["data"]
    else:
        ok, text, data = False, reply.body.get("reason", reply.type), {}
    if as_json:
        click.echo(json.dumps({"guest": cfg.name, "verb": verb, "ok": ok, "text": text,
                               "data": data}))
    elif ok:
        click.echo(text, nl=not text.endswith("\n"))     # a /proc file's own last newline
    else:
        click.echo(f"skas ctl: guest {cfg.name}: {verb}: {text}", err=True)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("target", metavar="NAME|RUN_DIR")
def console(target) -> None:
    """Attach this terminal to guest NAME's console.

    The screenful it last showed comes first, then what the guest wrote
    since.  Ctrl-] detaches; the guest runs on, and its output waits
    (up to its console_backlog, then the guest's writes wait).  One
    terminal at a time: attaching takes the console from the one before."""
    from deploy import console as console_client     # (as supervisor: not for skas run's start)
    try:
        cfg = console_client.find(target)
        detached, said = console_client.attach(cfg)
    except console_client.ConsoleError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"\r\nskas: {said}", err=True)
    sys.exit(0 if detached else 1)


# --- traces --------------------------------------------------------------------------------

def _trace_dir(target: str) -> Path:
    """Where a guest's JSON traces are: its config's trace directory (by
    name or run dir), or a directory holding them (skas run's --log-dir,
    or its traces/)."""
    path = Path(target)
    if path.is_dir():
        for d in (path, path / "traces"):
            if any(d.glob("*.spans.jsonl*")):
                return d
        if (path / "traces").is_dir() and not any(path.glob("*.toml")):
            return path / "traces"       # none yet (--follow may wait for the first)
        if len(list(path.glob("*.toml"))) != 1:
            raise click.ClickException(f"{target}: no traces here (*.spans.jsonl, or traces/ "
                                       "holding them), and not a guest's run directory")
    return tracing.trace_dir(_guest_config(target))


@main.command()
@click.argument("target", metavar="NAME|RUN_DIR")
@click.argument("trace_id", required=False)
@click.option("-f", "--follow", is_flag=True, help="list each new trace as it completes")
@click.option("--slowest", type=click.IntRange(1), metavar="N", help="list the N slowest traces")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0),
              help="list the most recent this many traces (0: all)")
def trace(target, trace_id, follow, slowest, limit) -> None:
    """List the recent traces of a guest traced with --trace and no
    collector (its JSON lines), or show TRACE_ID (a prefix of it will do)
    as a tree of spans with their durations and attributes.

    TARGET is a guest's name, its run directory, or a directory holding its
    traces (skas run --trace --log-dir DIR: DIR).

    Example: skas trace web --slowest 5;  skas trace web 3f2a"""
    from common.trace_files import Tail
    from deploy import trace as trace_view
    directory = _trace_dir(target)
    if follow:
        try:
            trace_view.follow(directory, click.echo)
        except KeyboardInterrupt:
            return
    traces = trace_view.collect(Tail(directory).read())
    if trace_id:
        found = trace_view.find(traces, trace_id)
        if found is None:
            raise click.ClickException(f"no one trace {trace_id!r} in {directory}")
        for line in trace_view.tree(found):
            click.echo(line)
        return
    if not traces:
        raise click.ClickException(f"no traces in {directory} yet")
    click.echo(trace_view.header())
    for t in trace_view.listing(traces, slowest, limit):
        click.echo(trace_view.summary(t))


@main.command()
@click.argument("name")
def destroy(name) -> None:
    """Stop guest NAME and remove it.

    Its supervisord include file and run directory go; the disk stays."""
    from deploy import supervisor
    include, run_dir = supervisor.include_path(name), _guest_dir(name)
    if not include.exists() and not run_dir.exists():
        raise click.ClickException(f"no guest {name!r} (neither {include} nor {run_dir})")
    up = supervisor.running()
    if up:
        supervisor.ctl("stop", f"{name}:*")
    include.unlink(missing_ok=True)
    if up:
        supervisor.ctl("update")
    shutil.rmtree(run_dir, ignore_errors=True)
    click.echo(f"guest {name} removed")


@main.command()
def syscalls() -> None:
    """List the guest system calls: where each is served and how far supported.

    ROUTE: host (the filter lets it run on the host), checked (on the host
    for the arguments the filter checks, else trapped), notify (the kernel
    answers through the seccomp listener), trap (a ptrace stop, the kernel
    answers).  RESTART, when not ERESTARTSYS: what a call a signal cut short
    does after a handler.  Numbers not listed trap and are ENOSYS."""
    from common.syscalls import TABLE, SYS
    click.echo(f"{'NR':>4} {'NAME':<20} {'ROUTE':<8} {'SUPPORT':<8} {'RESTART':<15} NOTE")
    for nr in sorted(TABLE):
        p = TABLE[nr]
        restart = "" if p.restart == SYS else p.restart
        click.echo(f"{nr:>4} {p.name:<20} {p.route:<8} {p.support:<8} {restart:<15} "
                   f"{p.note}".rstrip())


# This module's imports are done (see its top).  What they made is frozen
# first: turned on over them, collection's first pass would walk it all
# (measured: a cold start 6-13 ms slower).
gc.freeze()
gc.enable()

if __name__ == "__main__":
    main(prog_name="skas")
