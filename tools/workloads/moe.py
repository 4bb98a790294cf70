"""``moe-digits``: the ExpertGraph mixture-of-experts on digits, with gate/expert param groups.

Its model reports gate entropy, routing sparsity and expert usage after every forward pass,
which the expert/gate meta-optimizers read.
"""

from __future__ import annotations

from trainopt.tools.workloads.base import Workload
from trainopt.tools.workloads.digits import digits_classification


def moe_digits() -> Workload:
    from trainopt.ars.meta import ExpertGraph

    return digits_classification(
        "moe-digits",
        lambda: ExpertGraph(64, 10, num_experts=8, hidden=64, top_k=2),
        "mixture of experts: top-k routing, gate/expert parameter groups, meta-optimizers",
        param_groups=lambda model, lr, weight_decay: model.param_groups(lr, weight_decay),
    )
