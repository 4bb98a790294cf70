"""Meta-optimizers: they adjust an optimizer's hyperparameters during training."""
