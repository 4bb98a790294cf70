"""Let trainopt choose the training settings of your own model: the setup to copy.

    python3 examples/optimize_own_model.py                      # 1500 training steps of probes and trials
    python3 examples/optimize_own_model.py --step-budget 400    # a quicker, rougher answer

The model is a small MLP on scikit-learn's breast-cancer table (569 tumours, 30 features, shipped
with scikit-learn: nothing is downloaded). The agent probes it (LR range test, batch sizes,
gradients), proposes candidates and races them over selection seeds, then confirms the winner
against the default configuration on held-out seeds that chose nothing: the gain is a mean with a
90% interval, and the winner is recommended only when that interval lies above zero. Everything
printed is measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.nn import functional as F

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.tools.workloads import Workload


def tumour_workload() -> Workload:
    """Your model and data as a Workload: a model factory, (x, y) tensors, a loss and a metric."""
    x, y = load_breast_cancer(return_X_y=True)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, val = order[:455], order[455:]

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 2))

    def loss(model: nn.Module, batch) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def accuracy(model: nn.Module, batch) -> float:
        return (model(batch[0]).argmax(-1) == batch[1]).float().mean().item()

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), loss, accuracy, name="tumours", metric_name="accuracy",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "steps": 200},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step-budget", type=int, default=1500, help="training steps for all probes and trials")
    parser.add_argument("--out", type=Path, default=Path("trainopt-out/tumours"), help="report and trial store")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: one thread is faster than several on a CPU

    request = OptimizationRequest(workload=tumour_workload(), constraints={"step_budget": args.step_budget})
    response = TrainingOptimizationAgent(out_dir=args.out).optimize_training(request)

    c, g = response.challenger or response.recommended, response.gain
    print(f"challenger: {c.optimizer} lr={c.lr:.3g} batch={c.batch_size} {c.schedule} "
          f"(warmup {c.warmup_steps}) weight_decay={c.weight_decay:g}")
    print(f"mean validation loss over {g.steps} steps, held-out seeds {g.seeds}: default {g.baseline.loss:.4f}, "
          f"challenger {g.challenger.loss:.4f}; loss reduction {g.relative_loss_reduction:+.1%} "
          f"(90% interval {g.interval[0]:+.1%} to {g.interval[1]:+.1%}, better on {g.wins} of {len(g.seeds)} seeds)")
    print(f"accuracy: default {g.baseline.accuracy:.4f}, challenger {g.challenger.accuracy:.4f}")
    print(f"decision: {g.reason}")
    if (rerun := g.new_seeds_text()) is not None:
        print(f"if you re-run it: {rerun}")
    print(f"report: {response.artifacts.report_html}")


if __name__ == "__main__":
    main()
