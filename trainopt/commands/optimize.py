"""``trainopt optimize``: the agent's phases with a progress bar each, the held-out comparison table
(baseline against the challenger, with the 90% interval and the decision), and the report's path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainopt.commands import work_done
from trainopt.errors import OptimizationError

console = Console(stderr=True)


def optimize(
    workload: str = typer.Option(
        "digits-mlp", "--workload", "-w",
        help="A name from `trainopt workloads`, or 'module:function' returning your own Workload.",
    ),
    train_steps: int = typer.Option(
        None, "--train-steps", help="Your training run's length H in steps at the workload's default batch: the "
        "recommendation is for that run (default: the workload's own length).", min=1),
    epochs: float = typer.Option(None, "--epochs", help="Your training run's length H in epochs instead."),
    budget: float = typer.Option(
        None, "--budget", help="Wall-clock limit in seconds (default: none; the run plans 10 H of compute)."),
    step_budget: int = typer.Option(
        None, "--step-budget", help="Compute in steps at the default batch (training examples / that batch; a "
        "larger batch trains fewer steps): the same plan on every machine. Default 10 H."
    ),
    storage: str = typer.Option(None, help="Optuna storage URL of the trial store (default: SQLite in --out)."),
    workers: int = typer.Option(
        1, help="1: trials run in this process. N >= 2: N local `trainopt worker`s run the race, search and "
        "confirm trials. 0: workers started elsewhere on --storage do (docs/scale-out.md).",
    ),
    lm: str = typer.Option(
        None,
        help="offline (default, or $TRAINOPT_LM), a litellm model string, or an "
        "OpenAI-compatible api_base such as http://127.0.0.1:8000/v1.",
    ),
    out: Path = typer.Option(Path("trainopt-out"), help="Folder for report.html, result.json, model.onnx."),
    record: Path = typer.Option(None, help="Record the LM traffic and the trial store of this run into DIR."),
    replay: Path = typer.Option(None, help="Replay the recording in DIR: no network, no training."),
    device: str = typer.Option("auto", help="cpu, cuda, ... or auto."),
    min_accuracy: float = typer.Option(None, help="Reject candidates below this validation accuracy."),
    max_memory: float = typer.Option(None, help="Reject candidates whose training step needs more MiB."),
    max_latency_ms: float = typer.Option(None, help="Batch-1 inference latency limit (exports model.onnx)."),
    min_gain: float = typer.Option(
        0.0, help="Recommend a change only when the 90% interval of its held-out relative gain lies above this."),
    seeds: str = typer.Option("0,1,2", help="Selection seeds, comma-separated: the race runs on these."),
    confirm_seeds: str = typer.Option(
        None, help="Held-out seeds of the confirm runs, comma-separated (default 1000, 1001, ... as the budget "
        "allows); never a selection seed."),
    proposals: str = typer.Option(
        "planner", help="Where candidates come from: planner, random (draws in the probed ranges) or none."),
    json_output: bool = typer.Option(False, "--json", help="Print the response as JSON on stdout."),
    log: list[str] = typer.Option(
        None, "--log", help="Write every trial's curves and configuration: tensorboard[:DIR] or mlflow[:URI] "
        "(repeatable; needs the extra: pip install 'trainopt[tensorboard]' / 'trainopt[mlflow]')."
    ),
) -> None:
    """Find a training configuration by measuring what the planner proposes; compare it to the baseline."""
    from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
    from trainopt.tools.tracking import log_trials

    constraints = {
        "time_budget_s": budget,
        "step_budget": step_budget,
        "min_accuracy": min_accuracy,
        "max_memory": max_memory,
        "max_latency_ms": max_latency_ms,
    }
    try:
        request = OptimizationRequest(
            workload=workload, constraints={k: v for k, v in constraints.items() if v is not None},
            min_gain=min_gain, seeds=_seeds(seeds), proposals=proposals, train_steps=train_steps, epochs=epochs,
            confirm_seeds=None if confirm_seeds is None else _seeds(confirm_seeds),
        )
    except ValueError as error:
        _fail(_message(error))
    if workers < 0:
        _fail(f"--workers must be >= 0 but got {workers}")
    if replay is not None and (problem := _not_a_recording(replay)) is not None:
        _fail(problem)
    bars = _PhaseBars()
    agent = TrainingOptimizationAgent(lm=lm, storage=storage, out_dir=out, device=device, progress=bars.progress,
                                      workers=workers)
    try:
        # a replay asks what the recording asked (its workload, budget and constraints)
        with log_trials(*(log or [])):
            response = agent.optimize_training(None if replay else request, record=record, replay=replay)
    except OptimizationError as error:
        bars.close()  # the error is the last line: no bar is drawn after it
        _fail(error.message, error.type)
    except BaseException:
        bars.close()
        raise
    work_done()
    bars.finish()
    if json_output:
        typer.echo(response.model_dump_json(indent=2))
        return
    Console().print(summary_table(response))
    for note in [*response.notes, *response.lm.fallbacks]:
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(
        f"LM: {response.lm.requested}, {response.lm.calls} call(s)" + (" (replayed)" if response.replayed else "")
    )
    if response.wall_time_s is not None:
        limits = request.constraints
        budget_text = ", ".join(text for text in (
            f"{limits.step_budget} steps" if limits.step_budget else None,
            f"{limits.time_budget_s:g} s" if limits.time_budget_s else None) if text) or "10 H, the default"
        console.print(f"took {response.wall_time_s:g} s, {response.steps_spent} steps of compute at the default "
                      f"batch (budget {budget_text})")
    console.print(f"report: {response.artifacts.report_html}")


class _PhaseBars:
    """A progress bar per phase of the run: one for each name in ``PHASES`` from the start, and one more for
    any phase the agent reports that is not in it (a bar is shown, never a crash). Nothing is drawn before
    the agent's first progress event, so an error found before any work is the only line printed."""

    def __init__(self) -> None:
        from trainopt.agent.phases import PHASES

        self.bars = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        for phase in PHASES:
            self._task(phase)

    def _task(self, phase: str) -> TaskID:
        if phase not in self.tasks:
            self.tasks[phase] = self.bars.add_task(phase, total=None, note="", start=False)
        return self.tasks[phase]

    def progress(self, phase: str, done: int, total: int, message: str) -> None:
        """The agent's ProgressCallback: ``phase`` advanced to ``done`` of ``total``."""
        if not self.bars.live.is_started:
            self.bars.start()
        task = self._task(phase)
        self.bars.start_task(task)
        self.bars.update(task, completed=done, total=max(total, 1), note=message[:48])

    def finish(self) -> None:
        """The run is done: every bar full, drawn once more and left on the screen."""
        if not self.bars.live.is_started:
            self.bars.start()
        for task in self.bars.tasks:
            self.bars.update(task.id, completed=task.total or 1, total=task.total or 1)
        self.bars.stop()

    def close(self) -> None:
        """Stop drawing (the bars already drawn stay as they were), so that what is printed next comes last."""
        if self.bars.live.is_started:  # Progress.stop prints an empty line off a terminal even when not started
            self.bars.stop()


