"""``trainopt trial`` (one measured trial) and ``trainopt sweep`` (a resumable grid of trials)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from trainopt.commands import work_done
from trainopt.errors import OptimizationError

console = Console(stderr=True)

WORKLOAD = typer.Option("digits-mlp", "--workload", "-w", help="A name from `trainopt workloads`.")
DEVICE = typer.Option("auto", help="cpu, cuda, cuda:1 ... or auto (CUDA when available).")
STORAGE = typer.Option(
    None, help="Optuna storage URL for the trial store (default: a SQLite file in --out)."
)
OUT = typer.Option(Path("trainopt-out"), help="Output folder (holds the default trial store).")
JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")
LOG = typer.Option(None, "--log", help="Also write each trial's curves and configuration: tensorboard[:DIR] or "
                   "mlflow[:URI] (repeatable; docs/integrations.md).")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


def _config(workload_name: str, given: dict[str, Any]):
    """The workload's default configuration, overridden by the options the user gave."""
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.workloads import get_workload

    defaults = get_workload(workload_name).default_config
    return TrialConfig(**{**defaults, **{k: v for k, v in given.items() if v is not None}})


def _fail(error: OptimizationError) -> None:
    console.print(f"[red]error[/red] ({error.type}): {error.message}")
    raise typer.Exit(2)


