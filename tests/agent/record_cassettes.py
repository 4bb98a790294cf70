"""Re-record tests/cassettes: full `optimize` runs on two workloads against the local planner server.

    python3 tests/agent/record_cassettes.py            # both workloads
    python3 tests/agent/record_cassettes.py digits-cnn

Each run is real (real probes on this machine, the planner answering over HTTP); the folder keeps
the LM traffic (cassette.yaml), the trial store (trials.db) and the response (result.json), and
the tests replay it with the network blocked. Re-record after any change to what the agent asks
the tools or the LM.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).parent))

from openai_server import PlannerServer  # noqa: E402

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
# small budgets keep the recordings (and the repository) small; the flow is the full one
RUNS = {
    "digits-mlp": dict(constraints={"time_budget_s": 90}, num_candidates=3, refine_rounds=1),
    # multi-objective with latency: exercises the ONNX latency probe and the model.onnx export
    "digits-cnn": dict(
        constraints={"step_budget": 2400, "min_accuracy": 0.5, "max_latency_ms": 50},
        num_candidates=3,
        refine_rounds=1,
        objective={"metrics": ["loss", "accuracy", "latency_ms"], "weights": [0.6, 0.2, 0.2]},
    ),
}


def record(workload: str) -> None:
    import torch

    from trainopt.agent import OptimizationRequest, TrainingOptimizationAgent

    torch.set_num_threads(1)
    here = Path.cwd()
    with PlannerServer() as server, tempfile.TemporaryDirectory() as out:
        os.chdir(out)  # a relative output folder: the recording names no path of this machine
        agent = TrainingOptimizationAgent(lm=f"openai/trainopt-planner@{server.url}", out_dir="trainopt-out")
        request = OptimizationRequest(workload=workload, **RUNS[workload])
        try:
            response = agent.optimize_training(request, record=CASSETTES / workload)
        finally:
            os.chdir(here)
        print(
            f"{workload}: {len(server.requests)} LM requests, recommended lr={response.recommended.lr:.3g} "
            f"batch={response.recommended.batch_size}, loss reduction "
            f"{response.gain.relative_loss_reduction:+.1%} (90% interval {response.gain.interval[0]:+.1%} to "
            f"{response.gain.interval[1]:+.1%}), adopted: {response.gain.adopted}"
        )
    portable(CASSETTES / workload)


def portable(folder: Path) -> None:
    """Name the recording's trial store by its repository-relative path where the search tool recorded the
    absolute one (the recording lies outside the run's working folder): in result.json and in the stored
    tool output alike, so the replay still matches."""
    import sqlite3

    absolute = f"sqlite:///{(folder / 'trials.db').resolve()}"
    relative = f"sqlite:///{(folder / 'trials.db').resolve().relative_to(CASSETTES.parents[1]).as_posix()}"
    result = folder / "result.json"
    result.write_text(result.read_text().replace(absolute, relative))
    with sqlite3.connect(folder / "trials.db") as db:
        db.execute("UPDATE trial_user_attributes SET value_json = replace(value_json, ?, ?)", (absolute, relative))


if __name__ == "__main__":
    for name in sys.argv[1:] or list(RUNS):
        record(name)
