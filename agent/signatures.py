"""DSPy signatures of the planner and the chat agent; their instructions are prompts/*.md.

The same signatures run on every backend: the offline planner engine answers them from the
evidence, and any litellm model answers them from the same prompt.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import dspy

from trainopt.agent.digest import MeasuredResult, ProbeDigest
from trainopt.agent.schemas import CandidateProposal


@cache
def load_prompt(name: str) -> str:
    """The instructions in prompts/<name>.md (package data of trainopt.prompts)."""
    path = files("trainopt.prompts").joinpath(f"{name}.md")
    if not path.is_file():
        raise ValueError(f"no prompt named {name!r} in trainopt.prompts")
    return path.read_text(encoding="utf-8").strip()


# candidates are parsed leniently and checked one by one (agent/proposals.py): one bad candidate must not
# throw away the others
_FIELDS = "an object with " + ", ".join(
    f"{name} ({(f.description or '').split(':')[0] or name})" for name, f in CandidateProposal.model_fields.items()
)


class _ProposeCandidates(dspy.Signature):
    evidence: ProbeDigest = dspy.InputField(desc="probe results on this model and device")
    objective: str = dspy.InputField(desc="what to optimize: metric -> weight")
    constraints: str = dspy.InputField(desc="hard limits a candidate must satisfy")
    num_candidates: int = dspy.InputField()
    candidates: list[Any] = dspy.OutputField(desc=f"distinct configurations to measure, each {_FIELDS}")
    rationale: str = dspy.OutputField(desc="the plan, citing the evidence")


class _RefineCandidates(dspy.Signature):
    evidence: ProbeDigest = dspy.InputField(desc="probe results on this model and device")
    objective: str = dspy.InputField(desc="what to optimize: metric -> weight")
    constraints: str = dspy.InputField(desc="hard limits a candidate must satisfy")
    results: list[MeasuredResult] = dspy.InputField(desc="measured candidates, best score first")
    num_candidates: int = dspy.InputField()
    candidates: list[Any] = dspy.OutputField(desc=f"new configurations, none already measured, each {_FIELDS}")
    rationale: str = dspy.OutputField(desc="what the measurements showed and what this round tests")


class _ExplainChoice(dspy.Signature):
    evidence: ProbeDigest = dspy.InputField(desc="probe results on this model and device")
    winner: MeasuredResult = dspy.InputField(desc="the configuration with the best measured score")
    comparison: dict = dspy.InputField(desc="confirm runs: winner against baseline, same steps and seeds")
    explanation: str = dspy.OutputField(desc="at most six sentences, numbers from the inputs only")


class _TrainingChat(dspy.Signature):
    question: str = dspy.InputField(desc="the user's question, in plain words")
    workload: str = dspy.InputField(desc="the workload the session is about")
    history: dspy.History = dspy.InputField(desc="earlier turns of this session")
    answer: str = dspy.OutputField(desc="a short answer backed by tool results")


ProposeCandidates = _ProposeCandidates.with_instructions(load_prompt("propose"))
RefineCandidates = _RefineCandidates.with_instructions(load_prompt("refine"))
ExplainChoice = _ExplainChoice.with_instructions(load_prompt("explain"))
TrainingChat = _TrainingChat.with_instructions(load_prompt("chat"))

__all__ = ["ExplainChoice", "ProposeCandidates", "RefineCandidates", "TrainingChat", "load_prompt"]
