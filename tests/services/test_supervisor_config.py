"""`skas create` writes a supervisord config that supervisord accepts, one group per guest.

No guest is started here (test_supervisor.py does that)."""
from __future__ import annotations

import os
import stat

import pytest

from common import config as guest_config
from common.exits import CONFIG
from conftest import skas
from deploy import supervisor

PROGRAMS = ("kernel", "userspace", "ubd_io", "sigio")


@pytest.fixture
def img(tmp_path):
    """Any file will do: nothing boots from it here."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"")
    return path


def ctl_status() -> dict[str, str]:
    r = supervisor.ctl("status")
    return dict(line.split()[:2] for line in r.stdout.splitlines() if line.strip())


def test_create_starts_supervisord_with_the_guests_group_stopped(skas_home, img):
    r = skas("create", "g1", "--disk", str(img), "--", "/bin/busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    conf = skas_home / "supervisord.conf"
    assert f"supervisorctl -c {conf} start 'g1:*'" in r.stdout
    assert supervisor.running()
    status = ctl_status()
    assert {f"g1:g1-{p}": "STOPPED" for p in PROGRAMS}.items() <= status.items(), status
    assert status["g1-listener"] in ("STARTING", "RUNNING")   # watches the guest from the start
    assert stat.S_IMODE(os.stat(skas_home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(skas_home / "supervisor.sock").st_mode) == 0o700


def test_the_include_file_names_the_guests_config_and_the_repo(skas_home, img):
    assert skas("create", "g1", "--disk", str(img), "--", "true").returncode == 0
    cfg = guest_config.load(guest_config.default_run_root() / "g1" / "g1.toml")
    assert cfg.console == "socket" and cfg.console_input and cfg.init == ["true"]
    assert cfg.disks == {"ubd0": str(img.resolve())}
    include = (skas_home / "conf.d" / "g1.conf").read_text()
    assert "[group:g1]\nprograms=g1-kernel,g1-userspace,g1-ubd_io,g1-sigio\n" in include
    assert f"-m services.kernel --guest-config {cfg.path}\n" in include
    assert f"directory={supervisor.REPO}\n" in include
    assert (supervisor.REPO / "services").is_dir()
    # kernel and userspace never restarted; ubd_io and sigio unless they exit
    # CONFIG; the listener always
    assert include.count("autorestart=false") == 2 and include.count("autorestart=true") == 1
    assert include.count(f"autorestart=unexpected\nexitcodes={CONFIG}\n") == 2


def test_a_second_guest_joins_the_running_supervisord(skas_home, img):
    assert skas("create", "g1", "--disk", str(img), "--", "true").returncode == 0
    pid = supervisor.rpc().supervisor.getPID()
    r = skas("create", "g2", "--disk", str(img), "--", "true")
    assert r.returncode == 0, r.stderr
    assert supervisor.rpc().supervisor.getPID() == pid
    status = ctl_status()
    assert status["g1:g1-kernel"] == status["g2:g2-kernel"] == "STOPPED"
    again = skas("create", "g2", "--disk", str(img), "--", "true")
    assert again.returncode != 0 and "skas destroy g2" in again.stderr


def test_status_and_destroy(skas_home, img):
    assert skas("create", "g1", "--disk", str(img), "--", "true").returncode == 0
    r = skas("status", "g1")
    assert r.returncode == 0, r.stderr
    for p in PROGRAMS:
        assert any(line.split()[:2] == [p, "STOPPED"] for line in r.stdout.splitlines()), r.stdout
    r = skas("destroy", "g1")
    assert r.returncode == 0, r.stderr
    assert not (skas_home / "conf.d" / "g1.conf").exists()
    assert not (guest_config.default_run_root() / "g1").exists()
    assert not any(name.startswith("g1") for name in ctl_status())
    assert skas("status", "g1").returncode != 0


def test_skas_supervisorctl_uses_skas_config(skas_home, img):
    r = skas("supervisorctl", "status")
    assert r.returncode != 0 and "skas create" in r.stderr
    assert skas("create", "g1", "--disk", str(img), "--", "true").returncode == 0
    r = skas("supervisorctl", "status", "g1:*")
    assert "g1:g1-kernel" in r.stdout and "STOPPED" in r.stdout, r.stdout + r.stderr


def test_a_name_supervisord_cannot_take_is_refused_before_anything_is_written(skas_home, img):
    r = skas("create", "a:b", "--disk", str(img), "--", "true")
    assert r.returncode != 0 and "guest name" in r.stderr
    assert not skas_home.exists() and not supervisor.running()
