"""A guest's configuration: one TOML file, read by every service and the CLI.

The file is the single source of endpoints, disks and identity; services get
only its path (``--guest-config FILE``)."""
from __future__ import annotations

import json

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("kernel", "userspace", "ubd_io", "sigio")
DEFAULT_RELEASE = "6.1.0-skas"
DEFAULT_ENV = ["PATH=/sbin:/usr/sbin:/bin:/usr/bin", "HOME=/", "TERM=linux"]
DEFAULT_MEM = 512 << 20
MIN_MEM = 16 << 20
UBD_MAX = 16     # disks a guest may have: ubd0 to ubd15 (UML's MAX_DEV)


def default_run_root() -> Path:
    """Per-user directory holding each guest's 0700 run directory."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(xdg) if xdg else Path(f"/tmp/skas-{os.getuid()}")
    return base / "skas" if xdg else base


@dataclass
class GuestConfig:
    name: str
    run_dir: Path
    disks: dict[str, str]
    init: list[str]
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    hostname: str = ""
    release: str = DEFAULT_RELEASE
    uid: int = 0
    gid: int = 0
    console: str = "stdio"          # "stdio": sigio's own stdout; "log": console.log;
                                    # "socket": console.log and a line skas console attaches to
    console_input: bool = False     # input comes in (stdio: sigio's stdin, skas run -i;
                                    # socket: from the attached client); else reads see EOF
    console_backlog: int = 1 << 20  # socket: output no client took yet; past it guest writes wait
    console_tty: bool = True        # the console answers as a terminal (skas run: only when
                                    # its stdin and stdout are one, as docker run without -t)
    cpu: int | None = None          # pin all four services (and the guest) to this CPU
    io_cpu: int | None = None       # but ubd_io to this one (its writes are posted: off the
                                    # trap path, they overlap the guest on another CPU)
    endpoints: dict[str, str] = field(default_factory=dict)
    syscall_log: str = ""           # the decoded syscall log (skas run --strace): "" off,
                                    # "log" to the kernel's log, else the file it names
    read_only: bool = False         # mount the root read-only (UML's "ro")
    ubd_queue: int = 64             # requests ubd_io holds before it answers busy (UML: 64)
    curve: dict[str, str] = field(default_factory=dict)   # CURVE certificate file per service
    notify: bool = True             # frequent calls through the seccomp listener, not ptrace
    max_tasks: int = 512            # threads and zombies the guest may hold (a host process
                                    # each, or a pid): past it fork/clone are EAGAIN
    host_uid: int = 0               # the guest processes' host uid and gid (when skas is
                                    # root); 0: one per guest name (services/userspace/jail.py)
    pagecache_limit: int = 1 << 30  # bytes the run directory's page cache may take on disk
    file_cache_limit: int = 128 << 20  # bytes of file pages the kernel keeps for read(2)
                                    # (its memory, as touched; 0: none)
    tmpfs_limit: int = 1 << 30      # bytes all the guest's tmpfs mounts may hold (kernel memory)
    console_log_max: int = 16 << 20  # console.log past this becomes console.log.1
    tmpfs: list[str] = field(default_factory=list)   # "PATH[:SIZE]": a tmpfs mounted there at boot
    mem: int = DEFAULT_MEM          # the guest's memory (UML's mem=): /proc/meminfo's MemTotal,
                                    # sysinfo's totalram; a tmpfs is half of it unless told
    # tracing and metrics (common/tracing.py): off unless trace, or otel names a collector
    trace: bool = False             # skas run/create --trace
    trace_sampling: str = ""        # a ratio, or SAMPLER[:RATIO]; "": OTEL_TRACES_SAMPLER's
    trace_dir: str = ""             # the JSON exporter's directory; "": RUN_DIR/traces
    otel: dict[str, str] = field(default_factory=dict)   # OTEL_* variables skas was given

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.hostname = self.hostname or self.name
        if type(self.syscall_log) is bool:      # a config from before it said where
            self.syscall_log = "log" if self.syscall_log else ""
        for service in SERVICES:
            self.endpoints.setdefault(service, f"ipc://{self.run_dir}/{service}.sock")

    def curve_files(self, me: str, peer: str) -> tuple[Path, Path]:
        """(my key pair, the peer's public key) for a tcp link between
        two services: the files named in [curve], else RUN_DIR/curve/NAME.key_secret
        and RUN_DIR/curve/PEER.key, as zmq.auth.create_certificates names them."""
        keys = self.run_dir / "curve"
        return (Path(self.curve.get(me) or keys / f"{me}.key_secret"),
                Path(self.curve.get(peer) or keys / f"{peer}.key"))

    @property
    def fd_socket(self) -> Path:
        """Where the kernel takes host fds from userspace (the seccomp listener)."""
        return self.run_dir / "kernel-fds.sock"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def console_socket(self) -> str:
        """Where skas console attaches (console "socket")."""
        return f"ipc://{self.run_dir}/console.sock"

    @property
    def path(self) -> Path:
        return self.run_dir / f"{self.name}.toml"

    def make_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)

    def to_toml(self) -> str:
        lines = [f"name = {_q(self.name)}", f"run_dir = {_q(str(self.run_dir))}",
                 f"init = [{', '.join(_q(a) for a in self.init)}]",
                 f"env = [{', '.join(_q(a) for a in self.env)}]",
                 f"hostname = {_q(self.hostname)}", f"release = {_q(self.release)}",
                 f"uid = {self.uid}", f"gid = {self.gid}", f"console = {_q(self.console)}",
                 f"console_tty = {str(self.console_tty).lower()}",
                 f"console_input = {str(self.console_input).lower()}",
                 f"console_backlog = {self.console_backlog}",
                 f"syscall_log = {_q(self.syscall_log)}",
                 f"read_only = {str(self.read_only).lower()}",
                 f"ubd_queue = {self.ubd_queue}", f"notify = {str(self.notify).lower()}",
                 f"max_tasks = {self.max_tasks}", f"host_uid = {self.host_uid}",
                 f"pagecache_limit = {self.pagecache_limit}",
                 f"file_cache_limit = {self.file_cache_limit}", f"tmpfs_limit = {self.tmpfs_limit}",
                 f"console_log_max = {self.console_log_max}",
                 f"tmpfs = [{', '.join(_q(t) for t in self.tmpfs)}]", f"mem = {self.mem}"]
        if self.cpu is not None:
            lines.append(f"cpu = {self.cpu}")
        if self.io_cpu is not None:
            lines.append(f"io_cpu = {self.io_cpu}")
        lines += [f"trace = {str(self.trace).lower()}", f"trace_sampling = {_q(self.trace_sampling)}",
                  f"trace_dir = {_q(self.trace_dir)}"]
        lines.append("\n[disks]")
        lines += [f"{k} = {_q(v)}" for k, v in self.disks.items()]
        lines.append("\n[endpoints]")
        lines += [f"{k} = {_q(v)}" for k, v in self.endpoints.items()]
        if self.curve:
            lines.append("\n[curve]")
            lines += [f"{k} = {_q(v)}" for k, v in self.curve.items()]
        if self.otel:
            lines.append("\n[otel]")
            lines += [f"{k} = {_q(v)}" for k, v in self.otel.items()]
        return "\n".join(lines) + "\n"

    def write(self, path: Path | None = None) -> Path:
        path = Path(path or self.path)
        path.write_text(self.to_toml())
        return path


def load(path: str | os.PathLike) -> GuestConfig:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    known = set(GuestConfig.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}")
    return GuestConfig(**data)


def parse_disk(spec: str) -> tuple[str, str | None]:
    """A disk spec: ``IMAGE``, or ``OVERLAY,BACKING`` as in UML's
    ``ubd0=cow,backing`` (OVERLAY is a UML COW file, made if missing)."""
    parts = spec.split(",")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"disk {spec!r}: give IMAGE, or OVERLAY,BACKING for a COW overlay")
    return parts[0], parts[1] if len(parts) == 2 else None


SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """A size as mount -o size= and UML's mem= take it: bytes, or a number
    with k, m or g; ValueError unless it is a positive one."""
    mult = SIZE_UNITS.get(text[-1:].lower(), 1)
    digits = text[:-1] if text[-1:].lower() in SIZE_UNITS else text
    if not digits.isdigit() or not int(digits):
        raise ValueError(f"{text!r}: give a size, a number with k, m or g (e.g. 64m)")
    return int(digits) * mult


def parse_tmpfs(spec: str) -> tuple[str, int | None]:
    """A tmpfs to mount at boot: ``PATH`` or ``PATH:SIZE`` (as parse_size
    takes it); without a size, half the guest's memory."""
    path, _, size = spec.partition(":")
    if not path.startswith("/"):
        raise ValueError(f"tmpfs {spec!r}: give an absolute path in the guest, e.g. /tmp:256m")
    if not size:
        return path, None
    try:
        return path, parse_size(size)
    except ValueError:
        raise ValueError(f"tmpfs {spec!r}: the size is a number, with k, m or g (e.g. 64m)")


def _q(s: str) -> str:
    """A TOML basic string: JSON's escapes (newlines, quotes, control
    characters) are TOML's too."""
    return json.dumps(s)
