"""Fit a loss curve with a power law, an exponential or a log-logistic curve and extrapolate it.

    power law     L(t) = a * t^(-b) + c                       (Hestness et al. 2017; Kaplan et al. 2020)
    exponential   L(t) = a * exp(-b * t) + c
    log-logistic  L(t) = c + (a - c) / (1 + (t / tau)^b)      (MMF curve, Domhan et al. 2015, IJCAI)

Each family has an offset c, the loss the curve levels off at. The log-logistic curve starts flat
at a, falls around step tau and becomes a power law with offset after it: the shape of a
classifier's loss that sits near log(classes) before it learns. All are fitted with
``scipy.optimize.curve_fit`` on relative residuals (sigma = |L|, so the low tail counts as much as
the start; early points are down-weighted further, see RECENCY), from several starting points.
Each family's error on the held-out last part of the observed curve (fit on the first part,
predict the rest) is measured, and every family is refitted on all points. The prediction averages
the families whose held-out error is within GATE x the lowest one, with equal weights (default,
``weighting="equal"``), or weighted by 1 / (held-out error)^2 (``"inverse_square"``, the rule before).
Equal weights won on 28 development curves (bench/convergence.py --dev): the held-out tail is a
quarter of the observed part while the forecast runs four times its length, so its error ranks the
families poorly; only a family that fails by orders of magnitude (GATE) is telling. The family
with the lowest held-out error is "the" model (its a, b, c, tau, formula and bootstrap).
tools/curve_linked.py adds members built from the dense training curve.

The interval comes from a residual bootstrap: the fitted curve times (1 + a resampled relative
residual), refitted ``n_bootstrap`` times; that covers parameter noise only, so the loss interval
(which always holds the ensemble's point) is widened by the family's held-out error scaled to the
forecast horizon (see ``CurveFit.predict_interval``).

    >>> import numpy as np
    >>> t = np.arange(1, 201)
    >>> fit = fit_loss_curve(t, 2.0 * t ** -0.5 + 0.1)
    >>> fit.model, round(fit.b, 3), round(fit.predict(1000), 4)
    ('power_law', 0.5, 0.1632)
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.optimize import OptimizeWarning, curve_fit

from trainopt.errors import ConvergenceError

CurveModel = Literal["power_law", "exponential", "log_logistic"]
ALL_MODELS: tuple[CurveModel, ...] = ("power_law", "exponential", "log_logistic")
# an ensemble member: a curve family, or the validation loss as an affine function of the fitted
# training curve (tools/curve_linked.py)
MemberName = Literal["power_law", "exponential", "log_logistic", "train_shift", "train_link"]
Weighting = Literal["equal", "inverse_square"]
MIN_POINTS = 6  # three parameters plus a held-out tail of at least two points
AGREE_RTOL = 1e-4  # two starts whose relative SSE agrees this closely found the same minimum
MAX_EVALS = 400  # evaluations per curve_fit start (analytic Jacobian); a family that needs more fits badly
# weight of the early points: sigma_i = |L_i| (1 + RECENCY (1 - t_i / t_last)), so the first point counts
# 1 / (1 + RECENCY)^2 as much as the last (the late curve says more about where it levels off). 5 was the
# best of {0, 2, 5} on bench/convergence.py's curves (an in-sample choice; 0 = unweighted, as before)
RECENCY = 5.0


def _power_law(x, a, b, c):
    return a * np.power(x, -b) + c


def _exponential(x, a, b, c):
    return a * np.exp(-b * x) + c


def _log_logistic(x, a, b, c, tau):
    return c + (a - c) / (1.0 + np.power(x / tau, b))


_FUNCTIONS = {"power_law": _power_law, "exponential": _exponential, "log_logistic": _log_logistic}


def _power_law_jac(x, a, b, c):
    p = np.power(x, -b)
    return np.stack([p, -a * p * np.log(x), np.ones_like(x)], axis=1)  # (N, 3): d/da, d/db, d/dc


def _exponential_jac(x, a, b, c):
    e = np.exp(-b * x)
    return np.stack([e, -a * x * e, np.ones_like(x)], axis=1)


def _log_logistic_jac(x, a, b, c, tau):
    u = np.power(x / tau, b)
    g = 1.0 / (1.0 + u)
    du = (a - c) * u * g * g  # (a - c) u / (1 + u)^2
    return np.stack([g, -du * np.log(x / tau), 1.0 - g, du * b / tau], axis=1)


# analytic Jacobians: several times fewer evaluations than curve_fit's finite differences
_JACOBIANS = {"power_law": _power_law_jac, "exponential": _exponential_jac, "log_logistic": _log_logistic_jac}


class EnsembleMember(BaseModel):
    """One member of the ensemble: its parameters (step units) and its weight (weights sum to 1).

    A curve family: ``params`` are its (a, b, c[, tau]). A training-curve member (``train_curve``
    set): ``params`` are (alpha, k) and its loss is alpha + k * train_curve.predict(t)."""

    model: MemberName
    params: tuple[float, ...]
    weight: float
    train_curve: CurveFit | None = Field(None, repr=False, description="the fitted training curve T(t)")

    def predict(self, step: float) -> float:
        if self.train_curve is not None:
            alpha, k = self.params
            return alpha + k * self.train_curve.predict(step)
        return float(_FUNCTIONS[self.model](float(step), *self.params))


class CurveFit(BaseModel):
    """A fitted loss curve. Parameters are in the caller's step units."""

    model: CurveModel = Field(description="the curve family chosen by held-out error")
    a: float = Field(description="amplitude (log-logistic: the loss at t = 0)")
    b: float = Field(description="decay: power-law exponent, exponential rate per step, log-logistic slope")
    c: float = Field(description="offset: the loss the curve approaches as t -> infinity")
    tau: float | None = Field(None, description="log-logistic only: the step where half the drop is done")
    holdout_errors: dict[str, float] = Field(
        description="mean absolute relative error of each family on the held-out tail (inf: fit failed)")
    residual_std: float = Field(description="std of relative residuals of the final fit")
    n_points: int
    last_step: float = Field(description="the last observed step")
    holdout_span: float = Field(description="steps from the last fitted point to the last held-out point")
    bootstrap: list[tuple[float, ...]] = Field(
        default_factory=list, repr=False, description="parameters of each bootstrap refit")
    members: list[EnsembleMember] = Field(
        default_factory=list, description="every family refitted on all points, weighted by the ``weighting`` "
                                          "rule; empty: ``predict`` uses the chosen family alone")

    @property
    def params(self) -> tuple[float, ...]:
        return (self.a, self.b, self.c) if self.tau is None else (self.a, self.b, self.c, self.tau)

    def _curve(self, steps, params) -> np.ndarray:
        return _FUNCTIONS[self.model](np.asarray(steps, dtype=float), *params)

    def predict(self, step: float) -> float:
        """The ensemble's loss at ``step``: sum_m w_m L_m(step) (weights: see ``ensemble_weights``);
        the chosen family alone where there are no members."""
        if not self.members:
            return self.predict_family(step)
        return float(sum(m.weight * m.predict(step) for m in self.members))

    def predict_family(self, step: float) -> float:
        """The loss the chosen family's curve gives at ``step`` (the a, b, c, tau above)."""
        return float(self._curve(step, self.params))

    def extrapolation_error(self, step: float) -> float:
        """The chosen family's held-out relative error, scaled linearly from the held-out span to
        ``step - last_step`` (0 inside the observed range)."""
        error = self.holdout_errors.get(self.model, 0.0)
        if not math.isfinite(error) or step <= self.last_step:
            return 0.0
        return error * (step - self.last_step) / max(self.holdout_span, 1e-12)

    def predict_interval(self, step: float, level: float = 0.9) -> tuple[float, float]:
        """The central ``level`` interval of the bootstrap predictions at ``step``, widened by the
        extrapolation error: [low / (1 + e), high * (1 + e)], e = ``extrapolation_error(step)``.

        The bootstrap alone covers parameter noise only; on the convergence benchmark its 90%
        interval held the final loss in 14-36% of runs, so the held-out error is added."""
        point = self.predict(step)
        values = np.array([self._curve(step, p) for p in self.bootstrap] or [point])
        low, high = _quantiles(values, level)
        low, high = min(low, point), max(high, point)  # the ensemble's point may lie off the family's bootstrap
        widen = 1.0 + self.extrapolation_error(step)
        return low / widen if low > 0 else low * widen, high * widen if high > 0 else high / widen

    def steps_to_reach(self, target: float) -> float | None:
        """The step at which the curve reaches ``target`` (None: never, it levels off above it)."""
        return _solve(self.model, self.params, target)

    def steps_to_reach_interval(self, target: float, level: float = 0.9) -> tuple[float, float]:
        """The bootstrap interval of ``steps_to_reach``; inf where a refit never reaches ``target``."""
        if not self.bootstrap:
            value = self.steps_to_reach(target)
            value = math.inf if value is None else value
            return value, value
        values = [_solve(self.model, p, target) for p in self.bootstrap]
        return _quantiles(np.array([math.inf if v is None else v for v in values]), level)


