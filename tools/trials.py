"""The probe engine: one short, measured training run of a workload under a TrialConfig.

Every tool and the agent stand on ``run_trial``. A trial never raises for a diverging run: a
non-finite loss, or one above ``EXPLODE_FACTOR`` x the first loss, ends it early with
``diverged=True``. Out of memory is a ``ResourceError``, a bad configuration a
``HyperparameterError``, a loss that is not a scalar a ``ConvergenceError``. Anything else raised
while training (a bug in the model, the loss, the data, or in trainopt) is a ``WorkloadError``
naming the workload and the phase it was raised in, chained to the original exception: a bug never
looks like a measurement. A workload that cannot be trained as given (no training or validation
examples, no trainable parameters) is a ``WorkloadError`` too.

A workload with a test split has its final model measured once on it (``final_test_loss``,
``final_test_metric``; None when the trial diverged). Nothing inside a trial reads those: pruning
and ``score`` use validation, and test is for confirmation and benchmark scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch
from pydantic import BaseModel, Field

from trainopt.errors import ConvergenceError, HyperparameterError, OptimizationError, ResourceError, WorkloadError
from trainopt.tools.cancellation import check_cancelled
from trainopt.tools.memory import measure_step_memory
from trainopt.tools.optim_factory import build_meta_optimizer, build_optimizer, build_scheduler
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.workloads import Workload, get_workload
from trainopt.tools.workloads.base import Batch

EXPLODE_FACTOR = 10.0  # a loss above this multiple of the first loss counts as diverged
GRAD_STATS_EVERY = 20  # per-layer gradient norms and update ratios are sampled every N steps

# report(step, val_loss) -> True to stop the trial (a pruner's decision)
ReportFn = Callable[[int, float], bool | None]
# progress(steps_done, steps_total)
ProgressFn = Callable[[int, int], None]


class LayerGradStats(BaseModel):
    """Gradient norm of one parameter tensor, sampled every GRAD_STATS_EVERY steps."""

    mean: float
    max: float
    last: float
    weight_norm: float = Field(description="parameter norm at the end of the trial")
    update_ratio: float = Field(description="mean ||w_after - w_before|| / ||w_before|| on sampled steps")


class TrialResult(BaseModel):
    """What one trial measured. Lists are aligned with the step indices given beside them."""

    workload: str
    config: TrialConfig
    device: str
    steps_run: int
    train_losses: list[float] = Field(description="training loss at every step")
    lrs: list[float] = Field(description="learning rate of the first parameter group at every step")
    val_steps: list[int]
    val_losses: list[float]
    val_metrics: list[float | None]
    metric_name: str | None
    higher_is_better: bool = True
    final_val_loss: float
    final_val_metric: float | None
    final_test_loss: float | None = Field(
        None, description="the final model's mean loss on the workload's test split, read by no selection "
                          "(None without test data or when the trial diverged)")
    final_test_metric: float | None = Field(None, description="the final model's metric on the test split")
    grad_norm_steps: list[int]
    grad_norms: list[float] = Field(description="global gradient norm at grad_norm_steps")
    grad_stats: dict[str, LayerGradStats]
    throughput: float = Field(description="training samples per second (validation time excluded)")
    time_per_step_s: float
    peak_memory_mb: float
    memory_method: str
    wall_time_s: float
    diverged: bool
    diverged_at: int | None = None
    divergence_reason: str | None = None
    pruned: bool = False
    from_store: bool = Field(False, description="read back from the trial store, not run now")

    @property
    def score(self) -> float:
        """Lower is better: the final validation loss, +inf for a diverged trial."""
        return math.inf if self.diverged or not math.isfinite(self.final_val_loss) else self.final_val_loss


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise HyperparameterError(f"unknown device {device!r}", {"device": str(device)}) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(f"device={device!r} asked for but CUDA is not available", {"device": str(device)})
    return resolved


def run_trial(
    workload: Workload | str,
    config: TrialConfig,
    device: str | torch.device = "auto",
    report: ReportFn | None = None,
    progress: ProgressFn | None = None,
    on_trained: Callable[[torch.nn.Module], None] | None = None,
) -> TrialResult:
    """Train ``workload`` for ``config.steps`` steps and measure it.

    ``on_trained(model)``, when given, receives the trained model (in eval mode) at the end.

    Examples:
        >>> result = run_trial("digits-mlp", TrialConfig(lr=3e-3, steps=20))
        >>> result.steps_run, result.diverged
        (20, False)
    """
    workload = get_workload(workload)
    device = resolve_device(device)
    for split, count in (("training", workload.num_train), ("validation", workload.num_val)):
        if count == 0:
            raise WorkloadError(f"workload {workload.name!r} has no {split} examples: nothing to train or measure",
                                {"workload": workload.name, "phase": "data", split: 0})
    if config.batch_size > workload.num_train:
        raise HyperparameterError(
            f"batch_size={config.batch_size} exceeds the {workload.num_train} training examples of "
            f"{workload.name!r}",
            {"batch_size": config.batch_size},
        )
    phase = _Phase()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            return _train(workload, config, device, report, progress, on_trained, phase)
        except OptimizationError:
            raise
        except Exception as error:
            if not is_out_of_memory(error):  # not an expected outcome: a bug, raised as one
                raise WorkloadError.from_exception(workload.name, phase.name, error) from error
            if device.type == "cuda":
                torch.cuda.empty_cache()
            raise ResourceError(
                f"out of memory on {device} at batch_size={config.batch_size}: {error}",
                {"batch_size": config.batch_size, "device": str(device)},
            ) from error


_OOM_MESSAGES = ("out of memory", "can't allocate memory", "failed to allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, and the RuntimeError that the CPU allocator
    ("DefaultCPUAllocator: can't allocate memory") or MPS ("MPS backend out of memory") raise."""
    if isinstance(error, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _OOM_MESSAGES)


