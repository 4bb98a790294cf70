"""``trainopt chat``: ask about training a workload in plain words; answers come from real probes.

A prompt loop around ``trainopt.agent.chat.ChatSession``: a rich progress bar while a tool trains,
Ctrl-C stops the running probe (the session goes on), /quit or Ctrl-D ends it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from trainopt.errors import OptimizationError
from trainopt.tools.cancellation import clear_interrupt


class ToolBars:
    """One progress bar per running tool, shown while a question is being answered."""

    def __init__(self, console: Console):
        self.console = console
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def announce(self, tool: str, workload: str, fields: dict) -> None:
        self.console.print(f"[cyan]> running {tool} on {workload}[/cyan]")

    def update(self, tool: str, done: int, total: int) -> None:
        if self.bars is None:
            self.bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), console=self.console)
            self.bars.start()
        if tool not in self.tasks:
            unit = "" if tool.startswith("optimize_training") else "steps"  # the agent reports phase progress
            self.tasks[tool] = self.bars.add_task(tool, total=max(total, 1), unit=unit)
        self.bars.update(self.tasks[tool], completed=done, total=max(total, 1))

    def stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()
        self.bars, self.tasks = None, {}


def chat(
    workload: str = typer.Option("digits-mlp", "--workload", "-w", help="The workload the session starts on."),
    lm: str = typer.Option(None, help="offline (default, or $TRAINOPT_LM), a litellm model string, or an "
                           "OpenAI-compatible api_base such as http://127.0.0.1:8000/v1."),
    budget: float = typer.Option(60.0, "--budget", help="Time budget in seconds of an optimization."),
    probe_steps: int = typer.Option(60, help="Size of a chat probe in training steps (sweeps, checks)."),
    device: str = typer.Option("auto", help="cpu, cuda, ... or auto."),
    storage: str = typer.Option(None, help="Optuna storage URL of the trial store (default: SQLite in --out)."),
    out: Path = typer.Option(Path("trainopt-out/chat"), help="Folder for the trial store and /report."),
    record: Path = typer.Option(None, help="Record the LM traffic and every probe of this session into DIR."),
    replay: Path = typer.Option(None, help="Replay the recording in DIR: no network, no training."),
) -> None:
    """Chat about training: 'what learning rate for char-gpt?', 'optimize digits-cnn in 2 minutes'."""
    from trainopt.agent.chat import ChatSession

    console = Console()
    bars = ToolBars(console)
    try:
        session = ChatSession(workload, lm=lm, budget_s=budget, probe_steps=probe_steps, device=device,
                              storage=storage, out_dir=out, record=record, replay=replay,
                              progress=bars.update, announce=bars.announce)
    except OptimizationError as error:
        console.print(f"[red]error[/red] ({error.type}): {error.message}")
        raise typer.Exit(2) from None
    mode = " (replaying)" if replay else (" (recording)" if record else "")
    console.print(f"trainopt chat on [bold]{session.workload}[/bold], LM {session.ctx.lm or 'offline'}{mode}. "
                  "/help for commands, /quit to leave.")
    with session:
        while True:
            try:
                line = console.input("[bold green]you>[/bold green] ")
            except EOFError:
                break
            except KeyboardInterrupt:
                clear_interrupt()  # handled: the session goes on (tools/cancellation.py)
                console.print("\n(Ctrl-C: nothing is running; /quit leaves)")
                continue
            try:
                reply = session.handle(line)
            except KeyboardInterrupt:
                clear_interrupt()
                bars.stop()
                console.print("[yellow]interrupted[/yellow]: the question was dropped; the session goes on")
                continue
            except OptimizationError as error:
                bars.stop()
                console.print(f"[red]error[/red] ({error.type}): {error.message}")
                continue
            bars.stop()
            if reply.text:
                console.print(f"[bold]trainopt>[/bold] {reply.text}", highlight=False)
            if reply.turn is not None and reply.turn.note:
                console.print(f"[yellow]note[/yellow]: {reply.turn.note}")
            if reply.quit:
                break


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
