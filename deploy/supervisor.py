"""One supervisord per user, and one include file per guest (DESIGN §9).

SKAS_HOME (default ~/.config/skas) holds supervisord.conf, its socket, log
and pid file, and conf.d/NAME.conf for each guest: the group NAME with the
four services and an event listener that stops the group when the guest's
kernel or userspace exits."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from common.config import SERVICES, GuestConfig
from common.exits import CONFIG
from deploy.launch import REPO, command

MAIN_CONF = """\
[unix_http_server]
file={sock}
chmod=0700

[supervisord]
logfile={home}/supervisord.log
pidfile={home}/supervisord.pid
childlogdir={home}
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[include]
files = conf.d/*.conf
"""

# The supervisor installed next to skas, whatever is on PATH.
SUPERVISORD = [sys.executable, "-m", "supervisor.supervisord"]
SUPERVISORCTL = [sys.executable, "-m", "supervisor.supervisorctl"]
SUN_PATH_MAX = 107      # bytes of a unix socket path, without the NUL


class SupervisorError(Exception):
    """supervisord could not be set up or reached; the message says what to do."""


def home() -> Path:
    return Path(os.environ.get("SKAS_HOME") or Path.home() / ".config" / "skas")


def main_conf() -> Path:
    return home() / "supervisord.conf"


def socket_path() -> Path:
    return home() / "supervisor.sock"


def include_path(guest: str) -> Path:
    return home() / "conf.d" / f"{guest}.conf"


def program_name(guest: str, service: str) -> str:
    """Program names are global in supervisord, so each carries its guest's."""
    return f"{guest}-{service}"


def _value(text: str) -> str:
    """A config value as supervisord reads it: %(...)s expansions are on."""
    return text.replace("%", "%%")


def include_file(cfg: GuestConfig) -> str:
    """The [group:NAME] include for one guest."""
    sections = [f"[group:{cfg.name}]\nprograms="
                + ",".join(program_name(cfg.name, s) for s in SERVICES) + "\n"]
    for service in SERVICES:
        # kernel and userspace are the guest: when one ends the guest is over.
        # ubd_io and sigio are restarted and the kernel resends to them,
        # unless they exit CONFIG (they cannot serve as configured): then
        # the listener stops the guest.
        restart = ("unexpected\nexitcodes=" + str(CONFIG) if service in ("ubd_io", "sigio")
                   else "false")
        sections.append(
            f"[program:{program_name(cfg.name, service)}]\n"
            f"command={_value(shlex.join(command(service, cfg.path)))}\n"
            f"directory={_value(str(REPO))}\n"
            "autostart=false\n"
            f"autorestart={restart}\n"
            "startsecs=0\n"
            "stopasgroup=true\nkillasgroup=true\nstopsignal=TERM\nstopwaitsecs=3\n"
            f"stdout_logfile={_value(str(cfg.run_dir / (service + '.out')))}\n"
            f"stderr_logfile={_value(str(cfg.run_dir / (service + '.log')))}\n")
    # EXITED covers a core service ending or being killed, FATAL one that could
    # not start.  Not STOPPED: that is supervisord stopping it, e.g. in a
    # `restart NAME:*`, where stopping the group again would hit the new guest.
    sections.append(
        f"[eventlistener:{program_name(cfg.name, 'listener')}]\n"
        f"command={_value(shlex.join([sys.executable, '-m', 'deploy.listener', cfg.name]))}\n"
        f"directory={_value(str(REPO))}\n"
        "events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL\n"
        "autostart=true\nautorestart=true\n"
        "stdout_logfile=NONE\n"             # stdout is the listener protocol
        f"stderr_logfile={_value(str(cfg.run_dir / 'listener.log'))}\n")
    return "\n".join(sections)


def install(cfg: GuestConfig) -> Path:
    """Write the guest's include file and make supervisord load it: start
    supervisord if it is not running, else `update`."""
    h = home()
    if len(os.fsencode(socket_path())) > SUN_PATH_MAX:
        raise SupervisorError(f"{socket_path()} is too long for a unix socket: "
                              "set SKAS_HOME to a shorter directory")
    (h / "conf.d").mkdir(parents=True, exist_ok=True)
    os.chmod(h, 0o700)
    main_conf().write_text(MAIN_CONF.format(home=_value(str(h)), sock=_value(str(socket_path()))))
    path = include_path(cfg.name)
    path.write_text(include_file(cfg))
    if running():
        result = ctl("update")
        if result.returncode:
            raise SupervisorError(f"supervisorctl update failed: {result.stdout}{result.stderr}")
    else:
        result = subprocess.run([*SUPERVISORD, "-c", str(main_conf())], capture_output=True,
                                text=True, check=False)
        if result.returncode:
            raise SupervisorError(f"supervisord did not start: {result.stdout}{result.stderr}"
                                  f"(see {h / 'supervisord.log'})")
        wait_running()
    return path


def ctl(*args: str) -> subprocess.CompletedProcess:
    """supervisorctl against skas's supervisord."""
    return subprocess.run([*SUPERVISORCTL, "-c", str(main_conf()), *args],
                          capture_output=True, text=True, check=False)


def rpc() -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(
        "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{socket_path()}"))


def running() -> bool:
    try:
        return rpc().supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def wait_running(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not running():
        if time.monotonic() > deadline:
            raise SupervisorError(f"supervisord did not come up: see {home() / 'supervisord.log'}")
        time.sleep(0.1)


def group_state(name: str) -> dict[str, dict]:
    """Supervisor's view of each service of guest name."""
    return {info["name"].removeprefix(name + "-"): info
            for info in rpc().supervisor.getAllProcessInfo() if info["group"] == name}
