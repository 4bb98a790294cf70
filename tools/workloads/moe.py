"""``moe-digits``: the ExpertGraph mixture-of-experts on digits, with gate/expert param groups.

Its model reports gate entropy, routing sparsity and expert usage after every forward pass,
which the expert/gate meta-optimizers read.
"""

from __future__ import annotations

from trainopt.tools.workloads.base import Workload
from trainopt.tools.workloads.digits import classification_accuracy, classification_loss, digits_split


def moe_digits() -> Workload:
    from trainopt.ars.meta import ExpertGraph

    train, val = digits_split()
    return Workload(
        name="moe-digits",
        make_model=lambda: ExpertGraph(64, 10, num_experts=8, hidden=64, top_k=2),
        train_data=train,
        val_data=val,
        loss_fn=classification_loss,
        metric_fn=classification_accuracy,
        metric_name="accuracy",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "steps": 300},
        exercises="mixture of experts: top-k routing, gate/expert parameter groups, meta-optimizers",
        param_groups=lambda model, lr, weight_decay: model.param_groups(lr, weight_decay),
    )
