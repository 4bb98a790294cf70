"""bench/agent_vs_baselines.py: a tiny run end to end, and the pieces its figures rest on."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "agent_vs_baselines.py"


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("agent_vs_baselines")


def test_quick_run_writes_relative_results(tmp_path, bench):
    # one tiny workload, every contender but the two ablation variants, two evaluation seeds
    out = tmp_path / "results"
    command = [sys.executable, str(SCRIPT), "--quick", "--workloads", "wine-small", "--budget", "100",
               "--eval-seeds", "2", "--out", str(out), "--cache", str(tmp_path / "cache"),
               "--contenders", "random", "tpe-4x", "lr-finder", "schedulefree"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "agent_vs_baselines_quick.json").read_text())
    (row,) = result["rows"]
    # every contender asked for was chosen and evaluated on the two evaluation seeds, paired with the default
    assert set(row["contenders"]) == {"default", "random", "tpe", "tpe-4x", "lr-finder", "schedulefree", "agent"}
    assert all(len(c["val_losses"]) == 2 for c in row["contenders"].values())
    assert row["eval_seeds"] == [bench.EVAL_SEED_START, bench.EVAL_SEED_START + 1]
    # the agent's claim sits beside what the evaluation seeds gave, and every target says holds or falls short
    assert row["contenders"]["agent"]["claim"]["confirm_seeds"]
    text = (out / "agent_vs_baselines_quick.md").read_text()
    assert text.count("**holds**") + text.count("**falls short**") == len(result["targets"]) >= 4
    # nothing of this machine's paths in what is committed
    assert str(tmp_path) not in text and str(ROOT) not in json.dumps(result["rows"])


def test_paired_gain_is_the_paired_t_interval(bench):
    baseline, losses = [1.0, 2.0, 1.0, 4.0], [0.9, 1.7, 1.05, 3.0]
    gain = bench.paired_gain(baseline, losses)
    r = [0.1, 0.15, -0.05, 0.25]
    expected = stats.t.interval(0.9, len(r) - 1, loc=sum(r) / 4, scale=stats.sem(r))
    # mean of (b - c) / b with scipy's 90% t interval; 3 wins, 1 loss
    assert gain["mean"] == pytest.approx(0.1125)
    assert gain["interval"] == pytest.approx(list(expected))
    assert (gain["wins"], gain["losses"]) == (3, 1)


@pytest.mark.parametrize(("losses", "verdict"), [
    ([0.5, 0.55, 0.45], "better"),
    ([1.5, 1.4, 1.6], "worse"),
    ([0.5, 1.5, 1.0], "no significant difference"),
])
def test_verdict_follows_the_interval(bench, losses, verdict):
    # an interval above zero is better, below is worse, one that straddles zero is no significant difference
    assert bench.paired_gain([1.0, 1.0, 1.0], losses)["verdict"] == verdict


@pytest.mark.parametrize(("baseline", "loss", "expected"), [
    (2.0, 1.0, 0.5),
    (1.0, math.inf, -1.0),  # a diverged contender counts as the worst case
    (math.inf, 1.0, 1.0),  # a diverged default: any finite run is the best case
    (math.inf, math.inf, 0.0),
    (1.0, 5.0, -1.0),  # clipped: five times the default's loss is no worse than diverging
])
def test_relative_reduction_handles_divergence(bench, baseline, loss, expected):
    assert bench.relative_reduction(baseline, loss) == expected


def test_agent_cache_key_follows_the_agent_code_and_baselines_do_not(bench, monkeypatch, tmp_path):
    for folder in ("agent", "tools", "ars", "prompts"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text("x = 1\n")
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "fingerprint", lambda workload: "w")
    agent, tpe = {"kind": "choose", "contender": "agent"}, {"kind": "choose", "contender": "tpe"}
    before = bench.task_key(agent, None), bench.task_key(tpe, None)
    (tmp_path / "agent" / "x.py").write_text("x = 2\n")  # a planner change, then a new run (a new process)
    bench._code_version.cache_clear()
    # the agent reruns, the baselines are read back
    assert bench.task_key(agent, None) != before[0]
    assert bench.task_key(tpe, None) == before[1]


def test_an_evaluation_seed_the_agent_confirmed_on_is_refused(bench):
    claim = {"selection_seeds": [0, 1, 2], "confirm_seeds": [1000, 1001, 1002]}
    with pytest.raises(RuntimeError, match="1001"):
        bench.check_held_out("w", {"agent": {"claim": claim}}, [1001, 10_000])


def test_evaluation_length_waits_for_the_agent_and_falls_back_when_it_failed(bench):
    variant_done = {"choices": {"agent-random": {"eval_steps": 70}}, "failed": set()}
    # the planner agent is still running: no length yet; once it failed, the variant's confirm length is used
    assert bench.evaluation_length(variant_done) is None
    assert bench.evaluation_length({**variant_done, "failed": {"agent"}}) == (70, "agent-random")
