"""Diffusion on toy data and digits: DDPM, sampler experts, quality metrics, a learned router.

Importing this package is cheap: diffusers is imported only when a diffusers-backed sampler runs.
"""

from .bandit import TableRouter, train_table_router
from .data import TOY_NAMES, distance_to_support, load_digits_data, sample_toy
from .denoiser import NFECounter, VPDenoiser
from .digits_quality import DigitsClassifier, class_agreement, frechet_distance, train_digits_classifier
from .distill import VPrediction, progressive_distill, sample_distilled, time_grid
from .metrics import energy_distance, mmd_rbf, off_mode_fraction, quality_floor, sliced_wasserstein, toy_quality
from .model import (
    ClassConditioned,
    NoisePredictor,
    NoisePredictorConfig,
    load_checkpoint,
    save_checkpoint,
    train_ddpm,
    vp_alphas_cumprod,
)
from .route import route_and_sample
from .router import (
    BUDGETS,
    DATASETS,
    EXPERTS,
    Request,
    Router,
    load_router,
    product_arms,
    request_features,
    save_router,
    train_router,
)
from .routing_env import ToySamplingEnv, run_expert
from .samplers import (
    SAMPLERS,
    karras_sigmas,
    sample_adaptive,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_heun,
)

__all__ = [
    "BUDGETS", "DATASETS", "EXPERTS", "SAMPLERS", "TOY_NAMES",
    "ClassConditioned", "DigitsClassifier", "NFECounter", "NoisePredictor", "NoisePredictorConfig",
    "Request", "Router", "TableRouter", "ToySamplingEnv", "VPDenoiser", "VPrediction",
    "class_agreement", "distance_to_support", "energy_distance", "frechet_distance", "karras_sigmas",
    "load_checkpoint", "load_digits_data", "load_router", "mmd_rbf", "off_mode_fraction", "product_arms",
    "progressive_distill", "quality_floor", "request_features", "route_and_sample", "run_expert",
    "sample_distilled", "sample_adaptive", "sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "sample_heun",
    "sample_toy", "save_checkpoint", "save_router", "sliced_wasserstein", "toy_quality",
    "time_grid", "train_ddpm", "train_digits_classifier", "train_router", "train_table_router", "vp_alphas_cumprod",
]
