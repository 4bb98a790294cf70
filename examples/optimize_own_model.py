"""Let trainopt choose the training settings of your own model: the setup to copy.

    python3 examples/optimize_own_model.py                      # for a run of 200 steps; 10 such runs of compute
    python3 examples/optimize_own_model.py --train-steps 600    # for a longer run of your own
    python3 examples/optimize_own_model.py --step-budget 400    # a quicker, rougher answer

The model is a small MLP on scikit-learn's breast-cancer table (569 tumours, 30 features, shipped
with scikit-learn: nothing is downloaded), split into training, validation and test rows. The
recommendation is for your training run (``train_steps`` at the default batch; here 200 steps). The
agent probes the model (LR range test, batch sizes, gradients), proposes candidates and races them over
selection seeds on the validation rows, then confirms the winner against the default configuration on
held-out seeds, scored on the test rows that chose nothing: the gain at your run's length is a mean with
a 90% interval (measured there, or predicted from shorter runs when the budget cannot pay for runs of
that length, and then labelled so), and the winner is recommended only when that interval lies above
zero. Everything printed is measured.
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
    train, val, test = order[:455], order[455:512], order[512:]

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 2))

    def loss(model: nn.Module, batch) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def accuracy(model: nn.Module, batch) -> float:
        return (model(batch[0]).argmax(-1) == batch[1]).float().mean().item()

    return Workload.from_callables(
        model, (x[train], y[train]), (x[val], y[val]), loss, accuracy, name="tumours", metric_name="accuracy",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "steps": 200},
        test_data=(x[test], y[test]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=200, help="your training run's length, in steps at batch 32")
    parser.add_argument("--step-budget", type=int, default=None,
                        help="compute for all probes and trials, in steps at batch 32 (default: 10 runs' worth)")
    parser.add_argument("--out", type=Path, default=Path("trainopt-out/tumours"), help="report and trial store")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: one thread is faster than several on a CPU

    budget = {} if args.step_budget is None else {"step_budget": args.step_budget}
    request = OptimizationRequest(workload=tumour_workload(), train_steps=args.train_steps, constraints=budget)
    response = TrainingOptimizationAgent(out_dir=args.out).optimize_training(request)

    c, g = response.challenger or response.recommended, response.gain
    print(f"challenger: {c.optimizer} lr={c.lr:.3g} batch={c.batch_size} {c.schedule} "
          f"(warmup {c.warmup_steps}) weight_decay={c.weight_decay:g}")
    print(f"for your run: {response.horizon.text(c.batch_size)}")
    print(f"mean test loss of runs of {g.measured_examples:,} examples, held-out seeds {g.seeds}: default "
          f"{g.baseline.loss:.4f}, challenger {g.challenger.loss:.4f}; loss reduction {g.claim_text()}: "
          f"{g.relative_loss_reduction:+.1%} (90% interval {g.interval[0]:+.1%} to {g.interval[1]:+.1%}, better on "
          f"{g.wins} of {len(g.seeds)} seeds)")
    print(f"accuracy: default {g.baseline.accuracy:.4f}, challenger {g.challenger.accuracy:.4f}")
    print(f"decision: {g.reason}")
    if (rerun := g.new_seeds_text()) is not None:
        print(f"if you re-run it: {rerun}")
    print(f"report: {response.artifacts.report_html}")


if __name__ == "__main__":
    main()
