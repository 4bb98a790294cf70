"""HyperparameterSuggester: multi-fidelity search with Optuna, seeded with the agent's candidates.

TPE (seeded) proposes lr (log), weight decay, batch size, optimizer (ARS and meta-optimizers
included) and schedule; every trial reports its validation loss at each validation point, and
a successive-halving or Hyperband pruner (Li et al. 2018) stops the weak ones early. The
ConvergencePredictor prunes too: from halfway on, a trial whose fitted curve cannot come within
``CONVERGENCE_MARGIN`` of the best finished value, or that diverges, is stopped.

Warm-start candidates (the agent's proposals) are enqueued first (``study.enqueue_trial``) and are
never pruned (only a divergence or the step budget stops them), so the pruner's rungs have a finished
reference and the search always returns a configuration that trained its full length. The
study lives in Optuna storage (the given URL, else the TrialStore's, else memory), so a rerun
with the same arguments resumes: finished trials count, are never run again, and the budget
counts every training step they spent. With a queue-backed store (``--workers``) TPE still samples
here and the trials go to the workers in batches, pruned at rung cutoffs (tools/queue_search.py).

    >>> from trainopt.tools import get_tool
    >>> hpo = get_tool("hyperparameter_suggester")(workload="digits-mlp")   # doctest: +SKIP
    >>> out = hpo(n_trials=8, max_steps=100, candidates=[{"lr": 3e-3}])      # doctest: +SKIP
    >>> out.best_config["lr"], out.steps_spent                               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy
from pydantic import BaseModel, Field, model_validator

from trainopt.errors import HyperparameterError, OptimizationError
from trainopt.tools.base import Tool
from trainopt.tools.convergence import early_stopping_verdict
from trainopt.tools.queue_search import run_batches
from trainopt.tools.trial_config import OptimizerName, ScheduleName, TrialConfig, _meta_optimizer_names
from trainopt.tools.trials import run_trial

SEARCHED = ("lr", "weight_decay", "batch_size", "optimizer", "schedule", "meta_optimizer")
NO_META = "none"  # the categorical value for "no meta-optimizer"
CONVERGENCE_MARGIN = 1.25  # prune when the optimistic end of the forecast is above 1.25 x best
CONVERGENCE_FROM = 0.5  # ... and only from this fraction of max_steps on


class HPOInput(BaseModel):
    """The search space, the budget and the warm start."""

    lr_range: tuple[float, float] = Field((1e-4, 1e-2), description="peak LR range, searched log-uniform")
    weight_decay_range: tuple[float, float] = Field(
        (0.0, 0.1), description="weight decay range (log-uniform if the low end is > 0, else uniform)")
    batch_sizes: list[int] = Field([32, 64, 128], min_length=1, description="batch sizes to try")
    optimizers: list[OptimizerName] = Field(["adamw", "sgd", "ars"], min_length=1)
    meta_optimizers: list[str | None] = Field(
        [None], min_length=1, description="meta-optimizer names (None: plain optimizer); need a constant LR")
    schedules: list[ScheduleName] = Field(["constant", "cosine"], min_length=1)
    n_trials: int = Field(12, gt=0, description="trials to finish (pruned ones count), resumed ones included")
    total_steps: int | None = Field(
        None, gt=0, description="training-step budget over all trials (stops launching; may overshoot "
        "by under one validation interval)")
    max_steps: int = Field(300, gt=0, description="steps of a trial that is never pruned (full fidelity)")
    baseline_batch: int | None = Field(
        None, gt=0, description="count compute in training examples: a trial at batch B trains max_steps x "
        "baseline_batch / B steps (equal examples, not equal steps), and every step figure (reports, the "
        "pruner's resources, total_steps, steps spent) is in steps at baseline_batch. None: plain steps")
    min_steps: int | None = Field(None, gt=0, description="pruner min resource (default: max_steps // 9)")
    pruner: Literal["successive_halving", "hyperband", "none"] = "successive_halving"
    convergence_pruning: bool = Field(True, description="also prune on the ConvergencePredictor's forecast")
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, description="TrialConfig-like dicts to try first (warm start)")
    base_config: dict[str, Any] = Field(
        default_factory=dict, description="TrialConfig fields fixed for every trial, e.g. grad_clip")
    seed: int = Field(0, ge=0, description="seeds the TPE sampler and every trial's model and data")
    storage: str | None = Field(None, description="Optuna storage URL (default: TrialStore's, else memory)")
    study_name: str | None = Field(None, description="default: derived from workload, space and budget")

    @model_validator(mode="after")
    def _sane(self) -> HPOInput:
        low, high = self.lr_range
        if not 0 < low <= high:
            raise ValueError(f"lr_range must satisfy 0 < low <= high but got {self.lr_range}")
        wd_low, wd_high = self.weight_decay_range
        if not 0 <= wd_low <= wd_high:
            raise ValueError(
                f"weight_decay_range must satisfy 0 <= low <= high but got {self.weight_decay_range}")
        if any(b <= 0 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be > 0 but got {self.batch_sizes}")
        known = _meta_optimizer_names()
        unknown = [m for m in self.meta_optimizers if m is not None and m not in known]
        if unknown:
            raise ValueError(f"unknown meta_optimizers {unknown}; known: {known}")
        if self.min_steps is not None and self.min_steps > self.max_steps:
            raise ValueError(f"min_steps={self.min_steps} must be <= max_steps={self.max_steps}")
        bad = set(self.base_config) & set(SEARCHED)
        if bad or {"steps", "seed"} & set(self.base_config):
            raise ValueError(f"base_config must not fix searched fields, steps or seed but got {sorted(bad)}")
        return self


class HPOTrial(BaseModel):
    """One trial of the study, as evidence."""

    number: int
    source: Literal["candidate", "sampler"]
    config: dict[str, Any]
    value: float | None = Field(description="final validation loss (None: pruned or failed)")
    state: str
    pruned_by: str | None = Field(None, description="pruner, convergence forecast, divergence or budget")
    steps: int = Field(description="training steps this trial ran")
    last_val_loss: float | None = None


class HPOOutput(BaseModel):
    best_config: dict[str, Any] = Field(description="TrialConfig of the best finished trial")
    best_value: float = Field(description="its final validation loss")
    best_trial: int
    trials: list[HPOTrial]
    steps_spent: int = Field(description="training steps of every trial in the study")
    steps_spent_this_run: int
    trials_resumed: int = Field(description="finished trials read back from storage, not run again")
    study_name: str
    storage: str
    sampler: str
    pruner: str
    space_extended: dict[str, list[Any]] = Field(
        default_factory=dict, description="categorical values added to the space by candidates")


class HyperparameterSuggester(Tool):
    """Optuna TPE + successive halving over lr, weight decay, batch, optimizer and schedule."""

    name = "hyperparameter_suggester"
    description = (
        "Search learning rate (log), weight decay, batch size, optimizer (incl. ARS and meta-optimizers) "
        "and LR schedule with Optuna TPE and a successive-halving/Hyperband pruner, warm-started with "
        "candidate configs; resumes from its study storage. Returns the best config and every trial."
    )
    Input = HPOInput
    Output = HPOOutput

    def run(self, input: HPOInput) -> HPOOutput:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, extended = _space_with_candidates(input)
        storage = input.storage or (self.store.storage if self.store is not None else None)
        name = input.study_name or _study_name(self.workload.name, input, space)
        finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    direction="minimize", pruner=_pruner(input))
        _fail_stale(study)
        resumed = len(study.get_trials(deepcopy=False, states=finished_states))
        batch = _search_batch(self.store)
        # a new seed per resume, or a restarted sampler would replay its first random proposals; a batch
        # asked at once lies about its running trials (constant liar) so they spread over the space
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.TPESampler(seed=input.seed + resumed,
                                                       n_startup_trials=max(3, input.n_trials // 4),
                                                       **({"constant_liar": True} if batch > 1 else {}))
        for candidate in input.candidates:
            params, extra = _candidate_params(candidate, space)
            study.enqueue_trial(params, user_attrs={"source": "candidate", "extra": extra},
                                skip_if_exists=True)

        spent_before = sum(t.user_attrs.get("steps", 0) for t in study.get_trials(deepcopy=False))
        state = {"spent": spent_before}

        if batch > 1:  # the workers train, whole trials in batches (tools/queue_search.py)
            run_batches(study, self.store, self.workload, self.device, input,
                        lambda trial: _suggest(trial, input, space), batch, state)
            return _output(study, name, storage, input, resumed, spent_before, extended, batch)

        def objective(trial: optuna.Trial) -> float:
            return self._objective(trial, input, space, study, state)

        for _attempt in range(3 * input.n_trials):  # failed trials (bad config, OOM) do not count
            done = len(study.get_trials(deepcopy=False, states=finished_states))
            out_of_steps = input.total_steps is not None and state["spent"] >= input.total_steps
            if done >= input.n_trials or out_of_steps:
                break
            study.optimize(objective, n_trials=1, catch=(OptimizationError,))

        return _output(study, name, storage, input, resumed, spent_before, extended)

    def _objective(self, trial, input: HPOInput, space: dict, study, state: dict) -> float:
        config = _suggest(trial, input, space)
        trial.set_user_attr("config", config.model_dump(mode="json"))
        trial.set_user_attr("source", trial.user_attrs.get("source", "sampler"))
        val_steps: list[float] = []
        val_losses: list[float] = []
        reason: dict[str, str] = {}

        def report(step: int, val_loss: float) -> bool:
            step = in_budget_steps(input, step, config.batch_size)
            val_steps.append(float(step))
            val_losses.append(val_loss)
            if math.isfinite(val_loss):
                trial.report(val_loss, step)
            if input.total_steps is not None and state["spent"] + step >= input.total_steps:
                reason["by"] = "step budget"
                return True
            if trial.user_attrs["source"] == "candidate":  # the warm start anchors the rungs: it runs whole
                return False
            if trial.should_prune():
                reason["by"] = f"{input.pruner} pruner"
                return True
            return self._forecast_prunes(input, study, val_steps, val_losses, reason)

        try:
            result = run_trial(self.workload, config, self.device, report=report, progress=self.progress)
        except OptimizationError as error:  # becomes a FAILED trial with its reason, not a crash
            trial.set_user_attr("error", str(error))
            raise
        spent = in_budget_steps(input, result.steps_run, config.batch_size)
        state["spent"] += spent
        trial.set_user_attr("steps", spent)
        trial.set_user_attr("last_val_loss", _finite_or_none(result.val_losses[-1]))
        if result.diverged:
            trial.set_user_attr("pruned_by", f"divergence ({result.divergence_reason})")
            raise optuna.TrialPruned()
        if result.pruned:
            trial.set_user_attr("pruned_by", reason.get("by", "pruned"))
            raise optuna.TrialPruned()
        return result.final_val_loss

    def _forecast_prunes(self, input, study, steps, losses, reason) -> bool:
        if not input.convergence_pruning or steps[-1] < CONVERGENCE_FROM * input.max_steps or len(steps) < 6:
            return False
        try:
            best = study.best_value
        except ValueError:  # no finished trial yet
            best = None
        target = None if best is None else CONVERGENCE_MARGIN * best
        verdict = early_stopping_verdict(steps, losses, input.max_steps, target=target, n_bootstrap=30)
        if verdict.verdict in ("stop: will not reach target", "stop: diverging"):
            reason["by"] = f"convergence forecast: {verdict.reason}"
            return True
        return False


def _space_with_candidates(input: HPOInput) -> tuple[dict[str, list], dict[str, list]]:
    """Categorical choices of the space, extended (deterministically) by the candidates' values."""
    space = {
        "batch_size": list(input.batch_sizes),
        "optimizer": list(input.optimizers),
        "schedule": list(input.schedules),
        "meta_optimizer": [NO_META if m is None else m for m in input.meta_optimizers],
    }
    extended: dict[str, list] = {}
    for candidate in input.candidates:
        for key in space:
            if key in candidate:
                value = NO_META if (key == "meta_optimizer" and candidate[key] is None) else candidate[key]
                if value not in space[key]:
                    space[key].append(value)
                    extended.setdefault(key, []).append(value)
    return space, extended


