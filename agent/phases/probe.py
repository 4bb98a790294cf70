"""Phase 2, probe: LR range test and schedule check, batch-size probe, gradient analysis (real runs),
boiled down to the planner's digest; the ONNX latency probe when the objective or a constraint asks.

The batch and gradient probes are optional: skipped when their cost would leave no time for a
baseline, a candidate and the shortest confirm; a probe that fails with an expected, typed error
becomes a note (RunState.tool_or_note). A bug in the workload propagates.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel

from trainopt.agent.digest import ProbeDigest
from trainopt.agent.evidence import build_digest
from trainopt.agent.phases.state import Decision, RunState

GRADIENT_STEPS = 200  # longest gradient analysis
LATENCY_PROBE_STEPS = 10  # training steps before the latency export (weights do not change latency)


def probe(state: RunState) -> None:
    b = state.budget
    lr_low, lr_high = state.space.learning_rate_range
    lr_out = state.tool(
        "learning_rate_scheduler",
        "probe",
        min_lr=lr_low,
        max_lr=lr_high,
        range_steps=b.range_steps,
        budget_steps=b.confirm_steps,
        check_steps=b.check_steps,
        schedules=["cosine"],  # one check that the peak trains; the planner spreads schedules
    )
    batch_out = optional_tool(
        state,
        "batch_size_optimizer",
        min_batch=state.space.batch_size_range[0],
        max_batch=state.space.batch_size_range[1],
        max_memory_mb=state.memory_limit(),
        noise_warm_steps=b.check_steps // 2,
        cost_steps=2 * b.check_steps,  # about: the noise-scale warmup and the throughput timings
    )
    grad_steps = max(20, min(b.check_steps, GRADIENT_STEPS))
    grad_out = optional_tool(state, "gradient_analyzer", cost_steps=grad_steps, steps=grad_steps)
    state.charge_probes()
    with torch.random.fork_rng():
        parameters = sum(p.numel() for p in state.workload.make_model().parameters())
    state.digest = build_digest(
        state.workload, parameters, state.space, state.baseline_config(b.candidate_steps), b.candidate_steps,
        lr_out, batch_out, grad_out,
    )
    if state.budget_s is None or state.request.constraints.step_budget is not None:  # no timing may choose
        state.digest = state.digest.model_copy(update={"batch_knee": None,
                                                       "batch_recommended": untimed_batch(state.digest)})
    if state.request.wants_latency:
        measure_latency(state)


def untimed_batch(digest: ProbeDigest) -> int:
    """The batch probe's pick when compute is counted in examples, with no timing in it, so a loaded machine
    cannot change a rerun's choices: the critical batch B_noise rounded to a power of two, where the examples
    and the steps to a target loss are both within 2x of their minimum, E = E_min (1 + B / B_noise), S = S_min
    (1 + B_noise / B) (McCandlish et al. 2018, eq. 2.11); the baseline's batch without a noise scale; inside
    the probed range."""
    noise = digest.batch_noise_scale
    batch = digest.baseline["batch_size"] if noise is None else 2 ** max(0, round(math.log2(noise)))
    return digest.clip_batch(batch)


def optional_tool(state: RunState, name: str, cost_steps: int = 0, **values: Any) -> BaseModel | None:
    """A probe whose expected failure becomes an observation in the notes; skipped when its ``cost_steps``
    would leave no time for a baseline, a candidate and the shortest confirm."""
    b = state.budget
    after = 2 * b.candidate_steps + 2 * b.confirm_seeds * b.candidate_steps

    def compute() -> Decision:
        if state.clock.fits(cost_steps + after, reserve_s=state.clock.report_reserve()):
            return Decision()
        return Decision(skip=True, note=f"{name} skipped: {state.time_note()}")

    if state.decide(f"probe {name}", compute).skip:
        return None
    return state.tool_or_note(name, "probe", f"{name} gave no evidence", **values)


def measure_latency(state: RunState) -> None:
    """Batch-1 onnxruntime latency of the workload's model (one thread): the architecture fixes it,
    so one short-trained export serves every candidate. Recorded like any probe."""
    out = state.tool(
        "onnx_optimizer",
        "probe",
        label="onnx_latency",
        unkeyed=("path",),
        config={"steps": LATENCY_PROBE_STEPS},
        batch_sizes=(1,),
        threads=1,
        path=str(state.out_dir / "latency-probe.onnx"),
    )
    state.latency_ms = onnx_p50(out)


def onnx_p50(out) -> float:
    """onnxruntime p50 at batch 1 from the ONNX tool's validation report."""
    row = next(r for r in out.report.latency if r.runtime == "onnxruntime" and r.batch_size == 1)
    return row.p50_ms
