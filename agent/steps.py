"""One optimization run, step by step: profile, probe, propose, verify, refine, confirm.

Every tool output goes through the ProbeCache and every trial through the trial store, so a
resumed run re-measures nothing and a replay measures nothing at all.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from trainopt.agent.budget import CALIBRATION_STEPS, StepBudget, marginal_step_seconds, plan_budget, plan_steps
from trainopt.agent.clock import WallClock
from trainopt.agent.digest import CAP_TOLERANCE, UPWARD_CAP, MeasuredResult, ProbeDigest, mean_lr
from trainopt.agent.evidence import build_digest, trial_record
from trainopt.agent.planning import Planner
from trainopt.agent.probe_cache import ProbeCache, output_key
from trainopt.agent.schemas import (
    CandidateOutcome,
    CandidateProposal,
    Gain,
    OptimizationRequest,
    OptimizationResponse,
    Prediction,
    TrainingConfig,
    TrainingMetrics,
)
from trainopt.agent.scoring import constraint_violation, objective_score
from trainopt.errors import OptimizationError
from trainopt.tools import get_tool
from trainopt.tools.onnx_optimizer import ONNXOptimizer
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult
from trainopt.tools.workloads import Workload

PREDICT_PREFIX = 0.4  # the convergence fit sees this share of the winner's confirm curve
CONFIRM_EVALS = 25  # validation points of a confirm run
GRADIENT_STEPS = 200  # longest gradient analysis
CONFIRM_FINALISTS = 2  # best verified candidates trained at full length
SEARCH_SEEDS = 2  # best measured candidates enqueued into the Optuna search
SEARCH_SETUP_S = 2.0  # the seeded search's Optuna study in the trial store (SQLite): measured 1-3 s
LATENCY_PROBE_STEPS = 10  # training steps before the latency export (weights do not change latency)


@dataclass
class OptimizationRun:
    request: OptimizationRequest
    space: TrainingConfig
    workload: Workload
    store: Any  # TrialStore or ReplayStore
    cache: ProbeCache
    device: torch.device
    device_type: str
    planner: Planner
    budget_s: float | None  # wall-clock budget; None: only the request's step budget applies
    out_dir: Path
    progress: Any = None
    replaying: bool = False
    # filled while running
    budget: StepBudget | None = None
    tools: dict[str, BaseModel] = field(default_factory=dict)
    tool_records: dict[str, Any] = field(default_factory=dict)  # the stored JSON of each output
    trials: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[CandidateOutcome] = field(default_factory=list)
    results: dict[str, TrialResult] = field(default_factory=dict)  # TrialConfig key -> result
    confirm: dict[str, list[TrialResult]] = field(default_factory=dict)
    rationale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    onnx_path: str | None = None
    clock: WallClock | None = None
    digest: ProbeDigest | None = None

    # ---- plumbing -------------------------------------------------------------------------------

    def report(self, step: str, done: int, total: int, message: str = "") -> None:
        if self.progress is not None:
            self.progress(step, done, total, message)

    def tool(
        self, name: str, step: str, *, label: str | None = None, unkeyed: tuple[str, ...] = (), **values: Any
    ) -> BaseModel:
        """Run tool ``name`` (or read its recorded output back) and keep the output as evidence.

        ``label`` names the evidence entry (default: the tool's name); fields in ``unkeyed`` (an output
        path) do not enter the cache key, so a replay into another folder finds the recorded output.
        """
        cls = ONNXOptimizer if name == "onnx_optimizer" else get_tool(name)
        input = cls.Input(**values)
        keyed = input.model_dump(mode="json", exclude=set(unkeyed))
        key = output_key(name, self.workload.name, keyed, self.device_type)

        def compute() -> BaseModel:
            progress = lambda done, total: self.report(step, done, total, name)  # noqa: E731
            instance = cls(self.workload, device=self.device, store=self.store, progress=progress)
            return instance.run(input)

        output, text = self.cache.run(key, name, cls.Output, compute)
        self.tools[label or name] = output
        self.tool_records[label or name] = json.loads(text)
        return output

    def trial(self, config: TrialConfig, purpose: str, step: str) -> TrialResult:
        progress = lambda done, total: self.report(step, done, total, purpose)  # noqa: E731
        started = time.monotonic()
        result = self.store.run(self.workload, config, device=str(self.device), progress=progress)
        if not result.from_store and purpose != "calibration":  # calibration pays the one-time setup
            self.clock.observe(result.steps_run, time.monotonic() - started)
        self.results[config.key()] = result
        self.trials.append(trial_record(result, purpose))
        return result

    # ---- the six steps --------------------------------------------------------------------------

    def execute(self) -> OptimizationResponse:
        if self.clock is None:
            self.clock = WallClock(self.budget_s)
        self.profile()
        self.probe()
        candidates = self.propose()
        self.verify(candidates, round=0)
        b = self.budget
        for r in range(1, self.request.refine_rounds + 1):
            if self.out_of_time(f"refine round {r}", self.request.num_candidates * b.candidate_steps):
                self.report("refine", 1, 1, "skipped: time budget")
                break
            candidates = self.refine(r)
            if not candidates:
                break
            self.verify(candidates, round=r)
        search_steps = (SEARCH_SEEDS + b.search_trials) * b.candidate_steps
        if not self.out_of_time("seeded search", search_steps, setup_s=SEARCH_SETUP_S):
            self.search()
        response = self.confirm_winner()
        if not self.replaying and self.clock.left() < 0:
            self.notes.append(f"the time budget of {self.budget_s:g} s was overrun: {self.clock.spent():.0f} s "
                              "before the report, mostly in work that cannot be skipped (calibration, probes, "
                              "the first candidates and the shortest confirm runs)")
        return response

    def confirm_runs(self, finalists: int, steps: int) -> int:
        """Training steps of the confirm runs: the baseline and each finalist on every seed."""
        return len(self.request.seeds) * (1 + finalists) * steps

    def decide(self, what: str, compute) -> _Decision:
        """A time-budget decision, recorded with the probes so a replay (or a resumed run) takes the same
        path whatever its own clock says. Without a time budget nothing is skipped or recorded."""
        if self.budget_s is None:
            return _Decision()
        plan = None if self.budget is None else self.budget.model_dump(mode="json", exclude={"seconds_per_step"})
        key = output_key("budget_decision", self.workload.name,
                         {"decision": what, "budget_s": self.budget_s, "plan": plan}, self.device_type)
        decision, _ = self.cache.run(key, "budget_decision", _Decision, compute)
        if decision.note:
            self.notes.append(decision.note)
        return decision

    def out_of_time(self, what: str, steps: int, setup_s: float = 0.0) -> bool:
        """Skip an optional phase when its estimated time and the planned confirm runs no longer fit."""
        b = self.budget
        after = self.confirm_runs(CONFIRM_FINALISTS, b.confirm_steps)

        def compute() -> _Decision:
            if self.clock.fits(steps + after, reserve_s=self.clock.report_reserve() + setup_s):
                return _Decision()
            return _Decision(skip=True, note=(
                f"{what} skipped: about {self.clock.estimate(steps) + setup_s:.0f} s for its {steps} steps and "
                f"{self.clock.estimate(after):.0f} s for the confirm runs at {self.clock.seconds_per_step() * 1e3:.2g} "
                f"ms per step (measured on this run) do not fit in the {max(0.0, self.clock.left()):.0f} s left of the "
                f"{self.budget_s:g} s budget"))

        return self.decide(what, compute).skip

    def profile(self) -> None:
        """Measure seconds per step of the baseline and split the time budget into steps.

        A time budget is planned from what is left of it after the calibration and before the report,
        at the wall seconds per step of the longer calibration trial (validation included), or at the
        marginal step cost when that is higher."""
        self.report("profile", 0, 1, "calibration trials")
        short, long = (self.trial(self.baseline_config(n), "calibration", "profile") for n in CALIBRATION_STEPS)
        seconds = marginal_step_seconds(short.steps_run, short.time_per_step_s, long.steps_run, long.time_per_step_s)
        steps_per_epoch = max(1, self.workload.num_train // long.config.batch_size)
        shape = (self.request.num_candidates, self.request.refine_rounds, len(self.request.seeds))
        max_steps = self.space.max_epochs * steps_per_epoch
        step_budget = self.request.constraints.step_budget
        wall_rate = max(seconds, long.wall_time_s / max(1, long.steps_run))
        self.clock.fallback_seconds_per_step = wall_rate
        if step_budget is not None:
            self.budget = plan_steps(step_budget, *shape, max_steps, self.budget_s, seconds)
        else:
            plannable = self.decide("plan", lambda: _Decision(seconds=self.clock.left() - self.clock.report_reserve()))
            usable = max(plannable.seconds, 0.1 * self.budget_s)
            planned = plan_budget(usable, wall_rate, *shape, max_steps=max_steps)
            self.budget = planned.model_copy(update={"budget_s": self.budget_s})
        within = f"in {self.budget_s:g} s" if step_budget is None else "(step budget)"
        self.report("profile", 1, 1, f"{self.budget.total_steps} steps {within}")

    def probe(self) -> None:
        """LR range test + schedule check, batch-size probe, gradient analysis; then the digest."""
        b = self.budget
        lr_low, lr_high = self.space.learning_rate_range
        lr_out = self.tool(
            "learning_rate_scheduler",
            "probe",
            min_lr=lr_low,
            max_lr=lr_high,
            range_steps=b.range_steps,
            budget_steps=b.confirm_steps,
            check_steps=b.check_steps,
            schedules=["cosine"],  # one check that the peak trains; the planner spreads schedules
        )
        batch_out = self.optional_tool(
            "batch_size_optimizer",
            min_batch=self.space.batch_size_range[0],
            max_batch=self.space.batch_size_range[1],
            max_memory_mb=self.memory_limit(),
            noise_warm_steps=b.check_steps // 2,
            cost_steps=2 * b.check_steps,  # about: the noise-scale warmup and the throughput timings
        )
        grad_steps = max(20, min(b.check_steps, GRADIENT_STEPS))
        grad_out = self.optional_tool("gradient_analyzer", cost_steps=grad_steps, steps=grad_steps)
        with torch.random.fork_rng():
            parameters = sum(p.numel() for p in self.workload.make_model().parameters())
        self.digest = build_digest(
            self.workload,
            parameters,
            self.space,
            self.baseline_config(b.candidate_steps),
            b.candidate_steps,
            lr_out,
            batch_out,
            grad_out,
        )
        if self.request.wants_latency:
            self.measure_latency()

    def optional_tool(self, name: str, cost_steps: int = 0, **values: Any) -> BaseModel | None:
        """A probe whose failure (or absence) becomes an observation in the notes, not a crash. It is
        skipped when its ``cost_steps`` would leave no time for a baseline, a candidate and the shortest confirm."""
        b = self.budget
        after = 2 * b.candidate_steps + self.confirm_runs(1, b.candidate_steps)

        def compute() -> _Decision:
            if self.clock.fits(cost_steps + after, reserve_s=self.clock.report_reserve()):
                return _Decision()
            return _Decision(skip=True, note=f"{name} skipped: {max(0.0, self.clock.left()):.0f} s of the "
                                             f"{self.budget_s:g} s budget were left")

        if self.decide(f"probe {name}", compute).skip:
            return None
        try:
            return self.tool(name, "probe", **values)
        except (OptimizationError, ImportError, AttributeError, ValueError) as error:
            if self.replaying and isinstance(error, OptimizationError) and "replay" in str(error):
                raise
            self.notes.append(f"{name} gave no evidence: {type(error).__name__}: {error}")
            return None

    def propose(self) -> list[CandidateProposal]:
        self.report("propose", 0, 1, self.planner.usage().requested)
        prediction = self.planner.ask(
            "propose",
            evidence=self.digest,
            objective=self.objective_text(),
            constraints=self.constraints_text(),
            num_candidates=self.request.num_candidates,
        )
        self.rationale.append(f"Proposal: {prediction.rationale}")
        self.report("propose", 1, 1, f"{len(prediction.candidates)} candidates")
        return list(prediction.candidates)

    def refine(self, round: int) -> list[CandidateProposal]:
        self.report("refine", 0, 1, f"round {round}")
        results = [self.measured(o) for o in sorted(self.outcomes, key=lambda o: o.score)]
        prediction = self.planner.ask(
            "refine",
            evidence=self.digest,
            objective=self.objective_text(),
            constraints=self.constraints_text(),
            results=results,
            num_candidates=self.request.num_candidates,
        )
        self.rationale.append(f"Refinement {round}: {prediction.rationale}")
        self.report("refine", 1, 1, f"{len(prediction.candidates)} candidates")
        return list(prediction.candidates)

    def verify(self, proposals: list[CandidateProposal], round: int) -> None:
        """Measure the baseline (once) and every new candidate for the same steps on the same seed."""
        steps = self.budget.candidate_steps
        if not any(o.source == "baseline" for o in self.outcomes):
            self.add_outcome(self.baseline_config(steps), "baseline", -1, [], step="verify")
        source = self.planner.answered_by[-1].split(": ", 1)[1]
        todo = []
        for proposal in proposals:
            config, clamped = self.to_config(proposal, steps)
            if config.key() not in {o.config.key() for o in self.outcomes} | {c.key() for c, _ in todo}:
                todo.append((config, clamped))
        after = self.confirm_runs(1, self.budget.candidate_steps)  # the shortest confirm the budget may shrink to
        for i, (config, clamped) in enumerate(todo):
            if round == 0 and i > 0 and self.out_of_budget_candidates(i, len(todo), steps, after):
                break
            self.report("verify", i, len(todo), f"round {round}: candidate {i + 1}/{len(todo)}")
            self.add_outcome(config, source, round, clamped, step="verify")
        self.report("verify", len(todo), len(todo), f"round {round} measured")

    def out_of_budget_candidates(self, index: int, count: int, steps: int, after: int) -> bool:
        """Drop the proposals from ``index`` on when one more would leave no time for the shortest confirm."""

        def compute() -> _Decision:
            if self.clock.fits(steps + after, reserve_s=self.clock.report_reserve()):
                return _Decision()
            return _Decision(skip=True, note=(
                f"{count - index} of {count} proposed candidates not measured: the time budget left "
                f"{max(0.0, self.clock.left()):.0f} s, about what the shortest confirm runs need"))

        return self.decide(f"candidate {index + 1} of round 0", compute).skip

    def confirm_plan(self, finalists: int, steps: int) -> _Decision:
        """The confirm runs that fit the time left: as planned, else one finalist, else shorter runs
        (not below the candidates' length)."""
        reserve = self.clock.report_reserve()
        if self.clock.fits(self.confirm_runs(finalists, steps), reserve_s=reserve):
            return _Decision(finalists=finalists, steps=steps)
        fit = self.clock.steps_that_fit(reserve)
        if finalists > 1 and self.confirm_runs(1, steps) <= fit:
            return _Decision(finalists=1, steps=steps, note=(
                f"confirm: one finalist instead of {finalists}, since {max(0.0, self.clock.left()):.0f} s of the "
                f"{self.budget_s:g} s budget were left"))
        shorter = max(self.budget.candidate_steps, fit // self.confirm_runs(min(finalists, 1), 1) // 10 * 10)
        return _Decision(finalists=min(finalists, 1), steps=min(steps, shorter), note=(
            f"confirm: {min(steps, shorter)} steps instead of {steps}"
            + (" and one finalist" if finalists > 1 else "")
            + f", since {max(0.0, self.clock.left()):.0f} s of the {self.budget_s:g} s budget were left "
            f"at {self.clock.seconds_per_step() * 1e3:.2g} ms per step"))

    def confirm_winner(self) -> OptimizationResponse:
        """Train the CONFIRM_FINALISTS best candidates and the baseline longest, on every seed; the
        finalist with the best mean objective there wins (short runs favour aggressive LRs)."""
        accepted = sorted(
            (o for o in self.outcomes if o.rejected is None and math.isfinite(o.score) and o.source != "baseline"),
            key=lambda o: o.score,
        )
        if not accepted:
            self.notes.append("no measured candidate met the constraints and trained stably: the baseline is reported")
        finalists = self.finalists(accepted)
        plan = self.decide("confirm", lambda: self.confirm_plan(len(finalists), self.budget.confirm_steps))
        steps = plan.steps or self.budget.confirm_steps
        finalists = finalists[: plan.finalists] if plan.finalists is not None else finalists
        every = max(1, steps // CONFIRM_EVALS)
        baseline = self.baseline_config(steps).model_copy(update={"eval_every": every})
        configs = [
            (
                o,
                o.config.model_copy(
                    update={"steps": steps, "eval_every": every, "warmup_steps": self.scaled_warmup(o.config, steps)}
                ),
            )
            for o in finalists
        ]
        runs = [
            (config.model_copy(update={"seed": seed}), name)
            for seed in self.request.seeds
            for config, name in [(baseline, "baseline")]
            + [(c, f"finalist {i + 1}") for i, (_, c) in enumerate(configs)]
        ]
        for i, (config, name) in enumerate(runs):
            self.report("confirm", i, len(runs), f"{name} seed {config.seed}")
            self.confirm.setdefault(name, []).append(self.trial(config, f"confirm {name}", "confirm"))
        self.report("confirm", len(runs), len(runs), "done")
        weights = self.request.objective_metrics
        base_runs = self.confirm["baseline"]

        def confirm_score(name: str) -> float:
            scores = [
                objective_score(r, b, weights, self.latency_ms)
                for r, b in zip(self.confirm[name], base_runs, strict=True)
            ]
            return sum(scores) / len(scores)

        ranked = sorted(range(len(configs)), key=lambda i: confirm_score(f"finalist {i + 1}"))
        if ranked:
            best, winner = configs[ranked[0]]
            self.confirm["winner"] = self.confirm[f"finalist {ranked[0] + 1}"]
            if len(ranked) > 1:
                self.notes.append(
                    f"confirm runs: finalist {ranked[0] + 1} (score {confirm_score(f'finalist {ranked[0] + 1}'):.3g}) "
                    f"beat finalist {ranked[1] + 1} ({confirm_score(f'finalist {ranked[1] + 1}'):.3g}); "
                    "1.0 is the baseline"
                )
        else:
            best, winner = next(o for o in self.outcomes if o.source == "baseline"), baseline
            self.confirm["winner"] = base_runs
        gain = self.gain(steps)
        recommended = winner
        if gain.relative_loss_reduction < 0 and winner is not baseline:
            self.notes.append(
                f"the best finalist ({winner.optimizer} lr {winner.lr:.3g}, batch {winner.batch_size}, "
                f"{winner.schedule}) reached val loss {gain.recommended.loss:.4g} against the baseline's "
                f"{gain.baseline.loss:.4g} in the confirm runs: the baseline is recommended")
            recommended, best = baseline, next(o for o in self.outcomes if o.source == "baseline")
            self.confirm["winner"] = base_runs
            gain = self.gain(steps)  # recommended == baseline: no gain, stated as such
        forecast = self.decide("convergence forecast", lambda: self.forecast_fits())
        prediction = None if forecast.skip else self.predict(self.confirm["winner"][0])
        explanation = self.planner.ask(
            "explain", evidence=self.digest, winner=self.measured(best), comparison=self.comparison(gain)
        ).explanation
        self.rationale.append(f"Choice: {explanation}")
        if self.request.wants_latency:
            self.export_onnx(recommended)
        return OptimizationResponse(
            workload=self.workload.name,
            device=self.device_type,
            recommended=recommended,
            baseline=baseline,
            rationale="\n\n".join(self.rationale),
            evidence=self.evidence(),
            candidates=self.outcomes,
            gain=gain,
            prediction=prediction,
            latency_ms=self.latency_ms,
            lm=self.planner.usage(),
            notes=self.notes,
        )

    # ---- helpers ----------------------------------------------------------------------------------

    def finalists(self, accepted: list[CandidateOutcome]) -> list[CandidateOutcome]:
        """The best CONFIRM_FINALISTS by short-run score; when the best one's mean LR lies above the
        digest's cap (short runs favour aggressive LRs), the next is the best one within the cap."""
        if not accepted:
            return []
        within = lambda o: mean_lr(o.config.lr, o.config.schedule) <= self.digest.mean_lr_cap(  # noqa: E731
            o.config.batch_size) * CAP_TOLERANCE
        first, rest = accepted[0], accepted[1:]
        if not within(first):
            trusted = [o for o in rest if within(o)]
            if trusted:
                self.notes.append(
                    f"finalist 1 (lr {first.config.lr:.3g}, {first.config.schedule}) won its short run with a mean "
                    f"LR above {UPWARD_CAP:g}x the range test's suggestion; short runs favour aggressive LRs, so "
                    "finalist 2 is the best candidate within that cap")
            rest = trusted + [o for o in rest if not within(o)]
        return [first, *rest[: CONFIRM_FINALISTS - 1]]

    def plots_fit(self) -> _Decision:
        """The report's plots (matplotlib, 3-12 s measured on 2 shared cores) only while half the report's
        reserve is left; a replay always draws them."""
        if self.replaying or self.clock.left() >= 0.5 * self.clock.report_reserve():
            return _Decision()
        return _Decision(skip=True, note=f"report.html without plots: {max(0.0, self.clock.left()):.0f} s of the "
                                         f"{self.budget_s:g} s budget were left")

    def forecast_fits(self) -> _Decision:
        """The convergence forecast (bootstrap fits, about a second) only when time is left for it."""
        if self.clock.left() > 2 * self.clock.report_reserve():
            return _Decision()
        return _Decision(skip=True, note=f"no convergence forecast: {max(0.0, self.clock.left()):.0f} s of the "
                                         f"{self.budget_s:g} s budget were left for it and the report")

    def baseline_config(self, steps: int) -> TrialConfig:
        """The workload's default configuration (AdamW 1e-3, batch 64, constant for the built-ins)."""
        fields = {
            "optimizer": "adamw",
            "lr": 1e-3,
            "batch_size": 64,
            "schedule": "constant",
            **self.workload.default_config,
        }
        fields.update(steps=steps, seed=self.request.seeds[0], warmup_steps=0)
        fields["batch_size"] = min(fields["batch_size"], self.workload.num_train)
        return TrialConfig(**fields)

    def to_config(self, proposal: CandidateProposal, steps: int) -> tuple[TrialConfig, list[str]]:
        """A proposal as a TrialConfig, clamped to the probed safe ranges (each move noted)."""
        d, clamped = self.digest, []
        lr = min(max(proposal.lr, d.lr_safe_range[0]), d.lr_safe_range[1])
        if abs(lr - proposal.lr) > 1e-3 * proposal.lr:
            clamped.append(f"lr {proposal.lr:.3g} -> {lr:.3g} (probed safe range)")
        batch = min(max(proposal.batch_size, d.batch_range[0]), d.batch_range[1])
        if batch != proposal.batch_size:
            clamped.append(f"batch_size {proposal.batch_size} -> {batch} (allowed and fitting range)")
        optimizer = proposal.optimizer
        if optimizer not in d.optimizer_options:
            optimizer = d.optimizer_options[0]
            clamped.append(f"optimizer {proposal.optimizer} -> {optimizer} (not among the options)")
        schedule = "constant" if optimizer == "schedulefree" else proposal.schedule
        warmup = min(steps - 1, round(proposal.warmup_fraction * steps))
        if schedule == "one_cycle":
            warmup = 0
        config = TrialConfig(
            optimizer=optimizer,
            lr=float(f"{lr:.4g}"),
            batch_size=batch,
            weight_decay=proposal.weight_decay,
            schedule=schedule,
            warmup_steps=warmup,
            grad_clip=proposal.grad_clip,
            seed=self.request.seeds[0],
            steps=steps,
        )
        return config, clamped

    def scaled_warmup(self, config: TrialConfig, steps: int) -> int:
        return min(steps - 1, round(config.warmup_steps / config.steps * steps))

    def add_outcome(self, config: TrialConfig, source: str, round: int, clamped: list[str], step: str) -> None:
        purpose = "baseline" if source == "baseline" else f"candidate round {round}"
        result = self.trial(config, purpose, step)
        baseline = (
            self.results[self.baseline_config(self.budget.candidate_steps).key()] if source != "baseline" else result
        )
        self.outcomes.append(
            CandidateOutcome(
                config=config,
                source=source,
                round=round,
                steps=result.steps_run,
                val_loss=result.final_val_loss,
                val_metric=result.final_val_metric,
                peak_memory_mb=result.peak_memory_mb,
                diverged=result.diverged,
                score=objective_score(result, baseline, self.request.objective_metrics, self.latency_ms),
                rejected=constraint_violation(result, self.request.constraints, self.latency_ms),
                clamped=clamped,
            )
        )

    def measured(self, outcome: CandidateOutcome) -> MeasuredResult:
        c = outcome.config
        return MeasuredResult.from_config(
            c,
            val_loss=_finite(outcome.val_loss),
            val_metric=outcome.val_metric,
            diverged=outcome.diverged,
            score=_finite(outcome.score),
            rejected=outcome.rejected,
        )

    def memory_limit(self) -> float | None:
        limits = [
            m
            for m in (
                self.request.constraints.max_memory,
                self.space.hardware_constraints.max_memory,
                self.space.hardware_constraints.max_gpu_memory if self.device.type == "cuda" else None,
            )
            if m is not None
        ]
        return min(limits) if limits else None

    def objective_text(self) -> str:
        return json.dumps(self.request.objective_metrics, sort_keys=True)

    def constraints_text(self) -> str:
        """Constraints for the prompt: the time budget is left out (no wall-clock figure in a prompt)."""
        limits = self.request.constraints.model_dump(exclude={"time_budget_s"}, exclude_none=True)
        if self.latency_ms is not None:
            limits["measured_latency_ms"] = round(self.latency_ms, 3)
        return json.dumps(limits, sort_keys=True)

    def gain(self, steps: int) -> Gain:
        win, base = self.confirm["winner"], self.confirm["baseline"]
        win_losses, base_losses = [r.final_val_loss for r in win], [r.final_val_loss for r in base]
        reductions = [
            (b - w) / b
            for w, b in zip(win_losses, base_losses, strict=True)
            if math.isfinite(w) and math.isfinite(b) and b > 0
        ]
        metric_change = None
        if all(r.final_val_metric is not None for r in win + base):
            metric_change = (sum(r.final_val_metric for r in win) - sum(r.final_val_metric for r in base)) / len(win)
        return Gain(
            steps=steps,
            seeds=list(self.request.seeds),
            baseline=self.metrics(base),
            recommended=self.metrics(win),
            baseline_val_losses=base_losses,
            recommended_val_losses=win_losses,
            relative_loss_reduction=sum(reductions) / len(reductions) if reductions else -math.inf,
            metric_change=metric_change,
        )

    def metrics(self, runs: list[TrialResult]) -> TrainingMetrics:
        first = runs[0]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        per_epoch = self.workload.num_train / first.config.batch_size
        metrics = [r.final_val_metric for r in runs]
        return TrainingMetrics(
            loss=mean([r.final_val_loss for r in runs]),
            accuracy=mean(metrics) if all(m is not None for m in metrics) else None,
            gradient_norm=first.grad_norms[-1] if first.grad_norms else None,
            learning_rate=first.config.lr,
            epoch=first.steps_run / per_epoch,
            batch_size=first.config.batch_size,
            memory_usage=max(r.peak_memory_mb for r in runs),
            time_per_epoch=mean([r.time_per_step_s for r in runs]) * per_epoch,
        )

    def comparison(self, gain: Gain) -> dict[str, Any]:
        return {
            "steps": gain.steps,
            "seeds": gain.seeds,
            "baseline_val_loss": round(gain.baseline.loss, 6),
            "recommended_val_loss": round(gain.recommended.loss, 6),
            "baseline_val_metric": gain.baseline.accuracy,
            "recommended_val_metric": gain.recommended.accuracy,
            "rejected": [o.rejected for o in self.outcomes if o.rejected],
        }

    def predict(self, run: TrialResult) -> Prediction | None:
        """Forecast the run's final val loss from its first PREDICT_PREFIX, against the measured one."""
        cut = PREDICT_PREFIX * run.config.steps
        points = [(s, v) for s, v in zip(run.val_steps, run.val_losses, strict=True) if s <= cut]
        if run.diverged or len(points) < 6:
            self.notes.append(f"no convergence forecast: {len(points)} validation points before step {cut:g}")
            return None
        try:
            out = self.tool(
                "convergence_predictor",
                "confirm",
                steps=[float(s) for s, _ in points],
                losses=[v for _, v in points],
                predict_step=float(run.config.steps),
            )
        except (OptimizationError, ValueError) as error:
            self.notes.append(f"no convergence forecast: {error}")
            return None
        measured = run.final_val_loss
        return Prediction(
            fit_on_steps=int(points[-1][0]),
            at_step=run.config.steps,
            predicted_loss=out.predicted_loss,
            interval=tuple(out.interval),
            measured_loss=measured,
            abs_pct_error=abs(out.predicted_loss - measured) / measured * 100,
            model=out.formula,
        )

    def measure_latency(self) -> None:
        """Batch-1 onnxruntime latency of the workload's model (one thread): the architecture fixes it,
        so one short-trained export serves every candidate. Recorded like any probe."""
        out = self.tool(
            "onnx_optimizer",
            "probe",
            label="onnx_latency",
            unkeyed=("path",),
            config={"steps": LATENCY_PROBE_STEPS},
            batch_sizes=(1,),
            threads=1,
            path=str(self.out_dir / "latency-probe.onnx"),
        )
        self.latency_ms = _onnx_p50(out)

    def export_onnx(self, config: TrialConfig) -> None:
        """Train the recommended configuration, export model.onnx and validate it (latency at batch 1)."""
        fields = config.model_dump(exclude={"eval_every"})
        path = self.out_dir / "model.onnx"
        out = self.tool(
            "onnx_optimizer",
            "confirm",
            label="onnx_model",
            unkeyed=("path",),
            config=fields,
            batch_sizes=(1,),
            threads=1,
            path=str(path),
        )
        if self.replaying:
            self.notes.append("model.onnx is not rebuilt on replay: the recorded export is in the evidence")
        else:
            self.onnx_path = out.model.path
        self.latency_ms = _onnx_p50(out)

    def search(self) -> None:
        """Optuna TPE with pruning, seeded with the best measured candidates; its winner is measured too."""
        ranked = sorted(
            (o for o in self.outcomes if o.source != "baseline" and math.isfinite(o.score)), key=lambda o: o.score
        )
        seeds = [
            o.config.model_dump(include={"optimizer", "lr", "weight_decay", "batch_size", "schedule"})
            for o in ranked[:SEARCH_SEEDS]
        ]
        d, b = self.digest, self.budget
        batches = sorted(
            {
                min(max(x, d.batch_range[0]), d.batch_range[1])
                for x in (d.batch_recommended // 2, d.batch_recommended, d.batch_recommended * 2)
            }
        )
        try:
            out = self.tool(
                "hyperparameter_suggester",
                "verify",
                candidates=seeds,
                lr_range=d.lr_safe_range,
                weight_decay_range=(0.0, 0.1),
                batch_sizes=batches,
                optimizers=list(d.optimizer_options),
                schedules=["constant", "cosine", "one_cycle"],
                n_trials=len(seeds) + b.search_trials,
                max_steps=b.candidate_steps,
                seed=self.request.seeds[0],
            )
        except (OptimizationError, ValueError) as error:
            if self.replaying and "replay" in str(error):
                raise
            self.notes.append(f"the seeded search gave no result: {error}")
            return
        best = {k: v for k, v in out.best_config.items() if k not in ("steps", "seed", "eval_every")}
        config = TrialConfig(**{**best, "steps": b.candidate_steps, "seed": self.request.seeds[0]})
        if config.key() not in {o.config.key() for o in self.outcomes}:
            self.add_outcome(config, "search", -1, [], step="verify")

    def evidence(self) -> dict[str, Any]:
        return {
            "budget": self.budget.model_dump(mode="json", exclude={"seconds_per_step", "total_steps"}),
            "digest": self.digest.model_dump(mode="json"),
            "tools": dict(self.tool_records),
            "trials": self.trials,
        }


class _Decision(BaseModel):
    """What the time budget allowed: skip a phase, or how many finalists and steps the confirm gets."""

    skip: bool = False
    seconds: float | None = None
    finalists: int | None = None
    steps: int | None = None
    note: str | None = None


def _onnx_p50(out) -> float:
    """onnxruntime p50 at batch 1 from the ONNX tool's validation report."""
    row = next(r for r in out.report.latency if r.runtime == "onnxruntime" and r.batch_size == 1)
    return row.p50_ms


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 1e30
