"""bench/at_horizon.py: a tiny run end to end at equal compute, and the counting and statistics it rests on."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "at_horizon.py"


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("at_horizon")


@pytest.fixture(scope="module")
def contenders(bench_script):
    return bench_script("horizon_contenders")


@pytest.fixture(scope="module")
def stats(bench_script):
    return bench_script("horizon_stats")


def test_quick_run_scores_every_choice_at_h_and_no_contender_spends_beyond_its_budget(tmp_path, bench):
    # wine-small at H = 200 steps, a budget of 4 H, the searches and the agent, two development seeds
    out = tmp_path / "results"
    command = [sys.executable, str(SCRIPT), "--quick", "--horizon", "200", "--budgets", "4", "--eval-seeds", "2",
               "--contenders", "random,tpe,tpe-hyperband,schedulefree,agent", "--out", str(out),
               "--cache", str(tmp_path / "cache")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "at_horizon_quick.json").read_text())
    (row,) = result["rows"]
    contenders = row["contenders"]
    assert set(contenders) == {"default", "random", "tpe", "tpe-hyperband", "schedulefree", "agent"}
    # every choice scored on the test split at H on the two development seeds, paired with the default
    assert row["split"] == "test" and row["eval_seeds"] == [bench.DEV_SEED_START, bench.DEV_SEED_START + 1]
    assert all(len(c["losses"]) == 2 for c in contenders.values())
    assert contenders["agent"]["label"] == "agent (offline rules)" and row["headline"] is not None
    # equal compute: each search spent its 4 H (at most one validation interval over), the agent its budget
    # plus its calibration runs; nothing spent beyond what it was allowed
    assert all(c["within_budget"] is not False for c in contenders.values()), {
        k: (c["spent_steps"], c["allowed_steps"]) for k, c in contenders.items()}
    assert contenders["tpe"]["spent_steps"] == pytest.approx(800, abs=5)
    text = (out / "at_horizon_quick.md").read_text()
    assert text.count("**holds**") + text.count("**falls short**") == len(result["targets"]) >= 4
    # nothing of this machine's paths in what would be committed
    assert str(tmp_path) not in text and str(ROOT) not in json.dumps(result)


def test_the_counter_counts_training_examples_at_the_trials_own_batch(contenders):
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    workload, _ = contenders.load_workload("wine-small")
    count = contenders.counter()
    count.wrap(workload)
    with count.counting() as spent:
        run_trial(workload, TrialConfig(batch_size=32, steps=10, eval_every=5), device="cpu")
    # 10 optimizer steps of 32 examples; the two validations add nothing
    assert (spent["optimizer_steps"], spent["examples"]) == (10, 320)
    with count.counting() as idle:
        pass
    assert idle["examples"] == 0


def test_what_each_contender_may_spend(bench):
    from trainopt.agent.budget import CALIBRATION_STEPS

    # a budget of 4 H (H = 300): the searches one validation interval (H/10) over, the agent also its calibration
    assert bench.allowed_steps("tpe", 1200, 300) == 1230
    assert bench.allowed_steps("agent-none", 1200, 300) == 1230 + sum(CALIBRATION_STEPS)
    assert bench.allowed_steps("lr-finder", 1200, 300) is None  # no budget: its cost is stated beside it


def test_below_one_h_random_and_tpe_keep_the_default_and_hyperband_runs_what_fits(bench):
    workload, _ = bench.load_workload("wine-small")
    names = ["default", "random", "tpe", "tpe-hyperband", "agent"]
    tasks = bench.choice_tasks("wine-small", 200, [0.5, 4.0], names)
    # at 0.5 H no task for random and TPE; TPE + Hyperband and the agent run at both budgets
    assert sorted((t["contender"], t["budget"]) for t in tasks) == [
        ("agent", 0.5), ("agent", 4.0), ("random", 4.0), ("tpe", 4.0), ("tpe-hyperband", 0.5), ("tpe-hyperband", 4.0)]
    fixed = bench.fixed_choices(workload, 200, [0.5, 4.0], names)
    assert fixed[("tpe", 0.5)]["config"] == bench.hc.default_config(workload, 200) and "kept the default" in fixed[
        ("tpe", 0.5)]["note"]
    assert ("tpe", 4.0) not in fixed


def test_hyperband_without_a_run_of_h_picks_the_best_at_the_furthest_shared_rung(contenders):
    import optuna

    def trial(steps_and_losses: dict, lr: float):
        return optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={}, distributions={},
                                         intermediate_values=steps_and_losses, user_attrs={"config": {"lr": lr}})

    study = optuna.create_study()
    for t in (trial({10: 0.5, 20: 0.45, 30: 0.44}, 1e-1), trial({10: 0.9, 20: 0.6}, 1e-2),
              trial({10: 0.8, 19: 0.4}, 3e-3), trial({10: 0.2}, 1e-3)):
        study.add_trial(t)
    # two validations is the furthest point that more than one trial reached (19 and 20 steps: batches differ);
    # the lowest loss there, not the trial that ran longest nor the best after one validation
    assert contenders.shared_rung_pick(study) == {"lr": 3e-3}
    lone = optuna.create_study()
    lone.add_trial(trial({10: 0.9}, 1e-2))
    assert contenders.shared_rung_pick(lone) == {"lr": 1e-2}


def test_a_configuration_is_trained_at_h_examples_at_its_own_batch(bench):
    workload, _ = bench.load_workload("wine-small")  # default batch 16
    config = {**bench.hc.default_config(workload, 200), "batch_size": 64, "warmup_steps": 20}
    at_h = bench.hc.at_horizon(config, 200, 16, seed=7)
    # 200 steps x 16 examples = 50 steps at batch 64; warmup keeps its tenth; one validation, at the end
    assert (at_h["steps"], at_h["warmup_steps"], at_h["seed"], at_h["eval_every"]) == (50, 5, 7, 50)
    assert bench.eval_ident(config, 200, 16) == bench.eval_ident({**config, "steps": 300, "warmup_steps": 30}, 200, 16)


def test_agent_cache_key_follows_the_agent_code_and_baselines_do_not(bench, tmp_path):
    for folder in bench.AGENT_CODE:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text("x = 1\n")
    agent, tpe = {"kind": "choose", "contender": "agent"}, {"kind": "choose", "contender": "tpe"}
    before = bench.code_version(bench.AGENT_CODE, str(tmp_path)), bench.code_version(bench.BASELINE_CODE, str(tmp_path))
    (tmp_path / "agent" / "x.py").write_text("x = 2\n")  # a planner change, then a new process
    bench.code_version.cache_clear()
    after = bench.code_version(bench.AGENT_CODE, str(tmp_path)), bench.code_version(bench.BASELINE_CODE, str(tmp_path))
    assert after[0] != before[0] and after[1] == before[1]
    # the key holds the task, the fingerprint, the code, this benchmark's code and the versions
    assert bench.task_key(agent, "w") != bench.task_key(tpe, "w") != bench.task_key(tpe, "v")


def test_an_evaluation_seed_the_agent_chose_with_is_refused(bench):
    claim = {"selection_seeds": [0, 1, 2], "confirm_seeds": [1000, 1001]}
    with pytest.raises(RuntimeError, match="1001"):
        bench.check_held_out("w", [claim], [1001, 200_000])


def test_the_seed_ranges_are_disjoint_from_each_other_and_from_every_selection_seed(bench):
    from trainopt.agent.schemas import CONFIRM_SEED_START, MAX_CONFIRM_SEEDS

    ranges = {"evaluation": range(bench.EVAL_SEED_START, bench.EVAL_SEED_START + 1000),
              "development": range(bench.DEV_SEED_START, bench.DEV_SEED_START + 1000),
              "calibration": range(bench.CALIBRATION_SEED_START, bench.CALIBRATION_SEED_START + 1000)}
    # the agent's selection seeds (0, 1, 2; the searches use 0) and its held-out confirm seeds
    used = set(range(3)) | set(range(CONFIRM_SEED_START, CONFIRM_SEED_START + MAX_CONFIRM_SEEDS))
    for name, seeds in ranges.items():
        assert used.isdisjoint(seeds), name
        assert all(name == other or set(seeds).isdisjoint(more) for other, more in ranges.items()), name


def test_every_workload_states_its_horizon(bench):
    # H: each workload's own steps at its default batch, as the agent reads it
    for name in bench.MAIN + bench.HELD_OUT:
        workload, _ = bench.load_workload(name)
        assert "steps" in workload.default_config, name
        assert bench.hc.horizon_steps(workload) == workload.default_config["steps"]


def test_ratio_of_means_with_its_paired_bootstrap_interval(stats):
    rng = np.random.default_rng(0)
    other = list(rng.uniform(1.0, 2.0, size=200))
    # the contender 10% lower on every seed: the ratio is 0.9 and its interval collapses onto it
    r = stats.ratio_interval([0.9 * x for x in other], other)
    assert r["ratio"] == pytest.approx(0.9) and r["interval"] == pytest.approx([0.9, 0.9]) and r["verdict"] == "better"
    noisy = stats.ratio_interval([x * rng.uniform(0.8, 1.2) for x in other], other)
    assert noisy["interval"][0] < 1 < noisy["interval"][1] and noisy["verdict"] == "n.s."


def test_a_diverged_run_makes_its_side_infinite(stats):
    assert stats.ratio_interval([math.inf, 1.0], [1.0, 1.0])["verdict"] == "worse"
    assert stats.ratio_interval([1.0, 1.0], [1.0, math.inf])["verdict"] == "better"
    assert stats.mean_loss([1.0, math.inf]) == math.inf


@pytest.mark.parametrize(("baseline", "loss", "expected"), [
    (2.0, 1.0, 0.5),
    (1.0, math.inf, -1.0),  # a diverged contender counts as the worst case
    (math.inf, 1.0, 1.0),  # a diverged default: any finite run is the best case
    (math.inf, math.inf, 0.0),
    (1.0, 5.0, -1.0),  # clipped: five times the default's loss is no worse than diverging
])
def test_relative_reduction_handles_divergence(stats, baseline, loss, expected):
    assert stats.relative_reduction(baseline, loss) == expected


def test_a_calibrated_interval_covers_ninety_percent_of_five_seed_means(stats):
    # gains ~ N(0.5, 0.1): the mean of 5 lies within 1.645 * 0.1 / sqrt(5) of 0.5 with probability 0.90
    gains = list(np.random.default_rng(0).normal(0.5, 0.1, size=2000))
    half = 1.6449 * 0.1 / math.sqrt(5)
    assert stats.coverage(gains, (0.5 - half, 0.5 + half), 5) == pytest.approx(0.90, abs=0.015)
    assert stats.coverage(gains, (0.5, 0.5 + half), 5) == pytest.approx(0.45, abs=0.015)