def _candidate_params(candidate: dict[str, Any], space: dict[str, list]) -> tuple[dict, dict]:
    """Split a candidate into searched params (enqueued) and other TrialConfig fields (kept as extra)."""
    try:
        config = TrialConfig(**{k: v for k, v in candidate.items() if k not in ("steps", "seed")})
    except HyperparameterError as error:
        raise HyperparameterError(f"invalid warm-start candidate {candidate}: {error.message}",
                                  {"candidate": candidate}) from None
    params = {key: candidate[key] for key in SEARCHED if key in candidate}
    if "meta_optimizer" in params:
        params["meta_optimizer"] = params["meta_optimizer"] or NO_META
    extra = {k: v for k, v in config.model_dump(mode="json", exclude_defaults=True).items()
             if k not in SEARCHED and k in candidate and k not in ("steps", "seed")}
    assert all(v in space[k] for k, v in params.items() if k in space), "space was extended first"
    return params, extra


def _suggest(trial: optuna.Trial, input: HPOInput, space: dict[str, list]) -> TrialConfig:
    lr = trial.suggest_float("lr", *input.lr_range, log=True)
    wd_low, wd_high = input.weight_decay_range
    weight_decay = trial.suggest_float("weight_decay", wd_low, wd_high, log=wd_low > 0)
    batch_size = trial.suggest_categorical("batch_size", space["batch_size"])
    optimizer = trial.suggest_categorical("optimizer", space["optimizer"])
    meta = trial.suggest_categorical("meta_optimizer", space["meta_optimizer"])
    fields = {**input.base_config, **trial.user_attrs.get("extra", {})}
    if meta != NO_META or optimizer == "schedulefree":
        schedule = "constant"  # a meta-optimizer or schedule-free AdamW sets the LR itself
    else:
        schedule = trial.suggest_categorical("schedule", space["schedule"])
    return TrialConfig(**{
        **fields, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "optimizer": optimizer,
        "meta_optimizer": None if meta == NO_META else meta, "schedule": schedule,
        "steps": trial_steps(input, batch_size), "seed": input.seed,
    })


