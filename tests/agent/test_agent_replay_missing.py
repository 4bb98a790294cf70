"""Replaying a folder that holds no recording, from Python: a typed error naming the folder."""

from __future__ import annotations

import pytest

from trainopt.agent import TrainingOptimizationAgent
from trainopt.errors import HyperparameterError


def test_replaying_a_missing_folder_is_a_hyperparameter_error_naming_it(tmp_path):
    missing = tmp_path / "nope"
    # an OptimizationError subclass naming the path, not a FileNotFoundError from inside the replay
    with pytest.raises(HyperparameterError, match="nope"):
        TrainingOptimizationAgent(out_dir=tmp_path / "out").optimize_training(replay=missing)
