"""The CUDA paths, measured on a GPU: probe throughput and peak memory against the CPU, a real
out-of-memory in the batch-size probe, and an agent run recorded on the GPU (replayed on a CPU elsewhere).

    python3 bench/gpu_check.py --out DIR            # needs a CUDA device; writes DIR/gpu_check.json and DIR/rec
    python3 bench/gpu_check.py --out DIR --device cpu   # a dry run of the same script on the CPU

Every figure is measured in this run: trials of the same configuration on the GPU and on one CPU thread;
the batch probe on a workload whose saved activations (2 MiB per example) exceed the GPU at 2^16-2^17
examples, so ``torch.cuda.OutOfMemoryError`` is raised, caught and reported as "does not fit".
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from trainopt.tools import get_tool
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import run_trial
from trainopt.tools.workloads import Workload

TRIALS = {"digits-mlp": 300, "digits-cnn": 300, "char-gpt": 100, "moe-digits": 300}
WIDE, DEPTH = 65_536, 8  # activations saved per example: DEPTH x WIDE x 4 B = 2 MiB


class MemoryHog(nn.Module):
    """One cheap projection, then DEPTH elementwise layers whose saved activations dominate memory."""

    def __init__(self):
        super().__init__()
        self.up, self.down = nn.Linear(16, WIDE), nn.Linear(WIDE, 2)

    def forward(self, x):  # (B, 16) -> (B, 2)
        h = self.up(x)  # (B, WIDE)
        for _ in range(DEPTH):
            h = torch.tanh(h) * 1.01  # autograd keeps each layer's output: DEPTH x (B, WIDE)
        return self.down(h)


def memory_hog(examples: int) -> Workload:
    """A user workload (public API) built to run out of GPU memory at a large batch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(examples, 16, generator=g)
    y = (x[:, 0] > 0).long()

    def loss(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    return Workload.from_callables(MemoryHog, (x, y), (x[:1024], y[:1024]), loss, name="memory-hog")


def trial_pair(name: str, steps: int, device: str) -> dict:
    """The same trial on ``device`` and on one CPU thread: time per step and peak memory."""
    config = TrialConfig(steps=steps, seed=0)
    out = {}
    for where in (device, "cpu"):
        run_trial(name, config.model_copy(update={"steps": 5}), device=where)  # warm-up: kernels, allocator
        result = run_trial(name, config, device=where)
        out[where] = {"time_per_step_ms": result.time_per_step_s * 1e3, "peak_memory_mb": result.peak_memory_mb,
                      "memory_method": result.memory_method, "final_val_loss": result.final_val_loss}
    out["speedup"] = out["cpu"]["time_per_step_ms"] / out[device]["time_per_step_ms"]
    return out


def batch_probe(device: str, max_batch: int) -> dict:
    workload = memory_hog(max_batch)
    tool = get_tool("batch_size_optimizer")(workload, device=torch.device(device))
    started = time.perf_counter()
    out = tool.run(tool.Input(min_batch=256, max_batch=max_batch, noise_warm_steps=2))
    return {"max_batch_size": out.max_batch_size, "recommended": out.recommended_batch_size,
            "seconds": time.perf_counter() - started,
            "measurements": [m.model_dump(mode="json") for m in out.measurements]}


def record_agent(device: str, folder: Path) -> dict:
    """An agent run on ``device``, recorded into ``folder``/rec (its report goes to a temporary folder)."""
    import tempfile

    from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent

    request = OptimizationRequest(workload="digits-cnn", num_candidates=3, constraints={"step_budget": 1500})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        response = TrainingOptimizationAgent(device=device, out_dir=out).optimize_training(
            request, record=folder / "rec")
    g = response.gain
    return {"seconds": time.perf_counter() - started, "device": response.device, "adopted": g.adopted,
            "gain": g.relative_loss_reduction, "interval": g.interval, "recommended": response.recommended.model_dump()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-batch", type=int, default=2**17)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    result = {"device": gpu, "torch": torch.__version__, "trials": {}, "cpu_threads": 1}
    for name, steps in TRIALS.items():
        result["trials"][name] = trial_pair(name, steps, args.device)
        print(name, json.dumps(result["trials"][name]), flush=True)
    result["batch_probe"] = batch_probe(args.device, args.max_batch if args.device == "cuda" else 1024)
    print("batch probe", result["batch_probe"]["max_batch_size"], flush=True)
    result["agent"] = record_agent(args.device, args.out)
    print("agent", json.dumps(result["agent"]), flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
    rows = ["| workload | steps | GPU ms/step | CPU (1 thread) ms/step | speedup | GPU peak MiB | CPU peak MiB |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["trials"].items():
        d = r[args.device]
        rows.append(f"| {name} | {TRIALS[name]} | {d['time_per_step_ms']:.2f} | {r['cpu']['time_per_step_ms']:.2f} "
                    f"| {r['speedup']:.1f}x | {d['peak_memory_mb']:.1f} | {r['cpu']['peak_memory_mb']:.1f} |")
    print(f"Device: {gpu}, torch {torch.__version__}\n\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
