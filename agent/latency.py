"""Inference latency through ONNX Runtime, and the recommended model exported as model.onnx.

Latency: the workload's model exported with torch.onnx, run by onnxruntime at batch 1 on one
intra-op thread with spinning off (DESIGN.md pitfalls), median (p50) and p95 of 50 timed runs
after 5 warm-up runs. The architecture fixes the latency, so one measurement serves every
candidate; the batch size and thread count are reported with it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainopt.tools.probe_setup import build_training
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.workloads import Workload

THREADS, WARMUP, RUNS = 1, 5, 50


def example_input(workload: Workload) -> torch.Tensor:
    """One validation example (batch 1): the first tensor of the first validation batch."""
    batch, _ = next(workload.val_batches(torch.device("cpu"), batch_size=1))
    return batch[0] if isinstance(batch, tuple | list) else batch


def export(model: torch.nn.Module, x: torch.Tensor, path: Path) -> Path:
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        dynamo=False,
    )
    return path


def measure_onnx_latency(workload: Workload, out_dir: Path) -> dict[str, Any]:
    import onnxruntime as ort

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = workload.make_model()
    x = example_input(workload)
    path = export(model, x, Path(out_dir) / "latency-probe.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    for _ in range(WARMUP):
        session.run(None, feed)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    path.unlink(missing_ok=True)
    return {
        "latency_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "batch_size": 1,
        "threads": THREADS,
        "method": "onnxruntime CPU, graph optimisations on",
    }


def export_trained_onnx(workload: Workload, config: TrialConfig, device: torch.device, path: Path) -> Path:
    """Train ``config`` once more (same seed, plain loop) and export the trained model to ``path``."""
    model, optimizer, batches = build_training(workload, config, device)
    from trainopt.tools.optim_factory import build_scheduler

    scheduler = build_scheduler(optimizer, config)
    model.train()
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = workload.loss(model, next(batches))
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step(loss=loss.detach()) if config.optimizer == "ars" else optimizer.step()
        if scheduler is not None:
            scheduler.step()
    if config.optimizer == "schedulefree":
        optimizer.eval()
    return export(model.cpu(), example_input(workload), path)
