"""Async calls that keep the event loop free, and cancellation that stops a trial at its next step.

Training runs in a worker thread (``asyncio.to_thread``-style), so an agent framework's event loop
goes on serving other calls. A ``CancelToken`` travels with the work: its ``progress`` wrapper is
the probe's progress callback, which ``run_trial`` calls after every training step, and raises
``trainopt.errors.Cancelled`` there once the token is cancelled. When the awaiting task is
cancelled, ``run_in_worker`` cancels the token and waits (without blocking the loop) until the
worker has stopped, so nothing trains on after the caller has gone and the trial store, which
only ever receives finished trials, is left as it was.

Examples:
    >>> import asyncio
    >>> async def main():
    ...     return await run_in_worker(lambda token: token.check("work") or 42)
    >>> asyncio.run(main())
    42
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from trainopt.errors import Cancelled

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]


class CancelToken:
    """A flag set by the caller and checked by the worker at every training step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, what: str = "the call", done: int = 0, total: int = 0) -> None:
        """Raise ``Cancelled`` if the caller has cancelled."""
        if self._event.is_set():
            raise Cancelled(what, done, total)

    def progress(self, what: str, inner: ProgressFn | None = None) -> ProgressFn:
        """A progress callback that checks the token after every step, then calls ``inner``."""

        def progress(done: int, total: int) -> None:
            self.check(what, done, total)
            if inner is not None:
                inner(done, total)

        return progress


async def run_in_worker(work: Callable[[CancelToken], T]) -> T:
    """``work(token)`` in a worker thread; cancelling the awaiting task cancels the token.

    On cancellation this waits for ``work`` to return or raise (it stops at its next training
    step), then re-raises ``asyncio.CancelledError``; the worker's ``Cancelled`` is not reported.
    """
    token = CancelToken()

    def run() -> T:
        _current.token = token
        try:
            return work(token)
        finally:
            _current.token = None

    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, run)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        token.cancel()
        with contextlib.suppress(Cancelled, Exception):
            await future  # the worker stops at its next step; the loop stays free meanwhile
        raise


_current = threading.local()  # the CancelToken of the call this worker thread runs, if any


_interrupt = threading.Event()  # a Ctrl-C reached trainopt's command line (trainopt.cli)


def request_interrupt() -> None:
    """Note a Ctrl-C. Python raises its KeyboardInterrupt wherever the main thread happens to be, and
    one raised inside a weakref callback or ``__del__`` is printed as "Exception ignored" and dropped:
    the next training step (``check_cancelled``) or the command's end raises it again."""
    _interrupt.set()


def clear_interrupt() -> None:
    _interrupt.clear()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt in the main thread if a Ctrl-C was noted (``request_interrupt``)."""
    if _interrupt.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def check_cancelled(done: int = 0, total: int = 0) -> None:
    """Raise ``Cancelled`` if the call running in this thread was cancelled (a no-op elsewhere), and
    KeyboardInterrupt in the main thread after a Ctrl-C (``request_interrupt``).

    ``run_in_worker`` sets the thread's token, so code deep inside a call (a training loop) can
    stop at its next step without a token passed down to it."""
    check_interrupted()
    token = getattr(_current, "token", None)
    if token is not None:
        token.check("training", done, total)
