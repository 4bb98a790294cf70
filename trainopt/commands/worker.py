"""``trainopt worker``: run trials that coordinators (``trainopt sweep/optimize --workers``) queue
in a shared study, on this machine, until stopped. See docs/scale-out.md."""

from __future__ import annotations

import os
import signal
import threading

import typer
from rich.console import Console

from trainopt.errors import OptimizationError

console = Console(stderr=True)


def worker(
    storage: str = typer.Option(..., help="Optuna RDB URL shared with the coordinator, e.g. "
                                "postgresql+psycopg://user@host/db or sqlite:///trials.db (one machine)."),
    study: str = typer.Option("trainopt-trials", help="The trial store's study name (the queue is <study>-queue)."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 ... or auto (takes trials queued for any "
                               "device type available here)."),
    threads: int = typer.Option(None, help="torch threads for each trial (default: torch's own)."),
    idle_exit: float = typer.Option(None, help="Stop after this many seconds without a queued trial."),
    max_trials: int = typer.Option(None, help="Stop after this many trials."),
    heartbeat: int = typer.Option(2, help="Seconds between heartbeats of a running trial."),
    grace: int = typer.Option(6, help="A running trial without a heartbeat for this long is re-queued "
                              "(use the same value on every worker and coordinator)."),
    max_retry: int = typer.Option(2, help="A trial whose workers died this many times is not re-queued again "
                                  "(the coordinator reports it)."),
    parent: int = typer.Option(None, hidden=True, help="Stop when this process (the coordinator) is gone."),
) -> None:
    """Take queued trials from the shared study, train them, store the results; until Ctrl-C.

    A killed worker loses nothing: its trial is re-queued once its heartbeat is older than
    --grace, and another worker runs it. Stop one gently with Ctrl-C or SIGTERM: the trial in
    hand goes back to the queue at once.
    """
    import torch

    from trainopt.tools.queue_worker import serve

    if threads is not None:
        torch.set_num_threads(threads)
    stop, busy = threading.Event(), threading.Event()

    def on_sigterm(signum, frame) -> None:
        stop.set()  # an idle worker stops at its next look at the queue
        if busy.is_set():
            raise KeyboardInterrupt  # a busy one unwinds run_trial; serve gives the trial back

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        stats = serve(storage, study, device, idle_exit_s=idle_exit, max_trials=max_trials,
                      parent_pid=parent, heartbeat_s=heartbeat, grace_s=grace, max_retry=max_retry,
                      stop=stop, busy=busy)
    except OptimizationError as error:
        console.print(f"[red]error[/red] ({error.type}): {error.message}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print(f"worker {os.getpid()}: stopped; the trial in hand (if any) is back in the queue")
        raise typer.Exit(130) from None
    console.print(f"worker {os.getpid()}: {stats.ran} trial(s) run, {stats.reused} read back, {stats.failed} failed")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
