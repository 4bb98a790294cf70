"""``trainopt mcp``: serve every probe tool and ``optimize`` to an MCP client over stdio.

An MCP client (Claude Desktop, an IDE, an agent framework) starts this command and talks JSON-RPC
on its stdin/stdout; see trainopt.agent.mcp_server for the tools and docs/mcp.md for a client
configuration.
"""

from __future__ import annotations

from pathlib import Path

import typer


def mcp(
    workload: str = typer.Option("digits-mlp", "--workload", "-w", help="Default workload of the tools."),
    device: str = typer.Option("auto", help="cpu, cuda, ... or auto."),
    out: Path = typer.Option(Path("trainopt-out/mcp"), help="Folder for full outputs, figures and reports."),
    storage: str = typer.Option(None, help="Optuna storage URL of the trial store (default: SQLite in --out)."),
    lm: str = typer.Option(None, help="The planner of `optimize`: offline (default, or $TRAINOPT_LM), a litellm "
                           "model string, or an OpenAI-compatible api_base."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write each probe's figure (PNG) beside its JSON."),
) -> None:
    """Serve the probe tools and `optimize` over MCP (stdio): for LLM agents and IDEs."""
    import anyio

    from trainopt.agent.mcp_server import TrainoptMCP

    anyio.run(TrainoptMCP(workload, device=device, out_dir=out, storage=storage, lm=lm, plots=plots).serve_stdio)


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
