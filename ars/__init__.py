"""The ARS optimizer, meta-optimizers, mixture-of-experts models and diffusion sampling."""

from trainopt.ars.monitor import ARSMonitor
from trainopt.ars.optimizer import ARSOptimizer

__all__ = ["ARSMonitor", "ARSOptimizer"]
