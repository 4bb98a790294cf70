"""The offline planner's answers to the chat agent (dspy.ReAct over the probe tools), deterministic.

ReAct asks two signatures, both with the chat inputs (question, workload, history) and the
trajectory so far:

  step     -> next_thought, next_tool_name, next_tool_args
              no tool called yet: the tool whose keywords the question matches (first topic in
              TOPICS wins), on the workload the question names (else the session's); otherwise
              ``finish``.
  extract  -> reasoning, answer
              an answer composed from the last observation's measured numbers only; with no
              observation, what the tools can measure and no number.

The offline engine lists ``CHAT_HANDLERS`` beside its own; this module imports nothing of the
engine's, so the two never import each other.
"""

from __future__ import annotations

import re
from typing import Any

from trainopt.agent.chat_diffusion import SAMPLE_DIFFUSION, diffusion_answer, diffusion_args
from trainopt.agent.chat_diffusion import TOPIC as DIFFUSION_TOPIC
from trainopt.agent.text import short_text

FINISH = "finish"
# (tool, pattern over the lower-cased question); the first match wins
TOPICS: list[tuple[str, re.Pattern]] = [
    (SAMPLE_DIFFUSION, DIFFUSION_TOPIC),
    (
        "optimize_training",
        re.compile(
            r"\boptimi[sz](e|ing|ation)\b|\bbest (config|configuration|settings?)\b"
            r"|\btune (it|everything|my)\b"
        ),
    ),
    (
        "convergence_predictor",
        re.compile(
            r"converg|plateau|how long|how many steps|predict|early.?stop"
            r"|stop early|final loss|when will"
        ),
    ),
    (
        "gradient_analyzer",
        re.compile(
            r"oscillat|\bgrad(ient)?s?\b|explod|vanish|\bnan\b|unstable|spik|\bclip"
            r"|dead|noisy|diverg|jump"
        ),
    ),
    ("batch_size_optimizer", re.compile(r"\bbatch|memory|throughput|\boom\b")),
    ("hyperparameter_suggester", re.compile(r"hyper.?param|\bsearch|optuna|\bsweep|weight.?decay|\boptimizer\b")),
    ("learning_rate_scheduler", re.compile(r"learning.?rate|\blr\b|warm.?up|schedul|step size")),
]
ALIASES = {"cnn": "digits-cnn", "mlp": "digits-mlp", "gpt": "char-gpt", "moe": "moe-digits"}
_BUDGET = re.compile(r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h)\b")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_HORIZON = re.compile(r"\bfor\s+(\d+(?:\.\d+)?)\s*(epochs?|steps?)\b")


def pick_tool(question: str) -> str | None:
    """The tool whose topic the question is about, or None."""
    text = question.lower()
    return next((tool for tool, pattern in TOPICS if pattern.search(text)), None)


def pick_workload(question: str, default: str) -> str:
    """The workload the question names (a registered name, else an alias such as 'cnn'), or ``default``."""
    from trainopt.tools.workloads import workload_names

    text = question.lower()
    named = [name for name in workload_names() if name in text]
    if named:
        return max(named, key=len)
    alias = next((name for word, name in ALIASES.items() if re.search(rf"\b{word}\b", text)), None)
    return alias or default


def parse_horizon(question: str) -> dict[str, float]:
    """The user's run in 'optimize cnn for 10 epochs' / '... for 500 steps': {"epochs": 10.0} or
    {"train_steps": 500}; {} when the question states none.

    Examples:
        >>> parse_horizon("optimize digits-cnn for 10 epochs in 2 minutes"), parse_horizon("tune mlp")
        ({'epochs': 10.0}, {})
    """
    match = _HORIZON.search(question.lower())
    if match is None:
        return {}
    value, unit = float(match.group(1)), match.group(2)
    return {"epochs": value} if unit.startswith("epoch") else {"train_steps": max(1, round(value))}


def parse_budget(question: str) -> float | None:
    """Seconds in '... in 2 minutes' / '90 s' / '1.5 h', or None."""
    match = _BUDGET.search(question.lower())
    return None if match is None else float(match.group(1)) * _UNIT_S[match.group(2)[0]]


def _calls(sections: dict[str, Any]) -> list[tuple[str, Any]]:
    """(tool name, observation) of every call in the trajectory, in order (finish excluded)."""
    calls, i = [], 0
    while f"tool_name_{i}" in sections:
        name = str(sections[f"tool_name_{i}"]).strip()
        if name != FINISH:
            calls.append((name, sections.get(f"observation_{i}")))
        i += 1
    return calls


