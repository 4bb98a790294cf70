"""trainopt: PyTorch training settings as a measured decision instead of a guess.

The public API is re-exported here lazily, so ``import trainopt`` stays fast and a
missing optional piece fails only when it is used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from trainopt.errors import OptimizationError

try:
    __version__ = version("trainopt")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

# public name -> module that defines it
_LAZY = {
    "ARSOptimizer": "trainopt.ars",
    "ARSMonitor": "trainopt.ars",
    "Workload": "trainopt.tools.workloads",
    "TrialConfig": "trainopt.tools.trials",
    "TrialResult": "trainopt.tools.trials",
    "run_trial": "trainopt.tools.trials",
    "TrainingOptimizationAgent": "trainopt.agent",
    "TrainingConfig": "trainopt.agent.schemas",
    "OptimizationRequest": "trainopt.agent.schemas",
    "OptimizationResponse": "trainopt.agent.schemas",
}

__all__ = ["OptimizationError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainopt' has no attribute {name!r}")
