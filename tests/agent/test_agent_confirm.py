"""Confirmation on held-out seeds: no seed both chooses and confirms, the decision follows the interval,
and the budget is used or the reason stated. One real step-budgeted run, shared by the tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.agent.budget import RunPolicy
from trainopt.agent.phases.confirm import _reason
from trainopt.agent.schemas import CONFIRM_SEED_START, MIN_CONFIRM_SEEDS
from trainopt.agent.stats import fresh_mean_gain, paired

BUDGET = 1200


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("confirm")


@pytest.fixture(scope="module")
def response(store_dir):
    request = OptimizationRequest(workload="digits-mlp", num_candidates=3, constraints={"step_budget": BUDGET})
    return TrainingOptimizationAgent(out_dir=store_dir).optimize_training(request)


def _seeds(response, *purposes: str) -> set[int]:
    return {t["config"]["seed"] for t in response.evidence["trials"] if t["purpose"].startswith(purposes)}


def test_confirm_seeds_are_held_out_from_every_selection(response):
    selection = _seeds(response, "race", "finals", "calibration")
    confirm = _seeds(response, "confirm")
    # the race and the finals saw only the selection seeds; the confirm only seeds none of them used
    assert selection <= {0, 1, 2}
    assert confirm == set(response.gain.seeds) and not confirm & selection
    assert min(confirm) >= CONFIRM_SEED_START and len(confirm) >= MIN_CONFIRM_SEEDS
    search = response.evidence["tools"].get("hyperparameter_suggester")
    if search is not None:
        assert {t["config"]["seed"] for t in search["trials"]} <= {0}


def test_the_decision_follows_the_interval(response):
    g = response.gain
    low, high = g.objective_interval
    # adopted exactly when the whole interval lies above min_gain on 5 seeds or more, and the reason quotes it
    assert g.adopted == (low > 0 and len(g.seeds) >= 5) == g.significant
    assert (response.recommended == response.challenger) == g.adopted
    assert f"{low:+.1%}" in g.reason and f"{high:+.1%}" in g.reason
    assert g.interval[0] <= g.relative_loss_reduction <= g.interval[1]
    # a user's 5 fresh seeds: log-normal in the loss ratio, never +100%; the run's spread only widens it
    own = fresh_mean_gain(g.baseline_val_losses, g.challenger_val_losses, 5)
    assert g.new_seeds_interval[0] <= own[0] and own[1] <= g.new_seeds_interval[1] < 1.0
    assert g.new_seeds_interval[1] - g.new_seeds_interval[0] > g.interval[1] - g.interval[0]
    assert g.wins + g.losses <= len(g.seeds) == len(g.baseline_val_losses) == len(g.challenger_val_losses)


def test_the_budget_is_used_or_the_reason_is_given(response):
    measured = sum(t["config"]["steps"] * t["config"]["batch_size"] / 64 for t in response.evidence["trials"]
                   if t["purpose"] != "calibration")  # in steps at the baseline's batch
    search = response.evidence["tools"].get("hyperparameter_suggester")
    measured += search["steps_spent_this_run"] if search else 0
    probes = 0.25 * BUDGET  # charged as planned: the probe tools run their own steps
    used = (measured + probes) / BUDGET
    stopped = [n for n in response.notes if n.startswith("confirm stopped")]
    # most of the budget went into measurements, and why the confirm stopped adding seeds is said
    assert used >= 0.8, (used, response.notes)
    assert len(stopped) == 1


def test_a_gain_below_min_gain_recommends_the_baseline(store_dir, response):
    # the same run asked for a 99% gain: everything is read back from the store, the decision flips
    request = OptimizationRequest(workload="digits-mlp", num_candidates=3, min_gain=0.99,
                                  constraints={"step_budget": BUDGET})
    strict = TrainingOptimizationAgent(out_dir=store_dir).optimize_training(request)
    assert not strict.gain.adopted and strict.recommended == strict.baseline
    assert "baseline is recommended" in strict.gain.reason
    assert strict.challenger == response.challenger


def test_selection_and_confirm_seeds_must_not_overlap():
    with pytest.raises(ValueError, match=r"held out .* both hold \[1\]"):
        OptimizationRequest(seeds=[0, 1], confirm_seeds=[1, 5])


@pytest.mark.parametrize(("confirm_seeds", "adopted"), [(None, False), ([7, 8, 9], True)])
def test_a_gain_is_claimed_on_five_held_out_seeds_unless_the_request_named_them(confirm_seeds, adopted):
    # three seeds, all clearly better: the t interval lies above zero, but rests on 2 degrees of freedom
    state = SimpleNamespace(request=OptimizationRequest(confirm_seeds=confirm_seeds), policy=RunPolicy())
    reason = _reason(state, paired([0.10, 0.12, 0.11]), has_challenger=True, claim="measured at H")
    assert reason.startswith("adopted") == adopted
    if not adopted:
        assert "only 3 held-out seeds" in reason and "baseline is recommended" in reason


def test_a_clear_gain_still_gets_more_seeds_while_the_budget_lasts():
    from trainopt.agent.phases.confirm import _stop_reason

    policy = RunPolicy()
    state = SimpleNamespace(
        policy=policy, request=OptimizationRequest(), challenger=object(),
        budget=SimpleNamespace(confirm_extend_by=policy.extend_by), steps_left=lambda: 10_000,
        decide=lambda name, compute: compute(), time_note=lambda: "")
    # however clear the gain already is, a sixth pair of 100-step runs is added while the budget lasts
    assert _stop_reason(state, 5, [SimpleNamespace(steps=100)]) is None


def _spread_state():
    """A run whose baseline scattered widely on the race's seeds and agreed on the five held-out seeds."""
    from trainopt.tools.trial_config import TrialConfig

    configs = {"base": TrialConfig(lr=0.3, steps=120), "chal": TrialConfig(lr=0.02, steps=120, schedule="cosine")}
    runs = {("base", 40): [0.40, 0.12, 0.38], ("chal", 40): [0.10, 0.11, 0.09],
            ("base", 120): [0.21, 0.24, 0.19, 0.34, 0.24], ("chal", 120): [0.09, 0.11, 0.09, 0.11, 0.10]}
    results = {}
    for (name, steps), losses in runs.items():
        for i, loss in enumerate(losses):
            c = configs[name].model_copy(update={"steps": steps, "seed": i if steps == 40 else CONFIRM_SEED_START + i})
            results[c.key()] = SimpleNamespace(config=c, final_val_loss=loss)
    state = SimpleNamespace(challenger=object(), results=results, notes=[])
    gain = SimpleNamespace(baseline_val_losses=runs["base", 120], challenger_val_losses=runs["chal", 120],
                           seeds=list(range(CONFIRM_SEED_START, CONFIRM_SEED_START + 5)))
    return state, configs["base"], configs["chal"], gain


def test_the_interval_keeps_the_spread_the_race_saw():
    import statistics

    from trainopt.agent.phases.confirm import _spread_note, run_spread
    from trainopt.agent.stats import relative_gains

    state, base, chal, gain = _spread_state()
    losses = gain.baseline_val_losses, gain.challenger_val_losses
    spread = run_spread(state, base, chal, *losses, gain.seeds)
    floor = spread.floor
    own = statistics.stdev(relative_gains(*losses))
    # the race's baseline losses 0.12-0.40 say more about seed noise than five agreeing held-out seeds
    assert floor > 2 * own and spread.own == pytest.approx(own)
    note = _spread_note(spread, len(gain.seeds))
    assert f"s {floor:.3f}, where the held-out seeds alone give {own:.3f}" in note
    # held-out seeds only (as if the race had not run these two): nothing to pool, the seeds' own spread
    assert run_spread(state, base, chal, *losses, [0, 1, 2, *gain.seeds]).floor == pytest.approx(own)
    state.challenger = None  # no challenger: no floor
    assert run_spread(state, base, chal, *losses, gain.seeds).floor == 0.0
