"""The ARS optimizer, meta-optimizers, mixture-of-experts models and diffusion sampling."""

from trainopt.ars.optimizer import ARSOptimizer

__all__ = ["ARSOptimizer"]
