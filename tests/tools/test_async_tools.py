"""Async tools: training runs off the event loop, and a cancelled call stops at its next step."""

from __future__ import annotations

import asyncio

import pytest

from trainopt.errors import Cancelled
from trainopt.tools.cancellation import CancelToken, run_in_worker
from trainopt.tools.langchain import as_langchain_tools
from trainopt.tools.store import TrialStore

SHORT = {"range_steps": 20, "check_steps": 30, "budget_steps": 60, "schedules": ["constant"], "seed": 1}
LONG = {"range_steps": 20, "check_steps": 5000, "budget_steps": 10000, "schedules": ["constant"], "seed": 2}


def test_a_cancelled_token_stops_the_work_at_its_next_step():
    token = CancelToken()
    progress = token.progress("probe")
    progress(1, 10)  # not cancelled: goes on
    token.cancel()
    # the next step's progress call raises, naming how far it got
    with pytest.raises(Cancelled, match="probe cancelled after 2 of 10 steps"):
        progress(2, 10)


def test_two_calls_in_flight_one_cancelled(tmp_path):
    store = TrialStore(f"sqlite:///{tmp_path / 'trials.db'}")
    seen: dict[int, int] = {}  # steps reported per total (the LONG call's total is its own)

    def progress(done: int, total: int) -> None:
        seen[total] = max(done, seen.get(total, 0))

    tool = {t.name: t for t in as_langchain_tools(workload="digits-mlp", device="cpu", store=store,
                                                  progress=progress, out_dir=tmp_path / "out", plot=False)
            }["learning_rate_scheduler"]

    async def main():
        ticks = 0

        async def heartbeat():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        long = asyncio.create_task(tool.ainvoke(LONG))
        short = asyncio.create_task(tool.ainvoke(SHORT))
        while seen.get(LONG["range_steps"] + LONG["check_steps"], 0) < 40:  # the long check is training
            await asyncio.sleep(0.02)
        at_cancel = seen[total]
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        stopped_at = seen[total]
        result = await short
        beat.cancel()
        return result, ticks, at_cancel, stopped_at

    total = LONG["range_steps"] + LONG["check_steps"]
    result, ticks, at_cancel, stopped_at = asyncio.run(main())
    # the short call finished with its summary while the long one was cancelled mid-check
    assert result["decision"].startswith("peak lr") and result["checks"][0]["steps"] == SHORT["check_steps"]
    # cancelling stopped the long check at its next step (a few steps of slack for the thread switch),
    # and it trained no further while the short call finished
    assert stopped_at <= at_cancel + 3 < total
    assert seen[total] == stopped_at
    # the event loop kept running while both trained (a 10 ms heartbeat; the training threads hold the GIL
    # for most of each step, so on a loaded machine it ticks far less often than 100 times a second)
    assert ticks >= 5
    # the store holds the short call's finished check and nothing of the cancelled one
    stored_steps = sorted(r.config.steps for r in store.results())
    assert stored_steps == [SHORT["check_steps"]]


def test_run_in_worker_returns_the_work_result():
    async def main():
        return await run_in_worker(lambda token: 6 * 7)

    # the work's return value comes back to the awaiting task
    assert asyncio.run(main()) == 42


def test_a_bare_trial_in_a_cancelled_worker_stops_at_its_next_step():
    from trainopt.tools.trial_config import TrialConfig
    from trainopt.tools.trials import run_trial

    done: list[int] = []

    async def main():
        task = asyncio.create_task(run_in_worker(lambda token: run_trial(
            "digits-mlp", TrialConfig(steps=100_000), device="cpu", progress=lambda d, t: done.append(d))))
        while len(done) < 10:
            await asyncio.sleep(0.01)
        at_cancel = done[-1]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return at_cancel

    at_cancel = asyncio.run(main())
    # no token was passed down: run_trial reads the worker thread's and stops within a few steps
    assert done[-1] <= at_cancel + 3 < 100_000
