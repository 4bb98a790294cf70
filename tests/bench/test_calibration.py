"""bench/calibration.py: the chance a claim holds for a user's five fresh seeds, counted right."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "calibration.py"


@pytest.fixture(scope="module")
def calibration(bench_script):
    return bench_script("calibration")


def test_a_calibrated_interval_covers_ninety_percent(calibration):
    # gains ~ N(0.5, 0.1): the mean of 5 lies within 1.645 * 0.1 / sqrt(5) of 0.5 with probability 0.90
    gains = list(np.random.default_rng(0).normal(0.5, 0.1, size=2000))
    half = 1.6449 * 0.1 / math.sqrt(5)
    assert calibration.coverage(gains, (0.5 - half, 0.5 + half), 5, 20_000) == pytest.approx(0.90, abs=0.015)
    assert calibration.coverage(gains, (0.5, 0.5 + half), 5, 20_000) == pytest.approx(0.45, abs=0.015)


def _result(default: dict, challenger: dict | None) -> dict:
    claim = {"challenger": challenger, "new_seeds_interval": [0.0, 0.9], "new_seeds": 5, "claimed": 0.4,
             "confirm_steps": 60}
    return {"config": {"commit": "abc1234"}, "rows": [{"workload": "wine-small", "contenders": {
        "default": {"config": default}, "agent": {"config": default, "claim": claim}}}]}


def test_a_run_scores_each_claim_on_fresh_seeds(tmp_path, calibration, bench_script):
    bench = bench_script("agent_vs_baselines")
    default = bench.default_config(bench.load_workload("wine-small"))
    challenger = {**default, "lr": 0.01}
    (tmp_path / "agent_vs_baselines.json").write_text(json.dumps(_result(default, challenger)))
    command = [sys.executable, str(SCRIPT), "--results", str(tmp_path / "agent_vs_baselines.json"),
               "--seeds", "10", "--draws", "200", "--rule-draws", "50", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "calibration.json").read_text())
    (row,) = result["rows"]
    # ten seeds from the script's own start on (disjoint from the others: below); one gain per seed
    start = calibration.CALIBRATION_SEED_START
    assert result["seeds"] == list(range(start, start + 10)) and len(row["gains"]) == 6 + 4
    # ten seeds split 5 + 5: both interval rules are scored on them
    assert set(row["rules"]) == {"t", "lognormal"} and all(0.0 <= v <= 1.0 for v in row["rules"].values())
    inside = calibration.coverage(row["gains"], (0.0, 0.9), 5, 200)
    assert row["coverage"] == inside and str(tmp_path) not in (tmp_path / "out" / "calibration.md").read_text()


def test_results_without_claims_are_refused_by_name(tmp_path):
    path = tmp_path / "agent_vs_baselines.json"
    path.write_text(json.dumps(_result({"optimizer": "adamw"}, None)))
    done = subprocess.run([sys.executable, str(SCRIPT), "--results", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "holds no agent claim" in done.stderr
    missing = subprocess.run([sys.executable, str(SCRIPT), "--results", str(tmp_path / "none.json")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "run bench/agent_vs_baselines.py first" in missing.stderr


def test_an_older_runs_intervals_are_scored_on_the_same_gains(calibration):
    rows = [{"workload": "w", "run": "agent", "claimed": 0.4, "gains": [0.5] * 10}]
    older = {"config": {"commit": "abc"}, "rows": [{"workload": "w", "contenders": {
        "agent": {"claim": {"claimed": 0.4, "new_seeds_interval": [0.6, 0.7], "new_seeds": 5}},
        "agent-none": {"claim": {"claimed": 0.1, "new_seeds_interval": [0.0, 1.0], "new_seeds": 5}}}}]}
    scored = calibration.compare(rows, older, draws=50)
    # only the claim both runs made is scored: its interval misses every 5-seed mean of 0.5
    assert [r["run"] for r in scored["rows"]] == ["agent"] and scored["mean_coverage"] == 0.0


def test_the_lognormal_rule_holds_its_ninety_percent_where_the_t_rule_falls_short(calibration):
    # a default whose loss scatters log-normally (sd 0.6 in logs) against a steady challenger: the gains
    # 1 - c/b have a long low tail, which a t interval on them misses more often than it says
    rng = np.random.default_rng(0)
    baseline, challenger = list(np.exp(rng.normal(0.0, 0.6, size=400))), [0.3] * 400
    rules = calibration.rules()
    lognormal = calibration.rule_coverage(baseline, challenger, rules["lognormal"], 5, 5, 3000)
    t = calibration.rule_coverage(baseline, challenger, rules["t"], 5, 5, 3000)
    assert lognormal == pytest.approx(0.90, abs=0.015) and t < 0.885


def test_the_benchmarks_draw_from_seed_ranges_nothing_else_uses(calibration, bench_script):
    bench, ratio = bench_script("agent_vs_baselines"), bench_script("tpe_ratio")
    ranges = {
        "evaluation": range(bench.EVAL_SEED_START, bench.EVAL_SEED_START + 100),
        "development": range(bench.DEV_SEED_START, bench.DEV_SEED_START + 100),
        "calibration": range(calibration.CALIBRATION_SEED_START, calibration.CALIBRATION_SEED_START + 1000),
        "tpe_ratio": range(ratio.SEED_START, ratio.SEED_START + 1000),
    }
    from trainopt.agent.schemas import CONFIRM_SEED_START, MAX_CONFIRM_SEEDS

    # the agent's selection seeds (0, 1, 2; the searches use 0) and its held-out confirm seeds
    used = set(range(3)) | set(range(CONFIRM_SEED_START, CONFIRM_SEED_START + MAX_CONFIRM_SEEDS))
    for name, seeds in ranges.items():
        assert used.isdisjoint(seeds), name
        for other, more in ranges.items():
            assert name == other or set(seeds).isdisjoint(more), (name, other)
