"""The ARS optimizer, meta-optimizers, mixture-of-experts models and diffusion sampling."""
