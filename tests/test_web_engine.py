"""What the dashboard reads from the real engine: per-device disable/enable, the share log and the
hashrate history ring it feeds from start."""
from __future__ import annotations

import time

import pytest

import miner.engine.engine as engine_mod
from miner.backends.cpu import CPUDevice
from miner.engine import Engine
from miner.errors import MinerError
from test_engine import EngineThread, RecordingPools, make_job, wait_for


def test_disable_stops_one_device_and_enable_restarts_it():
    engine = Engine([CPUDevice("cpu0"), CPUDevice("cpu1")], RecordingPools())
    st0 = engine._by_name["cpu0"]
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("d1"))
        wait_for(lambda: st0.meter.total > 0)
        engine.disable_device("cpu0")
        time.sleep(0.3)                       # the aborted chunk reports
        before, other = st0.meter.total, engine._by_name["cpu1"].meter.total
        time.sleep(0.5)
        assert st0.meter.total == before, "a disabled device still hashes"
        assert engine._by_name["cpu1"].meter.total > other, "the other device stopped too"
        d0 = engine.snapshot().devices[0]
        assert (d0.status, d0.enabled) == ("disabled", False) and not engine.paused
        engine.enable_device("cpu0")
        wait_for(lambda: st0.meter.total > before, timeout=1.0)
        assert engine.snapshot().devices[0].enabled
        with pytest.raises(MinerError, match="no device 'gpu9'"):
            engine.disable_device("gpu9")


def test_share_log_and_history_come_from_the_engine(monkeypatch):
    monkeypatch.setattr(engine_mod, "HISTORY_INTERVAL_S", 0.25)
    engine = Engine([CPUDevice("cpu0")], RecordingPools())
    with EngineThread(engine) as et:
        et.call(engine.on_job, make_job("h1"))
        wait_for(lambda: any(hs > 0 for _, hs in engine.history()), timeout=5)
        engine.pause("test")
        wait_for(lambda: engine.history()[-1][1] == 0.0, timeout=5)
        et.call(engine.pool_event, "share", {"result": "rejected", "reason": "low difficulty", "pool": 0,
                                             "device": "cpu0", "job_id": "h1", "share_difficulty": 0.5,
                                             "target_difficulty": 1.0})
        (rec,) = engine.shares()
        assert (rec.result, rec.reason, rec.target_difficulty, rec.share_difficulty) == (
            "rejected", "low difficulty", 1.0, 0.5)
        assert engine.snapshot().devices[0].rejected == 1        # the same event, counted once
