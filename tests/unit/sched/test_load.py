"""The guest's load averages and CPU masks, as Linux computes and prints them."""
from __future__ import annotations

import math

from common.config import GuestConfig, load
from services.kernel.sched import cpus
from services.kernel.sched import load as loadmod


def test_load_average_decays_toward_the_run_queue(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(loadmod.time, "monotonic", lambda: now[0])
    avg = loadmod.LoadAverage()
    now[0] += 1.0
    assert avg.sample(4) == [0.0, 0.0, 0.0]          # under LOAD_SAMPLE: not moved
    now[0] += 59.0
    one, five, fifteen = avg.sample(2)
    assert math.isclose(one, 2 * (1 - math.exp(-1)))
    assert math.isclose(five, 2 * (1 - math.exp(-60 / 300)))
    assert math.isclose(fifteen, 2 * (1 - math.exp(-60 / 900)))
    now[0] += 3600.0
    assert [round(a, 2) for a in avg.sample(0)][0] == 0.0


def test_cpu_masks_as_linux_prints_them():
    assert (cpus.cpu_mask(1), cpus.cpu_range(1)) == ("1", "0")
    assert (cpus.cpu_mask(4), cpus.cpu_range(4)) == ("f", "0-3")
    assert cpus.cpu_mask(36) == "f,ffffffff"


def test_mem_setting_round_trips(tmp_path):
    cfg = GuestConfig(name="g", run_dir=tmp_path, disks={}, init=["/bin/sh"], mem=96 << 20)
    assert load(cfg.write()).mem == 96 << 20
