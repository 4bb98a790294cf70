"""TrainingOptimizationAgent: the LM proposes, the probes decide (docs/architecture.md).

    1 profile   the workload, the device, two calibration trials -> step budgets      (no LLM)
    2 probe     LR range test + schedule, batch size, gradient analysis             (real runs)
    3 propose   ProposeCandidates on the LM -> k candidates, validated, clamped, cut
    4 race      candidates raced over the selection seeds by successive halving
    5 refine    RefineCandidates sees the raced results, proposes again; races (bounded rounds)
    6 search    seeded Optuna TPE; its best joins the race
    7 confirm   finals: the leader and itself at lower LRs (its horizon twin, lower while the lowest wins), at full
                length on selection seeds, pick the challenger; challenger and baseline paired on held-out seeds:
                mean gain, 90% interval, the decision

Examples:
    >>> agent = TrainingOptimizationAgent(lm="offline", out_dir="trainopt-out")        # doctest: +SKIP
    >>> response = agent.optimize_training(OptimizationRequest(workload="digits-mlp"))  # doctest: +SKIP
    >>> response.recommended.lr, response.gain.relative_loss_reduction                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import dspy
import torch

from trainopt.agent.budget import RunPolicy
from trainopt.agent.clock import WallClock
from trainopt.agent.lm import resolve_lm_spec
from trainopt.agent.phases import PHASES, RunState, execute
from trainopt.agent.phases.respond import plots_fit
from trainopt.agent.planning import Planner
from trainopt.agent.probe_cache import ProbeCache
from trainopt.agent.record import Recording, ReplayStore, atomic_write
from trainopt.agent.schemas import Artifacts, OptimizationRequest, OptimizationResponse, TrainingConfig
from trainopt.errors import HyperparameterError
from trainopt.tools.store import DEFAULT_OUT_DIR, TrialStore, default_storage
from trainopt.tools.trials import resolve_device
from trainopt.tools.workloads import Workload, get_workload

# progress(step, done, total, message): step is one of STEPS
ProgressCallback = Callable[[str, int, int, str], None]
STEPS = PHASES


class TrainingOptimizationAgent:
    """Finds a training configuration for a workload by measuring candidates an LM proposes.

    Args:
        config: the search space (LR and batch ranges, optimizers, hardware limits).
        lm: "offline" (default), a litellm model string, an OpenAI-compatible api_base, or a dspy LM.
        storage: Optuna RDB URL of the trial store (default: a SQLite file in ``out_dir``).
        out_dir: where report.html, result.json and model.onnx go.
        device: "auto", "cpu", "cuda", ...
        progress: called as ``progress(step, done, total, message)`` while the agent works.
        workers: 1 (default) runs every trial in this process; N >= 2 queues the race, search and
            confirm trials in the store's shared study and starts N local ``trainopt worker``s; 0 queues
            them for workers started elsewhere (``trainopt worker --storage URL``; docs/scale-out.md).
    """

    def __init__(
        self,
        config: TrainingConfig | None = None,
        lm: str | dspy.BaseLM | None = None,
        storage: str | None = None,
        out_dir: str | Path = DEFAULT_OUT_DIR,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        workers: int = 1,
    ):
        self.workers = workers
        self.config = config or TrainingConfig()
        self.lm = lm
        self.storage = storage
        self.out_dir = Path(out_dir)
        self.device = device
        self.progress = progress

    def optimize_training(
        self,
        request: OptimizationRequest | None = None,
        *,
        record: str | Path | None = None,
        replay: str | Path | None = None,
    ) -> OptimizationResponse:
        """Run the phases and return the measured recommendation.

        ``record=DIR`` keeps the LM traffic and the trial store of this run in DIR; ``replay=DIR``
        answers the LM from DIR's cassette and every probe from DIR's trials, with no network and
        no training, and returns the recorded recommendation, evidence and rationale.
        """
        if request is None:  # a replay asks what the recording asked; otherwise the defaults
            request = Recording.recorded_request(replay) if replay is not None else OptimizationRequest()
        if record is not None and replay is not None:
            raise HyperparameterError(
                f"record and replay are exclusive but got {record=} and {replay=}",
                {"record": str(record), "replay": str(replay)},
            )
        clock = WallClock(_time_budget(request))  # the budget counts from here: storage setup included
        workload = _workload_of(request)
        recording = (
            Recording(replay, "replay")
            if replay is not None
            else (Recording(record, "record") if record is not None else None)
        )
        queued = None  # a QueueStore (workers != 1), closed at the end
        try:
            if replay is not None:
                recording.check_format()
                meta = recording.meta
                if meta["workload"] != workload.name:
                    raise HyperparameterError(
                        f"replay: the recording is of workload {meta['workload']!r}, not {workload.name!r}",
                        {"workload": workload.name},
                    )
                storage, device_type = recording.storage(), meta["device"]
                store, cache = ReplayStore(storage, device_type), ProbeCache(storage, readonly=True)
                lm_spec = self.lm if self.lm is not None else meta["lm"]
                local_device = torch.device("cpu")
            else:
                storage = recording.storage() if recording else (self.storage or default_storage(self.out_dir))
                local_device = resolve_device(self.device)
                device_type = local_device.type
                store, cache = self._store(storage), ProbeCache(storage)
                queued = store if self.workers != 1 else None
                lm_spec = self.lm if self.lm is not None else resolve_lm_spec()
            if record is not None:
                recording.write_meta(
                    {
                        "workload": workload.name,
                        "device": device_type,
                        "lm": lm_spec if isinstance(lm_spec, str) else lm_spec.model,
                        "request": request.model_dump(mode="json", exclude=_CALLABLES),
                        "policy": RunPolicy().model_dump(),
                    }
                )
            planner = Planner(lm_spec, strict=replay is not None)
            run = RunState(
                request=request,
                space=self.config,
                workload=workload,
                store=store,
                cache=cache,
                device=local_device,
                device_type=device_type,
                planner=planner,
                budget_s=clock.budget_s,
                clock=clock,
                out_dir=self.out_dir,
                progress=self.progress,
                replaying=replay is not None,
            )
            with recording.cassette() if recording else nullcontext():
                response = execute(run)
            response.replayed = replay is not None
            response.artifacts = self._write_artifacts(run, response)
            if record is not None:
                recording.write_result(response.model_dump_json(indent=2))
            return response
        finally:
            if recording is not None:
                recording.close()
            if queued is not None:
                queued.close()  # its local workers stop

    def _write_artifacts(self, run: RunState, response: OptimizationResponse) -> Artifacts:
        from trainopt.agent.report import write_report

        self.out_dir.mkdir(parents=True, exist_ok=True)
        artifacts = Artifacts(
            result_json=str(self.out_dir / "result.json"),
            report_html=str(self.out_dir / "report.html"),
            model_onnx=run.onnx_path,
        )
        response.artifacts = artifacts
        plots = plots_fit(run)  # not recorded: it changes the report, not the answer; a replay draws them
        if plots.note:
            response.notes.append(plots.note)
        write_report(response, run, self.out_dir / "report.html", plots=not plots.skip)
        response.wall_time_s = None if run.replaying else round(run.clock.spent(), 1)
        atomic_write(self.out_dir / "result.json", response.model_dump_json(indent=2))
        return artifacts

    async def aoptimize_training(
        self,
        request: OptimizationRequest | None = None,
        *,
        record: str | Path | None = None,
        replay: str | Path | None = None,
    ) -> OptimizationResponse:
        """``optimize_training`` in a worker thread: the event loop stays free while it trains.

        Cancelling the awaiting task stops the run at its next training step (or its next progress
        report) and re-raises ``asyncio.CancelledError`` once it has stopped; the trial store keeps
        only finished trials (``trainopt.tools.cancellation``).

        Examples:
            >>> response = await agent.aoptimize_training(OptimizationRequest(workload="digits-mlp"))  # doctest: +SKIP
        """
        import copy

        from trainopt.tools.cancellation import run_in_worker

        def work(token) -> OptimizationResponse:
            user = self.progress

            def progress(step: str, done: int, total: int, message: str) -> None:
                token.check(f"optimize_training ({step})", done, total)
                if user is not None:
                    user(step, done, total, message)

            agent = copy.copy(self)  # calls in flight at once do not share a progress callback
            agent.progress = progress
            return agent.optimize_training(request, record=record, replay=replay)

        return await run_in_worker(work)

    def _store(self, storage: str):
        """The trial store: trials run here (workers=1) or by workers sharing the storage's queue."""
        if self.workers == 1:
            return TrialStore(storage)
        from trainopt.tools.queue_store import QueueStore

        return QueueStore(storage, out_dir=self.out_dir, workers=self.workers)


def _time_budget(request: OptimizationRequest) -> float | None:
    """The wall-clock budget: the request's, else none (the run plans in examples: agent/budget.py)."""
    return request.constraints.time_budget_s


_CALLABLES = {"workload", "model_factory", "train_data", "val_data", "loss_fn", "metric_fn"}


def _workload_of(request: OptimizationRequest) -> Workload:
    """The request's workload: a name, a Workload, or built from its factories."""
    if request.model_factory is not None:
        missing = [n for n in ("train_data", "val_data", "loss_fn") if getattr(request, n) is None]
        if missing:
            raise HyperparameterError(f"a model_factory needs {missing} too", {"missing": missing})
        name = request.workload if isinstance(request.workload, str) and request.workload != "digits-mlp" else "custom"
        return Workload.from_callables(
            request.model_factory,
            request.train_data,
            request.val_data,
            request.loss_fn,
            request.metric_fn,
            name=name,
        )
    return get_workload(request.workload)


__all__ = ["STEPS", "ProgressCallback", "TrainingOptimizationAgent"]