class _Phase:
    """Where a trial is (``name``), so an unexpected exception says which part raised it."""

    name = "build model"


def _train(workload, config, device, report, progress, on_trained=None, phase=None) -> TrialResult:
    phase = phase or _Phase()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = workload.make_model().to(device)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise WorkloadError(f"the model of {workload.name!r} has no trainable parameters (requires_grad=True)",
                            {"workload": workload.name, "phase": "build model"})
    phase.name = "optimizer setup"
    optimizer = build_optimizer(model, workload, config)
    scheduler = build_scheduler(optimizer, config)
    meta = build_meta_optimizer(optimizer, config)
    batches = workload.train_batches(config.batch_size, torch.Generator().manual_seed(config.seed), device)
    schedulefree = config.optimizer == "schedulefree"
    if schedulefree:
        optimizer.train()

    losses, lrs, grad_steps, grad_norms = [], [], [], []
    layer_grads: dict[str, list[float]] = {name: [] for name, _ in named}
    layer_ratios: dict[str, list[float]] = {name: [] for name, _ in named}
    val_steps, val_losses, val_metrics = [], [], []
    peak_memory_mb, memory_method = 0.0, ""
    first_loss = None
    diverged_at = reason = None
    pruned = False
    eval_time = 0.0

    def train_step(batch, sample: bool):
        """One step; when ``sample``, also per-layer grad norms and update-to-weight ratios."""
        optimizer.zero_grad(set_to_none=True)
        phase.name = "forward/loss"
        loss = workload.loss(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ConvergenceError(
                f"the loss of {workload.name!r} must be a scalar tensor but got {shape}", {"loss": str(shape)}
            )
        phase.name = "backward"
        loss.backward()
        phase.name = "optimizer step"
        clipped = None
        if config.grad_clip is not None:
            clipped = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
        layer_norms = before = None
        if sample:  # fused norms of all gradients and one copy of the weights; read back after the step
            layer_norms = torch._foreach_norm([p.grad if p.grad is not None else torch.zeros_like(p) for _, p in named])
            before = torch._foreach_mul([p.detach() for _, p in named], 1.0)
        if meta is not None:  # the meta-optimizer sets this step's hyperparameters from its gradients
            meta.update_hyperparameters({
                "loss": loss.item(),
                "grad_norm": clipped if clipped is not None else torch.stack(layer_norms).norm().item(),
                "progress": (len(losses) + 1) / config.steps,
                **getattr(model, "routing_stats", {}),
            })
        if config.optimizer == "ars":
            optimizer.step(loss=loss.detach())
        else:
            optimizer.step()
        grads = ratios = None
        if sample:  # ||w_after - w_before|| / ||w_before||; undefined (None) for an all-zero tensor
            deltas = torch._foreach_sub([p.detach() for _, p in named], before)
            grads, steps, weights = _norms(layer_norms, deltas, before)
            ratios = [d / w if w > 0 else None for d, w in zip(steps, weights, strict=True)]
        return loss, clipped, grads, ratios

    for step in range(config.steps):
        phase.name = "data"
        batch = next(batches)
        sample = meta is not None or step % GRAD_STATS_EVERY == 0 or step == config.steps - 1
        if step == 0:
            out, peak_memory_mb, memory_method = measure_step_memory(
                device, model, optimizer, lambda: train_step(batch, sample)  # noqa: B023 (called now)
            )
            loss, clipped, grads, ratios = out
        else:
            loss, clipped, grads, ratios = train_step(batch, sample)
        value = loss.item()
        losses.append(value)
        lrs.append(optimizer.param_groups[0]["lr"])
        if first_loss is None:
            first_loss = value
        if sample:
            total = clipped if clipped is not None else math.sqrt(sum(g * g for g in grads))
            grad_steps.append(step)
            grad_norms.append(total)
            for (name, _), g, r in zip(named, grads, ratios, strict=True):
                layer_grads[name].append(g)
                layer_ratios[name].append(r)
        if scheduler is not None:
            phase.name = "scheduler step"
            scheduler.step()
        if progress is not None:
            phase.name = "progress callback"
            progress(step + 1, config.steps)
        check_cancelled(step + 1, config.steps)  # an async caller that was cancelled stops here (tools/cancellation.py)

        if not math.isfinite(value) or value > EXPLODE_FACTOR * max(first_loss, 1e-12):
            diverged_at = step
            reason = "non-finite loss" if not math.isfinite(value) else (
                f"loss {value:.4g} > {EXPLODE_FACTOR:g} x first loss {first_loss:.4g}")
            break
        if (step + 1) % config.validate_every == 0 or step == config.steps - 1:
            phase.name = "validation"
            t0 = time.perf_counter()
            val_loss, val_metric = _evaluate(workload, model, optimizer if schedulefree else None,
                                             workload.val_batches(device))
            eval_time += time.perf_counter() - t0
            val_steps.append(step + 1)
            val_losses.append(val_loss)
            val_metrics.append(val_metric)
            if report is not None and report(step + 1, val_loss):
                pruned = True
                break

    diverged = diverged_at is not None
    test_loss = test_metric = None
    if workload.test_data is not None and not diverged:  # the final model, once; no choice reads it
        phase.name = "test"
        t0 = time.perf_counter()
        test_loss, test_metric = _evaluate(workload, model, optimizer if schedulefree else None,
                                           workload.test_batches(device))
        eval_time += time.perf_counter() - t0
    steps_run = len(losses)
    wall = time.perf_counter() - started
    train_time = max(wall - eval_time, 1e-9)
    if diverged and not val_losses:
        val_steps, val_losses, val_metrics = [steps_run], [math.inf], [None]
    if on_trained is not None:
        phase.name = "on_trained callback"
        if schedulefree:
            optimizer.eval()  # schedule-free's weights for inference are the averaged point x
        on_trained(model.eval())
    return TrialResult(
        workload=workload.name,
        config=config,
        device=str(device),
        steps_run=steps_run,
        train_losses=losses,
        lrs=lrs,
        val_steps=val_steps,
        val_losses=val_losses,
        val_metrics=val_metrics,
        metric_name=workload.metric_name if workload.metric_fn else None,
        higher_is_better=workload.higher_is_better,
        final_val_loss=math.inf if diverged else val_losses[-1],
        final_val_metric=None if diverged else val_metrics[-1],
        final_test_loss=test_loss,
        final_test_metric=test_metric,
        grad_norm_steps=grad_steps,
        grad_norms=grad_norms,
        grad_stats=_layer_stats(named, layer_grads, layer_ratios),
        throughput=steps_run * config.batch_size / train_time,
        time_per_step_s=train_time / max(steps_run, 1),
        peak_memory_mb=peak_memory_mb,
        memory_method=memory_method,
        wall_time_s=wall,
        diverged=diverged,
        diverged_at=diverged_at,
        divergence_reason=reason,
        pruned=pruned,
    )


def _norms(
    grad_norms: list[torch.Tensor], deltas: list[torch.Tensor], weights: list[torch.Tensor]
) -> tuple[list[float], list[float], list[float]]:
    """Per-layer gradient norms (already computed), update norms and weight norms: one host sync."""
    n = len(grad_norms)
    values = torch.stack([*grad_norms, *torch._foreach_norm(deltas + weights)]).tolist()
    return values[:n], values[n : 2 * n], values[2 * n :]


@torch.no_grad()
def _evaluate(workload: Workload, model, schedulefree_optimizer,
              batches: Iterable[tuple[Batch, int]]) -> tuple[float, float | None]:
    """Example-weighted mean loss and metric over ``batches`` (the validation or the test set)."""
    model.eval()
    if schedulefree_optimizer is not None:
        schedulefree_optimizer.eval()  # schedule-free evaluates at the averaged point x, not y
    total_loss = total_metric = 0.0
    count = 0
    for batch, n in batches:
        total_loss += workload.loss(model, batch).item() * n
        if workload.metric_fn is not None:
            total_metric += workload.metric_fn(model, batch) * n
        count += n
    model.train()
    if schedulefree_optimizer is not None:
        schedulefree_optimizer.train()
    metric = total_metric / count if workload.metric_fn is not None else None
    return total_loss / count, metric


def _layer_stats(named, layer_grads, layer_ratios) -> dict[str, LayerGradStats]:
    stats = {}
    for name, param in named:
        grads = layer_grads[name] or [0.0]
        ratios = [r for r in layer_ratios[name] if r is not None] or [0.0]
        stats[name] = LayerGradStats(
            mean=sum(grads) / len(grads), max=max(grads), last=grads[-1],
            weight_norm=param.detach().norm().item(), update_ratio=sum(ratios) / len(ratios),
        )
    return stats