def trial_steps(input: HPOInput, batch_size: int) -> int:
    """Steps of a never-pruned trial at ``batch_size``: max_steps, or its examples at the baseline batch."""
    if input.baseline_batch is None:
        return input.max_steps
    return max(1, round(input.max_steps * input.baseline_batch / batch_size))


def in_budget_steps(input: HPOInput, steps: int, batch_size: int) -> int:
    """``steps`` at ``batch_size`` in the study's unit: steps at the baseline batch when it counts examples."""
    return steps if input.baseline_batch is None else round(steps * batch_size / input.baseline_batch)


def _pruner(input: HPOInput) -> optuna.pruners.BasePruner:
    min_steps = input.min_steps or max(1, input.max_steps // 9)
    if input.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_steps, reduction_factor=3)
    if input.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_steps, max_resource=input.max_steps,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def _study_name(workload: str, input: HPOInput, space: dict) -> str:
    """Same workload, space, fidelity and seed -> same study, so a rerun resumes it."""
    key = {"workload": workload, "space": space, "lr": input.lr_range, "wd": input.weight_decay_range,
           "max_steps": input.max_steps, "seed": input.seed, "base": input.base_config,
           "pruner": input.pruner, **({"baseline_batch": input.baseline_batch} if input.baseline_batch else {})}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"hpo-{workload}-{digest}"


