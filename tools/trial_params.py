"""A stored trial as optuna-dashboard reads it: params = the configuration, intermediate values = the
validation curve (the objective value is the final validation loss).

Optuna requires a parameter's distribution to keep its kind (and, for a categorical one, its
choices) across the trials of a study, so each configuration field has a fixed kind here:
categorical fields list every allowed value, numeric ones get a one-point range at the trial's
value (lr on a log scale). Fields that are None or dicts (optimizer_kwargs) are left out of params.
Open the store with ``optuna-dashboard sqlite:///trainopt-out/trials.db``.
"""

from __future__ import annotations

import math
import typing

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainopt.tools.trial_config import OptimizerName, ScheduleName, TrialConfig, _meta_optimizer_names
from trainopt.tools.trials import TrialResult

_LOG_SCALE = {"lr"}


def _categorical(field: str) -> tuple | None:
    if field == "optimizer":
        return typing.get_args(OptimizerName)
    if field == "schedule":
        return typing.get_args(ScheduleName)
    if field == "meta_optimizer":
        return (None, *_meta_optimizer_names())
    return None


def config_params(config: TrialConfig) -> tuple[dict, dict[str, BaseDistribution]]:
    """(params, distributions) of a configuration, for ``optuna.trial.create_trial``."""
    params, distributions = {}, {}
    for field, value in config.model_dump(mode="json").items():
        choices = _categorical(field)
        if choices is not None:
            if value not in choices:
                continue  # a value this trainopt does not list (an older store): leave it out
            params[field], distributions[field] = value, CategoricalDistribution(choices)
        elif isinstance(value, bool) or value is None or isinstance(value, dict):
            continue
        elif isinstance(value, int):
            params[field], distributions[field] = value, IntDistribution(value, value)
        elif isinstance(value, float) and math.isfinite(value):
            params[field], distributions[field] = value, FloatDistribution(value, value, log=field in _LOG_SCALE)
    return params, distributions


def intermediate_values(result: TrialResult) -> dict[int, float]:
    """The validation curve, {step: val loss}, finite points only."""
    return {int(s): float(v) for s, v in zip(result.val_steps, result.val_losses, strict=False) if math.isfinite(v)}