def _solve(model: str, params, target: float) -> float | None:
    """Invert the curve: the t with L(t) = target, 0 if already below at t = 0, None if never."""
    a, b, c = params[:3]
    if target <= c or b <= 0:
        return None
    if model == "power_law":
        return float((a / (target - c)) ** (1.0 / b)) if a > 0 else None
    if model == "exponential":
        return 0.0 if target >= a + c else float(-math.log((target - c) / a) / b)
    tau = params[3]
    return 0.0 if target >= a else float(tau * ((a - c) / (target - c) - 1.0) ** (1.0 / b))


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) but got {level=}")
    # "nearest": no interpolation, so refits that never reach a target (inf) do not turn into nan
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="nearest")
    return float(lo), float(hi)


def _bounds(model: str, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Bounds in normalised steps x = t / last step. The offset c stays in [0, lowest loss] for a
    non-negative loss."""
    span = max(float(y.max() - y.min()), 1e-12)
    y_min = float(y.min())
    c_low = 0.0 if y_min >= 0 else y_min - 10 * max(span, abs(y_min))
    c_high = y_min  # the curve levels off at or under the lowest loss seen
    if model == "power_law":
        return [0.0, 1e-4, c_low], [np.inf, 5.0, c_high]
    if model == "exponential":
        return [0.0, 1e-4, c_low], [np.inf, 200.0, c_high]
    return [y_min, 0.1, c_low, 1e-4], [10 * max(float(y.max()), 1e-12), 20.0, c_high, 100.0]  # a: the loss at t=0


def _starts(model: str, x: np.ndarray, y: np.ndarray, low: list[float], high: list[float]):
    """Initial parameters: offsets at 0, 50% and 90% of the way to the lowest loss, and a few decays."""
    y_min, c_low = float(y.min()), low[2]
    offsets = [float(np.clip(c_low + f * (y_min - c_low), c_low, high[2])) for f in (0.5, 0.9, 0.0)]
    if model == "log_logistic":
        half = float(x[int(np.argmax(y <= 0.5 * (y[0] + y_min)))])  # where half the drop is done
        for c0, b0, tau0 in itertools.product(offsets, (1.0, 3.0), (half,)):
            yield [max(float(y[0]), low[0]), b0, c0, min(max(tau0, 1e-3), 100.0)]
        return
    for c0, b0 in itertools.product(offsets, (0.3, 1.0) if model == "power_law" else (2.0, 10.0)):
        a0 = max(float(y[0]) - c0, 1e-6)  # the curve passes near the first point
        a0 *= float(x[0]) ** b0 if model == "power_law" else math.exp(min(b0 * float(x[0]), 50.0))
        yield [a0, b0, c0]


def _fit_one(model: str, x: np.ndarray, y: np.ndarray, p0=None) -> tuple[np.ndarray, float]:
    """Best parameters in normalised steps x (last step = 1) and their relative SSE; RuntimeError if none.

    Several starting points unless ``p0`` is given (the bootstrap starts from the full fit).
    """
    low, high = _bounds(model, y)
    sigma = np.maximum(np.abs(y), 1e-8) * (1 + RECENCY * (1 - x / x[-1]))
    function = _FUNCTIONS[model]
    best, best_sse = None, math.inf
    for start in ([list(p0)] if p0 is not None else _starts(model, x, y, low, high)):
        start = [float(np.clip(v, lo, hi)) for v, lo, hi in zip(start, low, high, strict=True)]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                params, _ = curve_fit(function, x, y, p0=start, sigma=sigma, bounds=(low, high), maxfev=MAX_EVALS,
                                      jac=_JACOBIANS[model])
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum(((function(x, *params) - y) / sigma) ** 2))
        agree = math.isfinite(best_sse) and abs(sse - best_sse) <= AGREE_RTOL * best_sse + 1e-15
        if math.isfinite(sse) and sse < best_sse:
            best, best_sse = params, sse
        if agree:  # two starts reached the same minimum: further starts would too (saves 2/3 of the time)
            break
    if best is None:
        raise RuntimeError(f"{model} fit did not converge")
    return best, best_sse


def _to_step_units(model: str, params: np.ndarray, scale: float) -> tuple[float, ...]:
    """Parameters of the fit in x = t / scale, rewritten for t."""
    a, b, c, *rest = (float(v) for v in params)
    if model == "power_law":
        return a * scale**b, b, c  # a (t/s)^-b = (a s^b) t^-b
    if model == "exponential":
        return a, b / scale, c  # a exp(-b t/s) = a exp(-(b/s) t)
    return a, b, c, rest[0] * scale  # (t/s / tau)^b = (t / (tau s))^b


def fit_loss_curve(
    steps: Sequence[float],
    losses: Sequence[float],
    holdout_fraction: float = 0.25,
    n_bootstrap: int = 100,
    seed: int = 0,
    models: Sequence[CurveModel] = ALL_MODELS,
    ensemble: bool = True,
    weighting: Weighting = "equal",
) -> CurveFit:
    """Fit each curve family, keep the one with the lowest held-out error, bootstrap an interval.

    ``holdout_fraction`` of the points at the end are held out for the choice; ``n_bootstrap``
    refits give the interval (0 turns it off). ``ensemble``: ``predict`` averages every family that
    fits, weighted by ``weighting`` (see ``ensemble_weights``); False: the chosen family alone.
    Raises ConvergenceError on unusable curves.
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
    if weighting not in ("equal", "inverse_square"):
        raise ValueError(f"weighting must be 'equal' or 'inverse_square' but got {weighting=}")
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
    full_fits: dict[str, np.ndarray] = {}
    for name in sorted(models, key=lambda m: errors[m]):  # refit on all points
        if math.isfinite(errors[name]) or not full_fits:  # a family that failed on the head is left out
            try:
                full_fits[name], _ = _fit_one(name, x, y)
            except RuntimeError:
                continue
        if not ensemble and full_fits:
            break
    if not full_fits:
        raise ConvergenceError(f"no curve family of {list(models)} fits this loss curve", {"points": len(t)})
    model = min(full_fits, key=lambda m: errors[m])  # the best held-out family that refitted
    params = full_fits[model]
    weights = ensemble_weights({m: errors[m] for m in full_fits}, weighting)
    members = [EnsembleMember(model=m, params=_to_step_units(m, p, scale), weight=weights[m])
               for m, p in full_fits.items() if weights[m] > 0] if ensemble else []

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
    a, b, c, *tau = _to_step_units(model, params, scale)
    return CurveFit(
        model=model, a=a, b=b, c=c, tau=tau[0] if tau else None, holdout_errors=errors,
        residual_std=float(np.std(relative)),
        n_points=len(t), last_step=float(t[-1]), holdout_span=float(t[-1] - t[n_fit - 1]), bootstrap=bootstrap,
        members=members,
    )


ERROR_FLOOR = 1e-4  # held-out errors under 0.01% count as 0.01%: an exact fit does not get infinite weight
# equal weighting admits the members whose held-out error is within GATE x the lowest (errors floored at
# GATE_FLOOR). On the 28 development curves no member ever failed by 30x or more (30, 100 and 1000 gave the
# same figures), so the gate only drops a family that is plainly wrong, e.g. on noise-free curves
GATE = 100.0
GATE_FLOOR = 1e-9


def ensemble_weights(errors: dict[str, float], weighting: Weighting = "equal") -> dict[str, float]:
    """Weights (sum 1) of the members from their held-out errors e_m.

    equal:           w_m = 1 / |A| for m in A = {m : e_m <= GATE * min_k e_k}, else 0
    inverse_square:  w_m = e_m^-2 / sum_k e_k^-2 (errors floored at ERROR_FLOOR)
    A member with a non-finite error gets 0; if none is finite, all get equal weights.
    """
    finite = {m: e for m, e in errors.items() if math.isfinite(e)}
    if not finite:
        return {m: 1.0 / len(errors) for m in errors}
    if weighting == "equal":
        lowest = max(min(finite.values()), GATE_FLOOR)
        admitted = [m for m, e in finite.items() if max(e, GATE_FLOOR) <= GATE * lowest]
        return {m: (1.0 / len(admitted) if m in admitted else 0.0) for m in errors}
    inverse = {m: max(finite[m], ERROR_FLOOR) ** -2 if m in finite else 0.0 for m in errors}
    total = sum(inverse.values())
    return {m: v / total for m, v in inverse.items()}


def smooth_losses(losses: Sequence[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as in Adam's moment estimates)."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1) but got {beta=}")
    average, out = 0.0, []
    for i, value in enumerate(losses):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (i + 1)))
    return out


EnsembleMember.model_rebuild()  # its train_curve refers to CurveFit, defined after it
