"""The agent with its trials run by a worker sharing the store: the same answer as in one process."""

from __future__ import annotations

import threading

from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent
from trainopt.tools.queue_store import QueueStore
from trainopt.tools.queue_worker import serve


def test_the_agent_through_a_worker_recommends_what_it_recommends_alone(tmp_path):
    request = OptimizationRequest(workload="digits-mlp", constraints={"step_budget": 400})
    alone = TrainingOptimizationAgent(out_dir=tmp_path / "alone", device="cpu").optimize_training(request)

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    QueueStore(url, out_dir=tmp_path)  # the tables, before the worker looks at them
    stop, done = threading.Event(), {}
    worker = threading.Thread(target=lambda: done.update(stats=serve(url, poll_s=0.05, stop=stop,
                                                                     log=lambda line: None)))
    worker.start()
    agent = TrainingOptimizationAgent(out_dir=tmp_path / "queued", storage=url, device="cpu", workers=0)
    queued = agent.optimize_training(request)
    stop.set()
    worker.join()
    # The worker trained the agent's trials, and the measured answer is the one-process answer.
    assert done["stats"].ran > 0
    assert queued.recommended == alone.recommended
    for field in ("seeds", "baseline_val_losses", "challenger_val_losses", "interval", "adopted"):
        assert getattr(queued.gain, field) == getattr(alone.gain, field)
