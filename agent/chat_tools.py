"""The chat agent's tools: each probe tool, and the whole optimization, as a ``dspy.Tool``.

Every tool is a plain synchronous function ``tool(workload=None, **input_fields)`` whose argument
schema is the tool's pydantic ``Input`` (plus ``workload``). A call validates its arguments, runs
the probe through the session's ProbeCache (so a replay reads the recorded output back instead of
training), and returns a short summary of the measured numbers as the observation. A failure
becomes an observation (ReAct catches exceptions); Ctrl-C stops the probe and becomes an
observation too, so the session goes on.

Examples:
    >>> tools = build_chat_tools(ToolContext(...))          # doctest: +SKIP
    >>> [t.name for t in tools][:2]                         # doctest: +SKIP
    ['learning_rate_scheduler', 'batch_size_optimizer']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
import torch
from pydantic import BaseModel

from trainopt.agent.chat_diffusion import SAMPLE_DIFFUSION, TOOL_ARGS, TOOL_DESC, DiffusionSample, sample_diffusion
from trainopt.agent.probe_cache import ProbeCache, output_key
from trainopt.tools import TOOL_CLASSES, get_tool
from trainopt.tools.base import parse_input
from trainopt.tools.cancellation import check_cancelled, clear_interrupt, run_in_worker
from trainopt.tools.summaries import summarize, write_full_output
from trainopt.tools.workloads import get_workload, workload_names

OPTIMIZE = "optimize_training"
PROBES_DIR = "probes"  # under the session's out_dir: each probe's full Output and figure
CHAT_TOOLS = (*TOOL_CLASSES, OPTIMIZE, SAMPLE_DIFFUSION)

# progress(tool, done, total); announce(tool, workload, input fields)
ChatProgress = Callable[[str, int, int], None]
Announce = Callable[[str, str, dict[str, Any]], None]


@dataclass
class ToolContext:
    """What the chat tools share with the session: device, stores, the probe size, callbacks."""

    workload: str
    device: torch.device
    device_type: str
    store: Any  # TrialStore, or ReplayStore when replaying
    cache: ProbeCache
    storage: str
    out_dir: Path
    lm: Any = None  # the LM spec the optimize tool's planner uses
    probe_steps: int = 60  # size of a chat probe: sweep and check lengths derive from it
    budget_s: float = 60.0  # time budget of optimize_training
    progress: ChatProgress | None = None
    announce: Announce | None = None
    measured: list[dict[str, Any]] = field(default_factory=list)  # every summary, for /report


def chat_defaults(name: str, n: int) -> dict[str, Any]:
    """Input values a chat probe starts from, sized by ``n`` = probe_steps (the caller's values win)."""
    return {
        "learning_rate_scheduler": {
            "range_steps": min(100, max(20, n)),
            "check_steps": n,
            "budget_steps": 5 * n,
            "schedules": ["constant", "cosine"],
        },
        "batch_size_optimizer": {"max_batch": 512, "timed_steps": 3, "noise_warm_steps": n // 2, "noise_draws": 5},
        "gradient_analyzer": {"steps": 2 * n},
        "convergence_predictor": {"config": {"steps": 4 * n}, "observe_steps": 2 * n, "n_bootstrap": 50},
        "hyperparameter_suggester": {
            "n_trials": 8,
            "max_steps": 2 * n,
            "optimizers": ["adamw", "sgd"],
            "schedules": ["constant", "cosine"],
        },
    }[name]


class OptimizeSummary(BaseModel):
    """What the chat keeps of an OptimizationResponse (stored like a probe's output)."""

    workload: str
    budget_s: float
    recommended: dict[str, Any]
    baseline: dict[str, Any]
    steps: int
    horizon: str | None = None  # the user's run the recommendation is for (Horizon.text)
    claim: str | None = None  # measured at H or predicted there (Gain.claim_text)
    seeds: list[int]
    baseline_val_loss: float
    recommended_val_loss: float
    relative_loss_reduction: float
    interval: tuple[float, float] = (float("nan"), float("nan"))  # 90%, over the held-out seeds
    new_seeds_text: str | None = None  # where a user's mean over 5 new seeds lands (90%): Gain.new_seeds_text
    wins: int = 0
    adopted: bool = False
    reason: str = ""
    challenger: dict[str, Any] | None = None
    baseline_metric: float | None
    recommended_metric: float | None
    candidates_measured: int
    report_html: str | None
    notes: list[str]


def build_chat_tools(ctx: ToolContext) -> list[dspy.Tool]:
    """The five probe tools, optimize_training and sample_diffusion, as dspy Tools bound to ``ctx``."""
    tools = [_probe_tool(ctx, name) for name in TOOL_CLASSES]
    tools.append(_optimize_tool(ctx))
    tools.append(_diffusion_tool(ctx))
    return tools


def _workload_arg() -> dict[str, Any]:
    return {
        "type": "string",
        "description": f"workload to probe, one of {', '.join(workload_names())} (default: the session's)",
    }


def _probe_tool(ctx: ToolContext, name: str) -> dspy.Tool:
    cls = get_tool(name)

    def call(workload: str | None = None, **values: Any) -> dict[str, Any]:
        workload = get_workload(workload or ctx.workload).name
        input = parse_input(cls.Input, {**chat_defaults(name, ctx.probe_steps), **values}, name)
        fields = input.model_dump(mode="json")
        key = output_key(name, ctx.store.workload_id(workload), fields, ctx.device_type)
        if ctx.announce is not None:
            ctx.announce(name, workload, fields)
        seen = {"done": 0, "total": 0}

        def progress(done: int, total: int) -> None:
            seen.update(done=done, total=total)
            check_cancelled(done, total)  # an acall whose task was cancelled stops here, at the next step
            if ctx.progress is not None:
                ctx.progress(name, done, total)

        tool = cls(workload, device=ctx.device, store=ctx.store, progress=progress)
        try:
            output, _ = ctx.cache.run(key, name, cls.Output, lambda: tool.run(input))
        except KeyboardInterrupt:
            return _interrupted(ctx, name, workload, seen)
        summary = summarize(name, output, workload=workload, files=_write_files(ctx, tool, output, key))
        ctx.measured.append(summary)
        return summary

    schema = _inline_refs(cls.Input.model_json_schema())
    args = {"workload": _workload_arg(), **schema.get("properties", {})}
    return WorkerTool(call, name=name, desc=cls.description, args=args, arg_types={k: Any for k in args})


def _write_files(ctx: ToolContext, tool, output: BaseModel, key: str) -> dict[str, str]:
    """The full Output (JSON) and the figure (PNG) under out_dir/probes; paths relative to out_dir,
    so a replay's observation is the recorded one wherever its folder is."""
    files = write_full_output(tool, output, ctx.out_dir / PROBES_DIR, stem=f"{tool.name}-{key[:10]}")
    return {kind: str(Path(path).relative_to(ctx.out_dir)) for kind, path in files.items()}


class WorkerTool(dspy.Tool):
    """A dspy Tool whose ``acall`` trains in a worker thread, keeping the event loop free; cancelling
    the awaiting task stops the probe at its next step (``trainopt.tools.cancellation``)."""

    async def acall(self, **kwargs: Any) -> Any:
        return await run_in_worker(lambda token: self(**kwargs))


def _optimize_tool(ctx: ToolContext) -> dspy.Tool:
    def call(workload: str | None = None, budget_s: float | None = None, epochs: float | None = None,
             train_steps: int | None = None) -> dict[str, Any]:
        workload = get_workload(workload or ctx.workload).name
        budget = float(budget_s or ctx.budget_s)
        if budget <= 0:
            raise ValueError(f"budget_s must be > 0 but got {budget_s=}")
        horizon = {k: v for k, v in (("epochs", epochs), ("train_steps", train_steps)) if v is not None}
        key = output_key(OPTIMIZE, ctx.store.workload_id(workload), {"budget_s": budget, **horizon}, ctx.device_type)
        if ctx.announce is not None:
            ctx.announce(OPTIMIZE, workload, {"budget_s": budget, **horizon})
        seen = {"done": 0, "total": 0}
        try:
            output, _ = ctx.cache.run(key, OPTIMIZE, OptimizeSummary,
                                      lambda: _optimize(ctx, workload, budget, horizon, seen))
        except KeyboardInterrupt:
            return _interrupted(ctx, OPTIMIZE, workload, seen)
        summary = {"tool": OPTIMIZE, **output.model_dump(mode="json")}
        ctx.measured.append(summary)
        return summary

    args = {
        "workload": _workload_arg(),
        "budget_s": {"type": "number", "description": "time budget in seconds (default: the session's)"},
        "epochs": {"type": "number", "description": "the user's training run H in epochs (default: the workload's "
                                                    "own length)"},
        "train_steps": {"type": "integer", "description": "H in steps at the default batch instead of epochs"},
    }
    desc = (
        "The whole optimization: profile, probe, propose candidates, measure them, refine, and confirm "
        "the winner against the default configuration on the same steps and seeds. Slow: minutes."
    )
    return WorkerTool(call, name=OPTIMIZE, desc=desc, args=args, arg_types={k: Any for k in args})


def _diffusion_tool(ctx: ToolContext) -> dspy.Tool:
    """The diffusion router (trainopt.agent.chat_diffusion), cached and replayed like a probe."""

    def call(toy: str = "moons", speed_weight: float = 1.0, max_nfe: int | None = None) -> dict[str, Any]:
        args = {"toy": toy, "speed_weight": float(speed_weight), "max_nfe": max_nfe}
        if ctx.announce is not None:
            ctx.announce(SAMPLE_DIFFUSION, toy, args)
        key = output_key(SAMPLE_DIFFUSION, toy, args, "cpu")
        output, _ = ctx.cache.run(key, SAMPLE_DIFFUSION, DiffusionSample, lambda: sample_diffusion(**args))
        summary = {"tool": SAMPLE_DIFFUSION, **output.model_dump(mode="json")}
        ctx.measured.append(summary)
        return summary

    return WorkerTool(call, name=SAMPLE_DIFFUSION, desc=TOOL_DESC, args=TOOL_ARGS,
                      arg_types={k: Any for k in TOOL_ARGS})


def _optimize(ctx: ToolContext, workload: str, budget: float, horizon: dict, seen: dict) -> OptimizeSummary:
    from trainopt.agent.agent import TrainingOptimizationAgent
    from trainopt.agent.schemas import OptimizationRequest

    def progress(step: str, done: int, total: int, message: str) -> None:
        seen.update(done=done, total=total)
        if ctx.progress is not None:
            ctx.progress(f"{OPTIMIZE}: {step}", done, total)

    agent = TrainingOptimizationAgent(
        lm=ctx.lm, storage=ctx.storage, out_dir=ctx.out_dir / workload, device=str(ctx.device), progress=progress
    )
    response = agent.optimize_training(OptimizationRequest(workload=workload, constraints={"time_budget_s": budget},
                                                           **horizon))
    g = response.gain
    keep = {"optimizer", "lr", "batch_size", "schedule", "warmup_steps", "weight_decay", "grad_clip", "steps"}
    return OptimizeSummary(
        workload=workload,
        budget_s=budget,
        recommended=response.recommended.model_dump(mode="json", include=keep),
        baseline=response.baseline.model_dump(mode="json", include=keep),
        steps=g.steps,
        horizon=response.horizon.text() if response.horizon else None,
        claim=g.claim_text(),
        seeds=g.seeds,
        baseline_val_loss=_sig(g.baseline.loss),
        recommended_val_loss=_sig((g.challenger if g.adopted else g.baseline).loss),
        relative_loss_reduction=_sig(g.relative_loss_reduction),
        interval=(_sig(g.interval[0]), _sig(g.interval[1])),
        new_seeds_text=g.new_seeds_text(),
        wins=g.wins,
        adopted=g.adopted,
        reason=g.reason,
        challenger=None if response.challenger is None else response.challenger.model_dump(mode="json", include=keep),
        baseline_metric=_sig(g.baseline.accuracy),
        recommended_metric=_sig((g.challenger if g.adopted else g.baseline).accuracy),
        candidates_measured=len(response.candidates),
        report_html=response.artifacts.report_html,
        notes=list(response.notes),
    )


def _interrupted(ctx: ToolContext, name: str, workload: str, seen: dict) -> dict[str, Any]:
    """A probe stopped by Ctrl-C, as an observation; the interrupt is handled, so the session goes on without
    it (tools/cancellation.py)."""
    clear_interrupt()
    summary = {
        "tool": name,
        "workload": workload,
        "interrupted": True,
        "steps_done": seen["done"],
        "steps_total": seen["total"],
    }
    ctx.measured.append(summary)
    return summary


def _sig(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema with every ``$ref`` to ``$defs`` replaced by the definition (LMs read it flat)."""
    defs = schema.get("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].split("/")[-1]])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
