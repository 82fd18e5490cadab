"""One supervisord per user, and one include file per guest (DESIGN §9).

SKAS_HOME (default ~/.config/skas) holds supervisord.conf, its socket, log
and pid file, and conf.d/NAME.conf for each guest: the group NAME with the
four services and an event listener that stops the group when the guest's
kernel or userspace exits."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from common.config import SERVICES, GuestConfig
from deploy.launch import REPO, command

MAIN_CONF = """\
[unix_http_server]
file={home}/supervisor.sock
chmod=0700

[supervisord]
logfile={home}/supervisord.log
pidfile={home}/supervisord.pid
childlogdir={home}
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{home}/supervisor.sock

[include]
files = conf.d/*.conf
"""


# The supervisor installed next to skas, whatever is on PATH.
SUPERVISORCTL = [sys.executable, "-m", "supervisor.supervisorctl"]


def home() -> Path:
    return Path(os.environ.get("SKAS_HOME") or Path.home() / ".config" / "skas")


def main_conf() -> Path:
    return home() / "supervisord.conf"


def program_name(guest: str, service: str) -> str:
    return f"{guest}-{service}"


def include_file(cfg: GuestConfig) -> str:
    """The [group:NAME] include for one guest."""
    sections = [f"[group:{cfg.name}]\nprograms="
                + ",".join(program_name(cfg.name, s) for s in SERVICES) + "\n"]
    for service in SERVICES:
        # kernel and userspace are the guest: when one ends the guest is over.
        # ubd_io and sigio are restarted and the kernel resends to them.
        restart = "true" if service in ("ubd_io", "sigio") else "false"
        sections.append(
            f"[program:{program_name(cfg.name, service)}]\n"
            f"command={' '.join(command(service, cfg.path))}\n"
            f"directory={REPO}\n"
            "autostart=false\n"
            f"autorestart={restart}\n"
            "startsecs=0\n"
            "stopasgroup=true\nkillasgroup=true\nstopsignal=TERM\nstopwaitsecs=3\n"
            f"stdout_logfile={cfg.run_dir / (service + '.out')}\n"
            f"stderr_logfile={cfg.run_dir / (service + '.log')}\n")
    sections.append(
        f"[eventlistener:{program_name(cfg.name, 'listener')}]\n"
        f"command={sys.executable} -m deploy.listener {cfg.name}\n"
        f"directory={REPO}\n"
        "events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL\n"
        "autostart=true\nautorestart=true\n"
        f"stderr_logfile={cfg.run_dir / 'listener.log'}\n")
    return "\n".join(sections)


def install(cfg: GuestConfig) -> Path:
    """Write the guest's include file, and make supervisord load it."""
    h = home()
    (h / "conf.d").mkdir(parents=True, exist_ok=True)
    os.chmod(h, 0o700)
    main_conf().write_text(MAIN_CONF.format(home=h))
    path = h / "conf.d" / f"{cfg.name}.conf"
    path.write_text(include_file(cfg))
    if running():
        ctl("update")
    else:
        subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(main_conf())],
                       check=True)
        wait_running()
    return path


def ctl(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*SUPERVISORCTL, "-c", str(main_conf()), *args],
                          capture_output=True, text=True, check=check)


def rpc() -> xmlrpc.client.ServerProxy:
    url = f"unix://{home()}/supervisor.sock"
    return xmlrpc.client.ServerProxy("http://127.0.0.1",
                                     transport=SupervisorTransport(None, None, url))


def running() -> bool:
    try:
        return rpc().supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def wait_running(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not running():
        if time.monotonic() > deadline:
            raise RuntimeError(f"supervisord did not come up: see {home() / 'supervisord.log'}")
        time.sleep(0.1)


def group_state(name: str) -> dict[str, dict]:
    """Supervisor's view of each service of guest name."""
    out = {}
    for info in rpc().supervisor.getAllProcessInfo():
        if info["group"] == name:
            out[info["name"].removeprefix(name + "-")] = info
    return out
