"""TrainingOptimizationAgent.aoptimize_training: two runs in flight, one cancelled."""

from __future__ import annotations

import asyncio

import pytest

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.tools.store import TrialStore


@pytest.mark.slow
def test_two_runs_in_flight_one_cancelled(tmp_path):
    phases: dict[str, list[str]] = {"kept": [], "cancelled": []}

    def agent(name: str) -> TrainingOptimizationAgent:
        return TrainingOptimizationAgent(
            lm="offline", out_dir=tmp_path / name, device="cpu",
            progress=lambda step, done, total, message: phases[name].append(step))

    async def main():
        kept = asyncio.create_task(agent("kept").aoptimize_training(
            OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 400})))
        cancelled = asyncio.create_task(agent("cancelled").aoptimize_training(
            OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 20000})))
        while not phases["cancelled"]:  # the second run has started working
            await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        reported = len(phases["cancelled"])
        return await kept, reported

    response, reported = asyncio.run(main())
    # the run left alone finished with a measured recommendation
    assert response.workload == "digits-mlp" and (tmp_path / "kept" / "report.html").is_file()
    # the cancelled run stopped: no report, nothing reported after it stopped, and its store holds
    # finished trials only (every stored trial ran all its steps or was cut by divergence or pruning)
    assert not (tmp_path / "cancelled" / "report.html").exists()
    assert len(phases["cancelled"]) == reported
    store = TrialStore(out_dir=tmp_path / "cancelled")
    assert all(r.steps_run == r.config.steps or r.diverged or r.pruned for r in store.results())
