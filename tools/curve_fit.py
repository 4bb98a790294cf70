"""Fit a loss curve with a power law or an exponential (each with an offset) and extrapolate it.

    power law    L(t) = a * t^(-b) + c      (Kaplan et al. 2020; Hestness et al. 2017)
    exponential  L(t) = a * exp(-b * t) + c

Both are fitted with ``scipy.optimize.curve_fit`` on relative residuals (sigma = |L|, so the low
tail of the curve counts as much as the start). The model is chosen by its error on the held-out
last part of the observed curve (fit on the first part, predict the rest); the winner is then
refitted on every point. The interval comes from a residual bootstrap: the fitted curve plus
resampled relative residuals, refitted ``n_bootstrap`` times. It covers parameter uncertainty
under the chosen model, not the error of choosing the wrong model.

    >>> import numpy as np
    >>> t = np.arange(1, 201)
    >>> fit = fit_loss_curve(t, 2.0 * t ** -0.5 + 0.1)
    >>> fit.model, round(fit.b, 3), round(fit.predict(1000), 4)
    ('power_law', 0.5, 0.1632)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.optimize import OptimizeWarning, curve_fit

from trainopt.errors import ConvergenceError

CurveModel = Literal["power_law", "exponential"]
MIN_POINTS = 6  # three parameters plus a held-out tail of at least two points


def _power_law(x, a, b, c):
    return a * np.power(x, -b) + c


def _exponential(x, a, b, c):
    return a * np.exp(-b * x) + c


_FUNCTIONS = {"power_law": _power_law, "exponential": _exponential}


class CurveFit(BaseModel):
    """A fitted loss curve. Parameters are in the caller's step units."""

    model: CurveModel = Field(description="the curve family chosen by held-out error")
    a: float = Field(description="amplitude")
    b: float = Field(description="decay: power-law exponent, or exponential rate per step")
    c: float = Field(description="offset: the loss the curve approaches as t -> infinity")
    holdout_errors: dict[str, float] = Field(
        description="mean absolute relative error of each model on the held-out tail (inf: fit failed)")
    residual_std: float = Field(description="std of relative residuals of the final fit")
    n_points: int
    last_step: float = Field(description="the last observed step")
    bootstrap: list[tuple[float, float, float]] = Field(
        default_factory=list, repr=False, description="(a, b, c) of each bootstrap refit")

    def _curve(self, steps, params) -> np.ndarray:
        a, b, c = params
        steps = np.asarray(steps, dtype=float)
        if self.model == "power_law":
            return a * np.power(steps, -b) + c
        return a * np.exp(-b * steps) + c

    def predict(self, step: float) -> float:
        """The loss the curve gives at ``step``."""
        return float(self._curve(step, (self.a, self.b, self.c)))

    def predict_interval(self, step: float, level: float = 0.9) -> tuple[float, float]:
        """The central ``level`` interval of the bootstrap predictions at ``step``."""
        if not self.bootstrap:
            value = self.predict(step)
            return value, value
        values = np.array([self._curve(step, p) for p in self.bootstrap])
        return _quantiles(values, level)

    def steps_to_reach(self, target: float) -> float | None:
        """The step at which the curve reaches ``target`` (None: never, it levels off above it)."""
        return _solve(self.model, (self.a, self.b, self.c), target)

    def steps_to_reach_interval(self, target: float, level: float = 0.9) -> tuple[float, float]:
        """The bootstrap interval of ``steps_to_reach``; inf where a refit never reaches ``target``."""
        if not self.bootstrap:
            value = self.steps_to_reach(target)
            value = math.inf if value is None else value
            return value, value
        values = [_solve(self.model, p, target) for p in self.bootstrap]
        return _quantiles(np.array([math.inf if v is None else v for v in values]), level)


def _solve(model: str, params, target: float) -> float | None:
    a, b, c = params
    if target <= c or a <= 0 or b <= 0:
        return None
    if target >= a + c and model == "exponential":
        return 0.0
    if model == "power_law":
        return float((a / (target - c)) ** (1.0 / b))
    return float(-math.log((target - c) / a) / b)


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) but got {level=}")
    # "nearest": no interpolation, so refits that never reach a target (inf) do not turn into nan
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="nearest")
    return float(lo), float(hi)


def _fit_one(model: str, x: np.ndarray, y: np.ndarray, p0=None) -> tuple[np.ndarray, float]:
    """Best (a, b, c) in normalised steps x (last step = 1) and its relative SSE; raises RuntimeError.

    Several starting points unless ``p0`` is given (the bootstrap starts from the full fit).
    """
    span = float(y.max() - y.min())
    y_min = float(y.min())
    c_low = 0.0 if y_min >= 0 else y_min - 10 * max(span, abs(y_min))
    c_high = y_min + 0.05 * max(span, 1e-12)
    b_high = 5.0 if model == "power_law" else 200.0
    bounds = ([0.0, 1e-4, c_low], [np.inf, b_high, c_high])
    sigma = np.maximum(np.abs(y), 1e-8)
    function = _FUNCTIONS[model]
    best, best_sse = None, math.inf
    for a0, b0, c0 in ([p0] if p0 is not None else _starts(model, x, y, c_low, c_high)):
        a0, b0, c0 = max(a0, 1e-12), float(np.clip(b0, 1e-4, b_high)), float(np.clip(c0, c_low, c_high))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                params, _ = curve_fit(function, x, y, p0=(a0, b0, c0), sigma=sigma, bounds=bounds,
                                      maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum(((function(x, *params) - y) / sigma) ** 2))
        if math.isfinite(sse) and sse < best_sse:
            best, best_sse = params, sse
    if best is None:
        raise RuntimeError(f"{model} fit did not converge")
    return best, best_sse


