"""CLI subcommands, one module each; every module exposes ``register(app)``."""

from __future__ import annotations

import signal

# set by the ``trainopt`` process's own entry point (trainopt.cli), never by a test's CliRunner
STANDALONE = False


def work_done() -> None:
    """The command's work is finished and stored; only its answer is left to print. From here a Ctrl-C is
    ignored in the ``trainopt`` process: it could only cut the answer short, or break the interpreter's exit
    with "Exception ignored ... KeyboardInterrupt" from a weakref callback, after an answer with exit 0."""
    if STANDALONE:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
