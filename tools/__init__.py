"""The probe tools, the probe engine (trials) and the workloads.

Tools are looked up by name and imported on first use, so importing this package is cheap.
"""

from __future__ import annotations

import importlib

# tool name -> "module:Class" (the module under trainopt.tools)
TOOL_CLASSES = {
    "learning_rate_scheduler": "lr_scheduler:LearningRateScheduler",
    "batch_size_optimizer": "batch_size:BatchSizeOptimizer",
    "gradient_analyzer": "gradients:GradientAnalyzer",
    "convergence_predictor": "convergence:ConvergencePredictor",
    "hyperparameter_suggester": "hyperparameters:HyperparameterSuggester",
}


def get_tool(name: str):
    """The tool class registered as ``name``."""
    from trainopt.errors import HyperparameterError

    if name not in TOOL_CLASSES:
        raise HyperparameterError(f"unknown tool {name!r}; known tools: {', '.join(TOOL_CLASSES)}",
                                  {"tool": name})
    module, cls = TOOL_CLASSES[name].split(":")
    return getattr(importlib.import_module(f"trainopt.tools.{module}"), cls)


def __getattr__(name: str):
    for entry in TOOL_CLASSES.values():
        module, cls = entry.split(":")
        if cls == name:
            return getattr(importlib.import_module(f"trainopt.tools.{module}"), cls)
    if name == "ONNXOptimizer":
        return importlib.import_module("trainopt.tools.onnx_optimizer").ONNXOptimizer
    raise AttributeError(f"module 'trainopt.tools' has no attribute {name!r}")
