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

# the tools an LLM framework is given (tools/langchain.py, agent/mcp_server.py): every probe tool, then the
# ONNX export, which is no probe (it trains the model once, exports it and times it) but takes JSON arguments
FRAMEWORK_TOOLS = (*TOOL_CLASSES, "onnx_optimizer")


def get_tool(name: str):
    """The tool class registered as ``name``."""
    from trainopt.errors import HyperparameterError

    if name not in TOOL_CLASSES:
        raise HyperparameterError(f"unknown tool {name!r}; known tools: {', '.join(TOOL_CLASSES)}",
                                  {"tool": name})
    module, cls = TOOL_CLASSES[name].split(":")
    return getattr(importlib.import_module(f"trainopt.tools.{module}"), cls)


def get_framework_tool(name: str):
    """The tool class named ``name`` in ``FRAMEWORK_TOOLS``: a probe tool (``get_tool``) or the ONNX export."""
    if name == "onnx_optimizer":
        return importlib.import_module("trainopt.tools.onnx_optimizer").ONNXOptimizer
    return get_tool(name)


def __getattr__(name: str):
    for entry in TOOL_CLASSES.values():
        module, cls = entry.split(":")
        if cls == name:
            return getattr(importlib.import_module(f"trainopt.tools.{module}"), cls)
    if name == "ONNXOptimizer":
        return importlib.import_module("trainopt.tools.onnx_optimizer").ONNXOptimizer
    raise AttributeError(f"module 'trainopt.tools' has no attribute {name!r}")