def _step(inputs: dict[str, Any]) -> dict[str, Any]:
    question, default = str(inputs["question"]), str(inputs.get("workload") or "digits-mlp")
    if _calls(inputs.get("_sections", {})):
        return {
            "next_thought": "The observation holds the measured numbers the answer needs.",
            "next_tool_name": FINISH,
            "next_tool_args": {},
        }
    tool = pick_tool(question)
    if tool is None:
        return {
            "next_thought": "No probe measures what this question asks; answer without numbers.",
            "next_tool_name": FINISH,
            "next_tool_args": {},
        }
    if tool == SAMPLE_DIFFUSION:
        args = diffusion_args(question)
        return {"next_thought": f"Run the diffusion router on {args['toy']} and answer from what it measured.",
                "next_tool_name": tool, "next_tool_args": args}
    workload = pick_workload(question, default)
    args: dict[str, Any] = {"workload": workload}
    if tool == "optimize_training":
        budget = parse_budget(question)
        args |= parse_horizon(question) | ({} if budget is None else {"budget_s": budget})
    return {
        "next_thought": f"The question is about what {tool} measures; run it on {workload} (a short real "
        "training run) and answer from its numbers.",
        "next_tool_name": tool,
        "next_tool_args": args,
    }


def _extract(inputs: dict[str, Any]) -> dict[str, Any]:
    question = str(inputs["question"])
    calls = _calls(inputs.get("_sections", {}))
    if not calls:
        return {"reasoning": "No tool was called, so there is no measurement to cite.", "answer": NO_TOOL}
    name, observation = calls[-1]
    if not isinstance(observation, dict):
        return {
            "reasoning": f"{name} failed.",
            "answer": f"The {name} probe failed, so nothing was measured: {short_text(_last_line(observation), 300)}",
        }
    if observation.get("interrupted"):
        return {
            "reasoning": f"{name} was stopped by the user.",
            "answer": (
                f"Stopped {name} on {observation['workload']} after {observation['steps_done']} of "
                f"{observation['steps_total']} steps (Ctrl-C). Nothing was measured, so I have no number for this; "
                "ask again to rerun it."
            ),
        }
    answer = COMPOSERS[name](observation, question)
    return {
        "reasoning": f"The answer cites the numbers {name} measured on {observation['workload']}.",
        "answer": answer,
    }


NO_TOOL = (
    "I answer with measurements from short real training runs, and none fits this question, so I have "
    "no number for it. Ask about the learning rate or schedule, the batch size or memory, gradients "
    "(a loss that oscillates or explodes), convergence (how many steps, the final loss), a hyperparameter "
    "search, or 'optimize <workload> in N minutes'. /help lists the commands."
)


# ---- answers, one per tool: numbers from the observation only ----------------------------------------


def _lr_answer(o: dict, question: str) -> str:
    lo, hi = o["safe_range"]
    checks = ", ".join(f"{c['schedule']} {_loss(c)}" for c in o["checks"])
    return (
        f"Use a peak learning rate of {o['peak_lr']:.3g} on {o['workload']} with a {o['schedule']} schedule "
        f"({o['warmup_steps']} warmup steps in a {o['budget_steps']}-step run). Measured: the LR range test ran "
        f"{o['sweep_steps']} steps ({o['sweep_stop']}); the smoothed loss was lowest at lr={o['min_loss_lr']:.3g}, "
        f"and the {o['rule']} rule ({o['rule_reason']}) gives {o['suggested_lr']:.3g}. The loss fell without "
        f"diverging between {lo:.3g} and {hi:.3g}. Short runs at the peak ({o['checks'][0]['steps']} steps), "
        f"validation loss: {checks}."
    )


def _batch_answer(o: dict, question: str) -> str:
    critical = o["critical_batch_size"]
    noise = (
        f"the gradient noise scale puts the critical batch near {critical:.3g}"
        if critical
        else "the gradient noise scale could not be estimated"
    )
    return (
        f"Use batch {o['recommended_batch_size']} on {o['workload']} with lr {o['recommended_lr']:.3g} "
        f"({o['lr_scaling_rule']} scaling from lr {o['base']['lr']:.3g} at batch {o['base']['batch_size']}). "
        f"Measured: the largest batch that fits is {o['max_batch_size']} (limited by the {o['limited_by']}; "
        f"budget {o['max_memory_mb']:.4g} MiB), throughput stops growing at batch {o['knee_batch_size']} "
        f"(the knee), and {noise}. Why batch {o['recommended_batch_size']}: {o['reason']}."
    )