def trial(
    workload: str = WORKLOAD,
    optimizer: str = typer.Option(None, help="adamw, adam, sgd, ars, schedulefree or prodigy."),
    lr: float = typer.Option(None, help="Peak learning rate (> 0)."),
    weight_decay: float = typer.Option(None, help="Weight decay (>= 0)."),
    batch_size: int = typer.Option(None, help="Training examples per step."),
    steps: int = typer.Option(None, help="Optimizer steps."),
    schedule: str = typer.Option(None, help="constant, cosine, warmup_cosine, one_cycle or step."),
    warmup_steps: int = typer.Option(None, help="Linear warmup steps."),
    grad_clip: float = typer.Option(None, help="Clip the global gradient norm to this value."),
    meta_optimizer: str = typer.Option(None, help="A meta-optimizer from trainopt.ars.meta, e.g. plateau."),
    seed: int = typer.Option(None, help="Seed for model init and data order."),
    device: str = DEVICE,
    storage: str = STORAGE,
    out: Path = OUT,
    json_output: bool = JSON,
    log: list[str] = LOG,
):
    """Run one measured training trial and print what it measured.

    Options left out come from the workload's default configuration. A trial already in the
    store (same workload, configuration, seed and device) is read back instead of run again.
    """
    from trainopt.tools.store import TrialStore
    from trainopt.tools.tracking import log_trials

    given = dict(optimizer=optimizer, lr=lr, weight_decay=weight_decay, batch_size=batch_size, steps=steps,
                 schedule=schedule, warmup_steps=warmup_steps, grad_clip=grad_clip,
                 meta_optimizer=meta_optimizer, seed=seed)
    try:
        config = _config(workload, given)
        store = TrialStore(storage, out_dir=out)
        with log_trials(*(log or [])), _progress() as bar:
            task = bar.add_task(f"{workload} trial", total=config.steps)
            result = store.run(workload, config, device=device,
                               progress=lambda done, total: bar.update(task, completed=done))
    except OptimizationError as error:
        _fail(error)
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table(title=f"{workload}: {config.optimizer} lr={config.lr:g} batch={config.batch_size}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    metric = "-" if result.final_val_metric is None else f"{result.final_val_metric:.4f}"
    diverged = f"yes at step {result.diverged_at}: {result.divergence_reason}" if result.diverged else "no"
    stored = " (read back from the store)" if result.from_store else ""
    rows = [
        ("steps run", f"{result.steps_run} / {config.steps}"),
        ("final val loss", f"{result.final_val_loss:.4f}"),
        (result.metric_name or "metric", metric),
        ("diverged", diverged),
        ("throughput", f"{result.throughput:,.0f} samples/s"),
        ("peak memory", f"{result.peak_memory_mb:.2f} MiB ({result.memory_method})"),
        ("wall time", f"{result.wall_time_s:.2f} s{stored}"),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def sweep(
    workload: str = WORKLOAD,
    lr: str = typer.Option("1e-3,3e-3,1e-2", help="Comma-separated learning rates."),
    batch_size: str = typer.Option(None, help="Comma-separated batch sizes (default: the workload's)."),
    optimizer: str = typer.Option(None, help="Comma-separated optimizers (default: the workload's)."),
    seeds: str = typer.Option("0", help="Comma-separated seeds."),
    steps: int = typer.Option(None, help="Optimizer steps per trial."),
    device: str = DEVICE,
    storage: str = STORAGE,
    out: Path = OUT,
    workers: int = typer.Option(
        1, help="1: run the trials in this process. N >= 2: queue them and start N local `trainopt worker`s. "
        "0: queue them for workers started elsewhere (`trainopt worker --storage URL`; see docs/scale-out.md).",
    ),
    json_output: bool = JSON,
    log: list[str] = LOG,
):
    """Run a grid of trials into the trial store, resumably.

    Every finished trial is stored at once; run the same command again after an interruption
    (Ctrl-C, a crash, a killed machine) and finished trials are read back, not re-run.
    """
    from trainopt.tools.store import TrialStore
    from trainopt.tools.tracking import log_trials

    try:
        grid = list(itertools.product(
            _floats(lr), _ints(batch_size) if batch_size else [None],
            optimizer.split(",") if optimizer else [None], _ints(seeds),
        ))
        configs = [_config(workload, dict(lr=a, batch_size=b, optimizer=o, seed=s, steps=steps))
                   for a, b, o, s in grid]
    except ValueError as error:
        console.print(f"[red]error[/red]: could not read the grid: {error}")
        raise typer.Exit(2) from None
    except OptimizationError as error:
        _fail(error)
    if workers != 1:
        if log:
            console.print("[yellow]note[/yellow]: --log writes trials run in this process; queued trials are run "
                          "by workers and not logged")
        _sweep_queued(workload, configs, device, storage, out, workers, json_output)
        return
    results = []
    store = TrialStore(storage, out_dir=out)
    reused = 0
    try:
        with log_trials(*(log or [])), _progress() as bar:
            study = bar.add_task(f"{workload} sweep", total=len(configs))
            for config in configs:
                task = bar.add_task(f"lr={config.lr:g} batch={config.batch_size} seed={config.seed}",
                                    total=config.steps)
                result = store.run(workload, config, device=device,
                                   progress=lambda done, total, t=task: bar.update(t, completed=done))
                reused += result.from_store
                results.append(result)
                bar.remove_task(task)
                bar.advance(study)
    except OptimizationError as error:
        _fail(error)
    work_done()
    _print_sweep(workload, results, reused, store.storage, json_output)


def _sweep_queued(workload, configs, device, storage, out, workers, json_output) -> None:
    """The grid through the shared queue: N local workers, or (0) workers running elsewhere."""
    from trainopt.tools.queue_store import QueueStore

    if workers < 0:
        console.print(f"[red]error[/red]: --workers must be >= 0 but got {workers}")
        raise typer.Exit(2)
    try:
        with QueueStore(storage, out_dir=out, workers=workers) as store:
            stored = sum(store.get(workload, c, device) is not None for c in configs)
            if workers == 0:
                console.print(f"queued for workers on {store.storage}, study {store.study_name!r}")
            with _progress() as bar:
                task = bar.add_task(f"{workload} sweep ({workers or 'external'} workers)", total=len(configs))
                results = store.run_many(workload, configs, device=device,
                                         progress=lambda done, total: bar.update(task, completed=done))
    except OptimizationError as error:
        _fail(error)
    work_done()
    _print_sweep(workload, results, stored, store.storage, json_output)


def _print_sweep(workload, results, reused, storage, json_output) -> None:
    results = sorted(results, key=lambda r: r.score)
    if json_output:
        typer.echo(json.dumps([json.loads(r.model_dump_json()) for r in results], indent=2))
        return
    table = Table(title=f"{workload} sweep: {len(results)} trials, {reused} read back from the store")
    for column in ("optimizer", "lr", "batch", "seed", "val loss", "metric", "samples/s"):
        table.add_column(column, justify="right")
    for r in results:
        c = r.config
        metric = "-" if r.final_val_metric is None else f"{r.final_val_metric:.4f}"
        loss = "diverged" if not math.isfinite(r.final_val_loss) else f"{r.final_val_loss:.4f}"
        table.add_row(c.optimizer, f"{c.lr:g}", str(c.batch_size), str(c.seed), loss, metric,
                      f"{r.throughput:,.0f}")
    Console().print(table)
    console.print(f"trial store: {storage}")


def register(app: typer.Typer) -> None:
    app.command("trial")(trial)
    app.command("sweep")(sweep)
