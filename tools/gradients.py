"""GradientAnalyzer: per-layer gradient health over a short training run, as typed findings.

Over ``steps`` training steps (the workload's default optimizer and LR unless given) it records
the gradient norm of every parameter tensor at every step, the update-to-weight ratio
||w_after - w_before|| / ||w_before|| every ``sample_every`` steps, and the global gradient norm. Then:

- vanishing layer:  mean gradient norm < ``vanish_ratio`` x the largest layer's mean (critical when
                    exactly zero: the parameter gets no gradient at all);
- exploding layer:  a layer's largest gradient norm > ``spike_factor`` x its median, or a
                    non-finite gradient;
- update-to-weight: > 1e-1 per step is a warning (the LR is too high for that layer); < 1e-6 an
                    info (it barely moves). About 1e-3 is the usual healthy value (Karpathy, cs231n);
- gradient noise scale B_simple (McCandlish et al. 2018) from |G_B|^2 of the training batch and of
  a small batch every ``sample_every`` steps, averaged over the run;
- clipping threshold: the ``clip_percentile`` percentile of the global norms;
- dead ReLU fraction per ReLU (tools.dead_relu) on the validation set after training.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from trainopt.tools.base import Tool
from trainopt.tools.dead_relu import DeadReLU, dead_relu_fractions
from trainopt.tools.noise_scale import NoiseScale, grad_sq_norm, noise_scale_from_norms
from trainopt.tools.probe_setup import (
    build_training,
    probe_config,
    require_finite_first_loss,
    scalar_loss,
    training_errors,
)
from trainopt.tools.trial_config import OptimizerName

UPDATE_RATIO_HIGH = 1e-1
UPDATE_RATIO_LOW = 1e-6


class Finding(BaseModel):
    severity: Literal["info", "warning", "critical"]
    layer: str | None = Field(description="parameter or ReLU name; None for the whole model")
    evidence: str = Field(description="the measured numbers behind the finding")
    suggested_fix: str


class LayerGradients(BaseModel):
    name: str
    grad_norm_mean: float
    grad_norm_median: float
    grad_norm_max: float
    weight_norm: float = Field(description="parameter norm after the run")
    update_ratio: float = Field(description="mean ||dw|| / ||w|| per step, on sampled steps")
    status: Literal["ok", "vanishing", "exploding", "no gradient"]


class GradientInput(BaseModel):
    steps: int = Field(200, gt=1, description="training steps observed")
    sample_every: int = Field(5, gt=0, description="update ratios and noise-scale samples every N steps")
    lr: float | None = Field(None, gt=0, description="default: the workload's LR")
    optimizer: OptimizerName | None = Field(None, description="default: the workload's optimizer")
    batch_size: int | None = Field(None, gt=1, description="default: the workload's batch size")
    vanish_ratio: float = Field(1e-4, gt=0, lt=1, description="vanishing: below this share of the top layer")
    spike_factor: float = Field(100.0, gt=1, description="exploding: max norm above this x the median")
    clip_percentile: float = Field(90.0, gt=0, le=100, description="percentile of global norms to clip at")
    noise_small_batch: int | None = Field(None, gt=0, description="default: batch / 8 (at least 2)")
    seed: int = Field(0, ge=0)


class GradientOutput(BaseModel):
    steps_run: int
    diverged: bool
    final_loss: float
    layers: list[LayerGradients]
    layer_norms: dict[str, list[float]] = Field(description="gradient norm per layer at every step")
    global_norms: list[float] = Field(description="global gradient norm at every step")
    clip_percentile: float
    clip_threshold: float
    noise_scale: NoiseScale | None
    dead_relu: list[DeadReLU]
    findings: list[Finding]


class GradientAnalyzer(Tool):
    """Per-layer gradient norms, vanishing/exploding layers, update ratios, noise scale, clip threshold,
    dead ReLUs, reported as typed findings.

    Examples:
        >>> out = GradientAnalyzer("digits-mlp")(steps=50)                    # doctest: +SKIP
        >>> [f.severity for f in out.findings]                                 # doctest: +SKIP
        ['info', 'info']
    """

    name = "gradient_analyzer"
    description = ("Per-layer gradient norms over a short run: vanishing and exploding layers, "
                   "update-to-weight ratios, gradient noise scale, a clipping threshold and dead-ReLU "
                   "fractions, as findings with severity, layer, evidence and a suggested fix.")
    Input = GradientInput
    Output = GradientOutput

    def run(self, input: GradientInput) -> GradientOutput:
        workload, device = self.workload, self.device
        config = probe_config(workload, optimizer=input.optimizer, lr=input.lr,
                              batch_size=input.batch_size, seed=input.seed, schedule="constant",
                              warmup_steps=0)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                training_errors(workload, device, lr=config.lr):
            return self._analyze(input, config)

    def plot(self, output: GradientOutput, path: str | Path) -> None:
        from trainopt.tools.plots import plot_gradient_norms

        plot_gradient_norms(output, path)

    def _analyze(self, input: GradientInput, config) -> GradientOutput:
        workload, device = self.workload, self.device
        model, optimizer, batches = build_training(workload, config, device)
        small = input.noise_small_batch or max(2, config.batch_size // 8)
        small_batches = workload.train_batches(small, torch.Generator().manual_seed(config.seed + 1),
                                               device)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        norms: dict[str, list[float]] = {n: [] for n, _ in named}
        ratios: dict[str, list[float]] = {n: [] for n, _ in named}
        global_norms, small_sq, big_sq = [], [], []
        diverged, loss_value = False, math.nan
        for step in range(input.steps):
            sample = step % input.sample_every == 0
            if sample and small < config.batch_size:  # |G_small|^2 at the current weights
                optimizer.zero_grad(set_to_none=True)
                scalar_loss(workload, model, next(small_batches)).backward()
                small_sq.append(grad_sq_norm(model))
            optimizer.zero_grad(set_to_none=True)
            loss = scalar_loss(workload, model, next(batches))
            loss_value = loss.item()
            if step == 0:
                require_finite_first_loss(workload, loss_value, lr=config.lr)
            if not math.isfinite(loss_value):
                diverged = True
                break
            loss.backward()
            layer = [p.grad.norm().item() if p.grad is not None else 0.0 for _, p in named]
            for (name, _), value in zip(named, layer, strict=True):
                norms[name].append(value)
            total = math.sqrt(sum(v * v for v in layer))
            global_norms.append(total)
            if sample and small < config.batch_size:
                big_sq.append(total**2)
            before = [p.detach().clone() for _, p in named] if sample else None
            optimizer.step()
            if before is not None:
                for (name, p), b in zip(named, before, strict=True):
                    scale = b.norm().item()
                    if scale > 1e-12:  # a zero-initialised tensor (a bias) has no ratio yet
                        ratios[name].append((p.detach() - b).norm().item() / scale)
            if self.progress is not None:
                self.progress(step + 1, input.steps)
        optimizer.zero_grad(set_to_none=True)
        layers = _layer_reports(named, norms, ratios, input)
        finite = [g for g in global_norms if math.isfinite(g)] or [math.nan]
        clip = float(np.percentile(finite, input.clip_percentile))
        noise = (noise_scale_from_norms(small, config.batch_size, statistics.fmean(small_sq),
                                        statistics.fmean(big_sq), len(small_sq)) if big_sq else None)
        dead = dead_relu_fractions(model, workload.loss, (b for b, _ in workload.val_batches(device)))
        findings = _findings(layers, dead, clip, input, noise, config.batch_size, diverged,
                             len(global_norms))
        return GradientOutput(
            steps_run=len(global_norms), diverged=diverged, final_loss=loss_value, layers=layers,
            layer_norms=norms, global_norms=global_norms, clip_percentile=input.clip_percentile,
            clip_threshold=clip, noise_scale=noise, dead_relu=dead, findings=findings,
        )


def _layer_reports(named, norms, ratios, input: GradientInput) -> list[LayerGradients]:
    means = {n: statistics.fmean(v) if v else 0.0 for n, v in norms.items()}
    top = max((m for m in means.values() if math.isfinite(m)), default=0.0)
    reports = []
    for name, param in named:
        values = norms[name] or [0.0]
        median, largest = statistics.median(values), max(values)
        spiking = median > 0 and largest > input.spike_factor * median
        if not all(math.isfinite(v) for v in values) or spiking:
            status = "exploding"
        elif largest == 0.0:
            status = "no gradient"
        elif means[name] < input.vanish_ratio * top:
            status = "vanishing"
        else:
            status = "ok"
        reports.append(LayerGradients(
            name=name, grad_norm_mean=means[name], grad_norm_median=median, grad_norm_max=largest,
            weight_norm=param.detach().norm().item(),
            update_ratio=statistics.fmean(ratios[name]) if ratios[name] else 0.0, status=status,
        ))
    return reports


def _findings(layers, dead, clip, input, noise, batch, diverged, steps) -> list[Finding]:
    found: list[Finding] = []
    top = max(layers, key=lambda r: r.grad_norm_mean if math.isfinite(r.grad_norm_mean) else -1.0)
    if diverged:
        found.append(Finding(severity="critical", layer=None,
                             evidence=f"the loss became non-finite after {steps} steps",
                             suggested_fix="lower the LR (run the LR range test) or clip gradients"))
    for r in layers:
        if r.status == "no gradient":
            found.append(Finding(severity="critical", layer=r.name,
                                 evidence="gradient norm exactly 0 at every step",
                                 suggested_fix="the parameter is unused or detached from the loss: check "
                                               "the forward pass, or freeze it (requires_grad=False)"))
        elif r.status == "vanishing":
            found.append(Finding(
                severity="warning", layer=r.name,
                evidence=f"mean gradient norm {r.grad_norm_mean:.3g} is "
                         f"{r.grad_norm_mean / top.grad_norm_mean:.2g} x the largest layer's ({top.name}: "
                         f"{top.grad_norm_mean:.3g}); threshold {input.vanish_ratio:g}",
                suggested_fix="check for a saturating or badly scaled layer before it; use residual "
                              "connections, normalisation (LayerNorm/BatchNorm) or He/Xavier initialisation"))
        elif r.status == "exploding":
            found.append(Finding(
                severity="critical", layer=r.name,
                evidence=f"gradient norm peaked at {r.grad_norm_max:.3g}, "
                         f"{r.grad_norm_max / max(r.grad_norm_median, 1e-30):.3g} x its median "
                         f"{r.grad_norm_median:.3g} (threshold {input.spike_factor:g} x)",
                suggested_fix=f"clip the global gradient norm (e.g. at {clip:.3g}), lower the LR or add "
                              "warmup"))
        if r.update_ratio > UPDATE_RATIO_HIGH:
            found.append(Finding(
                severity="warning", layer=r.name,
                evidence=f"update-to-weight ratio {r.update_ratio:.3g} per step (> {UPDATE_RATIO_HIGH:g}; "
                         "~1e-3 is typical)", suggested_fix="lower the learning rate for this layer or overall"))
        elif 0 < r.update_ratio < UPDATE_RATIO_LOW and r.status == "ok":
            found.append(Finding(
                severity="info", layer=r.name,
                evidence=f"update-to-weight ratio {r.update_ratio:.3g} per step (< {UPDATE_RATIO_LOW:g})",
                suggested_fix="the layer barely moves: raise its LR, or freeze it if that is intended"))
    for d in dead:
        if d.dead_fraction > 0.5:
            found.append(Finding(
                severity="critical" if d.dead_fraction > 0.9 else "warning", layer=d.layer,
                evidence=f"{d.dead_fraction:.0%} of {d.units} ReLU units output 0 for every validation "
                         "example",
                suggested_fix="lower the LR, use LeakyReLU/GELU, or He initialisation with small positive "
                              "biases"))
    found.append(Finding(
        severity="info", layer=None,
        evidence=f"the {input.clip_percentile:g}th percentile of {steps} global gradient norms is {clip:.3g}",
        suggested_fix=f"grad_clip={clip:.3g} clips about {100 - input.clip_percentile:g}% of steps"))
    if noise is not None and noise.b_simple is not None:
        if batch > 2 * noise.b_simple:
            advice = "smaller batches would use samples better (McCandlish et al. 2018)"
        elif batch < noise.b_simple / 4:
            advice = "larger batches (up to about B_simple) would train in fewer steps at little extra cost"
        else:
            advice = "the batch size is near the critical batch size"
        found.append(Finding(severity="info", layer=None,
                             evidence=f"gradient noise scale B_simple={noise.b_simple:.0f} at batch {batch}",
                             suggested_fix=advice))
    return found
