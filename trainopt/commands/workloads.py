"""``trainopt workloads``: the built-in workloads the tools and the agent can tune."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def workloads(json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the registered workloads: name, parameters, data size and what each exercises."""
    from trainopt.tools.workloads import describe_workloads

    rows = describe_workloads()
    if json_output:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="trainopt workloads")
    for column in ("name", "parameters", "train / val", "exercises"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], f"{row['parameters']:,}", row["data"], row["exercises"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("workloads")(workloads)
