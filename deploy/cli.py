"""The ``skas`` command: make disks, run one-shot guests, manage supervised guests."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import click

from common.config import SERVICES, GuestConfig, default_run_root
from common import config as guest_config
from common.transport import Link
from deploy import disk as diskmod
from deploy import launch, supervisor

BOOT_FAILED = 125


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """skas: run Linux programs from a disk image under a user-mode kernel.

    Each guest is four host processes (kernel, userspace, ubd_io, sigio)."""


# --- disks -------------------------------------------------------------------------

@main.group()
def disk() -> None:
    """Make and check guest disk images (ext2)."""


@disk.command("create")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", default="64M", show_default=True, help="image size, as mke2fs takes it")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="copy this directory tree instead of the default busybox tree")
@click.option("--force", is_flag=True, help="overwrite PATH if it exists")
def disk_create(path: Path, size: str, source: Path | None, force: bool) -> None:
    """Build an ext2 image at PATH (default content: Debian's busybox-static)."""
    try:
        files = diskmod.create(path, size, source, force)
    except diskmod.DiskError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"{path}: ext2, {size}, {files} files and directories, e2fsck clean")


@disk.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def disk_check(path: Path) -> None:
    """Check an image with e2fsck -fn (read-only)."""
    try:
        click.echo(diskmod.check(path).strip())
    except diskmod.DiskError as exc:
        raise click.ClickException(str(exc))


# --- one-shot guests ------------------------------------------------------------------

def _guest_options(f):
    f = click.option("--hostname", help="the guest's nodename (default: the guest's name)")(f)
    f = click.option("--cpu", type=int, help="pin the guest's services to this host CPU "
                     "(default for run: one CPU, chosen by pid; -1: do not pin)")(f)
    f = click.option("--env", "env", multiple=True, metavar="K=V",
                     help="add to init's environment (repeatable)")(f)
    f = click.option("--disk", "disk_path", required=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="the root disk image (see: skas disk create)")(f)
    return f


def _config(name: str, run_dir: Path, disk_path: Path, cmd: tuple, hostname, cpu, env,
            console: str) -> GuestConfig:
    if not cmd:
        raise click.UsageError("say what to run in the guest: ... -- CMD [ARGS]")
    cfg = GuestConfig(name=name, run_dir=run_dir, disks={"ubd0": str(disk_path.resolve())},
                      init=list(cmd), hostname=hostname or "", console=console,
                      cpu=None if cpu == -1 else cpu)
    cfg.env += list(env)
    return cfg


@main.command(context_settings={"ignore_unknown_options": True})
@_guest_options
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def run(disk_path, hostname, cpu, env, cmd) -> None:
    """Boot a one-shot guest that runs CMD as pid 1; exit with its status.

    Example: skas run --disk disk.img -- /bin/busybox uname -a"""
    if cpu is None:
        cpu = os.getpid() % os.cpu_count()
    run_dir = Path(tempfile.mkdtemp(prefix="skas-run-"))
    cfg = _config(f"run-{os.getpid()}", run_dir, disk_path, cmd, hostname, cpu, env, "stdio")
    cfg.write()
    procs = launch.start(cfg)
    stop = lambda *_: procs["kernel"].send_signal(signal.SIGTERM)   # noqa: E731
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        code = launch.wait_guest(procs)
    finally:
        launch.stop(procs)
    if code == BOOT_FAILED or code < 0:
        errors = [ln for ln in launch.log_tail(cfg, "kernel", 40).splitlines() if " ERROR " in ln]
        if errors:
            click.echo("skas: the guest failed; kernel log:\n" + "\n".join(errors), err=True)
        code = BOOT_FAILED
    shutil.rmtree(run_dir, ignore_errors=True)
    sys.exit(code)


# --- supervised guests -------------------------------------------------------------------

@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@_guest_options
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def create(name, disk_path, hostname, cpu, env, cmd) -> None:
    """Define guest NAME for supervisord; start it with supervisorctl start NAME:*."""
    cfg = _config(name, default_run_root() / name, disk_path, cmd, hostname, cpu, env, "log")
    cfg.make_run_dir()
    cfg.write()
    include = supervisor.install(cfg)
    click.echo(f"guest {name}: config {cfg.path}, supervisord include {include}\n"
               f"start it:  supervisorctl -c {supervisor.main_conf()} start '{name}:*'\n"
               f"   or:     skas supervisorctl start '{name}:*'\n"
               f"console:   {cfg.console_log}")


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def supervisorctl(args) -> None:
    """supervisorctl for skas's supervisord (e.g. skas supervisorctl start NAME:*)."""
    cmd = [*supervisor.SUPERVISORCTL, "-c", str(supervisor.main_conf()), *args]
    os.execv(cmd[0], cmd)


def _ask_status(endpoint: str) -> dict | None:
    link = Link(endpoint, "cli")
    try:
        link.send("status", 1, {})
        if link.sock.poll(1000):
            for _, msg in link.drain():
                if msg.type == "status_reply":
                    return msg["state"]
        return None
    finally:
        link.close()


@main.command()
@click.argument("name")
def status(name) -> None:
    """Show each service of guest NAME and the guest's processes."""
    path = default_run_root() / name / f"{name}.toml"
    if not path.exists():
        raise click.ClickException(f"no guest {name!r} (expected {path}); see: skas create")
    cfg = guest_config.load(path)
    procs = supervisor.group_state(name) if supervisor.running() else {}
    click.echo(f"guest {name}  run dir {cfg.run_dir}")
    click.echo(f"{'SERVICE':<10} {'SUPERVISOR':<10} {'PID':>7}  STATE")
    states = {}
    for service in SERVICES:
        info = procs.get(service, {})
        states[service] = _ask_status(cfg.endpoints[service]) if info.get("pid") else None
        summary = states[service]
        text = "not answering" if summary is None else ", ".join(
            f"{k}={v}" for k, v in summary.items() if not isinstance(v, (list, dict)))
        click.echo(f"{service:<10} {info.get('statename', 'unknown'):<10} "
                   f"{info.get('pid') or '-':>7}  {text}")
    tasks = (states.get("kernel") or {}).get("tasks", [])
    if tasks:
        click.echo(f"\n{'PID':>5} {'HOST PID':>9}  COMMAND")
        for t in tasks:
            click.echo(f"{t['pid']:>5} {t['host_pid']:>9}  {t['comm']}")


@main.command()
@click.argument("name")
def destroy(name) -> None:
    """Stop guest NAME and remove its config and run directory."""
    if supervisor.running():
        supervisor.ctl("stop", f"{name}:*")
    include = supervisor.home() / "conf.d" / f"{name}.conf"
    include.unlink(missing_ok=True)
    if supervisor.running():
        supervisor.ctl("update")
    shutil.rmtree(default_run_root() / name, ignore_errors=True)
    click.echo(f"guest {name} removed")


@main.command()
def syscalls() -> None:
    """List the guest system calls and how far each is supported."""
    from services.kernel.syscalls import TABLE
    for nr in sorted(TABLE):
        entry = TABLE[nr]
        click.echo(f"{nr:>4} {entry.name:<20} {entry.support:<8} {entry.note}")


if __name__ == "__main__":
    main()
