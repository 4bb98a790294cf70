"""CLI subcommands, one module each; every module exposes ``register(app)``."""

from __future__ import annotations

import signal

from trainopt.tools.cancellation import check_interrupted

# set by the ``trainopt`` process's own entry point (trainopt.cli), never by a test's CliRunner
STANDALONE = False


def work_done() -> None:
    """The command's work is finished and stored; only its answer is left to print. A Ctrl-C that came
    before but was dropped by Python (raised inside a weakref callback) interrupts here; from here on a
    Ctrl-C is ignored in the ``trainopt`` process: it could only cut the answer short, or break the
    interpreter's exit with "Exception ignored ... KeyboardInterrupt" after an answer with exit 0."""
    if STANDALONE:
        check_interrupted()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
