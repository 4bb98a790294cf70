"""bench/tpe_ratio.py: agent / TPE on many fresh seeds, with an interval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "tpe_ratio.py"


@pytest.fixture(scope="module")
def tpe_ratio(bench_script):
    return bench_script("tpe_ratio")


def test_the_ratio_of_means_and_its_interval(tpe_ratio):
    rng = np.random.default_rng(0)
    rival = list(rng.uniform(1.0, 2.0, size=200))
    agent = [0.9 * x for x in rival]
    ratio, low, high = tpe_ratio.ratio_interval(agent, rival)
    # paired seeds, the agent 10% lower on every one: the ratio is 0.9 and its interval collapses onto it
    assert ratio == pytest.approx(0.9) and low == pytest.approx(0.9) and high == pytest.approx(0.9)
    noisy = [x * rng.uniform(0.7, 1.1) for x in rival]
    ratio, low, high = tpe_ratio.ratio_interval(noisy, rival)
    assert low < ratio < high < 1.0


def test_a_run_trains_each_choice_on_fresh_seeds(tmp_path, bench_script, tpe_ratio):
    bench = bench_script("agent_vs_baselines")
    default = bench.default_config(bench.load_workload("wine-small"))
    rows = [{"workload": "wine-small", "eval_steps": 20, "contenders": {
        "agent": {"config": default, "val_loss": 1.0}, "tpe": {"config": {**default, "lr": 0.01}, "val_loss": 0.8}}}]
    (tmp_path / "agent_vs_baselines.json").write_text(json.dumps({"config": {"commit": "abc1234"}, "rows": rows}))
    command = [sys.executable, str(SCRIPT), "--results", str(tmp_path / "agent_vs_baselines.json"), "--seeds", "3",
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "tpe_ratio.json").read_text())
    (row,) = result["rows"]
    # three seeds from the script's own start on; the ratio of the two means, and the five-seed figure it is set beside
    start = tpe_ratio.SEED_START
    assert result["seeds"] == [start, start + 1, start + 2] and len(row["agent_losses"]) == 3
    tpe = row["tpe"]
    assert tpe["ratio"] == pytest.approx(np.mean(row["agent_losses"]) / np.mean(tpe["losses"]))
    assert tpe["interval"][0] <= tpe["ratio"] <= tpe["interval"][1] and tpe["five_seed_ratio"] == 1.25
    assert "tpe-4x" not in row and str(tmp_path) not in (tmp_path / "out" / "tpe_ratio.md").read_text()


def test_missing_results_are_refused_by_name(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--results", str(tmp_path / "none.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "run bench/agent_vs_baselines.py first" in done.stderr
