"""The TrainingOptimizationAgent: a DSPy planner over the probe tools, chat, record and replay."""
