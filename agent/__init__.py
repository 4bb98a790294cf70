"""The TrainingOptimizationAgent: a DSPy planner over the probe tools, record and replay, report."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy is imported: no network

from trainopt.agent.agent import STEPS, ProgressCallback, TrainingOptimizationAgent  # noqa: E402
from trainopt.agent.schemas import (  # noqa: E402
    Constraints,
    MultiObjective,
    OptimizationRequest,
    OptimizationResponse,
    TrainingConfig,
    TrainingMetrics,
)

__all__ = [
    "STEPS",
    "Constraints",
    "MultiObjective",
    "OptimizationRequest",
    "OptimizationResponse",
    "ProgressCallback",
    "TrainingConfig",
    "TrainingMetrics",
    "TrainingOptimizationAgent",
]
