"""ConvergencePredictor: extrapolate a loss curve and decide whether a running trial should go on.

The curve is fitted by ``fit_loss_curve`` (power law, exponential and log-logistic, each with an
offset; the prediction averages them with equal weights, leaving out a family whose held-out error
is 100x the best one's; the formula shows the family with the lowest held-out error;
residual-bootstrap interval), see trainopt.tools.curve_fit. When the tool runs the trial itself and
predicts its validation loss, the dense training curve joins in (``fit_with_training_curve``,
trainopt.tools.curve_linked: the validation loss as an affine function of the fitted training curve).

    >>> from trainopt.tools import get_tool
    >>> tool = get_tool("convergence_predictor")()
    >>> out = tool(steps=list(range(1, 101)), losses=[2 * t ** -0.5 + 0.1 for t in range(1, 101)],
    ...            predict_step=400, target_loss=0.25)
    >>> out.model, round(out.predicted_loss, 3), round(out.steps_to_target)
    ('power_law', 0.2, 178)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from trainopt.errors import ConvergenceError
from trainopt.tools.base import Tool
from trainopt.tools.curve_fit import _FUNCTIONS, MIN_POINTS, CurveFit, CurveModel, fit_loss_curve, smooth_losses
from trainopt.tools.curve_linked import fit_with_training_curve
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial

Verdict = Literal["continue", "stop: plateaued", "stop: will not reach target", "stop: diverging"]
DIVERGE_FACTOR = 1.5  # recent loss above this multiple of the best so far (and rising): diverging
INTERVAL_METHOD = ("loss: residual bootstrap (relative residuals resampled, curve refitted) widened by the "
                   "held-out error scaled to the horizon; steps to target: residual bootstrap")

__all__ = ["ConvergencePredictor", "CurveFit", "StopVerdict", "early_stopping_verdict", "fit_loss_curve"]


class StopVerdict(BaseModel):
    """Whether a running trial should go on, and why."""

    verdict: Verdict
    reason: str
    predicted_final_loss: float | None = Field(None, description="the fit's loss at max_steps")
    final_interval: tuple[float, float] | None = None


def early_stopping_verdict(
    steps: Sequence[float],
    losses: Sequence[float],
    max_steps: float,
    target: float | None = None,
    min_improvement: float = 0.01,
    level: float = 0.9,
    fit: CurveFit | None = None,
    n_bootstrap: int = 50,
) -> StopVerdict:
    """continue / stop: plateaued / stop: will not reach target / stop: diverging.

    diverging:   a non-finite loss, or the mean of the last fifth of the points above
                 DIVERGE_FACTOR x the best loss so far while the last points still rise.
    plateaued:   the fit expects less than ``min_improvement`` (relative) from now to ``max_steps``.
    won't reach: the optimistic end of the interval at ``max_steps`` stays above ``target``.
    """
    if max_steps <= 0:
        raise ValueError(f"max_steps must be > 0 but got {max_steps=}")
    if not 0 <= min_improvement < 1:
        raise ValueError(f"min_improvement must be in [0, 1) but got {min_improvement=}")
    y = np.asarray(losses, dtype=float)
    if len(y) == 0:
        return StopVerdict(verdict="continue", reason="no points yet")
    if not np.all(np.isfinite(y)):
        return StopVerdict(verdict="stop: diverging", reason="a non-finite loss")
    window = max(2, len(y) // 5)
    recent, best = float(np.mean(y[-window:])), float(np.min(y))
    if len(y) >= 2 * window and recent > DIVERGE_FACTOR * best and y[-1] > y[-window]:
        return StopVerdict(verdict="stop: diverging",
                           reason=f"recent loss {recent:.4g} is {recent / best:.2f}x the best {best:.4g} "
                                  f"and rising")
    if fit is None:
        if len(y) < MIN_POINTS:
            return StopVerdict(verdict="continue", reason=f"{len(y)} points: too few to fit a curve")
        try:
            fit = fit_loss_curve(steps, losses, n_bootstrap=n_bootstrap)
        except ConvergenceError as error:
            return StopVerdict(verdict="continue", reason=f"no curve fits yet ({error.message})")
    final = fit.predict(max_steps)
    low, high = fit.predict_interval(max_steps, level)
    now = fit.predict(float(steps[-1]))
    if target is not None and low > target:
        return StopVerdict(verdict="stop: will not reach target", predicted_final_loss=final,
                           final_interval=(low, high),
                           reason=f"at step {max_steps:g} the {level:.0%} interval [{low:.4g}, {high:.4g}] "
                                  f"stays above the target {target:.4g}")
    gain = (now - final) / max(abs(now), 1e-12)
    if gain < min_improvement and (target is None or now <= target or final > target):
        return StopVerdict(verdict="stop: plateaued", predicted_final_loss=final, final_interval=(low, high),
                           reason=f"the {fit.model} fit expects {gain:.2%} less loss by step {max_steps:g} "
                                  f"({now:.4g} -> {final:.4g})")
    return StopVerdict(verdict="continue", predicted_final_loss=final, final_interval=(low, high),
                       reason=f"the {fit.model} fit expects {now:.4g} -> {final:.4g} by step {max_steps:g}")


class ConvergenceInput(BaseModel):
    """A curve you have (steps, losses), or a trial to run and observe for ``observe_steps``."""

    steps: list[float] | None = Field(None, description="steps of a loss curve you already have")
    losses: list[float] | None = Field(None, description="its losses, aligned with steps")
    config: dict[str, Any] | None = Field(
        None, description="TrialConfig fields of a trial to run (default: the workload's defaults)")
    observe_steps: int | None = Field(
        None, gt=0, description="steps of the trial to observe before predicting (default: 30% of steps)")
    curve: Literal["val", "train"] = Field(
        "val", description="of a trial: validation loss, or the smoothed (EMA 0.9) training loss")
    predict_step: float | None = Field(
        None, gt=0, description="step to predict the loss at (default: the trial's steps, else 2x last step)")
    target_loss: float | None = Field(None, description="a loss to reach: steps to it, and the verdict")
    level: float = Field(0.9, gt=0, lt=1, description="interval coverage")
    n_bootstrap: int = Field(100, ge=0, le=2000, description="bootstrap refits for the interval")

    @model_validator(mode="after")
    def _curve_given_whole(self) -> ConvergenceInput:
        if (self.steps is None) != (self.losses is None):
            raise ValueError("give both steps and losses, or neither (then a trial is run)")
        if self.steps is not None and len(self.steps) != len(self.losses):
            raise ValueError(f"steps and losses must align but got {len(self.steps)} and {len(self.losses)}")
        if self.steps is not None and self.config is not None:
            raise ValueError("give a curve (steps, losses) or a config to run, not both")
        return self


class ConvergenceOutput(BaseModel):
    model: CurveModel = Field(description="curve family chosen by held-out error")
    a: float
    b: float
    c: float = Field(description="asymptotic loss")
    tau: float | None = Field(None, description="log-logistic only: step where half the drop is done")
    formula: str
    holdout_errors: dict[str, float] = Field(
        description="mean relative error of each member (family or training-curve member) on the held-out tail")
    ensemble_weights: dict[str, float] = Field(
        default_factory=dict, description="weight of each member in predicted_loss: equal among those within "
                                          "100x the lowest held-out error; train_shift / train_link: the "
                                          "validation loss from the fitted training curve")
    curve: str = Field(description="which loss was fitted")
    observed_points: int
    last_observed_step: float
    last_observed_loss: float
    predict_step: float
    predicted_loss: float = Field(description="the ensemble of families at predict_step")
    interval: tuple[float, float]
    level: float
    interval_method: str = INTERVAL_METHOD
    target_loss: float | None = None
    steps_to_target: float | None = Field(None, description="None: the fit levels off above the target")
    steps_to_target_interval: tuple[float, float | None] | None = Field(
        None, description="upper end None: some bootstrap refits never reach the target")
    verdict: Verdict
    reason: str


    def fitted_curve(self, steps: Sequence[float]) -> list[float]:
        """The chosen family's fitted curve at ``steps`` (for plots; the formula above)."""
        params = (self.a, self.b, self.c) if self.tau is None else (self.a, self.b, self.c, self.tau)
        return [float(v) for v in _FUNCTIONS[self.model](np.asarray(steps, dtype=float), *params)]


