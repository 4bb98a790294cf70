"""The run state every phase reads and extends, and the plumbing they share.

Every tool output goes through the ProbeCache and every trial through the trial store, so a resumed
run re-measures nothing and a replay measures nothing at all. Decisions that depend on the wall
clock are recorded beside the probes (``decide``), so a replay takes the same path whatever its own
clock says. docs/architecture.md walks through the phases.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from trainopt.agent.budget import PROBE_SHARE, RunPolicy, StepBudget
from trainopt.agent.clock import WallClock
from trainopt.agent.digest import ProbeDigest
from trainopt.agent.evidence import trial_record
from trainopt.agent.horizon import Horizon, at_examples, cost
from trainopt.agent.planning import Planner
from trainopt.agent.probe_cache import ProbeCache, output_key
from trainopt.agent.schemas import CandidateOutcome, OptimizationRequest, TrainingConfig
from trainopt.errors import OptimizationError, WorkloadError
from trainopt.tools import get_tool
from trainopt.tools.onnx_optimizer import ONNXOptimizer
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult
from trainopt.tools.workloads import Workload


class Decision(BaseModel):
    """What the budget allowed: skip a piece of work, or how much of it to do (and the note saying why)."""

    skip: bool = False
    seconds: float | None = None
    finalists: int | None = None
    steps: int | None = None
    seeds: int | None = None
    candidates: int | None = None
    note: str | None = None


@dataclass
class RunState:
    request: OptimizationRequest
    space: TrainingConfig
    workload: Workload
    store: Any  # TrialStore, a queue-backed store or a ReplayStore: anything with run_many
    cache: ProbeCache
    device: torch.device
    device_type: str
    planner: Planner
    budget_s: float | None  # wall-clock budget; None: only the request's step budget applies
    out_dir: Path
    progress: Any = None
    replaying: bool = False
    clock: WallClock | None = None
    policy: RunPolicy = field(default_factory=RunPolicy)
    # filled while running
    horizon: Horizon | None = None  # the user's run (profile)
    budget: StepBudget | None = None
    digest: ProbeDigest | None = None
    tools: dict[str, BaseModel] = field(default_factory=dict)
    tool_records: dict[str, Any] = field(default_factory=dict)  # the stored JSON of each output
    trials: list[dict[str, Any]] = field(default_factory=list)  # evidence: every measured trial
    results: dict[str, TrialResult] = field(default_factory=dict)  # TrialConfig key -> result
    outcomes: list[CandidateOutcome] = field(default_factory=list)  # every raced candidate, baseline first
    rounds: int = 0  # propose/refine rounds run
    finalists: list[CandidateOutcome] = field(default_factory=list)
    challenger: CandidateOutcome | None = None  # the race winner, confirmed on held-out seeds
    confirm: dict[str, list[TrialResult]] = field(default_factory=dict)  # "baseline", "challenger" -> per seed
    rationale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    onnx_path: str | None = None
    steps_spent: int = 0  # baseline steps of every trial after calibration (probes counted as planned)
    calibration_steps: int = 0  # the profile's two trials of the baseline

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = WallClock(self.budget_s)

    # ---- progress and evidence ---------------------------------------------------------------------

    def report(self, phase: str, done: int, total: int, message: str = "") -> None:
        if self.progress is not None:
            self.progress(phase, done, total, message)

    def workload_id(self) -> str:
        """The workload's identity in the store (its fingerprint; the recorded one on replay)."""
        return self.store.workload_id(self.workload)

    def tool(
        self, name: str, phase: str, *, label: str | None = None, unkeyed: tuple[str, ...] = (), **values: Any
    ) -> BaseModel:
        """Run tool ``name`` (or read its recorded output back) and keep the output as evidence.

        ``label`` names the evidence entry (default: the tool's name); fields in ``unkeyed`` (an output
        path) do not enter the cache key, so a replay into another folder finds the recorded output.
        """
        cls = ONNXOptimizer if name == "onnx_optimizer" else get_tool(name)
        input = cls.Input(**values)
        keyed = input.model_dump(mode="json", exclude=set(unkeyed))
        key = output_key(name, self.workload_id(), keyed, self.device_type)

        def compute() -> BaseModel:
            progress = lambda done, total: self.report(phase, done, total, name)  # noqa: E731
            instance = cls(self.workload, device=self.device, store=self.store, progress=progress)
            return instance.run(input)

        output, text = self.cache.run(key, name, cls.Output, compute)
        self.tools[label or name] = output
        self.tool_records[label or name] = json.loads(text)
        return output

    def tool_or_note(self, name: str, phase: str, note: str, **values: Any) -> BaseModel | None:
        """``tool`` for optional evidence: an expected, typed failure (an OptimizationError) becomes the note
        "``note``: the error" and None. A bug in the workload (WorkloadError) and a replay that does not match
        its recording raise."""
        try:
            return self.tool(name, phase, **values)
        except WorkloadError:
            raise
        except OptimizationError as error:
            if self.replaying and "replay" in str(error):
                raise
            self.notes.append(f"{note}: {type(error).__name__}: {error}")
            return None

    def run_trials(self, configs: list[TrialConfig], purpose: str, phase: str) -> list[TrialResult]:
        """Measure ``configs`` (or read them back) through the store: in order here, or by workers at once."""
        if not configs:
            return []
        progress = lambda done, total: self.report(phase, done, total, purpose)  # noqa: E731
        started = time.monotonic()
        results = self.store.run_many(self.workload, configs, device=str(self.device), progress=progress)
        fresh = [r for r in results if not r.from_store]
        if fresh and purpose != "calibration":  # calibration pays the one-time setup
            trained = sum(r.steps_run * r.config.batch_size for r in fresh) / self.baseline_batch
            self.clock.observe(round(trained), time.monotonic() - started)
        for result in results:
            self.results[result.config.key()] = result
            self.trials.append(trial_record(result, purpose))
            if purpose == "calibration":
                self.calibration_steps += result.config.steps
            else:
                self.steps_spent += round(cost(result.config, self.baseline_batch))
        return results

    # ---- the budget ------------------------------------------------------------------------------

    @property
    def baseline_batch(self) -> int:
        """The baseline's batch: the unit of every step count of the run (agent/horizon.py)."""
        return min(self.workload.default_config.get("batch_size", 64), self.workload.num_train)

    def at_length(self, config: TrialConfig, steps: float, seed: int | None = None) -> TrialConfig:
        """``config`` trained on the examples of ``steps`` baseline steps, with a claim run's validation points."""
        return at_examples(config, steps, self.baseline_batch, seed)

    def baseline_config(self, steps: int, seed: int | None = None) -> TrialConfig:
        """The workload's default configuration (AdamW 1e-3, batch 64, constant for the built-ins)."""
        fields = {"optimizer": "adamw", "lr": 1e-3, "schedule": "constant",
                  **{k: v for k, v in self.workload.default_config.items() if k != "epochs"}}
        fields.update(steps=steps, seed=self.request.seeds[0] if seed is None else seed, warmup_steps=0,
                      batch_size=self.baseline_batch)
        return TrialConfig(**fields)

    def charge_probes(self) -> None:
        """Probe tools run their own steps: charge the planned share of the step budget for them."""
        self.steps_spent += int(PROBE_SHARE * self.budget.total_steps)

    def steps_left(self, reserve_s: float | None = None) -> int:
        """Training steps still affordable: the step plan's remainder and, under a time budget, what the
        measured step cost fits before the report's reserve."""
        planned = self.budget.total_steps - self.steps_spent
        if self.budget_s is None:
            return planned
        reserve = self.clock.report_reserve() if reserve_s is None else reserve_s
        timed = self.clock.steps_that_fit(reserve)
        return timed if self.request.constraints.step_budget is None else min(planned, timed)

    def decide(self, what: str, compute) -> Decision:
        """A budget decision, recorded with the probes when a time budget applies, so a replay (or a resumed
        run) takes the same path whatever its own clock says. Step-budget decisions are deterministic."""
        if self.budget_s is None:
            decision = compute()
        else:
            plan = None if self.budget is None else self.budget.model_dump(mode="json", exclude={"seconds_per_step"})
            key = output_key("budget_decision", self.workload_id(),
                             {"decision": what, "budget_s": self.budget_s, "plan": plan}, self.device_type)
            decision, _ = self.cache.run(key, "budget_decision", Decision, compute)
        if decision.note:
            self.notes.append(decision.note)
        return decision

    def time_note(self) -> str:
        if self.budget_s is None:
            return f"{max(0, self.steps_left())} of the {self.budget.total_steps} planned steps were left"
        return f"{max(0.0, self.clock.left()):.0f} s of the {self.budget_s:g} s budget were left"

    def baseline_outcome(self) -> CandidateOutcome:
        return next(o for o in self.outcomes if o.source == "baseline")

    def objective_text(self) -> str:
        return json.dumps(self.request.objective_metrics, sort_keys=True)

    def constraints_text(self) -> str:
        """Constraints for the prompt: the time budget is left out (no wall-clock figure in a prompt)."""
        limits = self.request.constraints.model_dump(exclude={"time_budget_s"}, exclude_none=True)
        if self.latency_ms is not None:
            limits["measured_latency_ms"] = round(self.latency_ms, 3)
        return json.dumps(limits, sort_keys=True)

    def memory_limit(self) -> float | None:
        hardware = self.space.hardware_constraints
        limits = [self.request.constraints.max_memory, hardware.max_memory,
                  hardware.max_gpu_memory if self.device.type == "cuda" else None]
        limits = [m for m in limits if m is not None]
        return min(limits) if limits else None
