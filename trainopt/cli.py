"""The ``trainopt`` command line (typer). Each subcommand group lives in its own module
under ``trainopt/commands`` and is registered here."""

from __future__ import annotations

import importlib
import signal
import sys

import typer

import trainopt
from trainopt.tools.cancellation import clear_interrupt, request_interrupt

INTERRUPTED = 130  # the exit code of a Ctrl-C (128 + SIGINT)
INTERRUPTED_MESSAGE = ("interrupted: every finished trial is kept in the trial store; the same command again "
                       "resumes without re-running them")


class _App(typer.Typer):
    """The typer app, with one boundary for every command: an OptimizationError that a command did not
    handle itself (a damaged trial store opened before its own ``try``, say) is printed as one line with
    its type and exit code 2, never as a traceback; a Ctrl-C exits 130 with one line saying what is kept,
    and one after the command finished is ignored while Python exits.
    Any other exception is a bug and keeps its traceback."""

    def __call__(self, *args, **kwargs):
        from trainopt import commands
        from trainopt.errors import OptimizationError

        commands.STANDALONE = True  # a command may ignore a Ctrl-C once its work is done (commands.work_done)
        signal.signal(signal.SIGINT, _interrupt)
        unraisable, sys.unraisablehook = sys.unraisablehook, _unraisable
        try:
            return super().__call__(*args, **kwargs)
        except OptimizationError as error:
            typer.echo(f"error ({error.type}): {error.message}", err=True)
            raise SystemExit(2) from None
        except SystemExit as exit_:
            if exit_.code == INTERRUPTED:  # typer's exit on Ctrl-C: say what is kept
                typer.echo(INTERRUPTED_MESSAGE, err=True)
            elif not exit_.code:  # done and answered: a late Ctrl-C must not break the interpreter's exit
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            raise
        finally:
            commands.STANDALONE = False
            clear_interrupt()  # a caller in this process (a test) goes on without it
            sys.unraisablehook = unraisable


def _interrupt(signum, frame) -> None:
    """SIGINT: Python's KeyboardInterrupt, noted so that one Python drops (raised in a weakref callback) is
    raised again at the next training step or at the command's end (trainopt.tools.cancellation)."""
    request_interrupt()
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    """Python drops an exception raised in a weakref callback or ``__del__`` and prints it as "Exception
    ignored" with its traceback; a dropped Ctrl-C is raised again (``_interrupt``), so it is not printed."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


app = _App(
    name="trainopt",
    help="Measure, don't guess: probe-verified training settings for PyTorch models.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trainopt {trainopt.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """trainopt: every recommended setting comes from a real, short training run."""


# (module under trainopt.commands, registered as) -- each module exposes `register(app)`.
_COMMAND_MODULES = ["workloads", "trial", "optimize", "probe", "diffusion", "chat", "worker", "mcp"]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"trainopt.commands.{_name}").register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