def _formula(fit: CurveFit) -> str:
    a, b, c = f"{fit.a:.4g}", f"{fit.b:.4g}", f"{fit.c:.4g}"
    if fit.model == "power_law":
        return f"L(t) = {a} * t^(-{b}) + {c}"
    if fit.model == "exponential":
        return f"L(t) = {a} * exp(-{b} t) + {c}"
    return f"L(t) = {c} + ({a} - {c}) / (1 + (t / {fit.tau:.4g})^{b})"


class ConvergencePredictor(Tool):
    """Fits the loss curve to predict a future loss, the steps to a target, and when to stop."""

    name = "convergence_predictor"
    description = (
        "Fit a loss curve (power law, exponential and log-logistic with an offset, averaged with equal "
        "weights; for a trial it runs, two predictions from the training curve join them) to predict the "
        "loss at a future step and the steps to reach a target loss, with a bootstrap "
        "interval, and give an early-stopping verdict (continue / stop: plateaued / stop: will not "
        "reach target / stop: diverging). Give a curve, or a config to run and observe."
    )
    Input = ConvergenceInput
    Output = ConvergenceOutput

    def run(self, input: ConvergenceInput) -> ConvergenceOutput:
        train_losses = None
        if input.steps is not None:
            steps, losses, curve = list(input.steps), list(input.losses), "given"
            horizon = input.predict_step or 2.0 * float(steps[-1] if steps else 1.0)
        else:
            steps, losses, curve, horizon, train_losses = self._observe(input)
            horizon = input.predict_step or horizon
        if train_losses is not None and len(steps) >= MIN_POINTS:
            fit = fit_with_training_curve(steps, losses, train_losses, n_bootstrap=input.n_bootstrap)
        else:
            fit = fit_loss_curve(steps, losses, n_bootstrap=input.n_bootstrap)
        verdict = early_stopping_verdict(steps, losses, horizon, input.target_loss, level=input.level,
                                         fit=fit)
        to_target = to_target_interval = None
        if input.target_loss is not None:
            to_target = fit.steps_to_reach(input.target_loss)
            low, high = fit.steps_to_reach_interval(input.target_loss, input.level)
            to_target_interval = (low, None if high == float("inf") else high)
        return ConvergenceOutput(
            model=fit.model, a=fit.a, b=fit.b, c=fit.c, tau=fit.tau, formula=_formula(fit),
            holdout_errors=fit.holdout_errors, ensemble_weights={m.model: m.weight for m in fit.members},
            curve=curve, observed_points=len(steps), last_observed_step=float(steps[-1]),
            last_observed_loss=float(losses[-1]), predict_step=horizon, predicted_loss=fit.predict(horizon),
            interval=fit.predict_interval(horizon, input.level), level=input.level,
            target_loss=input.target_loss, steps_to_target=to_target,
            steps_to_target_interval=to_target_interval, verdict=verdict.verdict, reason=verdict.reason,
        )

    def _observe(self, input: ConvergenceInput) -> tuple[list[float], list[float], str, float, list[float] | None]:
        """Run the trial (its full schedule) but stop it after ``observe_steps``; return the curve, the
        trial's steps and, for the validation curve, the per-step training losses beside it."""
        fields = {**self.workload.default_config, **(input.config or {})}
        config = TrialConfig(**fields)
        observe = input.observe_steps or max(MIN_POINTS, int(0.3 * config.steps))
        if observe > config.steps:
            raise ValueError(f"observe_steps={observe} exceeds the trial's steps={config.steps}")
        if input.curve == "val" and "eval_every" not in (input.config or {}):
            config = config.model_copy(update={"eval_every": max(1, observe // 20)})
        result = run_trial(self.workload, config, self.device, progress=self.progress,
                           report=lambda step, _loss: step >= observe)
        train_losses = None
        if input.curve == "val":
            steps, losses = [float(s) for s in result.val_steps], list(result.val_losses)
            curve = "validation loss (with the training curve)"
            train_losses = list(result.train_losses)
        else:
            steps = [float(s) for s in range(1, result.steps_run + 1)]
            losses, curve = smooth_losses(result.train_losses), "training loss, EMA-smoothed (beta 0.9)"
        if result.diverged:
            raise ConvergenceError(
                f"the trial diverged at step {result.diverged_at}: {result.divergence_reason}",
                {"config": config.model_dump(mode="json")})
        return steps, losses, curve, float(config.steps), train_losses

