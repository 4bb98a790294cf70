"""Diffusion on toy data and digits: DDPM, sampler experts, quality metrics, a learned router."""