def _starts(model: str, x: np.ndarray, y: np.ndarray, c_low: float, c_high: float):
    """Initial (a, b, c): offsets at 0, 50% and 90% of the way to the lowest loss, two decay rates."""
    y_min = float(y.min())
    for c0 in (c_low + 0.5 * (y_min - c_low), c_low + 0.9 * (y_min - c_low), c_low):
        c0 = float(np.clip(c0, c_low, c_high))
        for b0 in ((0.3, 1.0) if model == "power_law" else (2.0, 10.0)):
            a0 = max(float(y[0]) - c0, 1e-6)  # the curve passes near the first point
            a0 *= float(x[0]) ** b0 if model == "power_law" else math.exp(min(b0 * float(x[0]), 50.0))
            yield a0, b0, c0


def _to_step_units(model: str, params: np.ndarray, scale: float) -> tuple[float, float, float]:
    """Parameters of the fit in x = t / scale, rewritten for t."""
    a, b, c = (float(v) for v in params)
    if model == "power_law":
        return a * scale**b, b, c  # a (t/s)^-b = (a s^b) t^-b
    return a, b / scale, c  # a exp(-b t/s) = a exp(-(b/s) t)


def fit_loss_curve(
    steps: Sequence[float],
    losses: Sequence[float],
    holdout_fraction: float = 0.25,
    n_bootstrap: int = 100,
    seed: int = 0,
    models: Sequence[CurveModel] = ("power_law", "exponential"),
) -> CurveFit:
    """Fit both curve families, keep the one with the lower held-out error, bootstrap an interval.

    ``holdout_fraction`` of the points at the end are held out for the choice; ``n_bootstrap``
    refits give the interval (0 turns it off). Raises ConvergenceError on unusable curves.
    """
    t = np.asarray(steps, dtype=float)
    y = np.asarray(losses, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise ConvergenceError(f"steps and losses must be 1-D and aligned but got {t.shape} and {y.shape}",
                               {"steps": len(t), "losses": len(y)})
    if len(t) < MIN_POINTS:
        raise ConvergenceError(f"need at least {MIN_POINTS} points to fit a loss curve but got {len(t)}",
                               {"points": len(t)})
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ConvergenceError("the loss curve has non-finite values: the run diverged", {"points": len(t)})
    if t[0] <= 0 or np.any(np.diff(t) <= 0):
        raise ConvergenceError("steps must be positive and strictly increasing", {"first_step": float(t[0])})
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1) but got {holdout_fraction=}")
    if not models or any(m not in _FUNCTIONS for m in models):
        raise ValueError(f"models must be a non-empty subset of {tuple(_FUNCTIONS)} but got {models=}")

    scale = float(t[-1])
    x = t / scale
    n_fit = min(max(3, int(round(len(t) * (1 - holdout_fraction)))), len(t) - 2)
    errors: dict[str, float] = {}
    for model in models:
        try:
            params, _ = _fit_one(model, x[:n_fit], y[:n_fit])
            predicted = _FUNCTIONS[model](x[n_fit:], *params)
            relative_error = np.abs(predicted - y[n_fit:]) / np.maximum(np.abs(y[n_fit:]), 1e-8)
            errors[model] = float(np.mean(relative_error))
        except RuntimeError:
            errors[model] = math.inf
    ranked = sorted(models, key=lambda m: errors[m])
    for model in ranked:  # refit on all points; fall back to the other model if this one fails
        try:
            params, _ = _fit_one(model, x, y)
            break
        except RuntimeError:
            continue
    else:
        raise ConvergenceError("neither a power law nor an exponential fits this loss curve",
                               {"points": len(t)})

    function = _FUNCTIONS[model]
    fitted = function(x, *params)
    relative = (y - fitted) / np.maximum(np.abs(fitted), 1e-8)
    rng = np.random.default_rng(seed)
    bootstrap = []
    for _ in range(n_bootstrap):
        y_star = fitted * (1 + rng.choice(relative, size=len(relative), replace=True))
        try:
            p_star, _ = _fit_one(model, x, y_star, p0=params)
        except RuntimeError:
            continue
        bootstrap.append(_to_step_units(model, p_star, scale))
    a, b, c = _to_step_units(model, params, scale)
    return CurveFit(
        model=model, a=a, b=b, c=c, holdout_errors=errors, residual_std=float(np.std(relative)),
        n_points=len(t), last_step=float(t[-1]), bootstrap=bootstrap,
    )


def smooth_losses(losses: Sequence[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as in Adam's moment estimates)."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1) but got {beta=}")
    average, out = 0.0, []
    for i, value in enumerate(losses):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (i + 1)))
    return out