def _fail(message: str, kind: str | None = None) -> NoReturn:
    """Print ``error (kind): message`` as one line on stderr (never wrapped at the terminal's width) and exit 2."""
    from rich.markup import escape

    console.print(f"[red]error[/red]{f' ({kind})' if kind else ''}: {escape(message)}", soft_wrap=True,
                  highlight=False)
    raise typer.Exit(2)


def _not_a_recording(path: Path) -> str | None:
    """Why ``path`` cannot be replayed (no such folder, or files of a recording missing), or None."""
    from trainopt.agent.record import CASSETTE, META, TRIALS

    if not path.is_dir():
        what = "no such folder"
    elif missing := [name for name in (CASSETTE, TRIALS, META) if not (path / name).is_file()]:
        what = f"missing {', '.join(missing)}"
    else:
        return None
    return (f"--replay {path} is not a recording ({what}); record one first with --record DIR "
            f"(`trainopt optimize --record {path}`), then replay that folder")


def _message(error: ValueError) -> str:
    """A pydantic error as 'field: reason (got value)', one per line; any other error as it is."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg'].removeprefix('Value error, ')}"
                     + ("" if not e["loc"] else f" (got {e['input']!r})") for e in error.errors())


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers but got {text!r}") from None


def summary_table(response) -> Table:
    """Baseline against the confirmed challenger on the held-out seeds, for the user's run H: the decision with
    its interval, measured at H or predicted there (and then the length the losses were measured at)."""
    g, base, horizon = response.gain, response.baseline, response.horizon
    rec = response.challenger or response.recommended
    verdict = "adopted" if g.adopted else "not adopted: the baseline is recommended"
    title = f"{response.workload}: for {horizon.text()}, held-out seeds {g.seeds} ({verdict})"
    table = Table(title=title)
    for column in ("", "baseline", "recommended" if g.adopted else "challenger"):
        table.add_column(column)
    accuracy = lambda m: "n/a" if m.accuracy is None else f"{m.accuracy:.4f}"  # noqa: E731
    table.add_row("optimizer", base.optimizer, rec.optimizer)
    table.add_row("learning rate", f"{base.lr:.3g}", f"{rec.lr:.3g}")
    table.add_row("batch size", str(base.batch_size), str(rec.batch_size))
    table.add_row("steps of your run (H)", str(base.steps), str(rec.steps))
    table.add_row("weight decay", f"{base.weight_decay:g}", f"{rec.weight_decay:g}")
    table.add_row("schedule", base.schedule, f"{rec.schedule} (warmup {rec.warmup_steps})")
    table.add_row("grad clip", str(base.grad_clip), str(rec.grad_clip))
    split = "val" if any("no test split" in n for n in response.notes) else "test"
    at = f" at {g.measured_examples:,} examples" if g.predicted else ""
    table.add_row(f"mean {split} loss{at}", f"{g.baseline.loss:.4f}", f"{g.challenger.loss:.4f}")
    table.add_row(f"mean {split} accuracy{at}", accuracy(g.baseline), accuracy(g.challenger))
    table.add_row("peak step memory (MiB)", f"{g.baseline.memory_usage:.2f}", f"{g.challenger.memory_usage:.2f}")
    seconds = response.run_seconds
    if seconds:
        table.add_row("training time of H (s)", f"{seconds['baseline']:.3g}",
                      f"{seconds['recommended' if g.adopted else 'baseline']:.3g}" if g.adopted else "")
    change, (low, high) = g.relative_loss_reduction, g.interval
    shown = "n/a" if not math.isfinite(change) else (
        f"{change:+.1%} (90% interval {low:+.1%} to {high:+.1%}; better on {g.wins} of {len(g.seeds)} seeds)")
    table.add_row("loss reduction at H" + (" (predicted)" if g.predicted else ""), "", shown)
    if (fresh := g.new_seeds_text()) is not None:
        table.add_row("if you re-run it", "", fresh)
    table.caption = g.reason
    return table


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
