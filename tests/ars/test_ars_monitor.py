"""ARSMonitor: summary (stability, resonance, recovery), PNG plot, atomic JSON."""

from __future__ import annotations

import json
import math

import pytest

from trainopt.ars import ARSMonitor


def _noisy(t: int) -> float:
    return 1.0 + 0.01 * math.sin(1.7 * t * t)  # deterministic jitter around 1.0


def test_summary_counts_a_recovered_spike_and_resonance():
    monitor = ARSMonitor(window=20, recovery_steps=10)
    for t in range(100):
        loss = 5.0 if t == 50 else _noisy(t)
        guard = 0.5 if 60 <= t < 70 else 1.0  # one dip of Ψ below 1
        monitor.log_step(loss=loss, entropy_guard=guard, surprise_gate=0.2 if t == 51 else 1.0, lr=0.1)
        if t % 25 == 24:
            monitor.log_epoch(t // 25)
    summary = monitor.summary()
    # One spike at step 50, back under its pre-spike level the next step; one rising edge of Ψ < 1.
    assert summary["spikes"] == 1 and summary["recovery_success"] == 1.0
    assert summary["mean_recovery_steps"] == 1
    assert summary["resonance_events"] == 1
    assert summary["epochs"] == 4 and summary["steps"] == 100
    assert summary["final_loss"] == pytest.approx(_noisy(99))
    assert summary["loss_stability"] < 0.02
    assert summary["damped_steps"] == 1 and summary["min_surprise_gate"] == 0.2


def test_summary_reports_an_unrecovered_shift():
    monitor = ARSMonitor(recovery_steps=10)
    for t in range(60):
        monitor.log_step(loss=_noisy(t) + (2.0 if t >= 40 else 0.0))
    spikes = monitor.spikes()
    # The loss jumps at 40 and stays up: one spike, never recovered.
    assert [s["step"] for s in spikes] == [40]
    assert spikes[0]["recovery_steps"] is None
    assert monitor.summary()["recovery_success"] == 0.0


def test_no_spikes_gives_none_recovery_success():
    monitor = ARSMonitor()
    for t in range(40):
        monitor.log_step(loss=1.0 / (t + 1))
    assert monitor.summary()["recovery_success"] is None


def test_plot_writes_a_png(tmp_path):
    monitor = ARSMonitor()
    for t in range(30):
        monitor.log_step(loss=_noisy(t), entropy_guard=1.0, surprise_gate=1.0, chronos_jitter=0.0)
    monitor.log_epoch(0)
    path = monitor.plot(tmp_path / "plots" / "ars.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_to_json_round_trips_and_leaves_no_temp_file(tmp_path):
    monitor = ARSMonitor()
    for t in range(30):
        monitor.log_step(loss=_noisy(t), grad_norm=2.0)
    path = monitor.to_json(tmp_path / "ars.json")
    data = json.loads(path.read_text())
    assert data["steps"][3]["grad_norm"] == 2.0 and data["summary"]["steps"] == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ars.json"]


def test_empty_monitor_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="no steps logged"):
        ARSMonitor().summary()
    with pytest.raises(ValueError, match="window=1"):
        ARSMonitor(window=1)
    with pytest.raises(ValueError, match="key='step'"):
        ARSMonitor().log_step(loss=1.0, step=2.0)
