"""Meta-optimizers: they adjust an optimizer's hyperparameters during training.

``META_OPTIMIZERS`` maps each class's short ``name`` to the class, so a meta-optimizer can be built
from a string plus keyword arguments: ``META_OPTIMIZERS["plateau"](patience=5)``.

What each reads from the metrics dict (``OptimizerWrapper`` adds ``lr``, ``weight_decay``,
``base_lr``, ``base_weight_decay``; the caller gives ``loss`` and any of the rest). Called alone,
each needs only the metrics in the "needs" column (a missing one is a ``HyperparameterError``
naming it); ``base_lr`` defaults to the first ``lr`` seen, and without ``weight_decay`` the
weight-decay rule is skipped (no ``weight_decay`` returned):

===================  ===============  ===========================================  =========================
name                 needs            reads when given                             returns
===================  ===============  ===========================================  =========================
plateau              loss, lr         weight_decay, grad_norm                      lr, weight_decay
expert_gate          base_lr or lr    gate_entropy                                 gate_lr
advanced_plateau     loss, lr         base_lr, weight_decay, grad_norm,            lr, weight_decay
                                      weight_norm
smart_expert_gate    base_lr or lr    gate_entropy, routing_sparsity,              gate_lr, expert_lr,
                                      expert_usage                                 gate_/expert_weight_decay
rl                   loss, lr         weight_decay, grad_norm, cost, progress      lr, weight_decay
===================  ===============  ===========================================  =========================
"""

from .advanced_plateau import AdvancedPlateauMetaOptimizer
from .base import MetaOptimizer
from .expert_gate import ExpertGateMetaOptimizer
from .expert_graph import ExpertGraph
from .plateau import PlateauMetaOptimizer
from .rl import RLMetaOptimizer
from .smart_expert_gate import SmartExpertGateMetaOptimizer
from .wrapper import OptimizerWrapper

META_OPTIMIZERS: dict[str, type[MetaOptimizer]] = {
    cls.name: cls
    for cls in (PlateauMetaOptimizer, ExpertGateMetaOptimizer, AdvancedPlateauMetaOptimizer,
                SmartExpertGateMetaOptimizer, RLMetaOptimizer)
}

__all__ = [
    "META_OPTIMIZERS",
    "AdvancedPlateauMetaOptimizer",
    "ExpertGateMetaOptimizer",
    "ExpertGraph",
    "MetaOptimizer",
    "OptimizerWrapper",
    "PlateauMetaOptimizer",
    "RLMetaOptimizer",
    "SmartExpertGateMetaOptimizer",
]
