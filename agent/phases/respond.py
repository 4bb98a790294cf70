"""Phase 8, respond: the convergence forecast, the planner's explanation, the ONNX export when latency
matters, and the OptimizationResponse with every piece of evidence behind it.

The forecast fits the ConvergencePredictor to the first PREDICT_PREFIX of the recommended
configuration's first confirm run and is scored against the measured end of that run.
"""

from __future__ import annotations

import math
from typing import Any

from trainopt.agent.phases.probe import onnx_p50
from trainopt.agent.phases.propose import measured
from trainopt.agent.phases.state import Decision, RunState
from trainopt.agent.schemas import Gain, OptimizationResponse, Prediction
from trainopt.tools.trial_config import TrialConfig
from trainopt.tools.trials import TrialResult

PREDICT_PREFIX = 0.4  # the convergence fit sees this share of the recommended configuration's confirm curve


def respond(state: RunState, gain: Gain) -> OptimizationResponse:
    state.report("respond", 0, 1, "explanation and report")
    at_h = lambda runs: state.at_length(runs[0].config, state.budget.horizon_steps, state.request.seeds[0])  # noqa: E731
    baseline = at_h(state.confirm["baseline"])
    if gain.adopted:
        recommended, runs, best = at_h(state.confirm["challenger"]), state.confirm["challenger"], state.challenger
    else:
        recommended, runs, best = baseline, state.confirm["baseline"], state.baseline_outcome()
    state.confirm["recommended"] = runs
    run_seconds = {"baseline": _seconds(state, state.confirm["baseline"]), "recommended": _seconds(state, runs)}
    step_changed = any(getattr(recommended, k) != getattr(baseline, k) for k in ("batch_size", "optimizer"))
    if step_changed and abs(run_seconds["recommended"] / run_seconds["baseline"] - 1) > 0.1:  # same step: timing noise
        state.notes.append(
            f"training your run (H) takes about {run_seconds['recommended']:.3g} s with the recommendation "
            f"instead of {run_seconds['baseline']:.3g} s with the baseline on this {state.device_type} (measured "
            "throughput)")
    if gain.reason not in state.notes:  # "no raced candidate ..." is noted when the finals find none
        state.notes.append(gain.reason)
    b = state.budget
    if state.budget_s is None and state.steps_spent > b.total_steps:
        state.notes.append(
            f"the run spent {state.steps_spent} of the {b.total_steps} steps budgeted: its smallest form (the "
            f"probes, one proposal raced, {len(gain.seeds)} held-out seeds, {b.candidate_steps} steps a run) needs "
            "that much")
    forecast = state.decide("convergence forecast", lambda: forecast_fits(state))
    prediction = None if forecast.skip else predict(state, runs[0])
    explanation = state.planner.ask(
        "explain", evidence=state.digest, winner=measured(best), comparison=comparison(state, gain)
    ).explanation
    state.rationale.append(f"Choice: {explanation}")
    if state.request.wants_latency:
        export_onnx(state, recommended)
    state.report("respond", 1, 1, "done")
    return OptimizationResponse(
        workload=state.workload.name,
        device=state.device_type,
        recommended=recommended,
        baseline=baseline,
        challenger=at_h(state.confirm["challenger"]) if state.challenger else None,
        rationale="\n\n".join(state.rationale),
        evidence=evidence(state),
        candidates=state.outcomes,
        gain=gain,
        prediction=prediction,
        latency_ms=state.latency_ms,
        lm=state.planner.usage(),
        notes=state.notes,
        horizon=state.horizon,
        run_seconds=run_seconds,
        steps_spent=state.steps_spent + state.calibration_steps,
    )


def _seconds(state: RunState, runs: list[TrialResult]) -> float:
    """Seconds of training the user's run H takes at ``runs``' mean measured throughput (examples per second)."""
    throughput = [r.throughput for r in runs if r.throughput > 0]
    return round(state.horizon.examples * len(throughput) / math.fsum(throughput), 3) if throughput else math.nan


