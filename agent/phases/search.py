"""Phase 5, search: Optuna TPE with pruning (the HyperparameterSuggester), warm-started with the race's
best candidates (when nothing was raced: the baseline and the baseline at the range test's suggested LR,
so a diverging default does not leave the search without a finite start); its best configuration joins
the race.

The search scores its trials on the first selection seed at the candidates' length; its winner then
races like any candidate, so one lucky search trial cannot reach the confirm runs on its own.
"""

from __future__ import annotations

from trainopt.agent.horizon import at_examples
from trainopt.agent.phases.race import race, ranking
from trainopt.agent.phases.state import RunState
from trainopt.agent.proposals import Proposal
from trainopt.tools.trial_config import TrialConfig

SEARCH_SEEDS = 2  # best raced candidates enqueued into the Optuna search
SEARCH_SETUP_S = 2.0  # the search's Optuna study in the trial store (SQLite): measured 1-3 s
SEARCHED = {"optimizer", "lr", "weight_decay", "batch_size", "schedule"}


def search(state: RunState, extra_trials: int = 0) -> None:
    d, b = state.digest, state.budget
    warm = [o.config for o in ranking(state)[:SEARCH_SEEDS]] or _probed_start(state)
    batches = search_batches(state)
    n_trials = len(warm) + b.search_trials + extra_trials
    out = state.tool_or_note(
        "hyperparameter_suggester",
        "search",
        "the seeded search gave no result",
        candidates=[c.model_dump(include=SEARCHED) for c in warm],
        lr_range=d.lr_safe_range,
        weight_decay_range=(0.0, 0.1),
        batch_sizes=batches,
        optimizers=list(d.optimizer_options),
        schedules=["constant", "cosine", "one_cycle"],
        n_trials=n_trials,
        max_steps=b.candidate_steps,
        baseline_batch=state.baseline_batch,
        seed=state.request.seeds[0],
    )
    if out is None:
        return
    state.steps_spent += out.steps_spent_this_run
    best = {k: v for k, v in out.best_config.items() if k not in ("seed", "eval_every")}
    config = at_examples(TrialConfig(**{**best, "seed": state.request.seeds[0]}), b.candidate_steps,
                         state.baseline_batch, evals=None)
    searched = lambda c: c.model_dump(include=SEARCHED)  # noqa: E731 (the search does not vary the warmup)
    if any(searched(o.config) == searched(config) for o in state.outcomes):
        state.notes.append(f"the seeded search's best (lr {config.lr:.3g}, {config.schedule}, batch "
                           f"{config.batch_size}) is a configuration the race already measured")
        return
    race(state, [Proposal(config, "search", -1)])


def _probed_start(state: RunState) -> list[TrialConfig]:
    """The baseline and, when it differs, the baseline at the range test's suggested LR (inside the safe range)."""
    base = state.baseline_config(state.budget.candidate_steps)
    low, high = state.digest.lr_safe_range
    lr = float(f"{min(max(state.digest.lr_at_batch(base.batch_size), low), high):.3g}")
    return [base] if lr == base.lr else [base, base.model_copy(update={"lr": lr})]


def search_batches(state: RunState) -> list[int]:
    """The batch probe's pick, its half and its double, inside the probed range (every trial trains the same
    examples: a larger batch trains fewer steps)."""
    d = state.digest
    low, high = d.batch_range
    picks = {d.batch_recommended // 2, d.batch_recommended, d.batch_recommended * 2}
    return sorted({min(max(x, low), high) for x in picks})
