"""Every trial's curves and configuration in TensorBoard or MLflow, as the trial store receives it.

``--log tensorboard[:DIR]`` / ``--log mlflow[:URI]`` on the CLI, ``log_trials(...)`` in Python:

    >>> from trainopt.tools.tracking import log_trials                          # doctest: +SKIP
    >>> with log_trials("tensorboard:runs/tb", "mlflow:file:./mlruns"):         # doctest: +SKIP
    ...     agent.optimize_training(request)

While the block runs, each trial stored in a trial store (``TrialStore.put``: every trial the agent
and the probe tools run through a store) is written once: training loss and learning rate at
every step, validation loss and metric at each validation point, the global gradient norm where it
was sampled, and the configuration (hyperparameters). Trials read back from the store were written
when they ran and are not written again.

TensorBoard: one run folder per trial, ``DIR/<workload>/<optimizer>-lr<lr>-b<batch>-s<seed>-<key>``,
scalars ``train/loss``, ``train/lr``, ``val/loss``, ``val/<metric>``, ``grad/global_norm``, the
configuration as hparams and as text. MLflow: one experiment per workload (``trainopt/<workload>``),
one run per trial with the configuration as params and the curves as metrics. A ``file:`` URI (or a
plain folder) uses MLflow's file store, which MLflow 3 keeps only behind ``MLFLOW_ALLOW_FILE_STORE``:
asking for one sets it. Both packages are optional extras (``pip install "trainopt[tensorboard]"``,
``"trainopt[mlflow]"``), imported only when asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from trainopt.errors import HyperparameterError
from trainopt.tools.trials import TrialResult

DEFAULT_TENSORBOARD_DIR = Path("trainopt-out") / "tensorboard"
KINDS = ("tensorboard", "mlflow")


class TrialLogger(Protocol):
    def log_trial(self, result: TrialResult, key: str) -> None: ...

    def close(self) -> None: ...


_loggers: list[TrialLogger] = []
_lock = threading.Lock()  # trials may finish in several threads at once (async tools)


def notify(result: TrialResult, key: str) -> None:
    """Write a trial that has just been stored to every active logger (the trial store calls this)."""
    if not _loggers or result.from_store:
        return
    with _lock:
        for logger in list(_loggers):
            logger.log_trial(result, key)


@contextlib.contextmanager
def log_trials(*specs: str) -> Iterator[list[TrialLogger]]:
    """Write each trial stored while the block runs to the loggers ``specs`` name (see the module doc)."""
    loggers = [build_logger(spec) for spec in specs if spec]
    with _lock:
        _loggers.extend(loggers)
    try:
        yield loggers
    finally:
        with _lock:
            for logger in loggers:
                _loggers.remove(logger)
        for logger in loggers:
            logger.close()


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"tensorboard:runs/tb"`` -> ("tensorboard", "runs/tb"); ``"mlflow"`` -> ("mlflow", None)."""
    kind, _, target = spec.partition(":")
    if kind not in KINDS:
        raise HyperparameterError(f"--log must be tensorboard[:DIR] or mlflow[:URI] but got {spec!r}", {"log": spec})
    return kind, target or None


def build_logger(spec: str) -> TrialLogger:
    kind, target = parse_spec(spec)
    return TensorBoardLogger(target or DEFAULT_TENSORBOARD_DIR) if kind == "tensorboard" else MLflowLogger(target)


def flat_config(result: TrialResult) -> dict[str, Any]:
    """The configuration as scalar hyperparameters (dicts as JSON text, None as "none")."""
    values = result.config.model_dump(mode="json")
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else ("none" if v is None else v)
            for k, v in values.items()}


def run_name(result: TrialResult, key: str) -> str:
    c = result.config
    return f"{c.optimizer}-lr{c.lr:.3g}-b{c.batch_size}-{c.schedule}-s{c.seed}-{key[:8]}"


def curves(result: TrialResult) -> Iterator[tuple[str, int, float]]:
    """(tag, step, value) of every point of the trial's curves; non-finite values are skipped."""
    import math

    points = [("train/loss", i, v) for i, v in enumerate(result.train_losses)]
    points += [("train/lr", i, v) for i, v in enumerate(result.lrs)]
    points += [("val/loss", s, v) for s, v in zip(result.val_steps, result.val_losses, strict=False)]
    if result.metric_name:
        points += [(f"val/{result.metric_name}", s, v)
                   for s, v in zip(result.val_steps, result.val_metrics, strict=False) if v is not None]
    points += [("grad/global_norm", s, v) for s, v in zip(result.grad_norm_steps, result.grad_norms, strict=False)]
    return ((tag, step, float(value)) for tag, step, value in points if math.isfinite(value))


class TensorBoardLogger:
    """One event-file folder per trial under ``root/<workload>/``."""

    def __init__(self, root: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise HyperparameterError(
                "--log tensorboard needs the tensorboard package: pip install 'trainopt[tensorboard]'",
                {"log": "tensorboard"}) from error
        self.root, self._writer = Path(root), SummaryWriter

    def log_trial(self, result: TrialResult, key: str) -> None:
        folder = self.root / result.workload / run_name(result, key)
        writer = self._writer(log_dir=str(folder))
        try:
            for tag, step, value in curves(result):
                writer.add_scalar(tag, value, step)
            writer.add_text("config", "```\n" + result.config.model_dump_json(indent=2) + "\n```")
            final = {"hparam/final_val_loss": result.final_val_loss}
            if result.final_val_metric is not None:
                final[f"hparam/final_val_{result.metric_name or 'metric'}"] = result.final_val_metric
            writer.add_hparams(flat_config(result), final, run_name=".")
        finally:
            writer.close()

    def close(self) -> None:
        pass


class MLflowLogger:
    """One MLflow run per trial in experiment ``trainopt/<workload>``, at ``uri`` (None: MLflow's default)."""

    def __init__(self, uri: str | None):
        if uri is not None and (uri.startswith("file:") or "://" not in uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: the file store is opt-in
            if "://" not in uri and not uri.startswith("file:"):
                uri = Path(uri).resolve().as_uri()
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as error:
            raise HyperparameterError("--log mlflow needs MLflow: pip install 'trainopt[mlflow]'",
                                      {"log": "mlflow"}) from error
        self.client = MlflowClient(uri)
        self.uri = uri
        self._experiments: dict[str, str] = {}

    def _experiment(self, workload: str) -> str:
        name = f"trainopt/{workload}"
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            self._experiments[name] = found.experiment_id if found else self.client.create_experiment(name)
        return self._experiments[name]

    def log_trial(self, result: TrialResult, key: str) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self._experiment(result.workload), run_name=run_name(result, key))
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in flat_config(result).items()]
        tags = [RunTag("trainopt.workload", result.workload), RunTag("trainopt.device", result.device),
                RunTag("trainopt.trial_key", key), RunTag("trainopt.diverged", str(result.diverged))]
        metrics = [Metric(tag.replace("/", "_"), value, 0, step) for tag, step, value in curves(result)]
        self.client.log_batch(run_id, params=params, tags=tags)
        for i in range(0, len(metrics), 1000):  # MLflow accepts at most 1000 metrics per batch
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        self.client.set_terminated(run_id, "FAILED" if result.diverged else "FINISHED")

    def close(self) -> None:
        pass