def comparison(state: RunState, gain: Gain) -> dict[str, Any]:
    """What the explanation may quote: the held-out comparison and the decision."""
    challenger = state.challenger.config if state.challenger else None
    return {
        "steps": gain.steps,
        "claim": gain.claim_text(),
        "seeds": gain.seeds,
        "baseline_val_loss": round(gain.baseline.loss, 6),
        "recommended_val_loss": round((gain.challenger if gain.adopted else gain.baseline).loss, 6),
        "baseline_val_metric": gain.baseline.accuracy,
        "recommended_val_metric": (gain.challenger if gain.adopted else gain.baseline).accuracy,
        "challenger": None if challenger is None else challenger.model_dump(
            include={"optimizer", "lr", "batch_size", "schedule", "weight_decay", "warmup_steps", "grad_clip"}),
        "challenger_val_loss": round(gain.challenger.loss, 6),
        "relative_loss_reduction": round(gain.relative_loss_reduction, 4),
        "interval": [round(x, 4) for x in gain.interval],
        "wins": gain.wins,
        "losses": gain.losses,
        "adopted": gain.adopted,
        "reason": gain.reason,
        "rejected": [o.rejected for o in state.outcomes if o.rejected],
    }


def forecast_fits(state: RunState) -> Decision:
    """The convergence forecast (bootstrap fits, about a second) only when time is left for it."""
    if state.clock.left() > 2 * state.clock.report_reserve():
        return Decision()
    return Decision(skip=True, note=f"no convergence forecast: {state.time_note()} for it and the report")


def plots_fit(state: RunState) -> Decision:
    """The report's plots (matplotlib, 3-12 s measured on 2 shared cores) only while half the report's
    reserve is left; a replay always draws them."""
    if state.replaying or state.clock.left() >= 0.5 * state.clock.report_reserve():
        return Decision()
    return Decision(skip=True, note=f"report.html without plots: {state.time_note()}")


def predict(state: RunState, run: TrialResult) -> Prediction | None:
    """Forecast the run's final val loss from its first PREDICT_PREFIX, against the measured one."""
    cut = PREDICT_PREFIX * run.config.steps
    points = [(s, v) for s, v in zip(run.val_steps, run.val_losses, strict=True) if s <= cut]
    if run.diverged or len(points) < 6:
        state.notes.append(f"no convergence forecast: {len(points)} validation points before step {cut:g}")
        return None
    out = state.tool_or_note(
        "convergence_predictor",
        "respond",
        "no convergence forecast",
        steps=[float(s) for s, _ in points],
        losses=[v for _, v in points],
        predict_step=float(run.config.steps),
    )
    if out is None:
        return None
    measured_loss = run.final_val_loss
    return Prediction(
        fit_on_steps=int(points[-1][0]),
        at_step=run.config.steps,
        predicted_loss=out.predicted_loss,
        interval=tuple(out.interval),
        measured_loss=measured_loss,
        abs_pct_error=abs(out.predicted_loss - measured_loss) / measured_loss * 100
        if math.isfinite(measured_loss) and measured_loss else math.inf,
        model=out.formula,
    )


def export_onnx(state: RunState, config: TrialConfig) -> None:
    """Train the recommended configuration, export model.onnx and validate it (latency at batch 1)."""
    out = state.tool(
        "onnx_optimizer",
        "respond",
        label="onnx_model",
        unkeyed=("path",),
        config=config.model_dump(exclude={"eval_every"}),
        batch_sizes=(1,),
        threads=1,
        path=str(state.out_dir / "model.onnx"),
    )
    if state.replaying:
        state.notes.append("model.onnx is not rebuilt on replay: the recorded export is in the evidence")
    else:
        state.onnx_path = out.model.path
    state.latency_ms = onnx_p50(out)


def evidence(state: RunState) -> dict[str, Any]:
    return {
        "budget": state.budget.model_dump(mode="json", exclude={"seconds_per_step", "total_steps"}),
        "digest": state.digest.model_dump(mode="json"),
        "tools": dict(state.tool_records),
        "trials": state.trials,
    }