def _fail_stale(study: optuna.Study) -> None:
    """Trials left RUNNING by an interrupted run are failed (one worker per study assumed)."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _search_batch(store) -> int:
    """Trials run at once: a queue-backed store's batch (its workers), else 1 (this process, pruned)."""
    batch = getattr(store, "search_batch", None)
    return batch() if callable(batch) else 1


def portable_storage(storage: str | None) -> str:
    """The storage as evidence: a SQLite file under the current directory by its relative path, a server
    URL without its password, so a recording names no absolute path or secret of this machine."""
    if storage is None:
        return "in-memory"
    if storage.startswith("sqlite:"):
        path = Path(storage.removeprefix("sqlite:///"))
        here = Path.cwd().resolve()
        if storage.startswith("sqlite:///") and path.is_absolute() and path.resolve().is_relative_to(here):
            return f"sqlite:///{path.resolve().relative_to(here).as_posix()}"
        return storage
    if "://" in storage:
        return sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
    return storage


def _output(study, name, storage, input, resumed, spent_before, extended, batch: int = 1) -> HPOOutput:
    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING):
            continue
        trials.append(HPOTrial(
            number=t.number, source=t.user_attrs.get("source", "sampler"),
            config=t.user_attrs.get("config", {}),
            value=t.value if t.state == optuna.trial.TrialState.COMPLETE else None, state=t.state.name,
            pruned_by=t.user_attrs.get("pruned_by") or t.user_attrs.get("error"),
            steps=t.user_attrs.get("steps", 0),
            last_val_loss=t.user_attrs.get("last_val_loss"),
        ))
    try:
        best = study.best_trial
    except ValueError:
        raise HyperparameterError(
            f"no trial of {len(trials)} finished un-pruned: widen the space or raise the budget "
            f"(n_trials={input.n_trials}, total_steps={input.total_steps})", {"study": name}) from None
    spent = sum(t.steps for t in trials)
    return HPOOutput(
        best_config=best.user_attrs["config"], best_value=best.value, best_trial=best.number, trials=trials,
        steps_spent=spent, steps_spent_this_run=spent - spent_before, trials_resumed=resumed,
        study_name=name, storage=portable_storage(storage),
        sampler=f"TPESampler(seed={input.seed} + trials already finished)" + (
            f", asked {batch} at a time with constant_liar" if batch > 1 else ""),
        pruner=input.pruner if batch == 1 or input.pruner == "none" else
        f"{input.pruner}: its rung cutoffs from the finished trials, applied by the workers to batches of {batch}",
        space_extended=extended,
    )
