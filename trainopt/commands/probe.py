"""``trainopt probe <tool>``: run one probe tool on a workload; a table, a PNG and a JSON file.

Every field of the tool's ``Input`` is an option through ``--set key=value`` (values parse as JSON,
else as a string; pydantic validates them), so new tools need no CLI code:

    trainopt probe lr --workload digits-mlp --set budget_steps=500 --set 'schedules=["cosine"]'
    trainopt probe batch --set max_memory_mb=2 --json
    trainopt probe gradients --options          # the tool's inputs, types, defaults
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# short names for the registered tools (the full names in trainopt.tools.TOOL_CLASSES work too)
ALIASES = {
    "lr": "learning_rate_scheduler",
    "batch": "batch_size_optimizer",
    "gradients": "gradient_analyzer",
    "convergence": "convergence_predictor",
    "hyperparameters": "hyperparameter_suggester",
}


def resolve_tool_name(name: str) -> str:
    from trainopt.tools import TOOL_CLASSES

    name = ALIASES.get(name, name).replace("-", "_")
    if name not in TOOL_CLASSES:
        known = ", ".join(f"{full} ({short})" for short, full in ALIASES.items() if full in TOOL_CLASSES)
        raise typer.BadParameter(f"unknown tool {name!r}; known: {known}", param_hint="TOOL")
    return name


def parse_settings(pairs: list[str], fields: dict) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: json.loads(v) or v}``; unknown keys are a usage error."""
    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value but got {pair!r}", param_hint="--set")
        if key not in fields:
            raise typer.BadParameter(f"unknown input {key!r}; inputs: {', '.join(fields)}", param_hint="--set")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def options_table(tool_cls) -> Table:
    table = Table(title=f"{tool_cls.name}: inputs (use --set key=value)")
    for column in ("input", "type", "default", "description"):
        table.add_column(column, overflow="fold")
    for key, field in tool_cls.Input.model_fields.items():
        annotation = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        table.add_row(key, annotation, default, field.description or "")
    return table


def probe(
    tool: str = typer.Argument(..., help="Tool: lr, batch, gradients, convergence, hyperparameters "
                                         "(or its full name)."),
    workload: str = typer.Option("digits-mlp", "--workload", "-w", help="Registered workload name."),
    settings: list[str] = typer.Option([], "--set", "-s", help="A tool input as key=value (repeatable)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    json_output: bool = typer.Option(False, "--json", help="Print the Output as JSON instead of tables."),
    out: Path = typer.Option(Path("trainopt-out"), "--out", help="Folder for <tool>.json and <tool>.png."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write a PNG where the tool has a figure."),
    storage: str | None = typer.Option(None, help="Optuna storage URL to reuse stored trials "
                                                   "(e.g. sqlite:///trainopt-out/trials.db)."),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (tiny models: 1 is fastest)."),
    show_options: bool = typer.Option(False, "--options", help="List the tool's inputs and exit."),
):
    """Run one probe tool: real short training runs on the workload, then a table, PNG and JSON."""
    from trainopt.errors import OptimizationError
    from trainopt.tools import get_tool
    from trainopt.tools.base import parse_input

    name = resolve_tool_name(tool)
    tool_cls = get_tool(name)
    console, errors = Console(), Console(stderr=True)
    if show_options:
        console.print(options_table(tool_cls))
        return
    values = parse_settings(settings, tool_cls.Input.model_fields)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        input = parse_input(tool_cls.Input, values, name)
        store = None
        if storage is not None:
            from trainopt.tools.store import TrialStore

            store = TrialStore(storage)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors, transient=True) as bar:
            task = bar.add_task(f"{name} on {workload}", total=None)
            instance = tool_cls(workload=workload, device=device, store=store,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
            output = instance.run(input)
    except OptimizationError as error:
        errors.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(output.model_dump_json(indent=2))
    figure = None
    if plot and hasattr(instance, "plot"):
        figure = out / f"{name}.png"
        instance.plot(output, figure)
    if json_output:
        typer.echo(output.model_dump_json(indent=2))
        return
    from trainopt.commands.output_table import output_tables

    for table in output_tables(output, f"{name} on {workload} ({instance.device})"):
        console.print(table)
    console.print(f"wrote {out / f'{name}.json'}" + (f" and {figure}" if figure else ""))


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