def _gradient_answer(o: dict, question: str) -> str:
    parts = [
        f"Measured over {o['steps_run']} training steps of {o['workload']} at its default settings "
        f"(final loss {o['final_loss']:.4g}{', diverged' if o['diverged'] else ''})."
    ]
    worst, noise = o["largest_update_ratio"], o["noise_scale_b_simple"]
    if re.search(r"oscillat|noisy|jump|unstable|spik", question.lower()):
        if worst and worst["ratio"] > 1e-2:
            parts.append(
                f"The largest update-to-weight ratio is {worst['ratio']:.3g} per step ({worst['layer']}; "
                "about 1e-3 is healthy): steps this large make the loss jump, so lower the learning rate."
            )
        elif worst:
            parts.append(
                f"Update-to-weight ratios stay at or below {worst['ratio']:.3g} per step "
                f"({worst['layer']}), so the learning rate alone does not explain it."
            )
        if noise:
            parts.append(
                f"The gradient noise scale is B_simple = {noise:.3g}: with batches well below it each "
                "step follows mostly noise and the loss moves up and down; a larger batch (toward it) "
                "or a lower learning rate smooths it."
            )
    parts.append(
        f"Clipping at {o['clip_threshold']:.3g} (the {o['clip_percentile']:g}th percentile of the "
        "global gradient norm) trims the spikes."
    )
    serious = [f for f in o["findings"] if f["severity"] != "info"]
    if serious:
        parts.append(
            "Findings: "
            + "; ".join(f"{f['severity']} {f['layer'] or 'model'}: {f['evidence']} -> {f['fix']}" for f in serious[:3])
            + "."
        )
    else:
        parts.append("No layer is vanishing, exploding or dead.")
    return " ".join(parts)


def _convergence_answer(o: dict, question: str) -> str:
    lo, hi = o["interval"]
    return (
        f"On {o['workload']}, the fit {o['formula']} to {o['observed_points']} points of the {o['curve']} "
        f"(up to step {o['last_observed_step']:g}, loss {o['last_observed_loss']:.4g}) predicts a loss of "
        f"{o['predicted_loss']:.4g} at step {o['predict_step']:g} ({o['level']:.0%} interval {lo:.4g}-{hi:.4g}). "
        f"Verdict: {o['verdict']} ({o['reason']})."
    )


def _hpo_answer(o: dict, question: str) -> str:
    c = o["best_config"]
    return (
        f"Best of {o['trials']} measured trials on {o['workload']} ({o['pruned']} pruned early, "
        f"{o['steps_spent']} training steps in all; {o['pruner']} pruner): {c['optimizer']} lr={c['lr']:.3g}, "
        f"batch {c['batch_size']}, {c['schedule']} schedule, weight decay {c['weight_decay']:.2g}, reaching "
        f"validation loss {o['best_val_loss']:.4g} after {c['steps']} steps."
    )


def _optimize_answer(o: dict, question: str) -> str:
    r, b, c = o["recommended"], o["baseline"], o.get("challenger") or o["recommended"]
    low, high = o.get("interval") or (float("nan"), float("nan"))
    metric = ""
    if o.get("adopted") and o["recommended_metric"] is not None and o["baseline_metric"] is not None:
        metric = f"; accuracy {o['recommended_metric']:.4f} against {o['baseline_metric']:.4f}"
    notes = "".join(f"\n- {note}" for note in o["notes"])
    notes = f"\nNotes:{notes}" if notes else ""
    decision = (
        f"Recommended: {r['optimizer']} with peak lr {r['lr']:.3g}, batch {r['batch_size']}, {r['schedule']} "
        f"schedule ({r['warmup_steps']} warmup steps)." if o.get("adopted") else
        f"Recommended: keep the default ({b['optimizer']} lr {b['lr']:.3g}, batch {b['batch_size']})."
    )
    return (
        f"For {o['workload']}, {o.get('horizon') or 'its own length'} (budget {o['budget_s']:g} s): {decision} The "
        f"best raced candidate ({c['optimizer']} lr {c['lr']:.3g}, batch {c['batch_size']}, {c['schedule']}) against "
        f"the default on {len(o['seeds'])} held-out seeds {o['seeds']}, {o.get('claim') or 'measured'}: loss "
        "reduction "
        f"{o['relative_loss_reduction']:+.1%} (90% interval {low:+.1%} to {high:+.1%}; better on "
        f"{o.get('wins', 0)} of {len(o['seeds'])} seeds)"
        f"{'; ' + o['new_seeds_text'] if o.get('new_seeds_text') else ''}"
        f"{metric}. {o.get('reason', '')}. {o['candidates_measured']} configurations were measured. Report: "
        f"{o['report_html']}.{notes}"
    )


COMPOSERS = {
    "learning_rate_scheduler": _lr_answer,
    "batch_size_optimizer": _batch_answer,
    "gradient_analyzer": _gradient_answer,
    "convergence_predictor": _convergence_answer,
    "hyperparameter_suggester": _hpo_answer,
    "optimize_training": _optimize_answer,
    SAMPLE_DIFFUSION: diffusion_answer,
}


def _loss(check: dict) -> str:
    return "diverged" if check["diverged"] else f"{check['val_loss']:.4g}"


def _last_line(error: Any) -> str:
    """The exception line of a ReAct error observation (its traceback comes first)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{lines[0].split(':')[0]}: {lines[-1]}" if len(lines) > 1 else str(error)


# (input field names that must be present, output field names, handler), as offline_engine matches them
CHAT_HANDLERS = [
    (frozenset({"question", "trajectory"}), frozenset({"next_thought", "next_tool_name", "next_tool_args"}), _step),
    (frozenset({"question", "trajectory"}), frozenset({"reasoning", "answer"}), _extract),
]
